"""A deterministic, realistic TESSERA sample store (the current "utm_zones" layout).

The store looks like a landscape, not noise: land-cover classes (water, built-up, cropland,
forest, grassland, wetland) form spatially coherent regions, each with its own 128-d
prototype, plus texture, per-field variation and a small year-to-year drift. Water has NaN
scales, a not-yet-embedded strip has +inf scales, and a block of cropland becomes built-up
in the last year (a real change). The default area straddles the 0 degree meridian near
Cambridge, UK, so the store has two zone groups, utm30 and utm31.

The class map is kept as ground truth in each zone group (array ``sample_landcover``) so
tests can check that PCA colours, similarity search and classifiers separate the classes.

Everything is a function of lon/lat (the landscape) or of a seed derived from the block
position (the pixel noise), so the same arguments always give the same bytes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

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


@dataclass(frozen=True)
class SampleSpec:
    """What to generate. The defaults make a store of about 8 x 7 km in two zones."""

    bbox: tuple[float, float, float, float] = (-0.06, 52.17, 0.06, 52.23)  # W, S, E, N (lon/lat)
    years: tuple[int, ...] = (2024, 2025)
    shard: int = 256  # production stores use 4096; benchmarks use 1024
    chunk: int = 32
    seed: int = 2026
    time_order: str = "ascending"  # or "descending": for readers that must not assume order
    layout: str = "zones"  # or "per-year": the earlier layout, one store per year, (y, x, band)
    extra_attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        w, s, e, n = self.bbox
        if not (w < e and s < n):
            raise ValueError(f"bbox must be W,S,E,N with W < E and S < N, got {self.bbox}")
        if not (-80.0 <= s and n <= 84.0):
            raise ValueError("bbox must lie within the UTM latitude range (-80 to 84)")
        if self.shard % self.chunk:
            raise ValueError(f"shard size {self.shard} must be a multiple of the chunk size {self.chunk}")
        if not self.years:
            raise ValueError("at least one year is needed")
        if self.layout not in ("zones", "per-year"):
            raise ValueError(f"layout must be 'zones' or 'per-year', got {self.layout!r}")


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


def quantise(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel symmetric int8 quantisation: v ~= q * scale, as TESSERA stores it."""
    peak = np.max(np.abs(v), axis=-1)
    scale = np.maximum(peak / 127.0, 1e-6).astype(np.float32)
    q = np.clip(np.rint(v / scale[..., None]), -127, 127).astype(np.int8)
    return q, scale


def _zone_grid(spec: SampleSpec, zone: int):
    """Pixel grid (x0, y0, H, W) of a zone's part of the bbox, padded to whole shards."""
    from pyproj import Transformer

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
    """Global PCA and stretch of a year, as `geoemb:stretch.{year}` carries it."""
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


class _ZoneWriter:
    """Creates a zone group's arrays in one layout and writes shard-aligned blocks into them."""

    def __init__(self, root, gname: str, attrs: dict, spec: SampleSpec, years: list[int],
                 height: int, width: int, x0: float, y0: float, per_year: bool) -> None:
        from zarr.codecs import BloscCodec

        blosc = BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")
        g = root.create_group(gname, attributes=attrs)
        ch, sh, T = spec.chunk, spec.shard, len(years)
        self.per_year = per_year
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
            self.emb = g.create_array(
                "embeddings", shape=(T, N_BANDS, height, width), dtype="int8", chunks=(1, N_BANDS, ch, ch),
                shards=(1, N_BANDS, sh, sh), fill_value=0, compressors=blosc,
                dimension_names=["time", "band", "y", "x"])
            self.scl = g.create_array(
                "scales", shape=(T, height, width), dtype="float32", chunks=(1, ch, ch), shards=(1, sh, sh),
                fill_value=float("inf"), compressors=blosc, dimension_names=["time", "y", "x"])
            self.lc = g.create_array("sample_landcover", shape=(T, height, width), dtype="uint8",
                                     chunks=(1, sh, sh), fill_value=0, dimension_names=["time", "y", "x"],
                                     attributes=_LC_ATTRS)
            _coordinate(g, "time", np.array(years, dtype="int32"))
        _coordinate(g, "x", (x0 + GSD * (np.arange(width) + 0.5)).astype("float64"))
        _coordinate(g, "y", (y0 - GSD * (np.arange(height) + 0.5)).astype("float64"))
        _coordinate(g, "band", np.arange(N_BANDS, dtype="int32"))

    def write(self, t: int, rows: slice, cols: slice, q: np.ndarray, scale: np.ndarray, cls: np.ndarray) -> None:
        if self.per_year:
            self.emb[rows, cols, :] = q
            self.scl[rows, cols] = scale
            self.lc[rows, cols] = cls
        else:
            self.emb[t, :, rows, cols] = np.moveaxis(q, -1, 0)
            self.scl[t, rows, cols] = scale
            self.lc[t, rows, cols] = cls


def _sort_consolidated(path: Path) -> None:
    """Consolidated metadata in key order, so the same spec gives the same bytes (zarr 3.0
    lists children in whatever order they are found)."""
    import json

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
    return {
        "geoemb:dimensions": N_BANDS,
        "geoemb:data_type": "int8",
        "geoemb:gsd": GSD,
        "geoemb:spatial_layout": "utm_zones",
        "geoemb:quantization": {
            "method": "per_pixel_scale",
            "scale": {"type": "array", "array_name": "scales", "nodata": "+inf"},
        },
        "tessera:dataset": "sample",
        "tessera:model": "synthetic landscape (tessera-qgis sample generator)",
        "tessera:sample": {"bbox": list(spec.bbox), "seed": spec.seed, "classes": CLASSES},
        **spec.extra_attrs,
    }


def generate(out: str | Path, spec: SampleSpec = SampleSpec(),
             progress: Callable[[str], None] | None = None) -> dict:
    """Write the sample store to `out` (a new folder) and return a summary dict.

    With ``spec.layout == "per-year"`` `out` holds one store per year (``2024.zarr``, ...)
    in the earlier layout; otherwise `out` is one store in the current layout.
    """
    import zarr
    from pyproj import Transformer

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty; choose a new folder")
    t_start = time.perf_counter()
    say = progress or (lambda msg: None)
    w, _, e, _ = spec.bbox
    zones = list(range(zone_of_lon(w), zone_of_lon(math.nextafter(e, -math.inf)) + 1))
    years = list(spec.years) if spec.time_order == "ascending" else sorted(spec.years, reverse=True)
    last_year = max(years)
    land = _Landscape(spec, spec.seed)
    per_year = spec.layout == "per-year"
    if per_year:
        roots = {y: zarr.open_group(str(out / f"{y}.zarr"), mode="w", zarr_format=3,
                                    attributes=_root_attrs(spec)) for y in years}
    else:
        root = zarr.open_group(str(out), mode="w", zarr_format=3, attributes=_root_attrs(spec))
    pca_samples: dict[int, list[np.ndarray]] = {y: [] for y in years}
    summary_zones = {}
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
        s_ = spec.shard
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
                        scale[strip] = np.inf
                    scale[~inside] = np.inf
                    q[~np.isfinite(scale)] = 0
                    writers[year].write(0 if per_year else ti, slice(r0, r0 + s_), slice(c0, c0 + s_),
                                        q, scale, cls)
                    valid = np.isfinite(scale)
                    if valid.any():
                        deq = q[valid].astype(np.float32) * scale[valid][:, None]
                        pick = np.random.default_rng(seed + [1]).choice(
                            len(deq), size=min(len(deq), 4000), replace=False)
                        pca_samples[year].append(deq[pick])
        summary_zones[gname] = {"crs": zone_epsg(zone), "shape": [height, width],
                                "transform": [GSD, 0.0, x0, 0.0, -GSD, y0]}
    for year in years:
        if pca_samples[year]:
            target = roots[year] if per_year else root
            target.attrs[f"geoemb:stretch.{year}"] = _pca_attrs(np.concatenate(pca_samples[year]))
    for path in ([out / f"{y}.zarr" for y in years] if per_year else [out]):
        zarr.consolidate_metadata(str(path))
        _sort_consolidated(path / "zarr.json")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    return {
        "path": str(out),
        "layout": spec.layout,
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
