"""An export request, checked and planned: the output grids, their blocks and progress.

`prepare()` turns an ExportRequest into a `Prepared` export (the store with a private chunk
cache, the bands, the PCA basis and one output grid per file) or refuses it with a message
before anything is written.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import Cancelled, ExportError, ExtentError
from ..geo import check_bounds, default_resolution, reproject_bounds
from ..pca import PCA
from ..region import plan
from ..store import TesseraStore
from ..view import choose_pca

KINDS = ("float32", "pca", "int8", "similarity", "change", "classify", "cluster", "trajectory")
CLASS_KINDS = ("classify", "cluster")  # a class raster made by `classifier`, with a QGIS style
EXPORT_CHUNK_CACHE = 96 << 20


@dataclass
class ExportRequest:
    bounds: tuple[float, float, float, float]
    crs: str  # CRS of `bounds`
    year: int
    out: str
    kind: str = "float32"
    bands: Sequence[int] | None = None  # 1-based; None = all (float32 only)
    dst_crs: str | None = None  # None: the native zone CRS
    per_zone: bool = False
    cog: bool = False
    compress: str = "DEFLATE"
    block: int = 512  # pixels per block side: memory ~ block^2 * bands * 5 bytes
    pca: PCA | None = None
    resolution: float | None = None  # metres (or dst CRS units); default 10
    reference: Sequence[float] | None = None  # "similarity": the reference embedding
    year2: int | None = None  # "change": the other year
    # "classify" (classes and confidence) and "cluster" (classes): a model with names, dims
    # and predict(q, scales) (core/analysis/models.py); small and picklable (cluster runs)
    classifier: object | None = None
    # mask(transform, width, height, crs) -> bool (height, width): pixels to keep (polygons)
    mask: Callable | None = None
    max_pixels: int = 2_000_000_000  # refuse larger outputs (about 450 km square at 10 m)
    # Run as tasks, each writing one COG tile (tied by a VRT): on this Dask scheduler
    # ("tcp://host:port"), or in local threads when the output ends in .vrt.
    dask: str | None = None
    tile: int | None = None  # pixels per task side; default: the store's shard size
    # Matryoshka depth: products read only the first `depth` dimensions (stores declaring
    # geoemb:depths); None = all of them
    depth: int | None = None
    # "trajectory": the years compared with the baseline (`year` is the first year read) and
    # the baseline year (None: for each year, the mean of the years before it); a pixel has
    # changed in a year where its cosine distance is at least `threshold`
    years: Sequence[int] | None = None
    baseline: int | None = None
    threshold: float = 0.25
    extra: dict = field(default_factory=dict)


class Progress:
    def __init__(self, total: int, cb: Callable[[float], None] | None, cancel: Callable[[], bool] | None):
        self.total, self.done, self.cb, self.cancel = max(total, 1), 0, cb, cancel

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise Cancelled("export cancelled")

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.cb is not None:
            self.cb(min(1.0, self.done / self.total))
        self.check()


def targets(req: ExportRequest, zones: list[str]) -> list[tuple[str | None, Path]]:
    out = Path(req.out)
    if req.per_zone and len(zones) > 1:
        return [(z, out.with_name(f"{out.stem}_{z}{out.suffix or '.tif'}")) for z in zones]
    return [(zones[0] if req.per_zone else None, out)]


@dataclass
class Prepared:
    """An export checked and planned: the outputs' grids, bands and PCA basis."""

    store: TesseraStore  # with the export's private chunk cache
    req: ExportRequest
    bands: list[int]
    pca: PCA | None
    plans: list[tuple[Path, tuple]]  # (target, grid) per output file (one per zone with per_zone)

    def block_count(self) -> int:
        return sum(len(list(blocks(g, self.req.block))) for _, g in self.plans)


def prepare(store: TesseraStore, req: ExportRequest, cancel: Callable[[], bool] | None = None) -> Prepared:
    """Check an export request against the store and plan its output grids; raises
    ExportError/ExtentError/YearNotFound with a message for the user."""
    if req.kind not in KINDS:
        raise ExportError(f"unknown export kind {req.kind!r}; use one of {', '.join(KINDS)}")
    store.check_year(req.year)
    if req.kind == "change":
        if req.year2 is None:
            raise ExportError("a change export needs a second year")
        store.check_year(req.year2)
    depth = store.check_depth(req.depth)
    if req.kind == "similarity" and (req.reference is None or len(req.reference) != depth):
        raise ExportError(f"a similarity export needs a reference embedding of {depth} values")
    if req.kind in CLASS_KINDS:
        if req.classifier is None:
            raise ExportError("a classification needs a trained classifier")
        if int(req.classifier.dims) != depth:
            raise ExportError(f"the model reads {req.classifier.dims} embedding dimensions and this export "
                              f"reads {depth}: use a depth of {req.classifier.dims} (a store declaring it) "
                              "or a model trained at this depth")
    if req.kind == "trajectory":
        check_trajectory(store, req)
    # A private chunk cache: enough for the chunks that straddle two blocks, and no more,
    # so memory stays bounded whatever the region's size and whatever else uses the store.
    store = store.with_memory_cache(EXPORT_CHUNK_CACHE)
    bounds = check_bounds(req.bounds)
    bands = store.check_bands(req.bands) if req.bands else list(range(1, depth + 1))
    if req.kind != "float32" and req.bands:
        raise ExportError("bands can only be chosen for float32 exports")
    if max(bands) > depth:
        raise ExportError(f"band {max(bands)} is deeper than the depth of {depth}")
    parts = [p for p in plan(store, bounds, req.crs) if req.year in p.zone.years]
    if not parts:
        raise ExtentError("the region does not intersect the store's data for that year")
    out = Path(req.out)
    if not out.parent.is_dir():
        raise ExportError(f"output folder {out.parent} does not exist")
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give a file name ending in .tif")
    if not os.access(out.parent, os.W_OK):
        raise ExportError(f"cannot write to {out.parent}: permission denied or a read-only file system")
    if str(out.resolve()).startswith(str(Path(store.url).resolve()) + os.sep) and "://" not in store.url:
        raise ExportError("the output path lies inside the store being read; choose another folder")
    if not 16 <= req.block <= 2048 or req.block % 16:
        raise ExportError("the export block size must be a multiple of 16 pixels, 16 to 2048")
    zones_used = sorted({p.zone.name for p in parts})
    plans = [(target, grid_for(store, req, bounds, parts, zone_name))
             for zone_name, target in targets(req, zones_used)]
    pixels = sum(g[2] * g[3] for _, g in plans)
    if pixels > req.max_pixels:
        raise ExtentError(f"the region is {pixels:,} pixels at this resolution, more than the limit of "
                          f"{req.max_pixels:,}; choose a smaller region (or one file per zone)")
    pca = req.pca
    if req.kind == "pca":
        # At a Matryoshka depth: a PCA fitted on the region's first `depth` dimensions (the
        # store's global PCA covers all of them), as a layer or `render --depth` does.
        pca = choose_pca(store, req.year, pca if pca is not None else "global", (req.bounds, req.crs), cancel,
                         depth=depth)
        if pca.mean.shape[0] != depth:
            raise ExportError(f"the PCA has {pca.mean.shape[0]} dimensions and this export reads {depth}")
    return Prepared(store, req, bands, pca, plans)


def check_trajectory(store: TesseraStore, req: ExportRequest) -> None:
    """A trajectory's years: each in the store, `year` the earliest read, something to compare."""
    years = sorted(set(int(y) for y in (req.years or [])))
    for y in years + ([req.baseline] if req.baseline is not None else []):
        store.check_year(y)
    compared = [y for y in years if y != req.baseline] if req.baseline is not None else years[1:]
    if not compared:
        raise ExportError("a trajectory needs at least one year to compare with the baseline (with the mean "
                          "of the years before as baseline: at least two years)")
    first = min(years + ([req.baseline] if req.baseline is not None else []))
    if req.year != first:
        raise ExportError(f"a trajectory's year is the first year it reads ({first}), not {req.year}")
    if not 0.0 < req.threshold <= 2.0:
        raise ExportError("the change threshold is a cosine distance between 0 and 2")


def trajectory_years(req: ExportRequest) -> list[int]:
    """The years a trajectory compares with its baseline, in order: one output band each."""
    years = sorted(set(int(y) for y in (req.years or [])))
    return [y for y in years if y != req.baseline] if req.baseline is not None else years[1:]


def grid_for(store, req, bounds, parts, zone_name):
    """(crs, transform, width, height, native_zone) of the output grid."""
    if req.dst_crs is None:
        if zone_name is None:  # one file: the zone holding most of the region
            zone_name = max(parts, key=lambda p: p.pixels).zone.name
        part = next(p for p in parts if p.zone.name == zone_name)
        zone = part.zone
        if len(parts) == 1 or req.per_zone:
            a, b, c, d, e, f = zone.transform
            t = (a, b, c + a * part.cols[0], d, e, f + e * part.rows[0])
            return (zone.crs, t, part.cols[1] - part.cols[0], part.rows[1] - part.rows[0], part)
        dst_crs = zone.crs
    else:
        dst_crs = req.dst_crs
    res = req.resolution or default_resolution(dst_crs)
    box = reproject_bounds(bounds, req.crs, dst_crs)
    if box is None:
        raise ExtentError(f"the region cannot be placed in {dst_crs}")
    x0, y0, x1, y1 = box
    x0, y1 = math.floor(x0 / res) * res, math.ceil(y1 / res) * res
    width, height = math.ceil((x1 - x0) / res), math.ceil((y1 - y0) / res)
    return (dst_crs, (res, 0.0, x0, 0.0, -res, y1), width, height, None)


def block_transform(transform, r0: int, c0: int) -> tuple:
    a, b, c, d, e, f = transform
    return (a, b, c + a * c0, d, e, f + e * r0)


def blocks(grid, block: int):
    """Output blocks (r0, r1, c0, c1): exactly the GeoTIFF's tiles, so each tile is
    compressed and written once. Chunks straddling two blocks come from the export's
    private chunk cache the second time."""
    _, _, width, height, _ = grid
    for r0 in range(0, height, block):
        for c0 in range(0, width, block):
            yield r0, min(r0 + block, height), c0, min(c0 + block, width)

