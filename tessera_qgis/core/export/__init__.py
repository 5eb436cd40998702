"""Export a region to GeoTIFF, streamed block by block with bounded memory.

Output kinds: float32 dequantised embeddings (all bands or a subset, NaN nodata), PCA RGB
(uint8 with an alpha band), quantised int8 plus a float32 scales file, similarity, change
between two years and classes. Files are written to a temporary name beside the target and
renamed into place only when complete; a cancel or an error removes the temporary files,
and an existing output is replaced only on success.

    request.py   the request, checked and planned (output grids, blocks, progress)
    products.py  what each kind writes, and one block's values (from the view pipeline)
    geotiff.py   the GeoTIFF writer (tiled, described, COG)
    local.py     runs an export in this process
    cluster.py   runs it as tile tasks, in local threads or on a Dask cluster
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..store import TesseraStore
from .cluster import export_tiles
from .geotiff import class_style
from .local import run_local
from .request import EXPORT_CHUNK_CACHE, KINDS, ExportRequest, Prepared, prepare


def export(store: TesseraStore, req: ExportRequest, progress: Callable[[float], None] | None = None,
           cancel: Callable[[], bool] | None = None) -> list[Path]:
    """Write the GeoTIFF(s) for `req`; returns the paths written.

    With `req.dask` (a scheduler address) or an output ending in .vrt, the export runs as
    tasks that each write one tile (a COG), tied together by a VRT or mosaicked into the
    output: see `cluster.export_tiles`."""
    prep = prepare(store, req, cancel)
    if req.dask or Path(req.out).suffix.lower() == ".vrt":
        return export_tiles(prep, progress, cancel)
    return run_local(prep, progress, cancel)


__all__ = ["EXPORT_CHUNK_CACHE", "KINDS", "ExportRequest", "Prepared", "class_style", "export", "prepare"]
