"""Embedding maths on quantised values: validity, dequantisation, cosine similarity.

A pixel's value is `float32(int8) * scale`, one scale per pixel. A scale is valid only when
it is finite and 0 < s < MAX_VALID_SCALE: geotessera's builds keep only such scales, and the
v1 store, which predates that filter, holds huge finite scales that are garbage. `+inf`
means never written (land not embedded), NaN water or source nodata. Everything that is not
valid is nodata, in every path: the readers turn invalid scales into NaN once, on arrival
(a NaN of their own, INVALID_SCALE, so that nodata_reason() can still say why).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .memory import OUTPUTS, large_empty

MAX_VALID_SCALE = 1.0
# float32 bit patterns, read as unsigned integers, keep the order of positive floats; negative
# floats, +inf and NaN come after every finite positive one. So a float32 scale is valid when
# its bits lie in [_LOWEST_VALID, _PAST_VALID).
_LOWEST_VALID = 1  # the smallest positive float32
_PAST_VALID = int(np.float32(MAX_VALID_SCALE).view(np.uint32))
# An out-of-range scale becomes a NaN of its own (a quiet NaN with a payload of ours): nodata
# like every NaN to all the maths, yet a pixel lookup can still tell it from the NaN of water.
_INVALID_BITS = 0x7FC05CA1
INVALID_SCALE = np.array(_INVALID_BITS, dtype=np.uint32).view(np.float32)[()]

# Why a pixel is nodata, from its (sanitised) scale: see nodata_reason().
NOT_EMBEDDED = "not embedded"
NO_DATA = "no data"
INVALID = "invalid scale"
OUTSIDE = "outside"  # no zone of the store has the point (for that year)


def valid_scales(scales: np.ndarray) -> np.ndarray:
    """Bool mask of valid scales: finite and 0 < s < MAX_VALID_SCALE."""
    s = np.asarray(scales)
    with np.errstate(invalid="ignore"):
        return (s > 0) & (s < MAX_VALID_SCALE)


def sanitise_scales(scales: np.ndarray) -> np.ndarray:
    """Scales with every finite but invalid value replaced by NaN (in place when writable);
    +inf (never written) and NaN (water, source nodata) stay as they are."""
    s = np.asarray(scales)
    if s.dtype == np.float32 and s.size and s.flags.c_contiguous:
        bits = s.view(np.uint32)  # every scale valid (the usual chunk): two reductions, no masks
        if bits.min() >= _LOWEST_VALID and bits.max() < _PAST_VALID:
            return s
    bad = np.isfinite(s) & ~valid_scales(s)
    if bad.any():
        if not s.flags.writeable:
            s = s.copy()
        s[bad] = INVALID_SCALE
    return s


def nodata_reason(scale) -> str | None:
    """Why a pixel with this sanitised scale (a float32) is nodata: None when it is valid;
    NOT_EMBEDDED for +inf (never written); INVALID when the stored scale was out of range
    (see sanitise_scales); NO_DATA for any other NaN (water, missing source data)."""
    s = np.asarray(scale, dtype=np.float32)
    if bool(valid_scales(s)):
        return None
    if np.isposinf(s):
        return NOT_EMBEDDED
    if int(s.view(np.uint32)) == _INVALID_BITS:
        return INVALID
    return NO_DATA


def scales_or_nan(scales: np.ndarray, new: Callable = np.empty) -> np.ndarray:
    """float32 scales with NaN in place of every invalid one (a pixel's values then come out
    NaN); `new(shape, dtype)` gives the memory (np.empty, or the output pool's)."""
    scales = np.asarray(scales)
    s = new(scales.shape, np.float32)
    s.fill(np.nan)
    np.copyto(s, scales, where=valid_scales(scales))
    return s


def dequantise(q: np.ndarray, scales: np.ndarray, pooled: bool = False) -> np.ndarray:
    """float32 values from int8 (bands, ...) and scales (...); NaN where a scale is not valid.

    One pass over the output: each int8 times its pixel's scale, NaN taking the place of every
    invalid scale (a NaN times anything is NaN). `pooled`: the output and the scales it
    multiplies by come from the output pool (memory.OutputPool), for reads whose outputs
    come and go (a window's values again and again cost no fresh pages); an export's blocks
    leave it (what the pool keeps would add to their memory budget)."""
    new = OUTPUTS.empty if pooled else large_empty
    s = scales_or_nan(scales, new)
    out = new(q.shape, np.float32)
    np.multiply(q, s[None], out=out)
    return out


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def cosine(q: np.ndarray, ref: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Cosine similarity of int8 embeddings q (bands, ...) with unit vector(s) `ref`
    (broadcastable to q); NaN where not `valid`. The per-pixel scale cancels out."""
    qf = q.astype(np.float32)
    norm = np.linalg.norm(qf, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = (qf * ref).sum(axis=0) / norm
    out[~valid | (norm == 0)] = np.nan
    return out.astype(np.float32)
