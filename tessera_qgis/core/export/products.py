"""What an export writes for each kind: its output files (bands, types, nodata, metadata)
and the values of one block, computed from the quantised embeddings and scales.

The values come from the view pipeline's products (bands, PCA, similarity) so a GeoTIFF
holds exactly what the map layer draws; GDAL types are chosen by the GeoTIFF writer.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ..errors import ExportError, YearNotFound
from ..pca import PCA
from ..quant import cosine, dequantise, valid_scales
from ..region import read_grid_quantised
from ..analysis.trajectory import MEAN_BEFORE, change_year, distances
from ..view import pca_values, similarity_to
from .request import KINDS, ExportRequest, block_transform, trajectory_years


@dataclass
class Output:
    """One GeoTIFF an export writes: its name suffix, numpy type, band names, nodata,
    colour interpretations ("red", "green", "blue", "alpha"), categories and metadata."""

    suffix: str
    dtype: str
    names: list[str]
    nodata: float | None = None
    colours: list[str] | None = None
    categories: list[str] | None = None
    meta: dict = field(default_factory=dict)


class BandGroups:
    """A block's float32 values, dequantised 16 bands at a time as they are written (a 512 px
    block of 128 bands is 134 MB of float32 at once, 17 MB this way)."""

    GROUP = 16

    def __init__(self, q: np.ndarray, scales: np.ndarray, idx: list[int]) -> None:
        self.q, self.scales, self.idx = q, scales, idx

    def __iter__(self):
        whole = self.idx == list(range(self.q.shape[0]))
        for g in range(0, len(self.idx), self.GROUP):
            sel = self.idx[g:g + self.GROUP]
            yield g, dequantise(self.q[sel[0]:sel[-1] + 1] if whole else self.q[sel], self.scales)


def _flat(product, q: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """A view product on a (bands, h, w) block: (count, h, w)."""
    b, h, w = q.shape
    return product.from_quantised(q.reshape(b, -1), scales.reshape(-1)).reshape(product.count, h, w)


def products(store, req: ExportRequest, bands: list[int], pca: PCA | None):
    """(outputs, compute) for an export kind. compute(q, scales, extra) -> one array per
    output for a block; q/scales are the year's quantised values, extra holds what other
    kinds need ("year2" for "change"; "read": year -> (q, scales) of the same block).
    With a depth, every kind sees only the first `depth` dimensions of q."""
    depth = req.depth or store.bands
    outs, compute = _products(store, req, bands, pca, depth)
    if depth >= store.bands:
        return outs, compute

    def shallow(q, s, x):
        if "year2" in x:
            q2, s2 = x["year2"]
            x = dict(x, year2=(q2[:depth], s2))
        return compute(q[:depth], s, x)
    return outs, shallow


def _products(store, req: ExportRequest, bands: list[int], pca: PCA | None, depth: int):
    if req.kind == "float32":
        outs = [Output("", "float32", [f"A{b:03d}" for b in bands], float("nan"),
                       meta={"TESSERA_BANDS": ",".join(map(str, bands))})]
        idx = [b - 1 for b in bands]
        return outs, lambda q, s, x: [BandGroups(q, s, idx)]
    if req.kind == "pca":
        outs = [Output("", "uint8", ["PC1", "PC2", "PC3", "alpha"], None, ["red", "green", "blue", "alpha"],
                       meta={"TESSERA_PCA": pca.source, "TESSERA_PCA_BASIS": json.dumps(pca.to_json())})]
        product = pca_values(pca)
        return outs, lambda q, s, x: [pca.stretch_components(_flat(product, q, s))]
    if req.kind == "int8":
        outs = [Output("", "int8", [f"A{b:03d}" for b in range(1, depth + 1)]),
                Output("_scales", "float32", ["scale"], float("inf"),
                       meta={"TESSERA_DEQUANTISE": "value = int8 * scale; nodata where scale is not finite "
                                                   "or not between 0 and 1"})]
        return outs, lambda q, s, x: [q, s]
    if req.kind == "similarity":
        product = similarity_to(req.reference)
        outs = [Output("", "float32", ["cosine similarity"], float("nan"))]
        return outs, lambda q, s, x: [_flat(product, q, s)]
    if req.kind == "change":
        outs = [Output("", "float32", [f"cosine distance {req.year} to {req.year2}"], float("nan"),
                       meta={"TESSERA_YEAR2": str(req.year2)})]

        def change(q, s, x):
            q2, s2 = x["year2"]
            valid = valid_scales(s) & valid_scales(s2)
            q2f = q2.astype(np.float32)
            q2f /= np.maximum(np.linalg.norm(q2f, axis=0), 1e-12)[None]
            return [(1.0 - cosine(q, q2f, valid))[None]]
        return outs, change
    if req.kind == "classify":
        model = req.classifier
        outs = [Output("", "uint8", ["class"], 0, categories=["no data", *model.names],
                       meta={"TESSERA_CLASSES": json.dumps(model.names), "TESSERA_DEPTH": str(depth),
                             **({"TESSERA_K": str(model.k)} if hasattr(model, "k") else {})}),
                Output("_confidence", "float32", ["confidence"], float("nan"))]

        def classify(q, s, x):
            cls, conf = model.predict(q, s)
            return [cls, conf]
        return outs, classify
    if req.kind == "cluster":
        model = req.classifier
        outs = [Output("", "uint8", ["cluster"], 0, categories=["no data", *model.names],
                       meta={"TESSERA_CLASSES": json.dumps(model.names), "TESSERA_DEPTH": str(depth)})]
        return outs, lambda q, s, x: [model.predict(q, s)[0]]
    if req.kind == "trajectory":
        years = trajectory_years(req)
        base = str(req.baseline) if req.baseline is not None else MEAN_BEFORE
        meta = {"TESSERA_YEARS": ",".join(map(str, years)), "TESSERA_BASELINE": base,
                "TESSERA_THRESHOLD": repr(float(req.threshold)), "TESSERA_DEPTH": str(depth)}
        outs = [Output("", "float32", [f"cosine distance {y} to {base}" for y in years], float("nan"), meta=meta),
                Output("_year", "uint16", ["year of the largest change"], 0, meta=meta)]

        def trajectory(q, s, x):
            dist = distances((q, s), req.year, x["read"], years, req.baseline, depth)
            return [dist, change_year(dist, years, req.threshold)]
        return outs, trajectory
    raise ExportError(f"unknown export kind {req.kind!r}; use one of {', '.join(KINDS)}")


def read_prefix(store, req) -> list[int] | None:
    """The bands a block read needs: the first `depth` (or, for float32 bands, up to the
    deepest asked for) read from the shallowest Matryoshka array holding them; None = all."""
    need = store.bands
    if req.depth:
        need = min(need, int(req.depth))
    if req.kind == "float32" and req.bands:
        need = min(need, max(int(b) for b in req.bands))
    if req.kind == "int8":
        need = store.bands
    return list(range(1, need + 1)) if need < store.bands else None


def read_block(store, req, grid, r0, c0, h, w, cancel, year: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Quantised values and scales of one output block: the bands `read_prefix` says, first
    to last (all of them for most kinds)."""
    crs, transform, _, _, native = grid
    year = req.year if year is None else year
    bands = read_prefix(store, req)
    if native is not None:  # the zone's own pixel grid: no resampling, each chunk read once
        win = native.zone.read(year, (native.rows[0] + r0, native.rows[0] + r0 + h),
                               (native.cols[0] + c0, native.cols[0] + c0 + w), cancel=cancel, bands=bands)
        return win.q, win.scales
    return read_grid_quantised(store, year, crs, block_transform(transform, r0, c0), w, h, bands=bands,
                               cancel=cancel)


def year_reader(store, req, grid, r0, c0, h, w, cancel, inside: np.ndarray | None = None):
    """read(year) -> (q, scales) of the same output block in another year; nodata where a
    zone lacks the year, and outside `inside` (the request's polygons)."""
    def read(year: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            q, s = read_block(store, req, grid, r0, c0, h, w, cancel, year=year)
        except YearNotFound:
            return np.zeros((store.bands, h, w), dtype=np.int8), np.full((h, w), np.inf, dtype=np.float32)
        if inside is not None:
            s = np.where(inside, s, np.inf).astype(np.float32)
        return q, s
    return read
