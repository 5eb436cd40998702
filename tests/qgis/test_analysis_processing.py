"""The analysis algorithms in real QGIS: through `qgis_process` (as a user runs them from the
command line) for the figures the issue asks for, measured here against the sample's ground
truth with numpy; through processing.run for Dask, cancel and bad input."""
from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal
from qgis.core import QgsApplication, QgsProcessingException, QgsProcessingFeedback

from support.analysis import (EXTENT, NAMES, TOWN, TOWN_BOUNDS, ari, declare_depths, iou, labelled_points,
                              points_geojson, truth, valid_truth, window_of, with_root_attrs)
from support.workers import tiles_ran_on_workers
from tessera_qgis.processing import TesseraProcessingProvider

gdal.UseExceptions()
pytestmark = pytest.mark.usefixtures("provider_active")
ANALYSIS = ("cluster", "classify", "apply_model", "trajectory")


@pytest.fixture(scope="module")
def processing(qgis_processing):
    from qgis import processing as qgis_processing_module

    provider = TesseraProcessingProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    yield qgis_processing_module
    QgsApplication.processingRegistry().removeProvider(provider)


@pytest.fixture(scope="module")
def qgis_process(tmp_path_factory):
    """run(algorithm, **params) -> (stdout, results) with qgis_process, the plugin enabled in
    a profile of its own."""
    root = tmp_path_factory.mktemp("qgis-profile")
    plugins = root / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    (plugins / "tessera_qgis").symlink_to(Path(__file__).resolve().parents[2] / "tessera_qgis")
    env = dict(os.environ, QGIS_CUSTOM_CONFIG_PATH=str(root), QT_QPA_PLATFORM="offscreen")
    enable = subprocess.run(["qgis_process", "plugins", "enable", "tessera_qgis"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert enable.returncode == 0, enable.stderr

    def run(algorithm: str, **params):
        args = ["qgis_process", "run", f"tessera:{algorithm}", "--"] + [f"{k}={v}" for k, v in params.items()]
        res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        results = dict(re.findall(r"^(\w+):\t(.*)$", res.stdout.split("Results")[-1], flags=re.M))
        return res.stdout, results

    return run


def read(path) -> np.ndarray:
    return gdal.Open(str(path)).ReadAsArray()


def test_the_algorithms_are_listed(processing):
    registry = QgsApplication.processingRegistry()
    for name in ANALYSIS:
        alg = registry.algorithmById(f"tessera:{name}")
        assert alg is not None and alg.shortHelpString()
        if name != "apply_model":
            assert alg.parameterDefinition("DEPTH") is not None
        assert alg.parameterDefinition("DASK") is not None


def test_qgis_process_cluster_matches_the_land_cover(qgis_process, sample_store, tmp_path):
    out = tmp_path / "clusters.tif"
    stdout, results = qgis_process("cluster", STORE=sample_store, YEAR=2024, EXTENT=TOWN, K=0, OUTPUT=out)
    got = read(out)
    lc = truth(sample_store, out, zone="utm31")
    valid = valid_truth(sample_store, out, zone="utm31")
    score = ari(got[valid], lc[valid])
    print(f"qgis_process tessera:cluster K=0: {results['CLUSTERS']} clusters, adjusted Rand index {score:.3f}")
    assert score >= 0.8
    assert "silhouette by number of clusters: 2:" in stdout
    assert results["CENTROIDS"] == str(tmp_path / "clusters_centroids.json") and (tmp_path / "clusters.qml").exists()


@pytest.mark.parametrize("method", [0, 1], ids=["knn", "random_forest"])  # scikit-learn: requirements-test.txt
def test_qgis_process_classify_from_20_points_per_class(qgis_process, sample_store, tmp_path, method):
    pts = points_geojson(labelled_points(sample_store, 20, zone="utm31", bounds=TOWN_BOUNDS), tmp_path / "pts.geojson")
    out = tmp_path / "classes.tif"
    stdout, results = qgis_process("classify", INPUT=pts, CLASS_FIELD="class", STORE=sample_store, YEAR=2024,
                                   EXTENT=TOWN, METHOD=method, OUTPUT=out, REPORT=tmp_path / "report.html")
    got = read(out)
    lc = truth(sample_store, out, zone="utm31")
    valid = valid_truth(sample_store, out, zone="utm31")
    names = ["built-up", "cropland", "forest", "grassland", "wetland"]
    code = np.array([0] + [NAMES[n] for n in names])
    overall = (code[got[valid]] == lc[valid]).mean()
    line = next(ln for ln in stdout.splitlines() if "overall accuracy" in ln and "spatial" in ln)
    print(f"map accuracy {100 * overall:.2f} %; the log says: {line.strip()}")
    assert overall >= 0.95
    # the spatial split's figure beside the k-fold one, in the log and in the report
    assert re.search(r"overall accuracy [\d.]+ % \(stratified 5-fold\), [\d.]+ % \(spatial \d-fold \(1 km blocks\)\)",
                     line)
    html = (tmp_path / "report.html").read_text()
    assert "stratified 5-fold" in html and "(1 km blocks)" in html and "Cohen's kappa" in html
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    oa = {r["assessment"]: float(r["value"]) for r in rows if r["measure"] == "overall_accuracy"}
    assert float(results["ACCURACY"]) == pytest.approx(oa["stratified 5-fold"])
    assert float(results["SPATIAL_ACCURACY"]) == pytest.approx(next(v for k, v in oa.items() if k.startswith("spatial")))
    assert results["MODEL"] == str(tmp_path / "classes_model.json")


def test_qgis_process_trajectory_finds_the_changed_block(qgis_process, sample_store, tmp_path):
    out = tmp_path / "trajectory.tif"
    stdout, results = qgis_process("trajectory", STORE=sample_store, EXTENT=EXTENT, OUTPUT=out)
    dist = read(out)
    lc24, lc25 = truth(sample_store, out, 0), truth(sample_store, out, 1)
    both = valid_truth(sample_store, out, 0) & valid_truth(sample_store, out, 1)
    assert results["CHANGE_YEAR"] == str(tmp_path / "trajectory_year.tif")
    # what the algorithm itself calls changed: a year in its year-of-the-largest-change raster
    year = read(results["CHANGE_YEAR"])
    assert year.shape == dist.shape and set(np.unique(year).tolist()) <= {0, 2025}
    changed = year == 2025
    crop = (lc24 == 3) & both
    score, score_crop = iou(changed & both, (lc24 != lc25) & both), iou(changed & crop, (lc25 == 2) & crop)
    print(f"qgis_process tessera:trajectory: IoU {score:.3f} with the change, {score_crop:.3f} among 2024's cropland")
    assert score >= 0.7 and score_crop >= 0.7
    assert results["REPORT"] == str(tmp_path / "trajectory_report.html")
    assert "2025: " in stdout and "ha changed" in stdout


def test_centroids_and_models_apply_elsewhere(processing, sample_store, sample_http, tmp_path):
    res = processing.run("tessera:cluster", {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": TOWN, "K": 3,
                                             "OUTPUT": str(tmp_path / "c.tif"),
                                             "CENTROIDS": str(tmp_path / "centroids.json")})
    assert res["CLUSTERS"] == 3 and res["CENTROIDS"] == str(tmp_path / "centroids.json")
    applied = processing.run("tessera:apply_model", {"MODEL": res["CENTROIDS"], "STORE": sample_http.store_url,
                                                     "YEAR": 2025, "EXTENT": EXTENT, "OUTPUT": str(tmp_path / "a.tif")})
    got = read(applied["OUTPUT"])
    assert set(np.unique(got).tolist()) <= {0, 1, 2, 3} and (got > 0).mean() > 0.5
    assert applied["OUTPUTS"] == [str(tmp_path / "a.tif")] and (tmp_path / "a.qml").exists()
    (tmp_path / "bad.json").write_text('{"hello": 1}')
    with pytest.raises(QgsProcessingException, match="not a TESSERA model file"):
        processing.run("tessera:apply_model", {"MODEL": str(tmp_path / "bad.json"), "STORE": sample_http.store_url,
                                               "YEAR": 2025, "EXTENT": EXTENT, "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()


def test_each_algorithm_on_a_dask_cluster_equals_the_local_run(processing, sample_store, sample_http, tmp_path):
    from distributed import LocalCluster

    pts = points_geojson(labelled_points(sample_store, 10, zone="utm31", bounds=TOWN_BOUNDS), tmp_path / "p.geojson")
    centroids = tmp_path / "cent.json"
    runs = {
        "cluster": {"EXTENT": TOWN, "YEAR": 2024, "K": 0},
        "classify": {"EXTENT": TOWN, "YEAR": 2024, "INPUT": str(pts), "CLASS_FIELD": "class", "YEARS": "2025"},
        "apply_model": {"EXTENT": EXTENT, "YEAR": 2025, "MODEL": str(centroids)},
        "trajectory": {"EXTENT": EXTENT},
    }
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as cluster:
        for alg, extra in runs.items():
            common = {"STORE": sample_http.store_url, **extra}
            if alg == "cluster":
                common["CENTROIDS"] = str(centroids)
            local = processing.run(f"tessera:{alg}", {**common, "OUTPUT": str(tmp_path / f"{alg}_l.tif")})
            if alg == "cluster":
                common["CENTROIDS"] = str(tmp_path / "cent_remote.json")
            with tiles_ran_on_workers(cluster.scheduler_address):
                remote = processing.run(f"tessera:{alg}", {**common, "DASK": cluster.scheduler_address,
                                                           "OUTPUT": str(tmp_path / f"{alg}_r.tif")})
            for a, b in zip(local.get("OUTPUTS", [local["OUTPUT"]]), remote.get("OUTPUTS", [remote["OUTPUT"]])):
                x, y = read(a), read(b)
                assert x.shape == y.shape and np.array_equal(x, y, equal_nan=True), (alg, a, b)
    assert (tmp_path / "cent.json").read_text() == (tmp_path / "cent_remote.json").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("alg", ANALYSIS)
def test_cancel_leaves_nothing(processing, sample_store, sample_http, tmp_path, alg):
    pts = points_geojson(labelled_points(sample_store, 5, zone="utm31", bounds=TOWN_BOUNDS), tmp_path.parent /
                         f"{alg}_pts.geojson")
    from tessera_qgis.core.analysis.models import KMeansModel, save_model

    model = save_model(KMeansModel(np.ones((2, 128))), tmp_path.parent / f"{alg}_model.json")
    params = {"STORE": sample_http.store_url, "YEAR": 2024, "EXTENT": TOWN, "OUTPUT": str(tmp_path / "out.tif"),
              "INPUT": str(pts), "CLASS_FIELD": "class", "MODEL": str(model)}
    alg_obj = QgsApplication.processingRegistry().algorithmById(f"tessera:{alg}")
    params = {k: v for k, v in params.items() if alg_obj.parameterDefinition(k) is not None}
    for at in (0, 30, 80):
        feedback = QgsProcessingFeedback()
        if at == 0:
            feedback.cancel()
        else:
            feedback.progressChanged.connect(lambda p, at=at, fb=feedback: p >= at and fb.cancel())
        with pytest.raises(QgsProcessingException, match="Cancelled: nothing was written"):
            processing.run(f"tessera:{alg}", params, feedback=feedback)
        assert list(tmp_path.iterdir()) == [], (alg, at)


def test_random_forest_without_scikit_learn_says_what_to_install(processing, sample_store, sample_http, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if it were not installed
    pts = points_geojson(labelled_points(sample_store, 5, zone="utm31", bounds=TOWN_BOUNDS), tmp_path / "p.geojson")
    params = {"INPUT": str(pts), "CLASS_FIELD": "class", "STORE": sample_http.store_url, "YEAR": 2024,
              "EXTENT": TOWN, "OUTPUT": str(tmp_path / "k.tif")}
    with pytest.raises(QgsProcessingException, match=r"optional package scikit-learn.*pip install --user scikit-learn"):
        processing.run("tessera:classify", {**params, "METHOD": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.geojson"]
    res = processing.run("tessera:classify", {**params, "METHOD": 0})  # k-NN needs nothing more
    assert Path(res["REPORT"]).exists() and res["ACCURACY"] > 0.9


def test_depth_on_stores_with_and_without_depths(processing, sample_store, tmp_path):
    deep = with_root_attrs(sample_store, tmp_path / "v2.zarr", declare_depths)
    res = processing.run("tessera:cluster", {"STORE": str(deep), "YEAR": 2024, "EXTENT": TOWN, "K": 3, "DEPTH": 16,
                                             "OUTPUT": str(tmp_path / "c.tif")})
    assert gdal.Open(res["OUTPUT"]).GetMetadataItem("TESSERA_DEPTH") == "16"
    assert window_of(res["OUTPUT"], sample_store, "utm31")[2] > 0
    with pytest.raises(QgsProcessingException, match="no Matryoshka depths"):
        processing.run("tessera:trajectory", {"STORE": str(sample_store), "EXTENT": EXTENT, "DEPTH": 16,
                                              "OUTPUT": str(tmp_path / "t.tif")})
    assert not (tmp_path / "t.tif").exists()
