"""Pictures for views too large to read at 10 m: the store's global preview, or a coarse
preview from a bounded sample of inner chunks.

- `global_rgb` (v1 and v2 stores): an RGBA pyramid in EPSG:4326, levels `global_rgb/{n}/rgb`
  (lat, lon, 4) uint8 at 0.0001 * 2^n degrees, drawn with the store's stretch of one year.
  The coarsest level that still gives at least one preview pixel per output pixel is read
  and sampled (nearest neighbour) onto the output grid; nothing under `embeddings*` or
  `scales` is fetched.
- A coarse preview for stores without one (and for modes the global preview cannot show):
  at most MAX_SAMPLED_CHUNKS inner chunks per view, spread evenly over it, within about
  COARSE_BYTES of fetching; each output pixel takes the nearest sampled chunk's nearest pixel.
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .arrays import ArrayReader
from .errors import ReadError
from .geo import grid_bounds, grid_cells, grid_coords
from .region import REDUCE_PIXELS, ZonePart, plan
from .sources import TASK_POOL
from .store import TesseraStore

GROUP = "global_rgb"
BASE_RESOLUTION = 0.0001  # degrees per pixel of level 0
MAX_SAMPLED_CHUNKS = 256  # inner chunks per array per view, at most
COARSE_BYTES = 40 << 20  # what a coarse preview may fetch, about (indexes and chunks)
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Level:
    number: int
    reader: ArrayReader
    resolution: float  # degrees per pixel
    west: float
    north: float


class GlobalPreview:
    """The store's `global_rgb` pyramid."""

    def __init__(self, levels: list[Level], year: int | None) -> None:
        self.levels = sorted(levels, key=lambda lv: lv.resolution)
        self.year = year

    def level_for(self, degrees_per_pixel: float) -> Level:
        """The coarsest level with at least one preview pixel per output pixel (the finest
        when even that is coarser than the output)."""
        fitting = [lv for lv in self.levels if lv.resolution <= degrees_per_pixel * (1 + 1e-9)]
        return fitting[-1] if fitting else self.levels[0]

    def rgba(self, crs: str, transform, width: int, height: int,
             cancel: Callable[[], bool] | None = None) -> np.ndarray:
        """uint8 (4, height, width) RGBA on an output grid; alpha 0 where the preview has
        no data. Partial alpha at the pyramid's edges is treated as premultiplied colour."""
        lon, lat = grid_coords(transform, width, height, crs, "EPSG:4326")
        ok = np.isfinite(lon) & np.isfinite(lat)
        out = np.zeros((4, height, width), dtype=np.uint8)
        if not ok.any():
            return out
        # The output's pixel size in degrees, at its finest (edges of a Mercator view).
        dx = np.abs(np.diff(lon, axis=1))[ok[:, 1:] & ok[:, :-1]] if width > 1 else np.array([])
        dy = np.abs(np.diff(lat, axis=0))[ok[1:] & ok[:-1]] if height > 1 else np.array([])
        steps = np.concatenate([dx[dx > 0], dy[dy > 0]])
        level = self.level_for(float(steps.min()) if steps.size else 1.0)
        rows = np.floor((level.north - lat) / level.resolution).astype(np.int64)
        cols = np.floor((lon - level.west) / level.resolution).astype(np.int64)
        h, w = level.reader.shape[0], level.reader.shape[1]
        inside = ok & (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        if not inside.any():
            return out
        r0, r1 = int(rows[inside].min()), int(rows[inside].max()) + 1
        c0, c1 = int(cols[inside].min()), int(cols[inside].max()) + 1
        box = read_unsharded(level.reader, ((r0, r1), (c0, c1), (0, 4)), cancel)
        px = box[rows[inside] - r0, cols[inside] - c0].astype(np.float32)  # (n, 4)
        alpha = px[:, 3]
        rgb = np.where(alpha[:, None] > 0, px[:, :3] * 255.0 / np.maximum(alpha[:, None], 1.0), 0.0)
        opaque = alpha >= 128
        for i in range(3):
            band = np.zeros((height, width), dtype=np.uint8)
            band[inside] = np.clip(np.round(rgb[:, i]), 0, 255).astype(np.uint8)
            out[i] = band
        a = np.zeros((height, width), dtype=np.uint8)
        a[inside] = np.where(opaque, 255, 0).astype(np.uint8)
        out[3] = a
        out[:3, a == 0] = 0
        return out


def read_unsharded(reader: ArrayReader, box, cancel=None) -> np.ndarray:
    """A box of an unsharded array, its chunk objects fetched concurrently."""
    chunks = reader.chunk_range(box)
    if len(chunks) <= 1:
        return reader.read(box, cancel=cancel)
    out = np.zeros([b - a for a, b in box], dtype=reader.dtype)

    def one(coords):
        sub = tuple((max(a, c * n), min(b, (c + 1) * n)) for (a, b), c, n in zip(box, coords, reader.chunk_shape))
        part = reader.read(sub, cancel=cancel)
        out[tuple(slice(lo - a, hi - a) for (lo, hi), (a, _) in zip(sub, box))] = part

    for _ in TASK_POOL.map(one, chunks):
        pass
    return out


def _consolidated(store: TesseraStore) -> dict:
    return ((store._root_meta.get("consolidated_metadata") or {}).get("metadata")) or {}


def global_preview(store: TesseraStore) -> GlobalPreview | None:
    """The store's `global_rgb` pyramid, or None. Read from the consolidated metadata (the
    published stores have it); found once per store."""
    with _LOCK:
        if hasattr(store, "_global_preview"):
            return store._global_preview
    metas = _consolidated(store)
    if not metas:
        try:  # a store without consolidated metadata: the group, then its levels by number
            group = json.loads(store.source.get(f"{GROUP}/zarr.json"))
        except (FileNotFoundError, ReadError, ValueError):
            group = None
        if group is not None:
            metas = {GROUP: group}
            for n in range(16):
                try:
                    metas[f"{GROUP}/{n}/rgb"] = json.loads(store.source.get(f"{GROUP}/{n}/rgb/zarr.json"))
                except (FileNotFoundError, ReadError, ValueError):
                    continue
    preview = _from_metadata(store, metas)
    with _LOCK:
        store._global_preview = preview
    return preview


def _from_metadata(store: TesseraStore, metas: dict) -> GlobalPreview | None:
    group = metas.get(GROUP)
    if not group:
        return None
    attrs = group.get("attributes") or {}
    layout = {str(e.get("asset", "")).split("/")[0]: e for e in
              ((attrs.get("multiscales") or {}).get("layout") or []) if isinstance(e, dict)}
    levels = []
    for key, meta in metas.items():
        parts = key.split("/")
        if len(parts) != 3 or parts[0] != GROUP or parts[2] != "rgb" or not parts[1].isdigit():
            continue
        if meta.get("node_type") != "array" or len(meta.get("shape", ())) != 3:
            continue
        n = int(parts[1])
        entry = layout.get(str(n)) or {}
        t = entry.get("spatial:transform")
        if isinstance(t, (list, tuple)) and len(t) == 6:
            res, west, north = float(t[0]), float(t[2]), float(t[5])
        else:
            res, west, north = BASE_RESOLUTION * 2 ** n, -180.0, 90.0
        reader = ArrayReader(store.source, key, meta, store.caches, store._zarr_array)
        levels.append(Level(n, reader, res, west, north))
    if not levels:
        return None
    return GlobalPreview(levels, _preview_year(store, attrs))


def _preview_year(store: TesseraStore, attrs: dict) -> int | None:
    for k in ("geoemb:year", "year", "tessera:year"):
        if isinstance(attrs.get(k), (int, str)) and str(attrs[k]).isdigit():
            return int(attrs[k])
    years = [y for y in store.years if store.stretch(y)]
    return years[-1] if years else None


# -- the coarse preview ----------------------------------------------------------------------------
@dataclass
class _Sample:
    part: ZonePart
    chunk_px: int
    step: int  # sampled chunks are every `step` chunks
    origin: tuple[int, int]  # chunk coordinates of the first sampled chunk
    counts: tuple[int, int]  # sampled chunks along y and x

    def box_of(self, iy, ix) -> tuple[tuple, tuple]:
        """The pixels of the sampled chunk(s) (iy, ix) (numbers or arrays), clipped to the
        part: ((first row, last row), (first col, last col)), inclusive."""
        part, px = self.part, self.chunk_px
        r0 = np.clip((self.origin[0] + np.asarray(iy) * self.step) * px, part.rows[0], part.rows[1] - 1) // px * px
        c0 = np.clip((self.origin[1] + np.asarray(ix) * self.step) * px, part.cols[0], part.cols[1] - 1) // px * px
        return ((np.maximum(r0, part.rows[0]), np.minimum(r0 + px, part.rows[1]) - 1),
                (np.maximum(c0, part.cols[0]), np.minimum(c0 + px, part.cols[1]) - 1))

    def boxes(self) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        """Every sampled chunk's pixels as ((r0, r1), (c0, c1)), ends excluded."""
        (r0, r1), (c0, c1) = self.box_of(*np.meshgrid(np.arange(self.counts[0]), np.arange(self.counts[1]),
                                                        indexing="ij"))
        return [((int(a), int(b) + 1), (int(c), int(d) + 1))
                for a, b, c, d in zip(r0.ravel(), r1.ravel(), c0.ravel(), c1.ravel())]


def _plan_samples(parts: list[ZonePart], chunk_px: int, index_bytes: int, chunk_bytes: int, shard_px: int,
                  budget: int) -> list[_Sample]:
    """An even lattice of inner chunks over each part: as many as fit MAX_SAMPLED_CHUNKS and
    `budget` bytes (each sampled chunk may bring a shard index of its own)."""
    total_chunks = sum(math.ceil((p.rows[1] - p.rows[0]) / chunk_px) * math.ceil((p.cols[1] - p.cols[0]) / chunk_px)
                       for p in parts)
    want = MAX_SAMPLED_CHUNKS
    while True:
        samples, cost = [], 0
        for p in parts:
            ny = math.ceil((p.rows[1] - p.rows[0]) / chunk_px)
            nx = math.ceil((p.cols[1] - p.cols[0]) / chunk_px)
            share = max(1, round(want * ny * nx / max(total_chunks, 1)))
            step = max(1, math.ceil(math.sqrt(ny * nx / share)))
            cy, cx = max(1, math.ceil(ny / step)), max(1, math.ceil(nx / step))
            first = (p.rows[0] // chunk_px + (step - 1) // 2 if ny >= step else p.rows[0] // chunk_px,
                     p.cols[0] // chunk_px + (step - 1) // 2 if nx >= step else p.cols[0] // chunk_px)
            samples.append(_Sample(p, chunk_px, step, first, (cy, cx)))
            per_shard = max(1, shard_px // chunk_px)
            shards = min(cy * cx, math.ceil(cy * step / per_shard) * math.ceil(cx * step / per_shard))
            cost += shards * index_bytes + cy * cx * chunk_bytes
        if cost <= budget or want <= 4:
            return samples
        want //= 2


def coarse_values(store: TesseraStore, year: int, crs: str, transform, width: int, height: int,
                  bands: Sequence[int], reduce: Callable[[np.ndarray, np.ndarray], np.ndarray], count: int,
                  cancel: Callable[[], bool] | None = None, budget: int = COARSE_BYTES) -> np.ndarray:
    """Values (count, height, width) float32 of a view from a bounded sample of inner chunks:
    `reduce(q (len(bands), n) int8, scales (n,))` as for grid_reduce; NaN where nothing
    was sampled or nodata."""
    out = np.full((count, height, width), np.nan, dtype=np.float32)
    parts = [p for p in plan(store, grid_bounds(transform, width, height), crs) if year in p.zone.years]
    if not parts:
        return out
    zone0 = parts[0].zone
    reader = zone0.embeddings_for(bands) if hasattr(zone0, "embeddings_for") else zone0.embeddings
    yi = zone0.emb_axes.index("y")
    chunk_px = reader.chunk_shape[yi]
    shard_px = (reader.shard_shape or reader.chunk_shape)[yi]
    index_bytes = 2 * 16 * (shard_px // chunk_px) ** 2 if reader.shard_shape else 0
    chunk_bytes = int(np.prod(reader.chunk_shape)) + 4 * chunk_px * chunk_px
    filled = np.zeros((height, width), dtype=bool)
    samples = _plan_samples(parts, chunk_px, index_bytes, chunk_bytes, shard_px, budget)
    for sample in samples:  # the sampled chunks are on their way while the pixels are placed
        sample.part.zone.prefetch(year, sample.boxes(), list(bands), cancel)
    for sample in samples:
        part, zone = sample.part, sample.part.zone
        row, col = grid_cells(transform, width, height, crs, zone.crs, zone.transform)
        inside = (row >= part.rows[0]) & (row < part.rows[1]) & (col >= part.cols[0]) & (col < part.cols[1])
        inside &= ~filled
        flat = np.flatnonzero(inside)  # the output pixels of this part, not yet filled
        if not len(flat):
            continue
        rows_in, cols_in = row.ravel()[flat].astype(np.int64), col.ravel()[flat].astype(np.int64)
        # The nearest sampled chunk of each output pixel, then its nearest pixel in that chunk.
        cy, cx = sample.counts
        iy = np.clip(np.round((rows_in // chunk_px - sample.origin[0]) / sample.step), 0, cy - 1).astype(int)
        ix = np.clip(np.round((cols_in // chunk_px - sample.origin[1]) / sample.step), 0, cx - 1).astype(int)
        # The sampled chunk's box (clipped to the part), then the output pixel's source pixel
        # clamped into it: one wave of requests for every sampled pixel (Zone.read_pixels).
        (lo_r, hi_r), (lo_c, hi_c) = sample.box_of(iy, ix)
        rr = np.clip(rows_in, lo_r, hi_r)
        cc = np.clip(cols_in, lo_c, hi_c)
        q, sc = zone.read_pixels(year, rr, cc, list(bands), cancel)
        flat_out = out.reshape(count, -1)  # a view: `out` is C-contiguous
        for b0 in range(0, len(flat), REDUCE_PIXELS):  # small float temporaries
            b = slice(b0, b0 + REDUCE_PIXELS)
            flat_out[:, flat[b]] = reduce(q[:, b], sc[b])
        filled.ravel()[flat] = True
    return out
