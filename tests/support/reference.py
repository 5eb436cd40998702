"""Expected values for any output grid, worked out without the code under test: zarr-python
reads the store, pyproj places each output pixel centre in its UTM zone, and the nearest
source pixel's value (or PCA colour, by the store's `geoemb:stretch.{year}` attribute) is
computed here with numpy.

Output pixels whose centre lies close to a source pixel's edge (where a resampler may
legitimately pick the neighbour) or to a zone meridian are left out of comparisons: the
`decided` mask says which pixels have one right answer.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from pyproj import Transformer


@functools.lru_cache(maxsize=8)
def _transformer(src: str, dst: str) -> Transformer:
    return Transformer.from_crs(src, dst, always_xy=True)


@dataclass
class Expected:
    values: np.ndarray  # (k, h, w) float64 (values) or uint8 (colours); NaN / 0 where nodata
    valid: np.ndarray  # (h, w): the nearest source pixel has data
    decided: np.ndarray  # (h, w): one right answer (not near a source pixel edge or a zone seam)


class StoreReference:
    """A TESSERA store read by zarr-python: int8 embeddings and scales of one year per zone."""

    def __init__(self, path: str | Path, year: int) -> None:
        self.root = zarr.open_group(str(path), mode="r")
        self.year = year
        self.zones = {}
        for name in sorted(self.root.group_keys()):
            g = self.root[name]
            t = [int(v) for v in g["time"][:]].index(year)
            self.zones[name] = {
                "crs": g.attrs["proj:code"],
                "transform": [float(v) for v in g.attrs["spatial:transform"]],
                "q": g["embeddings"][t],  # int8 (128, H, W)
                "s": g["scales"][t],  # float32 (H, W)
                "landcover": g["sample_landcover"][t] if "sample_landcover" in g else None,
            }

    def stretch(self) -> dict:
        """The store's global PCA and stretch for the year, from its root attributes (one
        `geoemb:stretch` object keyed by year, or the older `geoemb:stretch.{year}`)."""
        attrs = self.root.attrs
        keyed = attrs.get("geoemb:stretch")
        if isinstance(keyed, dict) and str(self.year) in keyed:
            return dict(keyed[str(self.year)])
        return dict(attrs[f"geoemb:stretch.{self.year}"])

    def locate(self, xs: np.ndarray, ys: np.ndarray, crs: str, margin: float, seam_m: float = 20.0,
               zone: str | None = None):
        """For points in `crs`: (zone name per point or "", row, col, decided). A point is
        decided when it lies more than `margin` source pixels from its source pixel's edges
        and more than `seam_m` metres from its zone's meridian. `zone`: read every point from
        that zone (a per-zone export), wherever its longitude is."""
        lon, lat = _transformer(crs, "EPSG:4326").transform(xs, ys)
        lon, lat = np.asarray(lon), np.asarray(lat)
        number = np.floor((lon + 180.0) / 6.0).astype(int) + 1
        names = np.full(xs.shape, "", dtype=object)
        rows = np.zeros(xs.shape, dtype=np.int64)
        cols = np.zeros(xs.shape, dtype=np.int64)
        decided = np.zeros(xs.shape, dtype=bool)
        for name, z in self.zones.items():
            here = number == int(name[3:]) if zone is None else np.full(xs.shape, name == zone)
            if not here.any():
                continue
            zx, zy = _transformer(crs, z["crs"]).transform(xs[here], ys[here])
            a, _, x0, _, e, y0 = z["transform"]
            fc, fr = (np.asarray(zx) - x0) / a, (np.asarray(zy) - y0) / e
            c, r = np.floor(fc).astype(np.int64), np.floor(fr).astype(np.int64)
            h, w = z["s"].shape
            inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
            edge = np.minimum(np.minimum(fc - c, c + 1 - fc), np.minimum(fr - r, r + 1 - fr))
            west = -180.0 + 6.0 * (int(name[3:]) - 1)
            to_seam = np.minimum(lon[here] - west, west + 6.0 - lon[here]) * 111320.0 * np.cos(np.radians(lat[here]))
            names[here] = np.where(inside, name, "")
            rows[here], cols[here] = np.where(inside, r, 0), np.where(inside, c, 0)
            decided[here] = inside & (edge > margin) & ((to_seam > seam_m) if zone is None else True)
        return names, rows, cols, decided

    def grid_centres(self, transform, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Pixel centres of a GDAL-style grid (a, b, c, d, e, f as in `spatial:transform`)."""
        a, _, c, _, e, f = transform
        cc, rr = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        return c + a * cc, f + e * rr

    def _gather(self, names, rows, cols, fn, k: int, dtype, fill):
        out = np.full((k,) + names.shape, fill, dtype=dtype)
        valid = np.zeros(names.shape, dtype=bool)
        for name, z in self.zones.items():
            sel = names == name
            if not sel.any():
                continue
            r, c = rows[sel], cols[sel]
            s = z["s"][r, c]  # float32
            ok = np.isfinite(s)
            with np.errstate(invalid="ignore"):
                vals = fn(z["q"][:, r, c], np.where(ok, s, np.float32(np.nan)))
            vals[:, ~ok] = fill
            out[:, sel] = vals.astype(dtype)
            valid[sel] = ok
        return out, valid

    def values(self, crs: str, transform, width: int, height: int, bands, margin: float = 0.2) -> Expected:
        """Dequantised values (float64) of `bands` (from 1) at each output pixel: NaN where nodata."""
        xs, ys = self.grid_centres(transform, width, height)
        names, rows, cols, decided = self.locate(xs, ys, crs, margin)
        idx = [b - 1 for b in bands]
        # int8 * float32 scale, in float32 as the store defines it
        out, valid = self._gather(names, rows, cols, lambda q, s: q[idx].astype(np.float32) * s[None],
                                  len(idx), np.float64, np.nan)
        return Expected(out, valid, decided)

    def pca_colours(self, crs: str, transform, width: int, height: int, margin: float = 0.2,
                    zone: str | None = None) -> Expected:
        """RGB (uint8) of the store's global PCA and its linear min-max stretch, by hand."""
        xs, ys = self.grid_centres(transform, width, height)
        names, rows, cols, decided = self.locate(xs, ys, crs, margin, zone=zone)
        out, valid = self._gather(names, rows, cols, self.pca_rgb, 3, np.uint8, 0)
        return Expected(out, valid, decided)

    def resampled(self, what: str, dst_crs: str, dst_transform, width: int, height: int, block_crs: str,
                  block_extent, block_width: int, block_height: int, margin: float = 0.2,
                  bands=None) -> Expected:
        """What a nearest-neighbour reprojection (QGIS's raster projector) of a block in
        `block_crs` must show: each output pixel takes the block pixel under its centre, and
        that block pixel holds the source pixel under its own centre. `what`: "values" (of
        `bands`) or "pca"."""
        xs, ys = self.grid_centres(dst_transform, width, height)
        bx, by = _transformer(dst_crs, block_crs).transform(xs, ys)
        xmin, ymin, xmax, ymax = block_extent
        rx, ry = (xmax - xmin) / block_width, (ymax - ymin) / block_height
        fc, fr = (np.asarray(bx) - xmin) / rx, (ymax - np.asarray(by)) / ry
        c, r = np.floor(fc).astype(np.int64), np.floor(fr).astype(np.int64)
        inside = (c >= 0) & (c < block_width) & (r >= 0) & (r < block_height)
        edge = np.minimum(np.minimum(fc - c, c + 1 - fc), np.minimum(fr - r, r + 1 - fr))
        names, rows, cols, decided = self.locate(xmin + rx * (c + 0.5), ymax - ry * (r + 0.5), block_crs, margin)
        decided &= inside & (edge > margin)
        names = np.where(inside, names, "")
        if what == "pca":
            out, valid = self._gather(names, rows, cols, self.pca_rgb, 3, np.uint8, 0)
        else:
            idx = [b - 1 for b in bands]
            out, valid = self._gather(names, rows, cols, lambda q, s: q[idx].astype(np.float32) * s[None],
                                      len(idx), np.float64, np.nan)
        return Expected(out, valid, decided)

    def pca_values(self, crs: str, transform, width: int, height: int, margin: float = 0.2) -> Expected:
        """The three global PCA components (float64) at each output pixel: NaN where nodata."""
        xs, ys = self.grid_centres(transform, width, height)
        names, rows, cols, decided = self.locate(xs, ys, crs, margin)
        out, valid = self._gather(names, rows, cols, self.pca_projection, 3, np.float64, np.nan)
        return Expected(out, valid, decided)

    def pca_projection(self, q: np.ndarray, s: np.ndarray) -> np.ndarray:
        """int8 (128, n) and scales (n,) -> the components C (v - mean) (3, n), by the store's
        `geoemb:stretch.{year}`."""
        st = self.stretch()
        comps, mean = np.asarray(st["pca_components"], float)[:3], np.asarray(st["pca_mean"], float)
        return comps @ (q.astype(np.float64) * s.astype(np.float64)[None] - mean[:, None])

    def pca_rgb(self, q: np.ndarray, s: np.ndarray) -> np.ndarray:
        """int8 (128, n) and scales (n,) -> RGB (3, n): project on the global components, then
        stretch each component linearly from its min (0) to its max (255)."""
        st = self.stretch()
        lo, hi = np.asarray(st["min"], float), np.asarray(st["max"], float)
        proj = self.pca_projection(q, s)
        with np.errstate(invalid="ignore"):
            rgb = np.floor(np.clip((proj - lo[:, None]) / (hi - lo)[:, None] * 255.0, 0, 255))
        return np.nan_to_num(rgb)


def valid_pixel_lonlat(group, year: int, nth: int = 2) -> tuple[int, int, int, float, float]:
    """(time index, row, col, lon, lat) of a valid pixel (0 < scale < 1) of a zone group read
    with zarr-python: the one len // nth into its valid pixels, lon/lat at its centre (pyproj)."""
    ti = list(group["time"][:]).index(year)
    s = np.asarray(group["scales"][ti])
    rows, cols = np.nonzero(np.isfinite(s) & (s > 0) & (s < 1))
    r, c = int(rows[len(rows) // nth]), int(cols[len(cols) // nth])
    px, _, x0, _, py, y0 = group.attrs["spatial:transform"]
    lon, lat = _transformer(group.attrs["proj:code"], "EPSG:4326").transform(x0 + px * (c + 0.5), y0 + py * (r + 0.5))
    return ti, r, c, lon, lat


def within(got: np.ndarray, want: np.ndarray, tol: float) -> np.ndarray:
    """Element-wise |got - want| <= tol over the first axis, both NaN counting as equal."""
    g, w = got.astype(np.float64), want.astype(np.float64)
    both_nan = np.isnan(g) & np.isnan(w)
    with np.errstate(invalid="ignore"):
        close = np.abs(g - w) <= tol
    return (close | both_nan).all(axis=0)


def metres_per_unit(crs: str, lat: float) -> float:
    """Ground metres of one unit of `crs` along x near a latitude (for edge margins)."""
    if crs == "EPSG:4326":
        return 111320.0 * math.cos(math.radians(lat))
    if crs == "EPSG:3857":
        return math.cos(math.radians(lat))
    return 1.0


def is_cog(path) -> bool:
    """A Cloud Optimized GeoTIFF as GDAL's COG driver writes it: the structural metadata
    ("ghost") block right after the header. (GDAL 3.13 reports LAYOUT=COG for any tiled
    GeoTIFF written in order, so that metadata item cannot tell.)"""
    with open(path, "rb") as f:
        head = f.read(2048)
    return b"GDAL_STRUCTURAL_METADATA_SIZE" in head and b"LAYOUT=IFDS_BEFORE_DATA" in head


def knn_by_hand(train: np.ndarray, codes: np.ndarray, q: np.ndarray, k: int, classes: int):
    """Cosine kNN worked out in float64: train (n, bands) embeddings with class codes 1..classes,
    q (m, bands) pixels. Returns (class (m,), confidence (m,)): the majority class among the k
    most similar labelled embeddings (a tie goes to the lower code) and its share of the k."""
    t = np.asarray(train, dtype=np.float64)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    x = np.asarray(q, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-300)
    votes = np.asarray(codes)[np.argsort(-(x @ t.T), axis=1, kind="stable")[:, :k]]
    counts = np.stack([(votes == c).sum(axis=1) for c in range(1, classes + 1)], axis=1)
    return counts.argmax(axis=1) + 1, counts.max(axis=1) / k
