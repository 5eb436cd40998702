"""From an extent in any CRS to pixel windows of zones, and onto any output grid.

An extent can span several UTM zones: it is split at the zones' meridians and each part is
read from its own zone group in its own CRS. Results carry their affine transform and CRS.
Parts outside the data are nodata, not errors.
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import ExtentError
from .memory import OUTPUTS
from .pca import PCA
from .quant import dequantise
from .sources import TASK_POOL
from .geo import (check_bounds, grid_bounds, grid_cells, grid_coords, lonlat_bounds, reproject_bounds, ring,  # noqa: F401
                  to_lonlat, transformer)
from .store import TesseraStore, WindowData, Zone
from .utm import zone_lon_bounds, zone_of_lon

@dataclass(frozen=True)
class ZonePart:
    zone: Zone
    rows: tuple[int, int]
    cols: tuple[int, int]

    @property
    def pixels(self) -> int:
        return (self.rows[1] - self.rows[0]) * (self.cols[1] - self.cols[0])


def plan(store: TesseraStore, bounds, crs: str) -> list[ZonePart]:
    """The zone windows (clipped to each zone's array) that an extent needs."""
    w, s, e, n = lonlat_bounds(bounds, crs)
    parts = []
    for number in range(zone_of_lon(w), zone_of_lon(e) + 1):
        zone = store.zones.get(f"utm{number:02d}")
        if zone is None:
            continue
        zw, ze = zone_lon_bounds(number)
        strip = (max(w, zw), s, min(e, ze), n)
        if strip[0] >= strip[2]:
            continue
        xs, ys = ring(strip)
        sx, sy = transformer("EPSG:4326", zone.crs).transform(xs, ys)
        box = [min(sx), min(sy), max(sx), max(sy)]
        if crs != "EPSG:4326":
            ex, ey = ring(check_bounds(bounds))
            zx, zy = transformer(crs, zone.crs).transform(ex, ey)
            zx, zy = np.asarray(zx), np.asarray(zy)
            ok = np.isfinite(zx) & np.isfinite(zy)
            if ok.any():
                box = [max(box[0], zx[ok].min()), max(box[1], zy[ok].min()),
                       min(box[2], zx[ok].max()), min(box[3], zy[ok].max())]
        a, _, x0, _, ey_, y0 = zone.transform
        c0 = math.floor((box[0] - x0) / a + 1e-9)
        c1 = math.ceil((box[2] - x0) / a - 1e-9)
        r0 = math.floor((y0 - box[3]) / -ey_ + 1e-9)
        r1 = math.ceil((y0 - box[1]) / -ey_ - 1e-9)
        c0, c1 = max(c0, 0), min(c1, zone.shape[1])
        r0, r1 = max(r0, 0), min(r1, zone.shape[0])
        if c0 < c1 and r0 < r1:
            parts.append(ZonePart(zone, (r0, r1), (c0, c1)))
    return parts


def data_extent(store: TesseraStore, crs: str, zone: str | None = None) -> tuple[float, float, float, float]:
    """Bounds of the store's zones (or of one zone) in `crs`, zone edges densified. A pack
    (core/pack) covers only its area: there, the pixel windows it holds."""
    zones = [store.zones[zone]] if zone is not None else list(store.zones.values())
    boxes = [b for b in (reproject_bounds(_held_bounds(store, z), z.crs, crs) for z in zones) if b is not None]
    if not boxes:
        raise ExtentError(f"the store's data cannot be placed in {crs}")
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes))


def _held_bounds(store: TesseraStore, zone: Zone) -> tuple[float, float, float, float]:
    """A zone's bounds, or those of the windows a pack of it holds (its `tessera:pack`
    attribute lists them, [[row0, row1], [col0, col1]] each)."""
    packed = (((store.attrs.get("tessera:pack") or {}).get("zones") or {}).get(zone.name) or {}).get("windows")
    try:
        rows = [int(v) for w in packed for v in w[0]]
        cols = [int(v) for w in packed for v in w[1]]
    except (TypeError, ValueError, IndexError):
        return zone.bounds()
    if not rows or not cols:
        return zone.bounds()
    a, _, c, _, e, f = zone.transform
    return c + a * min(cols), f + e * max(rows), c + a * max(cols), f + e * min(rows)


def read_extent(store: TesseraStore, bounds, crs: str, year: int,
                cancel: Callable[[], bool] | None = None) -> list[WindowData]:
    """Windows (quantised, with transform and CRS) covering an extent, one per zone part."""
    store.check_year(year)
    return [p.zone.read(year, p.rows, p.cols, cancel=cancel) for p in plan(store, bounds, crs)
            if year in p.zone.years]


REDUCE_PIXELS = 1 << 16  # pixels reduced at once (a 128-band block's float32 copy: 32 MB)
REDUCE_POOL = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="tessera-reduce")
# Pixels of a zone part that fill at least 1/DENSE_RATIO of their bounding window are read as
# that window (see grid_reduce): up to this many source pixels read and reduced for each pixel
# used. A view near the store's own resolution is at most a little over 1.
DENSE_RATIO = 1.5
DENSE_VALUES_BYTES = 64 << 20  # a dense window is reduced whole when its values take at most this (or its int8)


def _blockwise(f, args: tuple[np.ndarray, ...], k: int, dtype) -> np.ndarray:
    """f(*args) -> (k, n) over the last axis of args, a block of pixels at a time, the blocks
    on every core (numpy lets go of the GIL in conversions and products); pixels without a
    valid scale are worked out too (their values are never used)."""
    n = args[0].shape[-1]
    vals = np.empty((k, n), dtype=dtype)

    def one(b0: int) -> None:
        with np.errstate(all="ignore"):
            vals[:, b0:b0 + REDUCE_PIXELS] = f(*[a[..., b0:b0 + REDUCE_PIXELS] for a in args])

    list(REDUCE_POOL.map(one, range(0, n, REDUCE_PIXELS)))
    return vals


def _window_values(zone: Zone, year: int, window, wanted, bands, reduce, k: int, dtype, cancel, keep,
                   split) -> tuple[np.ndarray, np.ndarray] | None:
    """A window's values (k, h * w) and scales (h * w), or None where they would take more
    memory than its int8 embeddings (see _reduced_fits). With `split`, the partial values are
    worked out chunk by chunk as they arrive (Zone.read_reduced) and finished at the end."""
    (r0, r1), (c0, c1) = window
    pixels = (r1 - r0) * (c1 - c0)
    if not _reduced_fits(k, dtype, len(bands), pixels):
        return None
    if split is not None and _reduced_fits(split[1], np.float32, len(bands), pixels):
        partial, parts, finish = split
        got = zone.read_reduced(year, (r0, r1), (c0, c1), bands, partial, parts, cancel, keep, wanted)
        if got is not None:
            values, sc = got
            sc = sc.reshape(-1)
            return _blockwise(finish, (values.reshape(parts, -1), sc), k, dtype), sc
    win = zone.read(year, (r0, r1), (c0, c1), cancel=cancel, keep=keep, bands=bands, wanted=wanted)
    sc = win.scales.reshape(-1)
    return _blockwise(reduce, (win.q.reshape(win.q.shape[0], -1), sc), k, dtype), sc


def _reduced_fits(k: int, dtype, bands: int, pixels: int) -> bool:
    """Whether a window of `pixels` is reduced whole (its values take at most as much memory
    as its int8 embeddings, or DENSE_VALUES_BYTES)."""
    return k * np.dtype(dtype).itemsize * pixels <= max(bands * pixels, DENSE_VALUES_BYTES)


def _axis_map(start: float, step: float, n: int, origin: float, size: float, lo: int, hi: int):
    """Source pixel numbers of n output pixel centres along one axis, and which of them fall
    in [lo, hi)."""
    idx = np.floor((start + step * (np.arange(n) + 0.5) - origin) / size).astype(np.int64)
    return idx, (idx >= lo) & (idx < hi)


def _aligned_window(part: ZonePart, year: int, dst_crs: str, transform, width: int, height: int, reduce, k: int,
                    dtype, fill, bands, cancel, keep, out: np.ndarray, s_out: np.ndarray, split=None) -> bool:
    """A north-up grid in the zone's own CRS near the store's resolution (the usual map view
    of a one-zone layer): output rows come from source rows and columns from columns, so the
    view is one window read, reduced whole and picked by row and column, with no per-pixel
    geometry. False (nothing done) for any other grid."""
    zone = part.zone
    a, b, c, d, e, f = transform
    if dst_crs != zone.crs or b != 0 or d != 0 or a <= 0 or e >= 0:
        return False
    za, _, zx0, _, ze, zy0 = zone.transform
    rows, r_in = _axis_map(f, e, height, zy0, ze, *part.rows)
    cols, c_in = _axis_map(c, a, width, zx0, za, *part.cols)
    if not r_in.any() or not c_in.any():
        return True  # nothing of the zone under the grid: all nodata
    oy = np.flatnonzero(r_in)
    ox = np.flatnonzero(c_in)
    rr, cc = rows[oy], cols[ox]
    r0, r1, c0, c1 = int(rr.min()), int(rr.max()) + 1, int(cc.min()), int(cc.max()) + 1
    pixels = (r1 - r0) * (c1 - c0)
    if pixels > DENSE_RATIO * len(oy) * len(ox) or not _reduced_fits(k, dtype, len(bands), pixels):
        return False
    wanted = None
    if len(np.unique(rr)) < r1 - r0 or len(np.unique(cc)) < c1 - c0:  # zoomed out a little
        wanted = np.zeros((r1 - r0, c1 - c0), dtype=bool)
        wanted[np.ix_(rr - r0, cc - c0)] = True
    vals, sc = _window_values(zone, year, ((r0, r1), (c0, c1)), wanted, bands, reduce, k, dtype, cancel, keep, split)
    vals, sc = vals.reshape(k, r1 - r0, c1 - c0), sc.reshape(r1 - r0, c1 - c0)
    # the output pixels under the zone are one rectangle (the maps are monotonic)
    dst = (slice(int(oy[0]), int(oy[-1]) + 1), slice(int(ox[0]), int(ox[-1]) + 1))
    pick_r = slice(int(rr[0]) - r0, int(rr[-1]) - r0 + 1) if np.all(np.diff(rr) == 1) else rr - r0
    pick_c = slice(int(cc[0]) - c0, int(cc[-1]) - c0 + 1) if np.all(np.diff(cc) == 1) else cc - c0
    sc = sc[pick_r][:, pick_c]
    # `out` holds `fill` (grid_reduce made it so, and this is its only part): the valid
    # pixels' values go in, with no temporary of the view's size
    np.copyto(out[(slice(None),) + dst], vals[:, pick_r][:, :, pick_c], where=np.isfinite(sc))
    s_out[dst] = sc
    return True


def _dense_window(zone: Zone, rows: np.ndarray, cols: np.ndarray) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """The bounding window of pixels (rows, cols of the zone's grid, all inside it) if they
    fill enough of it to be read as a window, else None."""
    if len(rows) == 0:
        return None
    r0, r1 = int(rows.min()), int(rows.max()) + 1
    c0, c1 = int(cols.min()), int(cols.max()) + 1
    if (r1 - r0) * (c1 - c0) > DENSE_RATIO * len(rows):
        return None
    return (r0, r1), (c0, c1)


def grid_reduce(store: TesseraStore, year: int, dst_crs: str, transform, width: int, height: int,
                reduce: Callable[[np.ndarray, np.ndarray], np.ndarray], k: int, dtype, fill,
                bands: Sequence[int] | None = None, cancel: Callable[[], bool] | None = None,
                max_source_pixels: int | None = None, keep: bool = True,
                split: tuple[Callable, int, Callable] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gather embeddings onto any output grid and reduce them as they arrive.

    Each output pixel takes its nearest source pixel (embeddings are never blended). Only
    the source pixels under the output pixels are gathered (Zone.read_pixels: the shard
    indexes of both arrays, then the chunks holding those pixels, in one wave each; a
    zoomed-out view skips most chunks), every zone part at once, from the shallowest
    embeddings array holding `bands`; `reduce(q (bands, n) int8, scales (n,)) -> (k, n)`
    turns each block of REDUCE_PIXELS pixels into output values, so memory follows the
    output size (its int8 source values, len(bands) bytes a pixel), whatever the view covers.

    Returns (out (k, height, width) of `dtype`, scales (height, width)); scales are NaN
    where the store says water / no source data and +inf where nothing is embedded or the
    grid is outside the store. Where zones overlap at a seam, the first valid pixel wins.
    `split` = (partial, parts, finish) with reduce(q, s) == finish(partial(q), s) (a
    Product's split()): a view read as a window then works out partial() chunk by chunk as
    the chunks arrive, and only finish() after the last one.
    """
    store.check_year(year)
    bands = store.check_bands(bands) if bands is not None else list(range(1, store.bands + 1))
    out = OUTPUTS.full((k, height, width), fill, dtype)
    s_out = OUTPUTS.full((height, width), np.inf, np.float32)
    parts = [p for p in plan(store, grid_bounds(transform, width, height), dst_crs) if year in p.zone.years]
    need = sum(p.pixels for p in parts)
    if max_source_pixels is not None and need > max_source_pixels:
        raise ExtentError(f"this view needs {need:,} source pixels, more than the budget of "
                          f"{max_source_pixels:,}; zoom in or raise the budget")
    if len(parts) == 1 and _aligned_window(parts[0], year, dst_crs, transform, width, height, reduce, k, dtype,
                                           fill, bands, cancel, keep, out, s_out, split):
        return out, s_out
    # 1. Where each output pixel comes from, in each zone part (geometry only).
    maps = []
    for part in parts:
        zone = part.zone
        row, col = grid_cells(transform, width, height, dst_crs, zone.crs, zone.transform)
        inside = (row >= part.rows[0]) & (row < part.rows[1]) & (col >= part.cols[0]) & (col < part.cols[1])
        if inside.any():
            maps.append((zone, row.astype(np.int64), col.astype(np.int64), inside))
    filled = np.zeros((height, width), dtype=bool)
    block = REDUCE_PIXELS

    def gather(job):
        """The pixels of one zone part in one wave of requests: (values, pick, scales of the
        pixels). With `pick`, values are already reduced, (k, window pixels), and pick gives
        each pixel's place in them; without, they are the pixels' int8 (bands, n)."""
        zone, rr, cc = job
        window = _dense_window(zone, rr, cc)
        if window is None:
            q, sc = zone.read_pixels(year, rr, cc, bands, cancel, keep)
            return q, None, sc
        # The pixels fill most of their bounding window (a view near the store's own
        # resolution): read that window, only its chunks that hold some of the pixels, reduce
        # it whole, then pick the pixels' values. Much less CPU than gathering each pixel's
        # bands from its chunk (0.2 s for a 1000 x 1000 px view of 3 bands, 1 s of 128).
        (r0, r1), (c0, c1) = window
        wanted = np.zeros((r1 - r0, c1 - c0), dtype=bool)
        wanted[rr - r0, cc - c0] = True
        lin = (rr - r0) * (c1 - c0) + (cc - c0)
        got = _window_values(zone, year, window, wanted, bands, reduce, k, dtype, cancel, keep, split)
        if got is None:  # many values a pixel (every band): the int8 values, reduced block by block
            win = zone.read(year, (r0, r1), (c0, c1), cancel=cancel, keep=keep, bands=bands, wanted=wanted)
            return win.q.reshape(win.q.shape[0], -1)[:, lin], None, win.scales.reshape(-1)[lin]
        vals, sc = got
        return vals, lin, sc[lin]

    def fill_from(takes: list, shift: int) -> None:
        """Gather every part's candidates at once, then the first valid pixel wins; values
        are reduced a block of pixels at a time (the float temporaries stay small)."""
        jobs = [(maps[i][0], maps[i][1][take], maps[i][2][take] + shift) for i, take in takes]
        out_flat, s_flat, filled_flat = out.reshape(k, -1), s_out.reshape(-1), filled.reshape(-1)
        for (i, take), (values, pick, sc) in zip(takes, TASK_POOL.map(gather, jobs)):
            at = np.flatnonzero(take)  # output pixels of this part, in the order gathered
            free = ~filled_flat[at]
            if not shift:  # water / source nodata (NaN) stays NaN unless another zone has data
                s_flat[at[np.isnan(sc) & free]] = np.nan
            ok = np.flatnonzero(np.isfinite(sc) & free)
            dst = at[ok]
            if pick is not None:
                out_flat[:, dst] = values[:, pick[ok]]
            else:
                for b0 in range(0, len(ok), block):
                    sel = ok[b0:b0 + block]
                    out_flat[:, at[sel]] = reduce(values[:, sel], sc[sel])
            s_flat[dst] = sc[ok]
            filled_flat[dst] = True

    fill_from([(i, m[3]) for i, m in enumerate(maps)], 0)
    if len(maps) > 1:
        # At a zone seam, pixel centres on either side of the meridian can leave sub-pixel
        # holes that the neighbouring column fills (still nearest).
        seam = _seam_holes(~filled & np.isposinf(s_out), transform, dst_crs)
        for shift in (-1, 1):
            takes = [(i, m[3] & seam & ~filled) for i, m in enumerate(maps)]
            takes = [(i, t) for i, t in takes if t.any()]
            if takes:
                fill_from(takes, shift)
    return out, s_out


def read_grid_quantised(store: TesseraStore, year: int, dst_crs: str, transform, width: int, height: int,
                        bands: Sequence[int] | None = None, cancel: Callable[[], bool] | None = None,
                        max_source_pixels: int | None = None, keep: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Quantised values on any output grid: int8 (bands, height, width) and scales (see grid_reduce)."""
    nb = len(bands) if bands is not None else store.bands
    return grid_reduce(store, year, dst_crs, transform, width, height, lambda q, s: q, nb, np.int8, 0,
                       bands, cancel, max_source_pixels, keep)


def read_grid(store: TesseraStore, year: int, dst_crs: str, transform, width: int, height: int,
              bands: Sequence[int] | None = None, cancel: Callable[[], bool] | None = None,
              max_source_pixels: int | None = None) -> np.ndarray:
    """Dequantised float32 (bands, height, width) on any output grid, NaN where nodata."""
    nb = len(bands) if bands is not None else store.bands
    out, _ = grid_reduce(store, year, dst_crs, transform, width, height, dequantise, nb, np.float32,
                         np.nan, bands, cancel, max_source_pixels)
    return out


def _seam_holes(unfilled: np.ndarray, transform, crs: str) -> np.ndarray:
    """Unfilled output pixels within about one source pixel of a UTM zone meridian."""
    out = np.zeros_like(unfilled)
    ys, xs = np.nonzero(unfilled)
    if len(ys) == 0:
        return out
    a, _, c, _, e, f = transform
    lon, lat = to_lonlat(c + a * (xs + 0.5), f + e * (ys + 0.5), crs) if crs != "EPSG:4326" else \
        (c + a * (xs + 0.5), f + e * (ys + 0.5))
    lon, lat = np.asarray(lon), np.asarray(lat)
    m = np.mod(lon + 180.0, 6.0)
    dist = np.minimum(m, 6.0 - m)
    tol = 1.5 * 10.0 / (111320.0 * np.maximum(np.cos(np.radians(lat)), 0.01))
    near = dist < tol
    out[ys[near], xs[near]] = True
    return out


def fit_pca(store: TesseraStore, bounds, crs: str, year: int, max_samples: int = 100_000, seed: int = 0,
            cancel: Callable[[], bool] | None = None, progress: Callable[[float], None] | None = None,
            depth: int | None = None):
    """Fit a PCA on a random sample of at most `max_samples` valid pixels of a region, on
    the first `depth` dimensions (a Matryoshka prefix, read from its own array) or all.

    Small regions are read whole; larger ones through randomly chosen chunk-sized blocks
    (read concurrently), so the fit costs about `max_samples` pixels of reading, not the region.
    `progress(fraction)` follows the blocks read (0 to 0.9; the fit itself is the rest).
    """
    store.check_year(year)
    depth = store.check_depth(depth)
    bands = list(range(1, depth + 1)) if depth < store.bands else None
    parts = [p for p in plan(store, bounds, crs) if year in p.zone.years]
    total = sum(p.pixels for p in parts)
    if total == 0:
        raise ExtentError("the region does not intersect the store's data for that year")
    rng = np.random.default_rng(seed)
    jobs = []
    for part in parts:
        if total <= 2 * max_samples:
            jobs.append((part.zone, part.rows, part.cols))
            continue
        yi = part.zone.emb_axes.index("y")
        size = part.zone.array_for(bands)[0].chunk_shape[yi]
        rows = list(range(part.rows[0] // size * size, part.rows[1], size))
        cols = list(range(part.cols[0] // size * size, part.cols[1], size))
        share = max(1, round(max_samples / size / size * part.pixels / total * 1.5))
        cells = rng.choice(len(rows) * len(cols), size=min(share, len(rows) * len(cols)), replace=False)
        for cell in cells:
            r, c = rows[cell // len(cols)], cols[cell % len(cols)]
            jobs.append((part.zone, (max(r, part.rows[0]), min(r + size, part.rows[1])),
                         (max(c, part.cols[0]), min(c + size, part.cols[1]))))

    def read(job):
        zone, rows, cols = job
        vals = zone.read(year, rows, cols, cancel=cancel, bands=bands).dequantised()
        return vals.reshape(vals.shape[0], -1).T

    blocks = []
    for block in TASK_POOL.map(read, jobs):
        blocks.append(block)
        if progress is not None:
            progress(0.9 * len(blocks) / len(jobs))
    pca = PCA.fit(np.concatenate(blocks), seed=seed, max_samples=max_samples)  # (it leaves out invalid pixels)
    if progress is not None:
        progress(1.0)
    return pca
