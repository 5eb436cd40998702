"""Similarity, change between years, kNN classification and polygon masks, as exports."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from pyproj import Transformer

from support.reference import knn_by_hand
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


def test_change_between_years_is_one_minus_the_cosine(store, ref, tmp_path):
    out = export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "chg.tif"), kind="change",
                                      year2=2025))[0]
    ds = gdal.Open(str(out))
    assert ds.GetMetadata()["TESSERA_YEAR2"] == "2025"
    r0, c0, h, w = _grid_rc(ds, ref["utm30"].attrs)
    dist = ds.ReadAsArray()
    g = ref["utm30"]
    q0, q1 = (g["embeddings"][t, :, r0:r0 + h, c0:c0 + w].astype(np.float64) for t in (0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        want = 1.0 - (q0 * q1).sum(axis=0) / (np.linalg.norm(q0, axis=0) * np.linalg.norm(q1, axis=0))
    both = np.isfinite(g["scales"][0, r0:r0 + h, c0:c0 + w]) & np.isfinite(g["scales"][1, r0:r0 + h, c0:c0 + w])
    assert np.isnan(dist[~both]).all(), "nodata where either year is nodata"
    np.testing.assert_allclose(dist[both], want[both], rtol=0, atol=2e-6)
    # The block of cropland that became built-up in 2025 stands out from everything else.
    lc0, lc1 = g["sample_landcover"][0, r0:r0 + h, c0:c0 + w], g["sample_landcover"][1, r0:r0 + h, c0:c0 + w]
    changed, same = both & (lc0 != lc1), both & (lc0 == lc1)
    assert changed.sum() > 1000 and dist[changed].min() > np.percentile(dist[same], 99)


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
    got = ds.ReadAsArray().ravel()
    conf = gdal.Open(str(paths[1])).ReadAsArray().ravel()
    ordered = sorted(names.values())
    q = g["embeddings"][0, :, r0:r0 + h, c0:c0 + w].reshape(128, -1).T
    valid = np.isfinite(s[r0:r0 + h, c0:c0 + w]).ravel()
    cls, confidence = knn_by_hand(vectors, [ordered.index(n) + 1 for n in labels], q[valid], 3, len(ordered))
    agree = got[valid] == cls  # a kNN worked out in float64
    assert agree.all(), f"{int((~agree).sum())} pixels differ from the kNN by hand"
    assert np.allclose(conf[valid][agree], confidence[agree]) and (got[~valid] == 0).all()
    assert np.isnan(conf[~valid]).all()
    truth = lc[r0:r0 + h, c0:c0 + w].ravel()[valid]
    predicted = np.array(["", *ordered])[got[valid]]
    accuracy = (predicted[truth > 1] == np.vectorize(names.get)(truth[truth > 1])).mean()
    assert accuracy > 0.995, f"accuracy against the ground truth {accuracy:.4f}"


def test_polygon_mask_makes_outside_pixels_nodata(store, ref, tmp_path):
    """Pixels whose centre is inside the triangle keep their value (zarr-python's), all others
    are nodata; centres within 5 cm of an edge (in lon/lat, the edges are straight there and
    in UTM, a few millimetres apart) are left out."""
    poly = "POLYGON((-0.03 52.19,-0.02 52.19,-0.02 52.20,-0.03 52.19))"  # a triangle
    req = ExportRequest((-0.031, 52.189, -0.019, 52.201), "EPSG:4326", 2024, str(tmp_path / "clip.tif"),
                        bands=[1], mask=polygon_mask([poly], "EPSG:4326"))
    ds = gdal.Open(str(export(store, req)[0]))
    vals = ds.ReadAsArray()
    r0, c0, h, w = _grid_rc(ds, ref["utm30"].attrs)
    gt = ds.GetGeoTransform()
    to_ll = Transformer.from_crs(ds.GetSpatialRef().ExportToWkt(), "EPSG:4326", always_xy=True)
    rows, cols = np.mgrid[0:h, 0:w]
    lon, lat = to_ll.transform(gt[0] + (cols + 0.5) * gt[1], gt[3] + (rows + 0.5) * gt[5])
    eps = 0.05 / 111320 / 0.61  # 5 cm in degrees of longitude here (and less in latitude)
    distances = np.stack([lon + 0.03, -0.02 - lon, lat - 52.19, 52.19 + (lon + 0.03) - lat])
    inside = (distances > eps).all(axis=0)
    outside = (distances < -eps).any(axis=0)
    assert inside.sum() > 3000 and outside.sum() > 3000 and (inside | outside).mean() > 0.99
    s = ref["utm30"]["scales"][0, r0:r0 + h, c0:c0 + w]
    want = np.where(np.isfinite(s), ref["utm30"]["embeddings"][0, 0, r0:r0 + h, c0:c0 + w].astype(np.float32) * s,
                    np.nan)
    np.testing.assert_array_equal(vals[inside], want[inside])
    assert np.isnan(vals[outside]).all()
