"""PCA of embeddings to RGB: one basis and one stretch for a whole render or export.

A `PCA` is fitted once (or taken from the store's global `geoemb:stretch.{year}`) and then
applied to any block, so tiles and zones share colours: no seams. Component signs are fixed
(the largest loading of each component is positive) so colours do not flip between fits.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .memory import large_empty

MAX_FIT_SAMPLES = 100_000


class TooFewPixels(ValueError):
    """A fit with fewer than 3 valid samples."""


@dataclass(frozen=True)
class PCA:
    mean: np.ndarray  # (bands,)
    components: np.ndarray  # (3, bands), orthonormal rows
    lo: np.ndarray  # (3,) stretch: value mapped to 0
    hi: np.ndarray  # (3,) stretch: value mapped to 255
    source: str = "fit"  # "global" (the store's) or "fit"

    @classmethod
    def from_stretch(cls, stretch: dict) -> "PCA | None":
        """The store's global PCA for a year (`geoemb:stretch.{year}`), if it has one."""
        try:
            comps = np.asarray(stretch["pca_components"], dtype=np.float64)
            mean = np.asarray(stretch["pca_mean"], dtype=np.float64)
            lo = np.asarray(stretch["min"], dtype=np.float64)
            hi = np.asarray(stretch["max"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            return None
        if comps.shape[0] < 3 or comps.shape[1] != mean.shape[0] or lo.shape != (3,) or hi.shape != (3,):
            return None
        return cls(mean, comps[:3], lo, hi, "global")

    @classmethod
    def fit(cls, samples: np.ndarray, seed: int = 0, max_samples: int = MAX_FIT_SAMPLES) -> "PCA":
        """Fit on (n, bands) samples: those with every band finite count, at most `max_samples`
        of them are used."""
        samples = np.asarray(samples)
        n, bands = samples.shape
        ok = np.empty(n, dtype=bool)
        step = _rows_per_block(bands)
        for i in range(0, n, step):
            ok[i:i + step] = np.isfinite(samples[i:i + step]).all(axis=1)
        return cls._fit_rows(lambda rows: samples[rows], _choose(np.flatnonzero(ok), max_samples, seed), bands)

    @classmethod
    def fit_values(cls, values: np.ndarray, seed: int = 0, max_samples: int = MAX_FIT_SAMPLES) -> "PCA":
        """Fit on up to `max_samples` of the valid pixels of (bands, h, w) values (the pixels
        `sample_valid` would pick), read from `values` block by block: no copy of the sample."""
        flat = values.reshape(values.shape[0], -1)
        return cls._fit_rows(lambda rows: flat[:, rows].T, _choose(valid_pixels(values), max_samples, seed),
                             flat.shape[0])

    @classmethod
    def _fit_rows(cls, rows_of, picked: np.ndarray, bands: int) -> "PCA":
        """The fit on the samples `rows_of(indices)` gives for `picked`, taken in blocks of a
        few MiB: the eigenvectors of the (bands x bands) covariance (one matrix product per
        block, much cheaper than an SVD of the samples), their 2-98 % stretch over the samples.
        Blocks, not whole-sample float64 copies: numpy backs arrays of 4 MiB and more with huge
        pages, whose first touch took 0.7-1.1 s per 100 MB on these machines (a 100k-sample fit
        made two such copies: 1.3-2.2 s in `make bench`, 0.13 s in memory touched before)."""
        m = len(picked)
        if m < 3:
            raise TooFewPixels("too few valid pixels to fit a PCA (need at least 3)")
        step = _rows_per_block(bands)
        blocks = [picked[i:i + step] for i in range(0, m, step)]
        # Sums about a provisional centre (the first block's mean) keep the float64 sums exact
        # enough without a pass for the mean first.
        centre = rows_of(blocks[0]).astype(np.float64).mean(axis=0)
        total, cross = np.zeros(bands), np.zeros((bands, bands))
        for rows in blocks:
            d = rows_of(rows).astype(np.float64)
            d -= centre
            total += d.sum(axis=0)
            cross += d.T @ d
        shift = total / m
        mean = centre + shift
        cov = (cross - m * np.outer(shift, shift)) / max(1, m - 1)
        _, vecs = np.linalg.eigh(cov)
        comps = vecs[:, ::-1][:, :3].T
        if comps.shape[0] < 3:
            comps = np.vstack([comps, np.zeros((3 - comps.shape[0], bands))])
        signs = np.sign(comps[np.arange(3), np.argmax(np.abs(comps), axis=1)])
        signs[signs == 0] = 1
        comps = comps * signs[:, None]
        proj = np.empty((m, 3))
        done = 0
        for rows in blocks:
            d = rows_of(rows).astype(np.float64)
            d -= mean
            proj[done:done + len(rows)] = d @ comps.T
            done += len(rows)
        lo, hi = np.percentile(proj, 2, axis=0), np.percentile(proj, 98, axis=0)
        return cls(mean, comps, lo, hi, "fit")

    def project(self, values: np.ndarray) -> np.ndarray:
        """(bands, h, w) float with NaN nodata -> (3, h, w) float32 components."""
        b, h, w = values.shape
        out = large_empty((3, h * w), np.float32)
        np.matmul(self.components.astype(np.float32), values.reshape(b, -1), out=out)
        out -= (self.components @ self.mean).astype(np.float32)[:, None]
        return out.reshape(3, h, w)

    def to_rgba(self, values: np.ndarray) -> np.ndarray:
        """(bands, h, w) -> uint8 (4, h, w): the stretched components and an alpha band."""
        return self.stretch_components(self.project(values))

    def stretch_components(self, proj: np.ndarray) -> np.ndarray:
        """(3, h, w) components (NaN nodata) -> uint8 (4, h, w) RGBA with this fit's stretch."""
        return stretch_rgba(proj, list(zip(self.lo.tolist(), self.hi.tolist())))

    def to_json(self) -> dict:
        return {"pca_mean": self.mean.tolist(), "pca_components": self.components.tolist(),
                "min": self.lo.tolist(), "max": self.hi.tolist(), "source": self.source}

    @classmethod
    def from_json(cls, d: dict) -> "PCA":
        pca = cls.from_stretch(d)
        if pca is None:
            raise ValueError("not a saved PCA (needs pca_mean, pca_components, min, max)")
        return cls(pca.mean, pca.components, pca.lo, pca.hi, d.get("source", "fit"))


def percent_ranges(values: np.ndarray, lo_pct: float = 2.0, hi_pct: float = 98.0,
                   fallback: tuple[float, float] = (-2.5, 2.5)) -> list[tuple[float, float]]:
    """(low, high) per band of (bands, ...) values: the 2 and 98 % percentiles of the valid
    (finite) values; `fallback` for a band without any. The one stretch rule of the layers,
    the style dock and `render`."""
    out = []
    for band in values:
        v = band[np.isfinite(band)]
        if v.size:
            lo, hi = np.percentile(v, [lo_pct, hi_pct]).tolist()
            out.append((float(lo), float(hi)))
        else:
            out.append(fallback)
    return out


def stretch_rgba(values: np.ndarray, ranges) -> np.ndarray:
    """(n, h, w) float with NaN nodata -> uint8 (n + 1, h, w): each band mapped linearly from
    its (low, high) to 0..255, plus an alpha band (255 where every band is valid)."""
    valid = valid_mask(values)
    invalid = ~valid
    out = large_empty((len(values) + 1,) + values.shape[1:], np.uint8)
    scaled = large_empty(values.shape[1:], np.float32)  # one band at a time: few large temporaries
    for band, (low, high), rgb in zip(values, ranges, out):
        low, high = np.float32(low), np.float32(high)
        np.subtract(band, low, out=scaled)
        scaled /= high - low if high > low else np.float32(1.0)
        scaled *= np.float32(255.0)
        np.clip(scaled, 0, 255, out=scaled)
        scaled[invalid] = 0  # (NaN where a band is missing)
        rgb[...] = scaled  # truncates, as astype
    np.multiply(valid, 255, out=out[-1], casting="unsafe")
    return out


def stretch_bands(values: np.ndarray, lo_pct: float = 2.0, hi_pct: float = 98.0) -> np.ndarray:
    """(n, h, w) float with NaN -> uint8 (n + 1, h, w): each band stretched to its 2-98 %
    percentiles over the pixels valid in every band, plus an alpha band."""
    valid = valid_mask(values)
    return stretch_rgba(values, percent_ranges(np.where(valid[None], values, np.nan), lo_pct, hi_pct))


def _rows_per_block(bands: int) -> int:
    """Samples per block of a fit: 2 MiB of float64, under numpy's 4 MiB huge-page threshold."""
    return max(1, (2 << 20) // (8 * max(1, bands)))


def _choose(idx: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most n of `idx` at random (reproducible for a seed), in ascending order."""
    if len(idx) > n:
        idx = np.sort(idx[np.random.default_rng(seed).choice(len(idx), n, replace=False)])
    return idx


def valid_mask(values: np.ndarray) -> np.ndarray:
    """(h, w): where (bands, h, w) values are finite in every band (one band at a time: no
    (bands, h, w) mask)."""
    ok = np.isfinite(values[0])
    band_ok = np.empty_like(ok)
    for band in values[1:]:
        ok &= np.isfinite(band, out=band_ok)
    return ok


def valid_pixels(values: np.ndarray) -> np.ndarray:
    """Flat indices of the pixels of (bands, h, w) values that are finite in every band."""
    return np.flatnonzero(valid_mask(values))


def sample_valid(values: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Up to n valid pixels of (bands, h, w) as (n, bands): the pixels `PCA.fit_values` fits on."""
    flat = values.reshape(values.shape[0], -1)
    return flat[:, _choose(valid_pixels(values), n, seed)].T
