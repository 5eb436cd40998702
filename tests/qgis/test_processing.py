"""The Processing algorithms through processing.run (real QGIS, the sample over local HTTP)."""
from __future__ import annotations

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import (QgsApplication, QgsFeature, QgsField, QgsGeometry, QgsPointXY, QgsProcessingException,
                       QgsProcessingFeedback, QgsVectorLayer)
from qgis.PyQt.QtCore import QMetaType

from tessera_qgis.core.store import open_store

gdal.UseExceptions()
pytestmark = pytest.mark.usefixtures("provider_active")
EXTENT = "-0.045,-0.005,52.175,52.225 [EPSG:4326]"  # xmin,xmax,ymin,ymax: utm30 only


def points_layer(points, classes=None) -> QgsVectorLayer:
    layer = QgsVectorLayer("Point?crs=EPSG:4326", "points", "memory")
    pr = layer.dataProvider()
    pr.addAttributes([QgsField("name", QMetaType.Type.QString)])
    layer.updateFields()
    for i, (lon, lat) in enumerate(points):
        f = QgsFeature(layer.fields())
        f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(lon, lat)))
        f.setAttributes([classes[i] if classes else f"p{i}"])
        pr.addFeature(f)
    return layer


def test_export_float32_equals_the_core(processing, sample_store, sample_http, tmp_path):
    out = tmp_path / "e.tif"
    res = processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2025, "EXTENT": EXTENT,
                                            "KIND": 0, "BANDS": "1,2,3", "OUTPUT": str(out)})
    assert res["OUTPUT"] == str(out)
    ds = gdal.Open(str(out))
    assert ds.GetSpatialRef().GetAuthorityCode(None) == "32630" and ds.RasterCount == 3
    gt = ds.GetGeoTransform()
    zone = open_store(sample_store).zones["utm30"]
    r0, c0 = round((zone.transform[5] - gt[3]) / 10), round((gt[0] - zone.transform[2]) / 10)
    win = zone.read(2025, (r0, r0 + ds.RasterYSize), (c0, c0 + ds.RasterXSize))
    np.testing.assert_array_equal(ds.ReadAsArray(), win.dequantised([1, 2, 3]))


def test_export_clipped_to_polygons_and_one_file_per_feature(processing, sample_http, tmp_path):
    polys = QgsVectorLayer("Polygon?crs=EPSG:4326", "polys", "memory")
    for wkt in ("POLYGON((-0.04 52.19,-0.035 52.19,-0.035 52.195,-0.04 52.19))",
                "POLYGON((-0.02 52.2,-0.015 52.2,-0.015 52.205,-0.02 52.205,-0.02 52.2))"):
        f = QgsFeature()
        f.setGeometry(QgsGeometry.fromWkt(wkt))
        polys.dataProvider().addFeature(f)
    res = processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2024, "POLYGONS": polys,
                                            "PER_FEATURE": True, "KIND": 0, "BANDS": "1",
                                            "OUTPUT": str(tmp_path / "clip.tif")})
    assert len(res["OUTPUTS"]) == 2 and all("clip_" in p for p in res["OUTPUTS"])
    tri = gdal.Open(res["OUTPUTS"][0]).ReadAsArray()
    square = gdal.Open(res["OUTPUTS"][1]).ReadAsArray()
    # The triangle fills about half of its bounding box, the square most of it (both are drawn
    # in lon/lat and exported on the slightly rotated UTM grid).
    assert 0.3 < np.isfinite(tri).mean() < 0.6
    assert np.isfinite(square).mean() > 0.7
    assert np.isfinite(square).mean() > np.isfinite(tri).mean() + 0.2


def test_sample_at_points(processing, sample_store, sample_http):
    pts = points_layer([(-0.03, 52.2), (0.02, 52.19), (10.0, 45.0)])
    res = processing.run("tessera:sample", {"INPUT": pts, "STORE": sample_http.store_url, "YEAR": 2024,
                                            "OUTPUT": "memory:"})
    out = res["OUTPUT"]
    feats = list(out.getFeatures())
    assert [f["valid"] for f in feats] == [1, 1, 0]
    store = open_store(sample_store)
    want = store.pixel(-0.03, 52.2, 2024)
    assert [feats[0][f"A{b:03d}"] for b in (1, 64, 128)] == pytest.approx(
        [want["embedding"][i] for i in (0, 63, 127)])
    assert feats[0]["scale"] == pytest.approx(want["scale"]) and feats[0]["name"] == "p0"
    assert feats[2]["A001"] is None or str(feats[2]["A001"]) == "NULL"


def test_similarity_change_and_classify(processing, sample_http, tmp_path):
    sim = processing.run("tessera:similarity", {"STORE": sample_http.store_url, "YEAR": 2024,
                                                "POINT": "-0.03,52.2 [EPSG:4326]", "EXTENT": EXTENT,
                                                "OUTPUT": str(tmp_path / "sim.tif")})
    vals = gdal.Open(sim["OUTPUT"]).ReadAsArray()
    assert np.nanmax(vals) == pytest.approx(1.0, abs=1e-4) and np.isnan(vals).any()
    chg = processing.run("tessera:change", {"STORE": sample_http.store_url, "YEAR": 2024, "YEAR2": 2025,
                                            "EXTENT": EXTENT, "OUTPUT": str(tmp_path / "chg.tif")})
    assert gdal.Open(chg["OUTPUT"]).GetMetadata()["TESSERA_YEAR2"] == "2025"
    pts = points_layer([(-0.03, 52.2), (-0.02, 52.19), (-0.04, 52.21), (-0.01, 52.18)], ["a", "b", "a", "b"])
    cls = processing.run("tessera:classify", {"INPUT": pts, "CLASS_FIELD": "name", "STORE": sample_http.store_url,
                                              "YEAR": 2024, "EXTENT": EXTENT, "K": 1,
                                              "OUTPUT": str(tmp_path / "cls.tif")})
    assert [p.split("/")[-1] for p in cls["OUTPUTS"]] == ["cls.tif", "cls_confidence.tif"]
    assert (tmp_path / "cls.qml").exists()


def test_bad_parameters_and_cancel(processing, sample_http, tmp_path):
    with pytest.raises(QgsProcessingException, match="year 1999 is not in this store"):
        processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 1999, "EXTENT": EXTENT,
                                          "OUTPUT": str(tmp_path / "x.tif")})
    with pytest.raises(QgsProcessingException, match="two different years"):
        processing.run("tessera:change", {"STORE": sample_http.store_url, "YEAR": 2024, "YEAR2": 2024,
                                          "EXTENT": EXTENT, "OUTPUT": str(tmp_path / "x.tif")})
    with pytest.raises(QgsProcessingException, match="Give a store"):
        processing.run("tessera:export", {"STORE": " ", "YEAR": 2024, "EXTENT": EXTENT,
                                          "OUTPUT": str(tmp_path / "x.tif")})
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": EXTENT,
                                          "OUTPUT": str(tmp_path / "c.tif")}, feedback=feedback)
    assert not list(tmp_path.iterdir()), "nothing left behind"


def test_qgis_process_runs_an_export(sample_store, tmp_path):
    """The algorithm from the command line, as `make run CMD='qgis_process run tessera:export ...'`."""
    import os
    import subprocess
    from pathlib import Path

    plugins = tmp_path / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "tessera_qgis").symlink_to(Path(__file__).resolve().parents[2] / "tessera_qgis")
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(tmp_path), QT_QPA_PLATFORM="offscreen")
    enable = subprocess.run(["qgis_process", "plugins", "enable", "tessera_qgis"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert enable.returncode == 0, enable.stderr
    out = tmp_path / "cli.tif"
    res = subprocess.run(["qgis_process", "run", "tessera:export", "--", f"STORE={sample_store}", "YEAR=2024",
                          "EXTENT=-0.045,-0.005,52.175,52.225 [EPSG:4326]", "BANDS=1,2", f"OUTPUT={out}"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    ds = gdal.Open(str(out))
    assert ds.GetSpatialRef().GetAuthorityCode(None) == "32630" and ds.RasterCount == 2
    gt = ds.GetGeoTransform()
    zone = open_store(sample_store).zones["utm30"]
    r0, c0 = round((zone.transform[5] - gt[3]) / 10), round((gt[0] - zone.transform[2]) / 10)
    win = zone.read(2024, (r0, r0 + ds.RasterYSize), (c0, c0 + ds.RasterXSize))
    np.testing.assert_array_equal(ds.ReadAsArray(), win.dequantised([1, 2]))
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_export_on_a_dask_cluster_from_the_setting(processing, sample_store, sample_http, tmp_path):
    """The scheduler set in Options > TESSERA becomes the algorithm's default; the workers
    (processes on 127.0.0.1) write COG tiles tied by the VRT, equal to the local export."""
    from distributed import LocalCluster

    from tessera_qgis.settings import Settings

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as cluster:
        saved = Settings.load()
        try:
            s = Settings.load()
            s.dask_scheduler = cluster.scheduler_address
            s.save()
            alg = QgsApplication.processingRegistry().createAlgorithmById("tessera:export")
            assert alg.parameterDefinition("DASK").defaultValue() == cluster.scheduler_address
            feedback = QgsProcessingFeedback()
            steps = []
            feedback.progressChanged.connect(steps.append)
            params = {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": EXTENT, "KIND": 0, "BANDS": "4,5",
                      "DASK": cluster.scheduler_address, "OUTPUT": str(tmp_path / "c.vrt")}
            res = processing.run("tessera:export", params, feedback=feedback)
        finally:
            saved.save()
    local = processing.run("tessera:export", {**params, "DASK": "", "OUTPUT": str(tmp_path / "l.tif")})
    assert res["OUTPUT"] == str(tmp_path / "c.vrt") and (tmp_path / "c.tiles").is_dir()
    a, b = gdal.Open(local["OUTPUT"]).ReadAsArray(), gdal.Open(res["OUTPUT"]).ReadAsArray()
    assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    assert steps and max(steps) == 100


def test_export_to_an_unreachable_cluster_says_so(processing, sample_http, tmp_path, monkeypatch):
    from support.servers import free_port

    from tessera_qgis.core.export import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2.0)
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(QgsProcessingException, match="could not reach the Dask scheduler"):
        processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": EXTENT,
                                          "KIND": 0, "BANDS": "1", "DASK": address,
                                          "OUTPUT": str(tmp_path / "x.tif")})
    assert list(tmp_path.iterdir()) == []


def test_similarity_change_and_classify_on_a_dask_cluster(processing, sample_http, tmp_path):
    """The other export-backed algorithms take the Dask scheduler too; their outputs equal
    the local ones (the classifier and the reference embedding travel to the workers)."""
    from distributed import LocalCluster

    pts = points_layer([(-0.03, 52.2), (-0.02, 52.19), (-0.04, 52.21), (-0.01, 52.18)], ["a", "b", "a", "b"])
    runs = {
        "similarity": {"POINT": "-0.03,52.2 [EPSG:4326]"},
        "change": {"YEAR2": 2025},
        "classify": {"INPUT": pts, "CLASS_FIELD": "name", "K": 1},
    }
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as cluster:
        for alg, extra in runs.items():
            common = {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": EXTENT, **extra}
            local = processing.run(f"tessera:{alg}", {**common, "OUTPUT": str(tmp_path / f"{alg}_l.tif")})
            remote = processing.run(f"tessera:{alg}", {**common, "DASK": cluster.scheduler_address,
                                                       "OUTPUT": str(tmp_path / f"{alg}_r.tif")})
            a, b = gdal.Open(local["OUTPUT"]).ReadAsArray(), gdal.Open(remote["OUTPUT"]).ReadAsArray()
            assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True), alg
    assert (tmp_path / "classify_r.qml").exists() and (tmp_path / "classify_r_confidence.tif").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_cluster_without_dask_installed_says_what_to_run(processing, sample_http, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if it were not installed
    with pytest.raises(QgsProcessingException, match=r"needs the packages dask and distributed.*pip install "
                                                     r"--user 'dask\[distributed\]'"):
        processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": EXTENT,
                                          "KIND": 0, "BANDS": "1", "DASK": "tcp://127.0.0.1:8786",
                                          "OUTPUT": str(tmp_path / "x.tif")})
    assert list(tmp_path.iterdir()) == []
    # without a scheduler nothing needs dask
    res = processing.run("tessera:export", {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": EXTENT,
                                            "KIND": 0, "BANDS": "1", "DASK": "", "OUTPUT": str(tmp_path / "y.tif")})
    assert res["OUTPUT"] == str(tmp_path / "y.tif")
