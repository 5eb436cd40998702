"""Every analysis job on a dask.distributed LocalCluster (worker processes on 127.0.0.1)
writes exactly what it writes locally: the models travel to the workers (no scikit-learn
needed there), the tiles are tied together, the reports read the result back."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from osgeo import gdal  # the oldest-dependencies run has no GDAL: it leaves this module out (conftest)

from support.analysis import EXTENT_BOUNDS, TOWN_BOUNDS, labelled_points
from support.workers import tiles_ran_on_workers
from tessera_qgis.core.analysis import jobs
from tessera_qgis.core.export import ExportRequest

gdal.UseExceptions()
pytestmark = pytest.mark.gdal


@pytest.fixture(scope="module")
def dask_cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as c:
        yield c


def same(a, b) -> None:
    x, y = gdal.Open(str(a)).ReadAsArray(), gdal.Open(str(b)).ReadAsArray()
    assert x.shape == y.shape and np.array_equal(x, y, equal_nan=True), (a, b)


def pair(tmp_path, name, dask, bounds=EXTENT_BOUNDS, year=2024):
    local = ExportRequest(bounds, "EPSG:4326", year, str(tmp_path / f"{name}_local.tif"))
    remote = ExportRequest(bounds, "EPSG:4326", year, str(tmp_path / f"{name}_remote.tif"), dask=dask,
                           tile=128, block=128)
    return local, remote


def test_cluster_and_apply_model_on_dask(store, dask_cluster, tmp_path):
    addr = dask_cluster.scheduler_address
    a, b = pair(tmp_path, "c", addr)
    la = jobs.cluster(store, a, k=0, centroids=tmp_path / "c_local.json")
    with tiles_ran_on_workers(addr):
        rb = jobs.cluster(store, b, k=0, centroids=tmp_path / "c_remote.json")
    assert la.model.names == rb.model.names
    same(la.paths[0], rb.paths[0])
    assert (tmp_path / "c_remote.qml").read_text() == (tmp_path / "c_local.qml").read_text()
    a, b = pair(tmp_path, "a", addr, year=2025)
    with tiles_ran_on_workers(addr):
        applied = jobs.apply_model(store, b, la.model)[0]
    same(jobs.apply_model(store, a, la.model)[0], applied)


@pytest.mark.parametrize("method", ["knn", pytest.param("random_forest", marks=pytest.mark.sklearn)])
def test_classify_on_dask(store, sample_store, dask_cluster, tmp_path, method):
    pts = labelled_points(sample_store, 20, zone="utm31", bounds=TOWN_BOUNDS)
    a, b = pair(tmp_path, "k", dask_cluster.scheduler_address, TOWN_BOUNDS)
    la = jobs.classify(store, a, pts, "EPSG:4326", method, other_years=[2025], report_path=tmp_path / "l.html")
    with tiles_ran_on_workers(dask_cluster.scheduler_address):
        rb = jobs.classify(store, b, pts, "EPSG:4326", method, other_years=[2025], report_path=tmp_path / "r.html")
    assert [p.name.replace("local", "remote") for p in la.paths] == [p.name for p in rb.paths]
    for x, y in zip(la.paths, rb.paths):
        same(x, y)
    assert (tmp_path / "l.csv").read_text() == (tmp_path / "r.csv").read_text()


def test_trajectory_on_dask(store, dask_cluster, tmp_path):
    a, b = pair(tmp_path, "t", dask_cluster.scheduler_address)
    la = jobs.trajectory(store, a, report_path=tmp_path / "l.html")
    with tiles_ran_on_workers(dask_cluster.scheduler_address):
        rb = jobs.trajectory(store, b, report_path=tmp_path / "r.html")
    for x, y in zip(la.paths, rb.paths):
        same(x, y)
    rows = [list(csv.reader((tmp_path / f"{n}.csv").open())) for n in "lr"]
    assert rows[0] == rows[1] and float(rows[0][1][5]) > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
