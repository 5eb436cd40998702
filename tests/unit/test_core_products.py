"""Similarity, change between years, kNN classification and polygon masks, as exports."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from pyproj import Transformer

from tessera_qgis.core.classify import KNNClassifier, polygon_mask
from tessera_qgis.core.errors import ExportError
from tessera_qgis.core.export import ExportRequest, export

gdal.UseExceptions()
BOX = (-0.045, 52.175, -0.005, 52.225)  # utm30 only: native grid, pixel for pixel


def _grid_rc(ds, zone_attrs):
    gt = ds.GetGeoTransform()
    x0, y0 = zone_attrs["spatial:transform"][2], zone_attrs["spatial:transform"][5]
    return round((y0 - gt[3]) / 10), round((gt[0] - x0) / 10), ds.RasterYSize, ds.RasterXSize


def test_similarity_export(store, ref, tmp_path):
    px = store.pixel(-0.03, 52.2, 2024)
    out = export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "sim.tif"), kind="similarity",
                                      reference=px["embedding"]))[0]
    ds = gdal.Open(str(out))
    r0, c0, h, w = _grid_rc(ds, ref["utm30"].attrs)
    got = ds.ReadAsArray()
    q = ref["utm30"]["embeddings"][0, :, r0:r0 + h, c0:c0 + w].astype(np.float64)
    s = ref["utm30"]["scales"][0, r0:r0 + h, c0:c0 + w]
    v = np.array(px["embedding"])
    with np.errstate(invalid="ignore"):
        want = np.einsum("bhw,b->hw", q, v) / (np.linalg.norm(q, axis=0) * np.linalg.norm(v))
    valid = np.isfinite(s)
    np.testing.assert_allclose(got[valid], want[valid], rtol=1e-5, atol=1e-5)
    assert np.isnan(got[~valid]).all()
    assert got[valid].max() == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ExportError, match="reference embedding"):
        export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "x.tif"), kind="similarity"))


def test_change_between_years_finds_the_new_development(store, ref, tmp_path):
    out = export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "chg.tif"), kind="change",
                                      year2=2025))[0]
    ds = gdal.Open(str(out))
    assert ds.GetMetadata()["TESSERA_YEAR2"] == "2025"
    r0, c0, h, w = _grid_rc(ds, ref["utm30"].attrs)
    dist = ds.ReadAsArray()
    lc0 = ref["utm30"]["sample_landcover"][0, r0:r0 + h, c0:c0 + w]
    lc1 = ref["utm30"]["sample_landcover"][1, r0:r0 + h, c0:c0 + w]
    s0 = ref["utm30"]["scales"][0, r0:r0 + h, c0:c0 + w]
    s1 = ref["utm30"]["scales"][1, r0:r0 + h, c0:c0 + w]
    both = np.isfinite(s0) & np.isfinite(s1)
    assert np.isnan(dist[~both]).all(), "nodata where either year is nodata"
    changed = both & (lc0 != lc1)
    same = both & (lc0 == lc1)
    assert changed.sum() > 1000
    assert np.median(dist[changed]) > 3 * np.median(dist[same])


def test_knn_classification_from_ten_points_per_class(store, ref, tmp_path):
    g = ref["utm30"]
    lc, s = g["sample_landcover"][0], g["scales"][0]
    x0, y0 = g.attrs["spatial:transform"][2], g.attrs["spatial:transform"][5]
    to_ll = Transformer.from_crs("EPSG:32630", "EPSG:4326", always_xy=True)
    rng = np.random.default_rng(3)
    vectors, labels = [], []
    names = {2: "built-up", 3: "cropland", 4: "forest", 5: "grassland", 6: "wetland"}
    for code, name in names.items():
        rows, cols = np.nonzero((lc == code) & np.isfinite(s))
        for i in rng.choice(len(rows), 10, replace=False):
            lon, lat = to_ll.transform(x0 + 10 * cols[i] + 5, y0 - 10 * rows[i] - 5)
            vectors.append(store.pixel(lon, lat, 2024)["embedding"])
            labels.append(name)
    model = KNNClassifier.fit(vectors, labels, k=3)
    paths = export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "cls.tif"), kind="classify",
                                        classifier=model))
    assert [p.name for p in paths] == ["cls.tif", "cls_confidence.tif"]
    ds = gdal.Open(str(paths[0]))
    style = (tmp_path / "cls.qml").read_text()
    assert all(f'label="{n}"' in style for n in names.values()), "class names in the default QGIS style"
    assert ds.GetMetadata()["TESSERA_CLASSES"] == '["built-up", "cropland", "forest", "grassland", "wetland"]'
    r0, c0, h, w = _grid_rc(ds, g.attrs)
    got = ds.ReadAsArray()
    truth = lc[r0:r0 + h, c0:c0 + w]
    valid = np.isfinite(s[r0:r0 + h, c0:c0 + w]) & (truth > 1)
    predicted = np.array(["", *sorted(names.values())])[got]
    expected = np.vectorize(lambda c: names.get(int(c), ""))(truth)
    accuracy = (predicted[valid] == expected[valid]).mean()
    assert accuracy >= 0.9, f"accuracy {accuracy:.3f}"
    conf = gdal.Open(str(paths[1])).ReadAsArray()
    assert np.isnan(conf[~valid & (truth <= 1)]).mean() > 0.9 and (conf[valid] > 0).all()


def test_polygon_mask_makes_outside_pixels_nodata(store, tmp_path):
    poly = "POLYGON((-0.03 52.19,-0.02 52.19,-0.02 52.20,-0.03 52.19))"  # a triangle
    req = ExportRequest((-0.031, 52.189, -0.019, 52.201), "EPSG:4326", 2024, str(tmp_path / "clip.tif"),
                        bands=[1], mask=polygon_mask([poly], "EPSG:4326"))
    ds = gdal.Open(str(export(store, req)[0]))
    vals = ds.ReadAsArray()
    gt = ds.GetGeoTransform()
    to_ll = Transformer.from_crs(ds.GetSpatialRef().ExportToWkt(), "EPSG:4326", always_xy=True)
    rows, cols = np.mgrid[0:ds.RasterYSize, 0:ds.RasterXSize]
    lon, lat = to_ll.transform(gt[0] + (cols + 0.5) * gt[1], gt[3] + (rows + 0.5) * gt[5])
    inside = (lon > -0.03) & (lon < -0.02) & (lat > 52.19) & (lat < 52.19 + (lon + 0.03))
    well_outside = (lat > 52.19 + (lon + 0.03) + 0.0005) | (lon < -0.0305) | (lat < 52.1895)
    assert np.isnan(vals[well_outside]).all()
    assert np.isfinite(vals[inside]).mean() > 0.9
