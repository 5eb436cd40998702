"""What the Processing algorithms compute, checked against numbers worked out here from
zarr-python's values (and the sample's ground-truth class map), and each export parameter's
effect on the files, read back with GDAL. Algorithms are run by id through processing.run."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from osgeo import gdal
from pyproj import Transformer
from qgis.core import (QgsFeature, QgsField, QgsGeometry, QgsPointXY, QgsProcessingException,
                       QgsProcessingFeedback, QgsVectorLayer)
from qgis.PyQt.QtCore import QMetaType

from support.reference import is_cog, knn_by_hand, within

gdal.UseExceptions()
pytestmark = pytest.mark.usefixtures("provider_active")
EXTENT = "-0.045,-0.005,52.175,52.225 [EPSG:4326]"  # xmin,xmax,ymin,ymax: utm30 only, its native grid
ACROSS = "-0.02,0.02,52.19,52.21 [EPSG:4326]"  # utm30 and utm31
NAMES = {2: "built-up", 3: "cropland", 4: "forest", 5: "grassland", 6: "wetland"}


@dataclass
class Raster:
    """What a test needs of a GeoTIFF, read with GDAL and closed again (a GDAL dataset left in
    a failed test's traceback crashes the interpreter when QGIS exits)."""

    values: np.ndarray
    transform: tuple  # GDAL order: x0, a, b, y0, d, e
    count: int
    dtype: int
    epsg: str
    metadata: dict
    overviews: int


def read(path) -> Raster:
    ds = gdal.Open(str(path))
    try:
        return Raster(ds.ReadAsArray(), ds.GetGeoTransform(), ds.RasterCount, ds.GetRasterBand(1).DataType,
                      ds.GetSpatialRef().GetAuthorityCode(None), ds.GetMetadata(),
                      ds.GetRasterBand(1).GetOverviewCount())
    finally:
        ds = None


def _window(path, zone: dict):
    """(raster, values, row0, col0) of an output on a zone's native 10 m grid."""
    r = read(path)
    g = r.transform
    a, _, x0, _, e, y0 = zone["transform"]
    assert (g[1], g[5]) == (a, e), "the zone's own 10 m grid"
    r0, c0 = (y0 - g[3]) / -e, (g[0] - x0) / a
    assert r0 == int(r0) and c0 == int(c0), "aligned to the zone's pixels"
    return r, r.values, int(r0), int(c0)


def _cosine(q: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Cosine of int8 (bands, h, w) with a vector, in float64 (the scale cancels out)."""
    qf = q.astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("bhw,b->hw", qf, ref) / (np.linalg.norm(qf, axis=0) * np.linalg.norm(ref))


def _pixel_at(zone: dict, lon: float, lat: float) -> tuple[int, int]:
    x, y = Transformer.from_crs("EPSG:4326", zone["crs"], always_xy=True).transform(lon, lat)
    a, _, x0, _, e, y0 = zone["transform"]
    return int(np.floor((y - y0) / e)), int(np.floor((x - x0) / a))


def _lonlat_of(zone: dict, rows, cols):
    a, _, x0, _, e, y0 = zone["transform"]
    return Transformer.from_crs(zone["crs"], "EPSG:4326", always_xy=True).transform(
        x0 + a * (np.asarray(cols) + 0.5), y0 + e * (np.asarray(rows) + 0.5))


def test_similarity_is_the_cosine_worked_out_by_hand(processing, sample_http, zarr_reference, tmp_path):
    zone = zarr_reference(2024).zones["utm30"]
    res = processing.run("tessera:similarity", {"STORE": sample_http.store_url, "YEAR": 2024,
                                                "POINT": "-0.03,52.2 [EPSG:4326]", "EXTENT": EXTENT,
                                                "OUTPUT": str(tmp_path / "sim.tif")})
    ds, got, r0, c0 = _window(res["OUTPUT"], zone)
    h, w = got.shape
    pr, pc = _pixel_at(zone, -0.03, 52.2)
    want = _cosine(zone["q"][:, r0:r0 + h, c0:c0 + w], zone["q"][:, pr, pc].astype(np.float64))
    valid = np.isfinite(zone["s"][r0:r0 + h, c0:c0 + w])
    assert valid.mean() > 0.5 and (~valid).any()
    np.testing.assert_allclose(got[valid], want[valid], rtol=0, atol=2e-6)
    assert np.isnan(got[~valid]).all()
    assert got[pr - r0, pc - c0] == pytest.approx(1.0, abs=1e-6), "the reference pixel itself"


def test_similarity_to_the_mean_over_reference_polygons(processing, sample_http, zarr_reference, tmp_path):
    """The reference is the mean embedding of the pixels whose centres lie inside the polygons
    (a triangle and a square here, in lon/lat), worked out by hand."""
    ref = zarr_reference(2024)
    zone = ref.zones["utm30"]
    polys = QgsVectorLayer("Polygon?crs=EPSG:4326", "polys", "memory")
    for wkt in ("POLYGON((-0.04 52.19,-0.035 52.19,-0.035 52.195,-0.04 52.19))",
                "POLYGON((-0.02 52.2,-0.015 52.2,-0.015 52.205,-0.02 52.205,-0.02 52.2))"):
        f = QgsFeature()
        f.setGeometry(QgsGeometry.fromWkt(wkt))
        polys.dataProvider().addFeature(f)
    res = processing.run("tessera:similarity", {"STORE": sample_http.store_url, "YEAR": 2024,
                                                "REFERENCE_POLYGONS": polys, "EXTENT": EXTENT,
                                                "OUTPUT": str(tmp_path / "simp.tif")})
    rows, cols = np.mgrid[0:zone["s"].shape[0], 0:zone["s"].shape[1]]
    lon, lat = _lonlat_of(zone, rows, cols)
    triangle = (lon > -0.04) & (lon < -0.035) & (lat > 52.19) & (lat - 52.19 < lon + 0.04)
    square = (lon > -0.02) & (lon < -0.015) & (lat > 52.2) & (lat < 52.205)
    inside = (triangle | square) & np.isfinite(zone["s"])
    assert triangle.sum() > 500 and square.sum() > 1000
    mean = (zone["q"][:, inside].astype(np.float32) * zone["s"][inside]).astype(np.float64).mean(axis=1)
    ds, got, r0, c0 = _window(res["OUTPUT"], zone)
    h, w = got.shape
    want = _cosine(zone["q"][:, r0:r0 + h, c0:c0 + w], mean)
    valid = np.isfinite(zone["s"][r0:r0 + h, c0:c0 + w])
    np.testing.assert_allclose(got[valid], want[valid], rtol=0, atol=2e-5)


def test_change_is_one_minus_the_cosine_between_the_years(processing, sample_http, zarr_reference, tmp_path):
    z24, z25 = zarr_reference(2024).zones["utm30"], zarr_reference(2025).zones["utm30"]
    res = processing.run("tessera:change", {"STORE": sample_http.store_url, "YEAR": 2024, "YEAR2": 2025,
                                            "EXTENT": EXTENT, "OUTPUT": str(tmp_path / "chg.tif")})
    ds, got, r0, c0 = _window(res["OUTPUT"], z24)
    assert ds.metadata["TESSERA_YEAR2"] == "2025"
    h, w = got.shape
    q1, q2 = (z["q"][:, r0:r0 + h, c0:c0 + w].astype(np.float64) for z in (z24, z25))
    with np.errstate(invalid="ignore", divide="ignore"):
        want = 1.0 - (q1 * q2).sum(axis=0) / (np.linalg.norm(q1, axis=0) * np.linalg.norm(q2, axis=0))
    both = np.isfinite(z24["s"][r0:r0 + h, c0:c0 + w]) & np.isfinite(z25["s"][r0:r0 + h, c0:c0 + w])
    assert both.mean() > 0.3 and (~both).any()
    np.testing.assert_allclose(got[both], want[both], rtol=0, atol=2e-6)
    assert np.isnan(got[~both]).all()
    changed = both & (z24["landcover"][r0:r0 + h, c0:c0 + w] != z25["landcover"][r0:r0 + h, c0:c0 + w])
    assert changed.sum() > 1000 and got[changed].min() > np.percentile(got[both & ~changed], 99)


def points_layer(points, labels) -> QgsVectorLayer:
    layer = QgsVectorLayer("Point?crs=EPSG:4326", "points", "memory")
    pr = layer.dataProvider()
    pr.addAttributes([QgsField("name", QMetaType.Type.QString)])
    layer.updateFields()
    for (lon, lat), label in zip(points, labels):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))
        f.setAttributes([label])
        pr.addFeature(f)
    return layer


def test_classify_against_the_ground_truth_and_a_knn_by_hand(processing, sample_http, zarr_reference, tmp_path):
    """Eight labelled pixels per class (from the sample's class map, `sample_landcover`); k = 3.
    Each pixel's class and confidence equal a cosine kNN worked out here (the majority of the
    3 most similar labelled embeddings, ties to the first class name; confidence = its share),
    and the classes agree with the ground truth almost everywhere."""
    zone = zarr_reference(2024).zones["utm30"]
    lc, s = zone["landcover"], zone["s"]
    rng = np.random.default_rng(5)
    picks, labels = [], []
    for code, name in NAMES.items():
        rows, cols = np.nonzero((lc == code) & np.isfinite(s))
        for i in rng.choice(len(rows), 8, replace=False):
            picks.append((rows[i], cols[i]))
            labels.append(name)
    lon, lat = _lonlat_of(zone, [p[0] for p in picks], [p[1] for p in picks])
    res = processing.run("tessera:classify", {"INPUT": points_layer(zip(lon, lat), labels), "CLASS_FIELD": "name",
                                              "STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": EXTENT,
                                              "K": 3, "OUTPUT": str(tmp_path / "cls.tif")})
    assert [p.split("/")[-1] for p in res["OUTPUTS"]] == ["cls.tif", "cls_confidence.tif"]
    ds, got, r0, c0 = _window(res["OUTPUT"], zone)
    conf = read(res["OUTPUTS"][1]).values
    h, w = got.shape
    names = sorted(NAMES.values())
    train = np.array([zone["q"][:, r, c] for r, c in picks])
    q = zone["q"][:, r0:r0 + h, c0:c0 + w].reshape(128, -1).T
    valid = np.isfinite(s[r0:r0 + h, c0:c0 + w]).ravel()
    cls, confidence = knn_by_hand(train, [names.index(n) + 1 for n in labels], q[valid], 3, len(names))
    want_cls = np.zeros(h * w, np.uint8)
    want_cls[valid] = cls
    want_conf = np.full(h * w, np.nan)
    want_conf[valid] = confidence
    agree = got.ravel() == want_cls
    assert agree.all(), f"{int((~agree).sum())} pixels differ from the kNN by hand"
    assert (got.ravel()[~valid] == 0).all() and np.isnan(conf.ravel()[~valid]).all()
    assert np.allclose(conf.ravel()[valid & agree], want_conf[valid & agree])
    truth = lc[r0:r0 + h, c0:c0 + w].ravel()
    labelled = valid & (truth > 1)  # water has no embedding; built-up to wetland were trained
    predicted = np.array(["", *names])[got.ravel()]
    accuracy = (predicted[labelled] == np.vectorize(NAMES.get)(truth[labelled])).mean()
    assert accuracy > 0.995, f"accuracy against the ground truth {accuracy:.4f}"
    style = (tmp_path / "cls.qml").read_text()
    assert all(f'label="{n}"' in style for n in names)


def test_cancel_in_the_middle_of_an_export_leaves_no_file(processing, sample_http, tmp_path):
    feedback = QgsProcessingFeedback()
    seen = []

    def cancel_after_the_first_block(progress: float) -> None:
        seen.append(progress)
        if 0 < progress < 100:
            feedback.cancel()

    feedback.progressChanged.connect(cancel_after_the_first_block)
    with pytest.raises(QgsProcessingException, match="Cancelled: nothing was written"):
        processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2024,  # 6 blocks of 512 px
                                          "EXTENT": "-0.05,0.05,52.175,52.225 [EPSG:4326]", "KIND": 0,
                                          "BANDS": "1,2", "CRS": "EPSG:3857", "OUTPUT": str(tmp_path / "c.tif")},
                       feedback=feedback)
    assert seen and 0 < seen[0] < 100, "cancelled after some of the blocks were written"
    assert list(tmp_path.iterdir()) == [], "no output and no temporary file"


def test_kind_pca_and_int8(processing, sample_http, zarr_reference, tmp_path):
    zone = zarr_reference(2024).zones["utm30"]
    pca = processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": EXTENT,
                                            "KIND": 1, "OUTPUT": str(tmp_path / "pca.tif")})
    ds, got, r0, c0 = _window(pca["OUTPUT"], zone)
    assert ds.count == 4 and ds.dtype == gdal.GDT_Byte
    assert ds.metadata["TESSERA_KIND"] == "pca" and ds.metadata["TESSERA_PCA"] == "global"
    h, w = got.shape[1:]
    s = zone["s"][r0:r0 + h, c0:c0 + w]
    valid = np.isfinite(s)
    want = zarr_reference(2024).pca_rgb(zone["q"][:, r0:r0 + h, c0:c0 + w].reshape(128, -1),
                                        np.where(valid, s, np.nan).reshape(-1)).reshape(3, h, w)
    assert (got[3] == np.where(valid, 255, 0)).all()
    assert within(got[:3], want, 1.0)[valid].all()
    q8 = processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": EXTENT,
                                           "KIND": 2, "OUTPUT": str(tmp_path / "q.tif")})
    assert [p.split("/")[-1] for p in q8["OUTPUTS"]] == ["q.tif", "q_scales.tif"]
    ds, q, r0, c0 = _window(q8["OUTPUT"], zone)
    assert ds.count == 128 and ds.dtype == gdal.GDT_Int8
    h, w = q.shape[1:]
    scales = read(q8["OUTPUTS"][1]).values
    np.testing.assert_array_equal(scales, zone["s"][r0:r0 + h, c0:c0 + w])
    valid = np.isfinite(scales)
    np.testing.assert_array_equal(q[:, valid], zone["q"][:, r0:r0 + h, c0:c0 + w][:, valid])


def test_crs_per_zone_and_cog(processing, sample_http, zarr_reference, tmp_path):
    merc = processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": ACROSS,
                                             "KIND": 0, "BANDS": "3", "CRS": "EPSG:3857", "COG": True,
                                             "OUTPUT": str(tmp_path / "m.tif")})
    ds = read(merc["OUTPUT"])
    assert ds.epsg == "3857" and is_cog(merc["OUTPUT"])
    g = ds.transform
    want = zarr_reference(2024).values("EPSG:3857", (g[1], g[2], g[0], g[4], g[5], g[3]), ds.values.shape[1],
                                       ds.values.shape[0], [3])
    assert want.decided.sum() > 10_000
    assert within(ds.values[None].astype(np.float64), want.values, 0.0)[want.decided].all()
    per_zone = processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": ACROSS,
                                                 "KIND": 0, "BANDS": "3", "PER_ZONE": True,
                                                 "OUTPUT": str(tmp_path / "z.tif")})
    assert [p.split("/")[-1] for p in per_zone["OUTPUTS"]] == ["z_utm30.tif", "z_utm31.tif"]
    for path, name in zip(per_zone["OUTPUTS"], ("utm30", "utm31")):
        zone = zarr_reference(2024).zones[name]
        ds, got, r0, c0 = _window(path, zone)
        assert ds.epsg == zone["crs"].split(":")[1] and not is_cog(path) and ds.overviews == 0
        h, w = got.shape
        s = zone["s"][r0:r0 + h, c0:c0 + w]
        valid = np.isfinite(s)
        np.testing.assert_array_equal(got[valid], zone["q"][2, r0:r0 + h, c0:c0 + w][valid].astype(np.float32) * s[valid])
        assert np.isnan(got[~valid]).all()
