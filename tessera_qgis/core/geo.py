"""Coordinates: CRS transforms, extents and their lon/lat bounds, output grids.

The lowest layer of the core after `utm`: the store, the region planner and the view
pipeline all place things with these, so they know nothing of stores themselves.
"""
from __future__ import annotations

import math
import threading
from typing import Sequence

import numpy as np
from pyproj import CRS, Transformer

from .errors import ExtentError

_local = threading.local()


def transformer(src: str, dst: str) -> Transformer:
    """A cached pyproj Transformer (x/y order) for this thread (they are not thread-safe)."""
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    key = (src, dst)
    if key not in cache:
        cache[key] = Transformer.from_crs(src, dst, always_xy=True)
    return cache[key]


def to_lonlat(x, y, crs: str):
    return transformer(crs, "EPSG:4326").transform(x, y)


def check_bounds(bounds: Sequence[float]) -> tuple[float, float, float, float]:
    if len(bounds) != 4:
        raise ExtentError(f"an extent is four numbers (xmin, ymin, xmax, ymax), got {len(bounds)}")
    b = tuple(float(v) for v in bounds)
    if not all(math.isfinite(v) for v in b):
        raise ExtentError(f"the extent {b} has values that are not finite numbers")
    if b[0] >= b[2] or b[1] >= b[3]:
        raise ExtentError(f"the extent {b} is empty or inverted: need xmin < xmax and ymin < ymax")
    return b  # type: ignore[return-value]


def ring(bounds, n: int = 21) -> tuple[np.ndarray, np.ndarray]:
    """The outline of a rectangle as `4 n` points (edges densified for reprojection)."""
    x0, y0, x1, y1 = bounds
    t = np.linspace(0.0, 1.0, n)
    xs = np.concatenate([x0 + (x1 - x0) * t, np.full(n, x1), x1 - (x1 - x0) * t, np.full(n, x0)])
    ys = np.concatenate([np.full(n, y0), y0 + (y1 - y0) * t, np.full(n, y1), y1 - (y1 - y0) * t])
    return xs, ys


def reproject_bounds(bounds, src: str, dst: str) -> tuple[float, float, float, float] | None:
    """Bounds of a rectangle of `src` in `dst` (edges densified); None if nothing lands."""
    xs, ys = ring(bounds)
    if src != dst:
        xs, ys = transformer(src, dst).transform(xs, ys)
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    ok = np.isfinite(xs) & np.isfinite(ys)
    if not ok.any():
        return None
    return float(xs[ok].min()), float(ys[ok].min()), float(xs[ok].max()), float(ys[ok].max())


def lonlat_bounds(bounds, crs: str) -> tuple[float, float, float, float]:
    """Lon/lat bounds of an extent (its edges densified), clipped to the UTM latitudes."""
    bounds = check_bounds(bounds)
    geographic = crs in ("EPSG:4326", "OGC:CRS84")
    out = reproject_bounds(bounds, crs, crs if geographic else "EPSG:4326")
    if out is None:
        raise ExtentError(f"the extent {bounds} cannot be placed on the globe in {crs}")
    w, s, e, n = out
    if n < -80 or s > 84:
        raise ExtentError(f"the extent lies outside the UTM latitudes (-80 to 84): latitudes {s:.2f} to {n:.2f}")
    return max(w, -180.0), max(s, -80.0), min(e, 180.0), min(n, 84.0)


def grid_bounds(transform, width: int, height: int) -> tuple[float, float, float, float]:
    a, _, c, _, e, f = transform
    return min(c, c + a * width), min(f, f + e * height), max(c, c + a * width), max(f, f + e * height)


def grid_for(bounds, resolution: float) -> tuple[tuple[float, ...], int, int]:
    """(transform, width, height) of a north-up grid of `resolution` covering `bounds`."""
    x0, y0, x1, y1 = bounds
    width = max(1, math.ceil((x1 - x0) / resolution))
    height = max(1, math.ceil((y1 - y0) / resolution))
    return (resolution, 0.0, x0, 0.0, -resolution, y1), width, height


def grid_coords(transform, width: int, height: int, src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    """Output pixel centres in `dst`; coarse exact grid, bilinear in between (< 0.1 px error
    at these scales), as GDAL's approximate transformer does."""
    a, _, c, _, e, f = transform
    step = 1 if width * height <= 65536 or min(width, height) < 2 else 16
    cols = np.unique(np.append(np.arange(0, width, step), width - 1)).astype(float)
    rows = np.unique(np.append(np.arange(0, height, step), height - 1)).astype(float)
    gx, gy = np.meshgrid(c + a * (cols + 0.5), f + e * (rows + 0.5))
    if src == dst:
        tx, ty = gx, gy
    else:
        tx, ty = transformer(src, dst).transform(gx, gy)
        tx, ty = np.asarray(tx), np.asarray(ty)
    if step == 1:
        return tx, ty
    # bilinear between the exact points: each output column (row) between two grid columns
    # (rows), weighted by its distance to them; whole arrays at once (a 1000 x 1000 view in
    # a few ms, where a np.interp per column took 50)
    ci, cw = _between(cols, width)
    ri, rw = _between(rows, height)

    def interp(v: np.ndarray) -> np.ndarray:
        across = v[:, ci] * (1.0 - cw) + v[:, ci + 1] * cw  # (grid rows, width)
        return across[ri] * (1.0 - rw)[:, None] + across[ri + 1] * rw[:, None]

    return interp(tx), interp(ty)


def grid_cells(transform, width: int, height: int, src: str, dst: str, dst_transform) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) as whole floats, in the pixel grid `dst_transform` (of CRS `dst`), of every
    output pixel's centre (see grid_coords); worked out in place (a million pixels a view:
    every pass over them counts). NaN where the transform fails (never inside a range)."""
    col, row = grid_coords(transform, width, height, src, dst)
    a, _, x0, _, e, y0 = dst_transform
    col -= x0
    col /= a
    np.floor(col, out=col)
    row -= y0
    row /= e
    np.floor(row, out=row)
    return row, col


def _between(grid: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For 0..n-1: the index of the grid point at or before each, and its weight towards
    the next one (grid: increasing, from 0 to n-1, at least two points)."""
    full = np.arange(n, dtype=float)
    i = np.clip(np.searchsorted(grid, full, side="right") - 1, 0, len(grid) - 2)
    return i, (full - grid[i]) / (grid[i + 1] - grid[i])


def is_geographic(crs: str) -> bool:
    return CRS.from_user_input(crs).is_geographic


def default_resolution(crs: str) -> float:
    """About 10 m in the units of `crs` (degrees for geographic CRSs)."""
    return 10.0 / 111320.0 if is_geographic(crs) else 10.0
