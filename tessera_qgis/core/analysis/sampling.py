"""Pixels to learn from: a bounded random sample of a region's valid pixels (for k-means),
and the embeddings under labelled points (for classifiers), with where each one lies.

Both read only what they need: a region larger than twice the sample is read through
chunk-aligned cells in random order, so sampling costs about the sample's size in reading,
not the region's; points are read one pixel each, concurrently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import Cancelled, ExtentError
from ..geo import transformer
from ..quant import valid_scales
from ..region import plan
from ..sources import TASK_POOL
from ..store import TesseraStore

Cancel = Callable[[], bool] | None
MAX_SAMPLES = 200_000
WINDOW = 256  # pixels a side of the windows a small region is read in
SPATIAL_BLOCK = 1000.0  # metres: the side of the blocks of the spatial split


def depth_bands(store: TesseraStore, depth: int | None) -> list[int] | None:
    """The bands (from 1) a depth reads: None for all of them."""
    d = store.check_depth(depth)
    return None if d == store.bands else list(range(1, d + 1))


def _whole(parts) -> list[tuple]:
    """(zone, rows, cols) windows covering every part, WINDOW pixels a side."""
    jobs = []
    for part in parts:
        for r in range(part.rows[0], part.rows[1], WINDOW):
            for c in range(part.cols[0], part.cols[1], WINDOW):
                jobs.append((part.zone, (r, min(r + WINDOW, part.rows[1])), (c, min(c + WINDOW, part.cols[1]))))
    return jobs


def _cells(parts, rng) -> list[tuple]:
    """Every chunk-aligned cell of the parts, in random order."""
    cells = []
    for part in parts:
        zone = part.zone
        size = zone.embeddings.chunk_shape[zone.emb_axes.index("y")]
        for r in range(part.rows[0] // size * size, part.rows[1], size):
            for c in range(part.cols[0] // size * size, part.cols[1], size):
                cells.append((zone, (max(r, part.rows[0]), min(r + size, part.rows[1])),
                              (max(c, part.cols[0]), min(c + size, part.cols[1]))))
    return [cells[i] for i in rng.permutation(len(cells))]


def sample_pixels(store: TesseraStore, bounds, crs: str, year: int, max_samples: int = MAX_SAMPLES,
                  depth: int | None = None, seed: int = 0, cancel: Cancel = None) -> np.ndarray:
    """At most `max_samples` valid pixels of a region, dequantised: float32 (n, depth).

    A region of at most twice the sample is read whole; a larger one through chunk-aligned
    cells in random order, in rounds sized by the share of valid pixels seen so far, until
    the sample is full (water or unembedded land only costs more cells). Every valid pixel
    has about the same chance to be drawn; the same arguments give the same sample. Memory:
    the candidates as int8, about twice the sample."""
    store.check_year(year)
    bands = depth_bands(store, depth)
    parts = [p for p in plan(store, bounds, crs) if year in p.zone.years]
    total = sum(p.pixels for p in parts)
    if total == 0:
        raise ExtentError("the region does not intersect the store's data for that year")
    rng = np.random.default_rng(seed)

    def read(job):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        zone, rows, cols = job
        win = zone.read(year, rows, cols, cancel=cancel, bands=bands)
        ok = valid_scales(win.scales)
        return win.q[:, ok].T.copy(), win.scales[ok].copy(), ok.size

    qs, ss = [], []
    if total <= 2 * max_samples:
        for q, s, _ in TASK_POOL.map(read, _whole(parts)):
            qs.append(q)
            ss.append(s)
    else:
        cells = _cells(parts, rng)
        cell_px = max(1.0, total / max(len(cells), 1))
        done, seen, valid = 0, 0, 0
        while done < len(cells) and valid < max_samples:
            rate = valid / seen if seen else 1.0
            want = (max_samples - valid) / max(rate, 0.02) * 1.25
            batch = cells[done:done + max(8, int(np.ceil(want / cell_px)))]
            done += len(batch)
            for q, s, n in TASK_POOL.map(read, batch):
                qs.append(q)
                ss.append(s)
                seen += n
                valid += len(s)
    if cancel is not None and cancel():
        raise Cancelled("cancelled")
    n = sum(len(s) for s in ss)
    if n == 0:
        raise ExtentError("the region holds no valid pixel for that year (all nodata)")
    q = np.concatenate(qs)
    s = np.concatenate(ss)
    del qs, ss
    if n > max_samples:
        pick = np.sort(rng.choice(n, size=max_samples, replace=False))
        q, s = q[pick], s[pick]
    return q.astype(np.float32) * s[:, None]


@dataclass
class Labelled:
    """Embeddings under labelled points: vectors (n, d) float32, labels (n,) as text, and
    where each pixel lies: `blocks` (n,) ids of the SPATIAL_BLOCK-metre square holding it
    (in its zone's CRS), `cells` (n,) (zone, row, col) of the pixel; `skipped` points had no
    embedding (nodata, outside the store or without a label)."""

    vectors: np.ndarray
    labels: list[str]
    blocks: np.ndarray
    cells: list[tuple[str, int, int]]
    skipped: int = 0


def labelled_pixels(store: TesseraStore, year: int, points: Sequence[tuple[float, float, object]],
                    crs: str = "EPSG:4326", depth: int | None = None, cancel: Cancel = None,
                    progress: Callable[[float], None] | None = None) -> Labelled:
    """The embedding (the first `depth` dimensions) under each labelled point (x, y, label)
    given in `crs`. Points on nodata, outside the store or without a label are skipped (counted);
    two points on one pixel keep the first (a pixel is learnt from once)."""
    store.check_year(year)
    d = store.check_depth(depth)
    pts = [(float(x), float(y), lab) for x, y, lab in points]
    if crs != "EPSG:4326" and pts:
        lon, lat = transformer(crs, "EPSG:4326").transform([p[0] for p in pts], [p[1] for p in pts])
        pts = [(float(a), float(b), p[2]) for a, b, p in zip(np.atleast_1d(lon), np.atleast_1d(lat), pts)]
    def one(p):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        lon, lat, label = p
        if label is None or str(label).strip() == "" or not (math.isfinite(lon) and math.isfinite(lat)):
            return None
        if not -80.0 <= lat <= 84.0:  # outside UTM: no store has it
            return None
        px = store.pixel(lon, lat, year)
        if not px["valid"]:
            return None
        zone = store.zones[px["zone"]]
        a, _, c, _, e, f = zone.transform
        x, y = c + a * (px["col"] + 0.5), f + e * (px["row"] + 0.5)
        block = (zone.name, math.floor(x / SPATIAL_BLOCK), math.floor(y / SPATIAL_BLOCK))
        return np.asarray(px["embedding"][:d], dtype=np.float32), str(label), block, (zone.name, px["row"], px["col"])

    vectors, labels, blocks, cells, seen = [], [], [], [], set()
    skipped = 0
    for i, got in enumerate(TASK_POOL.map(one, pts)):
        if progress is not None:
            progress((i + 1) / len(pts))
        if got is None or got[3] in seen:
            skipped += 1
            continue
        seen.add(got[3])
        vectors.append(got[0])
        labels.append(got[1])
        blocks.append(got[2])
        cells.append(got[3])
    ids = {b: i for i, b in enumerate(sorted(set(blocks)))}
    return Labelled(np.array(vectors, dtype=np.float32).reshape(len(vectors), d), labels,
                    np.array([ids[b] for b in blocks], dtype=np.int64), cells, skipped)
