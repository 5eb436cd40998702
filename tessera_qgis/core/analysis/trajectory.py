"""Trajectories over years: per pixel, the cosine distance of each year's embedding to a
baseline (one year's embedding, or the mean of the embeddings of the years before), and
the year of the largest change.

Computed block by block by the export (kind "trajectory"): the block of the first year
arrives with the export's read, the other years are read one at a time, so a block holds
at most two years of int8 values and one float32 running sum, whatever the number of years.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..quant import cosine, valid_scales

MEAN_BEFORE = "mean of the years before"


def _unit(v: np.ndarray) -> np.ndarray:
    """Per-pixel unit vectors of v (bands, h, w); zero where v is zero."""
    return v / np.maximum(np.linalg.norm(v, axis=0), 1e-12)[None]


def distances(first: tuple[np.ndarray, np.ndarray], first_year: int, read: Callable[[int], tuple],
              years: Sequence[int], baseline: int | None, depth: int) -> np.ndarray:
    """Cosine distances float32 (len(years), h, w) of each compared year to the baseline, NaN
    where either has no data. `first` is (q, scales) of `first_year`; `read(year)` gives the
    others; only the first `depth` dimensions are used."""
    def get(year: int):
        q, s = first if year == first_year else read(year)
        return q[:depth], s

    q0, s0 = first
    h, w = s0.shape
    out = np.full((len(years), h, w), np.nan, dtype=np.float32)
    if baseline is not None:
        qb, sb = get(baseline)
        ref = _unit(qb.astype(np.float32))  # the scale cancels in a cosine
        vb = valid_scales(sb)
        del qb
        for i, year in enumerate(years):
            q, s = get(year)
            out[i] = 1.0 - cosine(q, ref, vb & valid_scales(s))
        return out
    sums = np.zeros((depth, h, w), dtype=np.float32)
    seen = np.zeros((h, w), dtype=bool)
    order = {y: i for i, y in enumerate(years)}
    for year in sorted(set(years) | {first_year}):
        q, s = get(year)
        valid = valid_scales(s)
        if year in order:
            out[order[year]] = 1.0 - cosine(q, _unit(sums), valid & seen)
        sums += q.astype(np.float32) * np.where(valid, s, 0.0).astype(np.float32)[None]
        seen |= valid
    return out


def change_year(dist: np.ndarray, years: Sequence[int], threshold: float) -> np.ndarray:
    """uint16 (h, w): the year of the largest distance among the years where it reaches
    `threshold`; 0 where no year does (no change, or no data)."""
    d = np.where(np.isnan(dist), -np.inf, dist)
    best = np.argmax(d, axis=0)
    top = np.take_along_axis(d, best[None], axis=0)[0]
    out = np.asarray(years, dtype=np.uint16)[best]
    out[~(top >= threshold)] = 0
    return out
