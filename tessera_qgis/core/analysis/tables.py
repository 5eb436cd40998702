"""Areas read back from written rasters, block by block (bounded memory, whatever their
size; a VRT of cluster tiles reads like any GeoTIFF): class transitions between years and
changed area per year and class. Areas are hectares from each pixel's size in the raster's
CRS (metres in the UTM zones the analysis writes by default; in a geographic CRS, degrees
are turned into metres at each row's latitude).
"""
from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..errors import Cancelled, ExportError
from ..gdal_io import gdal_module

ROWS = 512  # rows read at once


def row_areas(ds) -> np.ndarray:
    """Hectares of one pixel in each row of a dataset (float64 (height,))."""
    from osgeo import osr  # GDAL is optional (see gdal_io): only reports read rasters back

    gt = ds.GetGeoTransform()
    srs = osr.SpatialReference()
    srs.ImportFromWkt(ds.GetProjection() or "")
    px = abs(gt[1] * gt[5] - gt[2] * gt[4])
    if srs.IsGeographic():
        lat = gt[3] + gt[5] * (np.arange(ds.RasterYSize) + 0.5)
        metres = px * (111_320.0 ** 2) * np.cos(np.radians(lat))
        return metres / 10_000.0
    unit = srs.GetLinearUnits() if srs.IsProjected() else 1.0
    return np.full(ds.RasterYSize, px * unit * unit / 10_000.0)


def _strips(height: int, cancel: Callable[[], bool] | None):
    for r0 in range(0, height, ROWS):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        yield r0, min(ROWS, height - r0)


def _same_grid(a, b, what: str) -> None:
    if (a.RasterXSize, a.RasterYSize) != (b.RasterXSize, b.RasterYSize) or \
            any(not math.isclose(x, y, rel_tol=0, abs_tol=1e-6) for x, y in zip(a.GetGeoTransform(), b.GetGeoTransform())):
        raise ExportError(f"{what}: the rasters are not on the same grid")


def transitions(path_from: str, path_to: str, n_classes: int,
                cancel: Callable[[], bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(pixels, hectares), each (n_classes + 1, n_classes + 1): row = class in the first
    raster, column = class in the second (0 = no data), over two class rasters on one grid."""
    gdal = gdal_module()
    a, b = gdal.Open(str(path_from)), gdal.Open(str(path_to))
    _same_grid(a, b, "class transitions")
    n = n_classes + 1
    pixels = np.zeros((n, n), dtype=np.int64)
    area = np.zeros((n, n), dtype=np.float64)
    rows = row_areas(a)
    for r0, h in _strips(a.RasterYSize, cancel):
        x = a.GetRasterBand(1).ReadAsArray(0, r0, a.RasterXSize, h).astype(np.int64)
        y = b.GetRasterBand(1).ReadAsArray(0, r0, a.RasterXSize, h).astype(np.int64)
        x[(x < 0) | (x >= n)] = 0
        y[(y < 0) | (y >= n)] = 0
        code = (x * n + y).ravel()
        pixels += np.bincount(code, minlength=n * n).reshape(n, n)
        weights = np.repeat(rows[r0:r0 + h], a.RasterXSize)
        area += np.bincount(code, weights=weights, minlength=n * n).reshape(n, n)
    return pixels, area


def raster_classes(ds) -> list[str]:
    """Names of classes 1..n of a class raster: this plugin's TESSERA_CLASSES metadata, else
    the band's category names, else "class i" up to the largest value."""
    try:
        names = json.loads(ds.GetMetadataItem("TESSERA_CLASSES") or "null")
    except ValueError:
        names = None
    if isinstance(names, list) and names:
        return [str(n) for n in names]
    band = ds.GetRasterBand(1)
    cats = band.GetCategoryNames() or []
    top = int(band.ComputeRasterMinMax(False)[1])
    return [cats[i] if i < len(cats) and cats[i] else f"class {i}" for i in range(1, min(top, 255) + 1)]


@dataclass
class ChangeTable:
    """Per compared year and class: valid and changed pixels and hectares. Class 0 is the
    whole region ("all"); classes 1..n come from a class raster when one is given."""

    years: list[int]
    classes: list[str]  # names of classes 1..n ([] without a class raster)
    valid_px: np.ndarray  # (years, n + 1)
    changed_px: np.ndarray
    valid_ha: np.ndarray
    changed_ha: np.ndarray
    largest_ha: np.ndarray  # (years, n + 1): area whose largest change fell in that year


def change_table(distance_path: str, year_path: str, years: Sequence[int], threshold: float,
                 class_path: str | None = None, class_names: Sequence[str] | None = None,
                 cancel: Callable[[], bool] | None = None) -> ChangeTable:
    """Changed area (distance >= threshold) per compared year, for the whole region and per
    class of `class_path` (any class raster, resampled onto the trajectory's grid, nearest)."""
    gdal = gdal_module()
    dist = gdal.Open(str(distance_path))
    ychg = gdal.Open(str(year_path))
    _same_grid(dist, ychg, "the change report")
    classes = None
    vsi = None
    names = list(class_names or [])
    if class_path is not None:
        vsi = f"/vsimem/tessera-classes-{uuid.uuid4().hex}.vrt"
        src = gdal.Open(str(class_path))
        if src is None:
            raise ExportError(f"cannot read the class raster {class_path}")
        if not names:
            names = raster_classes(src)
        gt = dist.GetGeoTransform()
        classes = gdal.Warp(vsi, src, format="VRT", dstSRS=dist.GetProjection(), resampleAlg="near",
                            outputBounds=(gt[0], gt[3] + gt[5] * dist.RasterYSize, gt[0] + gt[1] * dist.RasterXSize,
                                          gt[3]), width=dist.RasterXSize, height=dist.RasterYSize,
                            dstNodata=0)
    n = len(names) + 1
    ny = len(years)
    valid_px = np.zeros((ny, n), dtype=np.int64)
    changed_px = np.zeros((ny, n), dtype=np.int64)
    valid_ha = np.zeros((ny, n))
    changed_ha = np.zeros((ny, n))
    largest_ha = np.zeros((ny, n))
    rows = row_areas(dist)
    year_index = {int(y): i for i, y in enumerate(years)}
    try:
        for r0, h in _strips(dist.RasterYSize, cancel):
            w = dist.RasterXSize
            area = np.repeat(rows[r0:r0 + h], w).reshape(h, w)
            cls = np.zeros((h, w), dtype=np.int64)
            if classes is not None:
                cls = classes.GetRasterBand(1).ReadAsArray(0, r0, w, h).astype(np.int64)
                cls[(cls < 0) | (cls >= n)] = 0
            top = ychg.GetRasterBand(1).ReadAsArray(0, r0, w, h).astype(np.int64)
            for i in range(ny):
                d = dist.GetRasterBand(i + 1).ReadAsArray(0, r0, w, h)
                valid = np.isfinite(d)
                changed = valid & (d >= threshold)
                for mask, px, ha in ((valid, valid_px, valid_ha), (changed, changed_px, changed_ha)):
                    px[i, 0] += int(mask.sum())
                    ha[i, 0] += float(area[mask].sum())
                    if classes is not None:  # class 0 (no class) counts only in "all"
                        px[i, 1:] += np.bincount(cls[mask], minlength=n)[1:n]
                        ha[i, 1:] += np.bincount(cls[mask], weights=area[mask], minlength=n)[1:n]
            for y, i in year_index.items():
                mask = top == y
                largest_ha[i, 0] += float(area[mask].sum())
                if classes is not None:
                    largest_ha[i, 1:] += np.bincount(cls[mask], weights=area[mask], minlength=n)[1:n]
    finally:
        classes = None
        if vsi is not None:
            gdal.Unlink(vsi)
    return ChangeTable(list(map(int, years)), names, valid_px, changed_px, valid_ha, changed_ha, largest_ha)
