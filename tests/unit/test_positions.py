"""Every output pixel shows its own source pixel: exports in EPSG:3857 and EPSG:4326 (the
`render` image: test_core_pca.py), checked pixel by pixel against zarr-python's values at the source pixel that
pyproj puts under each output pixel centre (support.reference). A one-pixel shift, a flipped
row order or a wrong zone fails here; pixels within a fifth of a source pixel of an edge, or
20 m of the zone seam, have no single right answer and are left out."""
from __future__ import annotations

import numpy as np
import pytest

from support.reference import within
from tessera_qgis.core.export import ExportRequest, export

pytestmark = pytest.mark.gdal
BOX = (-0.02, 52.19, 0.02, 52.21)  # across the 0 degree meridian: utm30 and utm31


def _read(path):
    from osgeo import gdal

    gdal.UseExceptions()
    ds = gdal.Open(str(path))
    g = ds.GetGeoTransform()
    return ds, ds.ReadAsArray().astype(np.float64), (g[1], g[2], g[0], g[4], g[5], g[3])


def _assert_pixels(got, want, tol: float, what: str) -> None:
    d = want.decided
    assert d.mean() > 0.25 and d.sum() > 10_000, f"{what}: too few pixels to compare ({d.mean():.2f})"
    assert want.valid[d].mean() > 0.6 and (~want.valid[d]).any(), f"{what}: data and nodata both compared"
    ok = within(got, want.values, tol)
    assert ok[d].all(), f"{what}: {int((~ok & d).sum())} of {int(d.sum())} pixels differ from their source pixel"


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:4326"])
def test_an_export_puts_every_source_pixel_where_it_belongs(store, zarr_reference, tmp_path, crs):
    out, = export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "e.tif"), bands=[1, 7, 128],
                                       dst_crs=crs))
    ds, got, transform = _read(out)
    assert ds.GetSpatialRef().GetAuthorityCode(None) == crs.split(":")[1]
    want = zarr_reference(2024).values(crs, transform, ds.RasterXSize, ds.RasterYSize, [1, 7, 128])
    _assert_pixels(got, want, 0.0, crs)  # float32 of int8 * scale: exact
