"""A deterministic, realistic TESSERA sample store, in the layouts that are published.

The store looks like a landscape, not noise: land-cover classes (water, built-up, cropland,
forest, grassland, wetland) form spatially coherent regions, each with its own 128-d
prototype, plus texture, per-field variation and a small year-to-year drift. Water has NaN
scales, a not-yet-embedded strip has +inf scales, and a block of cropland becomes built-up
in the last year (a real change). The default area straddles the 0 degree meridian near
Cambridge, UK, so the store has two zone groups, utm30 and utm31.

Layouts (``SampleSpec.layout``), after ../shared/TESSERA_LAYOUT.md:

- ``legacy``: the first form we generated (one ``geoemb:stretch.{year}`` attribute per year).
- ``per-year``: the earlier layout, one store per year, embeddings (y, x, band).
- ``v2``: the newest: ``geoemb:stretch`` keyed by year in ``bands`` mode, per-zone stretches,
  ``geoemb:depths`` with ``embeddings_d4`` / ``embeddings_d16`` (byte-exact prefixes), a
  ``global_rgb`` preview pyramid, a few pixels with out-of-range scales, and dimensions
  ordered by importance (Matryoshka-like: the first dimensions separate the classes).
- ``v1``: ``geoemb:stretch`` keyed by year in ``pca`` mode, a ``global_rgb`` drawn with the
  PCA, no depths, and huge finite garbage scales on some pixels (v1 predates the
  0 < s < 1 filter). Dimensions are not ordered.
- ``v1.1-dclimate``: NaN is the only nodata (no +inf anywhere), per-pixel observation
  counts in every zone group, a ``pca`` stretch, no depths, no preview.

The class map is kept as ground truth in each zone group (array ``sample_landcover``) so
tests can check that PCA colours, similarity search and classifiers separate the classes;
its attribute ``invalid_scale_pixels`` lists the pixels given out-of-range scales.

Everything is a function of lon/lat (the landscape) or of a seed derived from the block
position (the pixel noise), so the same arguments always give the same bytes.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from pyproj import Transformer

from .utm import zone_epsg, zone_group, zone_lon_bounds, zone_of_lon

CLASSES: dict[int, str] = {
    1: "water",
    2: "built-up",
    3: "cropland",
    4: "forest",
    5: "grassland",
    6: "wetland",
}
WATER = 1
BUILT = 2
CROP = 3
FOREST = 4
GRASS = 5
WETLAND = 6

GSD = 10.0
N_BANDS = 128

LAYOUTS = ("legacy", "per-year", "v2", "v1", "v1.1-dclimate")
PUBLISHED = ("v2", "v1", "v1.1-dclimate")  # layouts with the published root attributes
DEPTHS = (4, 16)  # Matryoshka prefixes of v2 stores, besides the full 128
CDF_POINTS = 257
P_LOW, P_HIGH = 2.0, 98.0
# Out-of-range scales written on a few valid land pixels (nonzero int8 values kept): a
# reader that takes every finite scale as valid draws garbage there.
BAD_SCALES = {
    "v2": (1.0e6, 3.5, 1.0, 0.0, -0.02),
    "v1": (3.0e38, 1.0e6, 3.5, 1.0, 250.0),
}
OBS_COUNTS = ("s1_asc_obs_count", "s1_desc_obs_count", "s2_obs_count")

# The global preview grid (EPSG:4326, -180..180 / -90..90): level n has a resolution of
# PREVIEW_RES * 2^n degrees and shape floor(PREVIEW_H / 2^n) x floor(PREVIEW_W / 2^n).
PREVIEW_RES = 0.0001
PREVIEW_H, PREVIEW_W = 1_800_000, 3_600_000
PREVIEW_CHUNK = 512
CONVENTIONS = {
    "geoemb:": {"uuid": "61c12cc5-0e28-4056-999a-480cf3fb7e4c", "name": "geoemb:",
                "description": "Geoembeddings convention for geospatial embedding arrays with model provenance"},
    "multiscales": {"uuid": "d35379db-88df-4056-af3a-620245f8e347", "name": "multiscales",
                    "description": "Multiscale layout of zarr datasets"},
    "proj:": {"uuid": "f17cb550-5864-4468-aeb7-f3180cfb622f", "name": "proj:"},
    "spatial:": {"uuid": "689b58e2-cf7b-45e0-9fff-9cfc0883d6b4", "name": "spatial:"},
}


@dataclass(frozen=True)
class SampleSpec:
    """What to generate. The defaults make a store of about 8 x 7 km in two zones."""

    bbox: tuple[float, float, float, float] = (-0.06, 52.17, 0.06, 52.23)  # W, S, E, N (lon/lat)
    years: tuple[int, ...] = (2024, 2025)
    shard: int = 256  # production stores use 4096; benchmarks use 1024
    chunk: int = 32
    seed: int = 2026
    time_order: str = "ascending"  # or "descending": for readers that must not assume order
    layout: str = "legacy"  # one of LAYOUTS ("zones" is an old name of "legacy")
    extra_attrs: dict = field(default_factory=dict)
    preview_levels: int = 10  # global_rgb levels (v2, v1)

    def __post_init__(self) -> None:
        if self.layout == "zones":
            object.__setattr__(self, "layout", "legacy")
        w, s, e, n = self.bbox
        if not (w < e and s < n):
            raise ValueError(f"bbox must be W,S,E,N with W < E and S < N, got {self.bbox}")
        if not (-80.0 <= s and n <= 84.0):
            raise ValueError("bbox must lie within the UTM latitude range (-80 to 84)")
        if self.shard % self.chunk:
            raise ValueError(f"shard size {self.shard} must be a multiple of the chunk size {self.chunk}")
        if not self.years:
            raise ValueError("at least one year is needed")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {self.layout!r}")
        if self.layout == "v2" and self.shard % _depth_chunk(min(DEPTHS)):
            raise ValueError(f"v2 stores need shards that are a multiple of {_depth_chunk(min(DEPTHS))} px "
                             f"(the inner chunk of embeddings_d4); got {self.shard}")
        if not 1 <= self.preview_levels <= 20:
            raise ValueError(f"preview_levels must be 1 to 20, got {self.preview_levels}")


def _depth_chunk(dims: int) -> int:
    """Inner chunk side of a depth array: the largest power of two s with dims * s^2 <= 128 KiB,
    clamped to 32..4096 (geotessera's rule: 128 -> 32, 16 -> 64, 4 -> 128)."""
    side = 32
    while dims * (2 * side) ** 2 <= 128 * 1024 and side < 4096:
        side *= 2
    return side


@dataclass
class _Landscape:
    """The continuous landscape: every quantity is a function of lon/lat."""

    spec: SampleSpec
    rng_seed: int

    def __post_init__(self) -> None:
        w, s, e, n = self.spec.bbox
        self.lon0 = (w + e) / 2.0
        self.lat0 = (s + n) / 2.0
        self.kx = 111320.0 * math.cos(math.radians(self.lat0))
        self.ky = 110540.0
        half_w = (e - w) / 2.0 * self.kx
        half_h = (n - s) / 2.0 * self.ky
        self.half = (half_w, half_h)
        rng = np.random.default_rng(self.rng_seed)
        # Smooth fields: sums of random plane waves (wavelengths 0.6 to 3 km).
        self.waves = []
        for _ in range(6):
            k = rng.uniform(2 * math.pi / 3000.0, 2 * math.pi / 600.0, size=5)
            ang = rng.uniform(0, 2 * math.pi, size=5)
            phase = rng.uniform(0, 2 * math.pi, size=5)
            self.waves.append((k * np.cos(ang), k * np.sin(ang), phase))
        # Class prototypes and a texture basis in the 128-d embedding space.
        self.prototypes = rng.normal(0.0, 1.0, size=(len(CLASSES) + 1, N_BANDS)).astype(np.float32)
        self.texture_basis = rng.normal(0.0, 0.22, size=(4, N_BANDS)).astype(np.float32)
        self.drift = rng.normal(0.0, 0.12, size=(len(CLASSES) + 1, N_BANDS)).astype(np.float32)
        self.field_basis = rng.normal(0.0, 0.35, size=(3, N_BANDS)).astype(np.float32)
        self.river = (rng.uniform(0.15, 0.3) * half_h, rng.uniform(1500, 2600), rng.uniform(0, 6.28))
        self.town = (0.25 * half_w, 0.1 * half_h, 0.28 * min(half_w, half_h))
        self.lake = (-0.55 * half_w, -0.55 * half_h, 0.12 * min(half_w, half_h))
        # A development: cropland turning built-up in the last year.
        self.change = (-0.5 * half_w, 0.45 * half_h, 0.18 * half_w, 0.15 * half_h)

    def metres(self, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (lon - self.lon0) * self.kx, (lat - self.lat0) * self.ky

    def smooth(self, i: int, ex: np.ndarray, ny: np.ndarray) -> np.ndarray:
        kx, ky, ph = self.waves[i]
        out = np.zeros(ex.shape, dtype=np.float32)
        for j in range(len(kx)):
            out += np.sin(kx[j] * ex + ky[j] * ny + ph[j]).astype(np.float32)
        return out / math.sqrt(len(kx) / 2.0)

    def classes(self, ex: np.ndarray, ny: np.ndarray, last_year: bool) -> np.ndarray:
        f_forest = self.smooth(0, ex, ny)
        f_grass = self.smooth(1, ex, ny)
        f_wet = self.smooth(2, ex, ny)
        cls = np.full(ex.shape, CROP, dtype=np.uint8)
        cls[f_grass > 0.55] = GRASS
        cls[f_forest > 0.75] = FOREST
        amp, wl, ph = self.river
        river_n = amp * np.sin(ex / wl + ph) + 0.3 * amp * np.sin(ex / (0.37 * wl))
        dist_river = np.abs(ny - river_n)
        cls[(dist_river < 220) & (f_wet > 0.2)] = WETLAND
        tx, ty, tr = self.town
        r_town = np.hypot(ex - tx, ny - ty)
        cls[r_town < tr * (1.0 + 0.25 * self.smooth(3, ex, ny))] = BUILT
        if last_year:
            cx, cy, hw, hh = self.change
            inside = (np.abs(ex - cx) < hw) & (np.abs(ny - cy) < hh)
            cls[inside] = BUILT
        lx, ly, lr = self.lake
        cls[np.hypot(ex - lx, ny - ly) < lr * (1.0 + 0.2 * self.smooth(4, ex, ny))] = WATER
        cls[dist_river < 22 + 6 * self.smooth(5, ex, ny)] = WATER
        return cls

    def embeddings(self, cls: np.ndarray, ex: np.ndarray, ny: np.ndarray, year_index: int,
                   rng: np.random.Generator) -> np.ndarray:
        """Float embeddings (..., 128) for the pixels given by class and position."""
        tex = np.stack([self.smooth(i, ex * 3.1, ny * 2.7) for i in range(4)], axis=-1)
        v = self.prototypes[cls] + tex @ self.texture_basis
        # Fields: 250 m parcels, each with its own crop (an offset along field_basis).
        parcel = (np.floor(ex / 250.0) * 7919 + np.floor(ny / 180.0) * 104729).astype(np.int64)
        h = (parcel * 2654435761) % 1000003
        crop_mix = np.stack([np.cos(h * 0.001 * (i + 1)) for i in range(3)], axis=-1).astype(np.float32)
        is_crop = (cls == CROP)[..., None]
        v += np.where(is_crop, crop_mix @ self.field_basis, 0.0).astype(np.float32)
        v += year_index * self.drift[cls]
        v += rng.normal(0.0, 0.12, size=v.shape).astype(np.float32)
        return v

    def importance_basis(self) -> np.ndarray:
        """An orthonormal 128 x 128 basis whose first axes carry the most variance of the
        landscape (class prototypes first, then crop parcels and texture): embeddings
        expressed in it have their dimensions ordered by importance, as v2 stores do."""
        protos = self.prototypes[1:].astype(np.float64)
        centred = protos - protos.mean(axis=0)
        cov = centred.T @ centred / len(centred)
        fb = self.field_basis.astype(np.float64)
        tb = self.texture_basis.astype(np.float64)
        cov += 0.25 * fb.T @ fb + 0.5 * tb.T @ tb
        vals, vecs = np.linalg.eigh(cov)
        basis = vecs[:, np.argsort(vals)[::-1]]
        signs = np.sign(basis[np.argmax(np.abs(basis), axis=0), np.arange(N_BANDS)])
        return (basis * signs).astype(np.float32)

    def order_by_importance(self) -> None:
        """Express the landscape in its importance basis (v2 stores). Every ingredient of an
        embedding is rotated; the pixel noise is isotropic, so it needs no rotation."""
        basis = self.importance_basis()
        self.prototypes = self.prototypes @ basis
        self.texture_basis = self.texture_basis @ basis
        self.field_basis = self.field_basis @ basis
        self.drift = self.drift @ basis

    def observations(self, ex: np.ndarray, ny: np.ndarray) -> dict[str, np.ndarray]:
        """Plausible per-pixel observation counts of a year (v1.1-dclimate): S2 clear views
        vary with cloud (10 to 70), S1 passes are steadier, and the west of the area lies in
        a gap of the descending orbit (0 descending passes)."""
        cloud = self.smooth(4, ex * 0.4, ny * 0.4)
        s2 = np.clip(np.rint(40 + 14 * cloud), 10, 70)
        asc = np.clip(np.rint(30 + 3 * self.smooth(1, ex * 0.2, ny * 0.2)), 20, 40)
        desc = np.clip(np.rint(28 + 3 * self.smooth(2, ex * 0.2, ny * 0.2)), 20, 40)
        desc[ex < -0.6 * self.half[0]] = 0
        return {"s1_asc_obs_count": asc.astype(np.uint16), "s1_desc_obs_count": desc.astype(np.uint16),
                "s2_obs_count": s2.astype(np.uint16)}


def quantise(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel symmetric int8 quantisation: v ~= q * scale, as TESSERA stores it."""
    peak = np.max(np.abs(v), axis=-1)
    scale = np.maximum(peak / 127.0, 1e-6).astype(np.float32)
    q = np.clip(np.rint(v / scale[..., None]), -127, 127).astype(np.int8)
    return q, scale


def valid_scales(scale: np.ndarray) -> np.ndarray:
    """Valid pixels as published stores define them: a finite scale with 0 < s < 1."""
    with np.errstate(invalid="ignore"):
        return np.isfinite(scale) & (scale > 0) & (scale < 1)


def _zone_grid(spec: SampleSpec, zone: int):
    """Pixel grid (x0, y0, H, W) of a zone's part of the bbox, padded to whole shards."""
    w, s, e, n = spec.bbox
    zw, ze = zone_lon_bounds(zone)
    pw, pe = max(w, zw), min(e, ze)
    t = Transformer.from_crs("EPSG:4326", zone_epsg(zone), always_xy=True)
    lons = np.concatenate([np.linspace(pw, pe, 50), np.full(50, pe), np.linspace(pe, pw, 50), np.full(50, pw)])
    lats = np.concatenate([np.full(50, s), np.linspace(s, n, 50), np.full(50, n), np.linspace(n, s, 50)])
    xs, ys = t.transform(lons, lats)
    step = GSD * spec.chunk
    x0 = math.floor(min(xs) / step) * step
    y0 = math.ceil(max(ys) / step) * step
    width = math.ceil((max(xs) - x0) / GSD)
    height = math.ceil((y0 - min(ys)) / GSD)
    height = -(-height // spec.shard) * spec.shard
    width = -(-width // spec.shard) * spec.shard
    return x0, y0, height, width, (pw, pe)


def _pca_attrs(samples: np.ndarray) -> dict:
    """Global PCA and stretch of a year, as the legacy `geoemb:stretch.{year}` carries it."""
    mean = samples.mean(axis=0)
    _, _, vt = np.linalg.svd(samples - mean, full_matrices=False)
    comps = vt[:3]
    signs = np.sign(comps[np.arange(3), np.argmax(np.abs(comps), axis=1)])
    comps = comps * signs[:, None]
    proj = (samples - mean) @ comps.T
    qs = np.linspace(0, 100, 21)
    return {
        "pca_components": comps.astype(float).round(7).tolist(),
        "pca_mean": mean.astype(float).round(7).tolist(),
        "min": np.percentile(proj, 2, axis=0).round(5).tolist(),
        "max": np.percentile(proj, 98, axis=0).round(5).tolist(),
        "cdf": np.percentile(proj, qs, axis=0).T.round(5).tolist(),
        "cdf_percentiles": qs.tolist(),
    }


def _increasing(values: np.ndarray) -> list[float]:
    """Breakpoints rounded to 1e-6 and made strictly increasing (searchsorted needs that)."""
    micro = np.rint(np.asarray(values, dtype=np.float64) * 1e6).astype(np.int64)
    steps = np.arange(len(micro))
    micro = np.maximum.accumulate(micro - steps) + steps
    return (micro / 1e6).tolist()


def stretch_entry(samples: np.ndarray, mode: str, method: str) -> dict:
    """One year's entry of `geoemb:stretch` (or of a zone in `geoemb:stretch_zones`), as
    geotessera writes it: per-channel p2/p98 range and a 257-point CDF per channel, in
    ``bands`` mode over dimensions 1-3, in ``pca`` mode over the first three components
    (3 x 128, with their mean and explained variance ratio)."""
    x = samples.astype(np.float64)
    entry: dict = {"mode": mode, "method": method}
    if mode == "pca":
        mean = x.mean(axis=0)
        vals, vecs = np.linalg.eigh(np.cov(x.T))
        order = np.argsort(vals)[::-1][:3]
        comps = vecs[:, order].T
        comps *= np.sign(comps[np.arange(3), np.argmax(np.abs(comps), axis=1)])[:, None]
        comps = comps.round(7)
        mean = mean.round(7)
        channels = (x - mean) @ comps.T
        entry["bands"] = list(range(N_BANDS))
    else:
        channels = x[:, :3]
        entry["bands"] = [0, 1, 2]
    lo = np.percentile(channels, P_LOW, axis=0).round(6)
    hi = np.percentile(channels, P_HIGH, axis=0).round(6)
    hi = np.where(hi > lo, hi, lo + 1.0)
    cdf = np.percentile(channels, np.linspace(0.0, 100.0, CDF_POINTS), axis=0).T
    entry.update({"samples": int(len(x)), "p_low": P_LOW, "p_high": P_HIGH,
                  "min": lo.tolist(), "max": hi.tolist(), "cdf": [_increasing(c) for c in cdf]})
    if mode == "pca":
        entry["pca_components"] = comps.tolist()
        entry["pca_mean"] = mean.tolist()
        entry["pca_explained_variance_ratio"] = (vals[order] / vals.sum()).round(7).tolist()
    return entry


def stretch_colours(values: np.ndarray, entry: dict) -> np.ndarray:
    """uint8 colours of dequantised pixels (..., n) under a stretch entry: the three channels
    (dimensions 1-3, or the PCA projection) mapped linearly from min..max to 0..255."""
    v = values.astype(np.float64)
    if entry["mode"] == "pca":
        v = (v - np.array(entry["pca_mean"])) @ np.array(entry["pca_components"]).T
    else:
        v = v[..., :3]
    lo, hi = np.array(entry["min"]), np.array(entry["max"])
    return np.floor(np.clip((v - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


class _ZoneWriter:
    """Creates a zone group's arrays in one layout and writes shard-aligned blocks into them."""

    def __init__(self, root, gname: str, attrs: dict, spec: SampleSpec, years: list[int],
                 height: int, width: int, x0: float, y0: float, per_year: bool) -> None:
        from zarr.codecs import BloscCodec  # zarr: the generator only, not the plugin's start-up

        blosc = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
        g = root.create_group(gname, attributes=attrs)
        self.group = g
        ch, sh, T = spec.chunk, spec.shard, len(years)
        self.per_year = per_year
        self.depths: list = []
        self.obs: dict = {}
        if per_year:  # the earlier layout: one store per year, embeddings (y, x, band)
            self.emb = g.create_array(
                "embeddings", shape=(height, width, N_BANDS), dtype="int8", chunks=(ch, ch, N_BANDS),
                shards=(sh, sh, N_BANDS), fill_value=0, compressors=blosc, dimension_names=["y", "x", "band"])
            self.scl = g.create_array(
                "scales", shape=(height, width), dtype="float32", chunks=(ch, ch), shards=(sh, sh),
                fill_value=float("inf"), compressors=blosc, dimension_names=["y", "x"])
            self.lc = g.create_array("sample_landcover", shape=(height, width), dtype="uint8", chunks=(sh, sh),
                                     fill_value=0, dimension_names=["y", "x"], attributes=_LC_ATTRS)
        else:
            if spec.layout == "v2":  # Matryoshka prefixes, written before `embeddings` (as builds do)
                for d in DEPTHS:
                    side = _depth_chunk(d)
                    arr = g.create_array(
                        f"embeddings_d{d}", shape=(T, d, height, width), dtype="int8", chunks=(1, d, side, side),
                        shards=(1, d, sh, sh), fill_value=0, compressors=blosc,
                        dimension_names=["time", f"band_d{d}", "y", "x"])
                    self.depths.append((d, arr))
                    _coordinate(g, f"band_d{d}", np.arange(d, dtype="int32"))
            self.emb = g.create_array(
                "embeddings", shape=(T, N_BANDS, height, width), dtype="int8", chunks=(1, N_BANDS, ch, ch),
                shards=(1, N_BANDS, sh, sh), fill_value=0, compressors=blosc,
                dimension_names=["time", "band", "y", "x"])
            nodata = float("nan") if spec.layout == "v1.1-dclimate" else float("inf")
            self.scl = g.create_array(
                "scales", shape=(T, height, width), dtype="float32", chunks=(1, ch, ch), shards=(1, sh, sh),
                fill_value=nodata, compressors=blosc, dimension_names=["time", "y", "x"])
            self.lc = g.create_array("sample_landcover", shape=(T, height, width), dtype="uint8",
                                     chunks=(1, sh, sh), fill_value=0, dimension_names=["time", "y", "x"],
                                     attributes=_LC_ATTRS)
            if spec.layout == "v1.1-dclimate":
                for name in OBS_COUNTS:
                    self.obs[name] = g.create_array(
                        name, shape=(T, height, width), dtype="uint16", chunks=(1, ch, ch), shards=(1, sh, sh),
                        fill_value=0, compressors=blosc, dimension_names=["time", "y", "x"],
                        attributes={"description": f"observations that fed each pixel's embedding "
                                                   f"({name.split('_obs')[0]}); 0 = none"})
            _coordinate(g, "time", np.array(years, dtype="int32"))
        _coordinate(g, "x", (x0 + GSD * (np.arange(width) + 0.5)).astype("float64"))
        _coordinate(g, "y", (y0 - GSD * (np.arange(height) + 0.5)).astype("float64"))
        _coordinate(g, "band", np.arange(N_BANDS, dtype="int32"))

    def write(self, t: int, rows: slice, cols: slice, q: np.ndarray, scale: np.ndarray, cls: np.ndarray,
              obs: dict | None = None) -> None:
        if self.per_year:
            self.emb[rows, cols, :] = q
            self.scl[rows, cols] = scale
            self.lc[rows, cols] = cls
            return
        bands_first = np.moveaxis(q, -1, 0)
        for d, arr in self.depths:  # shallow depths first, the full depth last, then scales
            arr[t, :, rows, cols] = bands_first[:d]
        self.emb[t, :, rows, cols] = bands_first
        self.scl[t, rows, cols] = scale
        self.lc[t, rows, cols] = cls
        for name, arr in self.obs.items():
            arr[t, rows, cols] = obs[name]


def _sort_consolidated(path: Path) -> None:
    """Consolidated metadata in key order, so the same spec gives the same bytes (zarr 3.0
    lists children in whatever order they are found)."""
    meta = json.loads(path.read_text())
    cm = meta.get("consolidated_metadata") or {}
    if "metadata" in cm:
        cm["metadata"] = dict(sorted(cm["metadata"].items()))
    path.write_text(json.dumps(meta, indent=2))


def _coordinate(group, name: str, values: np.ndarray) -> None:
    """A 1-d coordinate array (written the way zarr 3.0 and 3.4 both accept)."""
    arr = group.create_array(name, shape=values.shape, dtype=values.dtype, chunks=values.shape,
                             dimension_names=[name])
    arr[:] = values


_LC_ATTRS = {"classes": {str(k): v for k, v in CLASSES.items()},
             "description": "ground-truth class map of the synthetic sample; 0 = no data"}


def _root_attrs(spec: SampleSpec) -> dict:
    attrs = {
        "geoemb:dimensions": N_BANDS,
        "geoemb:data_type": "int8",
        "geoemb:gsd": GSD,
        "geoemb:spatial_layout": "utm_zones",
        "geoemb:quantization": {
            "method": "per_pixel_scale",
            "scale": {"type": "array", "array_name": "scales",
                      "nodata": "NaN" if spec.layout == "v1.1-dclimate" else "+inf"},
        },
        "tessera:dataset": "sample",
        "tessera:model": "synthetic landscape (tessera-qgis sample generator)",
        "tessera:sample": {"bbox": list(spec.bbox), "seed": spec.seed, "classes": CLASSES},
    }
    if spec.layout in PUBLISHED:
        attrs["tessera:sample"]["layout"] = spec.layout
        attrs.update({
            "zarr_conventions": [CONVENTIONS["geoemb:"]],
            "geoemb:type": "pixel",
            "geoemb:model": {"name": "tessera-sample", "version": spec.layout},
            "geoemb:source_data": ["synthetic (tessera-qgis sample generator)"],
            "geoemb:build_version": f"tessera-qgis-sample/{spec.layout}",
        })
        if spec.layout == "v2":
            attrs["geoemb:depths"] = [{"dimensions": d, "array": f"embeddings_d{d}"} for d in DEPTHS] + [
                {"dimensions": N_BANDS, "array": "embeddings"}]
    attrs.update(spec.extra_attrs)
    return attrs


def _bad_pixels(layout: str, valid: np.ndarray) -> list[tuple[int, int, float]]:
    """(row, col, scale) of the block's pixels to give out-of-range scales: spread over the
    block's valid pixels in row-major order."""
    bad = BAD_SCALES.get(layout, ())
    idx = np.flatnonzero(valid)
    if not bad or len(idx) < 10 * len(bad):
        return []
    picks = idx[(np.linspace(0.2, 0.8, len(bad)) * (len(idx) - 1)).astype(int)]
    rows, cols = np.unravel_index(picks, valid.shape)
    return [(int(r), int(c), float(np.float32(s))) for r, c, s in zip(rows, cols, bad)]


def generate(out: str | Path, spec: SampleSpec = SampleSpec(),
             progress: Callable[[str], None] | None = None) -> dict:
    """Write the sample store to `out` (a new folder) and return a summary dict.

    With ``spec.layout == "per-year"`` `out` holds one store per year (``2024.zarr``, ...)
    in the earlier layout; otherwise `out` is one store in the layout named.
    """
    import zarr  # the generator only: the plugin's start-up does not pay for it
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    t_start = time.perf_counter()
    say = progress or (lambda msg: None)
    layout = spec.layout
    w, _, e, _ = spec.bbox
    zones = list(range(zone_of_lon(w), zone_of_lon(math.nextafter(e, -math.inf)) + 1))
    years = list(spec.years) if spec.time_order == "ascending" else sorted(spec.years, reverse=True)
    last_year = max(years)
    land = _Landscape(spec, spec.seed)
    if layout == "v2":
        land.order_by_importance()
    dclimate = layout == "v1.1-dclimate"
    unembedded = np.nan if dclimate else np.inf  # the not-yet-embedded strip and the padding
    per_year = layout == "per-year"
    if per_year:
        roots = {y: zarr.open_group(str(out / f"{y}.zarr"), mode="w", zarr_format=3,
                                    attributes=_root_attrs(spec)) for y in years}
    else:
        root = zarr.open_group(str(out), mode="w", zarr_format=3, attributes=_root_attrs(spec))
    samples: dict[int, dict[str, list[np.ndarray]]] = {y: {} for y in years}
    summary_zones = {}
    invalid: list[dict] = []
    for zone in zones:
        x0, y0, height, width, (pw, pe) = _zone_grid(spec, zone)
        gname = zone_group(zone)
        say(f"{gname}: {height} x {width} px")
        attrs = {
            "proj:code": zone_epsg(zone),
            "spatial:transform": [GSD, 0.0, x0, 0.0, -GSD, y0],
            "spatial:shape": [height, width],
            "spatial:bbox": [x0, y0 - GSD * height, x0 + GSD * width, y0],
            "spatial:registration": "pixel",
            "spatial:dimensions": ["y", "x"],
        }
        if per_year:
            writers = {y: _ZoneWriter(roots[y], gname, attrs, spec, [y], height, width, x0, y0, True)
                       for y in years}
        else:
            one = _ZoneWriter(root, gname, attrs, spec, years, height, width, x0, y0, False)
            writers = {y: one for y in years}
        inverse = Transformer.from_crs(zone_epsg(zone), "EPSG:4326", always_xy=True)
        cx, cy = Transformer.from_crs("EPSG:4326", zone_epsg(zone), always_xy=True).transform(
            (pw + pe) / 2.0, (spec.bbox[1] + spec.bbox[3]) / 2.0)
        s_ = spec.shard
        bad_block = (int((y0 - cy) // GSD) // s_ * s_, int((cx - x0) // GSD) // s_ * s_)
        zone_bad: list[list] = []
        for r0 in range(0, height, s_):
            for c0 in range(0, width, s_):
                cols = x0 + GSD * (np.arange(c0, c0 + s_) + 0.5)
                rows = y0 - GSD * (np.arange(r0, r0 + s_) + 0.5)
                xx, yy = np.meshgrid(cols, rows)
                lon, lat = inverse.transform(xx, yy)
                inside = (lon >= pw) & (lon < pe) & (lat >= spec.bbox[1]) & (lat < spec.bbox[3])
                if not inside.any():
                    continue
                ex, ny = land.metres(lon, lat)
                for ti, year in enumerate(years):
                    yi = sorted(years).index(year)
                    cls = land.classes(ex, ny, last_year=(year == last_year and len(years) > 1))
                    cls[~inside] = 0
                    seed = [spec.seed, zone, year, r0, c0]
                    v = land.embeddings(cls, ex, ny, yi, np.random.default_rng(seed))
                    q, scale = quantise(v)
                    scale[cls == WATER] = np.nan
                    if year == last_year and len(years) > 1:
                        strip = lon > spec.bbox[2] - 0.12 * (spec.bbox[2] - spec.bbox[0])
                        scale[strip] = unembedded
                    scale[~inside] = unembedded
                    q[~np.isfinite(scale)] = 0
                    if (r0, c0) == bad_block:
                        for r, c, s in _bad_pixels(layout, valid_scales(scale)):
                            scale[r, c] = s
                            zone_bad.append([ti, r0 + r, c0 + c, s])
                            invalid.append({"zone": gname, "year": year, "t": ti, "row": r0 + r,
                                            "col": c0 + c, "scale": s})
                    obs = None
                    if dclimate:
                        obs = land.observations(ex, ny)
                        for arr in obs.values():
                            arr[~np.isfinite(scale)] = 0
                    writers[year].write(0 if per_year else ti, slice(r0, r0 + s_), slice(c0, c0 + s_),
                                        q, scale, cls, obs)
                    valid = valid_scales(scale)
                    if valid.any():
                        deq = q[valid].astype(np.float32) * scale[valid][:, None]
                        pick = np.random.default_rng(seed + [1]).choice(
                            len(deq), size=min(len(deq), 4000), replace=False)
                        samples[year].setdefault(gname, []).append(deq[pick])
        if zone_bad:
            writers[years[0]].lc.attrs["invalid_scale_pixels"] = zone_bad
        summary_zones[gname] = {"crs": zone_epsg(zone), "shape": [height, width],
                                "transform": [GSD, 0.0, x0, 0.0, -GSD, y0]}
    preview = None
    if per_year or layout == "legacy":
        for year in years:
            if samples[year]:
                target = roots[year] if per_year else root
                pooled = np.concatenate([a for parts in samples[year].values() for a in parts])
                target.attrs[f"geoemb:stretch.{year}"] = _pca_attrs(pooled)
    else:
        stretch = _write_stretch(root, layout, samples)
        if layout in ("v2", "v1") and stretch:
            year = max(int(y) for y in stretch)
            say(f"global_rgb: {spec.preview_levels} levels, {year}")
            preview = _write_global_rgb(root, spec, year, stretch[str(year)])
    for path in ([out / f"{y}.zarr" for y in years] if per_year else [out]):
        zarr.consolidate_metadata(str(path))
        _sort_consolidated(path / "zarr.json")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    summary = {
        "path": str(out),
        "layout": layout,
        "bbox": list(spec.bbox),
        "years": years,
        "zones": summary_zones,
        "bands": N_BANDS,
        "chunk": spec.chunk,
        "shard": spec.shard,
        "classes": CLASSES,
        "bytes": size,
        "seconds": round(time.perf_counter() - t_start, 2),
    }
    if layout in PUBLISHED:
        summary["depths"] = list(DEPTHS) + [N_BANDS] if layout == "v2" else [N_BANDS]
        summary["invalid_scales"] = invalid
        summary["preview"] = preview
    return summary


def _write_stretch(root, layout: str, samples: dict) -> dict:
    """`geoemb:stretch` (one object keyed by year) and, for v2, `geoemb:stretch_zones`."""
    mode = "bands" if layout == "v2" else "pca"
    method = "global_percentile_equalised" if mode == "bands" else "global_pca_equalised"
    stretch, zones = {}, {}
    for year in sorted(samples):
        if not samples[year]:
            continue
        pooled = np.concatenate([a for parts in samples[year].values() for a in parts])
        stretch[str(year)] = stretch_entry(pooled, mode, method)
        zones[str(year)] = {z: stretch_entry(np.concatenate(parts), mode, method.replace("global", "zone"))
                            for z, parts in sorted(samples[year].items())}
    root.attrs["geoemb:stretch"] = stretch
    if layout == "v2":
        root.attrs["geoemb:stretch_zones"] = zones
    return stretch


def preview_shape(level: int) -> tuple[int, int]:
    """(rows, cols) of a global_rgb level."""
    return PREVIEW_H // 2 ** level, PREVIEW_W // 2 ** level


def _write_global_rgb(root, spec: SampleSpec, year: int, entry: dict) -> dict:
    """The `global_rgb` pyramid: level 0 drawn from the store with the year's stretch
    (nearest source pixel of each preview pixel's centre; alpha 255 where the scale is
    valid), each coarser level the 2 x 2 mean of the one below (floored, all four channels).
    Only the chunks over the sample area are written."""
    from zarr.codecs import BloscCodec  # zarr: the generator only, not the plugin's start-up

    g = root.create_group("global_rgb", attributes=_preview_attrs(spec, year, entry))
    levels = []
    for n in range(spec.preview_levels):
        lg = g.create_group(str(n))
        levels.append(lg.create_array(
            "rgb", shape=(*preview_shape(n), 4), dtype="uint8", chunks=(PREVIEW_CHUNK, PREVIEW_CHUNK, 4),
            fill_value=0, compressors=BloscCodec(cname="zstd", clevel=3), dimension_names=["lat", "lon", "band"]))
        _coordinate(lg, "band", np.arange(4, dtype="int32"))
    w, s, e, n_ = spec.bbox
    c0 = int(math.floor((w + 180.0) / PREVIEW_RES)) // PREVIEW_CHUNK * PREVIEW_CHUNK
    c1 = min(PREVIEW_W, -(-int(math.ceil((e + 180.0) / PREVIEW_RES)) // PREVIEW_CHUNK) * PREVIEW_CHUNK)
    r0 = int(math.floor((90.0 - n_) / PREVIEW_RES)) // PREVIEW_CHUNK * PREVIEW_CHUNK
    r1 = min(PREVIEW_H, -(-int(math.ceil((90.0 - s) / PREVIEW_RES)) // PREVIEW_CHUNK) * PREVIEW_CHUNK)
    written = 0
    for rr in range(r0, r1, PREVIEW_CHUNK):
        for cc in range(c0, c1, PREVIEW_CHUNK):
            rgba = _preview_chunk(root, year, entry, rr, min(rr + PREVIEW_CHUNK, r1), cc,
                                  min(cc + PREVIEW_CHUNK, c1))
            if rgba[..., 3].any():
                levels[0][rr:rr + rgba.shape[0], cc:cc + rgba.shape[1]] = rgba
                written += 1
    box = (r0, r1, c0, c1)
    for n in range(1, spec.preview_levels):
        h, w_ = preview_shape(n)
        pr0, pr1, pc0, pc1 = box
        box = (pr0 // 2, min(h, -(-pr1 // 2)), pc0 // 2, min(w_, -(-pc1 // 2)))
        b0, b1, b2, b3 = box
        if b1 <= b0 or b3 <= b2:
            break
        prev = np.asarray(levels[n - 1][2 * b0:2 * b1, 2 * b2:2 * b3]).astype(np.uint16)
        coarse = prev.reshape(b1 - b0, 2, b3 - b2, 2, 4).sum(axis=(1, 3)) // 4
        levels[n][b0:b1, b2:b3] = coarse.astype(np.uint8)
    return {"year": year, "levels": spec.preview_levels, "mode": entry["mode"], "level0_chunks": written,
            "level0_window": [r0, r1, c0, c1]}


def _preview_attrs(spec: SampleSpec, year: int, entry: dict) -> dict:
    layout = []
    for n in range(spec.preview_levels):
        res = PREVIEW_RES * 2 ** n
        item: dict = {"asset": str(n)}
        if n:
            item.update({"derived_from": str(n - 1), "transform": {"scale": [2.0, 2.0], "translation": [0.0, 0.0]},
                         "resampling_method": "mean"})
        else:
            item["transform"] = {"scale": [1.0, 1.0], "translation": [0.0, 0.0]}
        item["spatial:shape"] = list(preview_shape(n))
        item["spatial:transform"] = [res, 0.0, -180.0, 0.0, -res, 90.0]
        layout.append(item)
    return {
        "zarr_conventions": [CONVENTIONS["spatial:"], CONVENTIONS["proj:"], CONVENTIONS["multiscales"]],
        "spatial:dimensions": ["lat", "lon"],
        "spatial:bbox": [-180.0, -90.0, 180.0, 90.0],
        "spatial:registration": "pixel",
        "proj:code": "EPSG:4326",
        "multiscales": {"layout": layout, "resampling_method": "mean"},
        "year": year,
        "tessera:preview": {"year": year, "stretch_mode": entry["mode"], "data_bbox": list(spec.bbox),
                            "colours": "geoemb:stretch[year] min..max mapped linearly to 0..255 (floor); "
                                       "alpha 255 where 0 < scale < 1"},
    }


def _preview_chunk(root, year: int, entry: dict, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """RGBA (r1-r0, c1-c0, 4) of level-0 preview pixels: each from the store pixel under its
    centre, in the zone group of its longitude. Within about 100 m of a zone edge, where the
    pixel under the centre can lie just outside its zone's part (pixels belong to the zone of
    their own centre), an empty preview pixel takes the next pixel west or east of it, then
    the pixel under it in the neighbouring zone group, so the preview has no seam."""
    lat = 90.0 - (np.arange(r0, r1) + 0.5) * PREVIEW_RES
    lon = -180.0 + (np.arange(c0, c1) + 0.5) * PREVIEW_RES
    lon2, lat2 = np.meshgrid(lon, lat)
    rgba = np.zeros((r1 - r0, c1 - c0, 4), dtype=np.uint8)
    zone_of = np.clip(np.floor((lon2 + 180.0) / 6.0).astype(int) + 1, 1, 60)
    near_edge = np.abs(lon2 / 6.0 - np.rint(lon2 / 6.0)) < 0.001 / 6.0  # within about 100 m
    for offset, shift in ((0, 0), (0, -1), (0, 1), (-1, 0), (1, 0)):
        todo = (rgba[..., 3] == 0) & (near_edge if offset or shift else True)
        for zone in np.unique(zone_of[todo] + offset):
            name = zone_group(int(zone)) if 1 <= zone <= 60 else ""
            if name not in root:
                continue
            sel = todo & (zone_of + offset == zone)
            rgba[sel] = _preview_pixels(root[name], year, entry, lon2[sel], lat2[sel], shift)
    return rgba


def _preview_pixels(g, year: int, entry: dict, lon: np.ndarray, lat: np.ndarray, shift: int = 0) -> np.ndarray:
    """RGBA (n, 4) of the zone group's pixels under the points, or `shift` columns east of
    them (alpha 0 where the pixel is not valid)."""
    out = np.zeros((len(lon), 4), dtype=np.uint8)
    x0, y0 = g.attrs["spatial:transform"][2], g.attrs["spatial:transform"][5]
    h, w = g.attrs["spatial:shape"]
    x, y = Transformer.from_crs("EPSG:4326", g.attrs["proj:code"], always_xy=True).transform(lon, lat)
    col = np.floor((x - x0) / GSD).astype(np.int64) + shift
    row = np.floor((y0 - y) / GSD).astype(np.int64)
    ok = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    if not ok.any():
        return out
    t = int(np.flatnonzero(g["time"][:] == year)[0])
    wr0, wr1, wc0, wc1 = row[ok].min(), row[ok].max() + 1, col[ok].min(), col[ok].max() + 1
    bands = entry["mode"] == "bands"
    source = g["embeddings_d4"] if bands and "embeddings_d4" in g else g["embeddings"]
    emb = np.asarray(source[t, :3 if bands else N_BANDS, wr0:wr1, wc0:wc1])
    scl = np.asarray(g["scales"][t, wr0:wr1, wc0:wc1])
    pr, pc = row[ok] - wr0, col[ok] - wc0
    s = scl[pr, pc]
    good = valid_scales(s)
    vals = emb[:, pr[good], pc[good]].T.astype(np.float32) * s[good][:, None]
    px = np.zeros((int(ok.sum()), 4), dtype=np.uint8)
    px[good, :3] = stretch_colours(vals, entry)
    px[good, 3] = 255
    out[ok] = px
    return out
