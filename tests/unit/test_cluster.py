"""Exports as tile tasks: in local threads and on a dask.distributed LocalCluster whose worker
processes listen on 127.0.0.1. The mosaic must equal the single-file export pixel for pixel;
a killed worker's task is retried without duplicating output; a cancel leaves nothing; the
cluster never sees a secret in its task graph or its logs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from support.reference import is_cog
from support.workers import tiles_ran_on_workers
from tessera_qgis.core.export import cluster
from tessera_qgis.core.errors import Cancelled, ExportError
from tessera_qgis.core.export import ExportRequest, export, prepare
from tessera_qgis.core.sources import StoreOptions
from tessera_qgis.core.store import open_store

from osgeo import gdal  # noqa: E402  (the oldest-dependencies run leaves this module out)

gdal.UseExceptions()

pytestmark = pytest.mark.gdal
BBOX = (-0.05, 52.175, -0.01, 52.225)  # utm30 only: the zone's own grid
ACROSS = (-0.012, 52.19, 0.012, 52.205)  # both zones


@pytest.fixture(scope="module")
def dask_cluster():
    """Three worker processes, one thread each, all on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=3, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as c:
        yield c


def _read(path) -> np.ndarray:
    ds = gdal.Open(str(path))
    return ds.ReadAsArray()


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_tiles_follow_the_shards(store, tmp_path):
    prep = prepare(store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "x.vrt"), block=128))
    (target, grid), = prep.plans
    native = grid[4]
    tiles = cluster.plan_tiles(prep)
    shard = 256  # the sample store's shards
    assert len(tiles) > 1
    covered = np.zeros((grid[3], grid[2]), dtype=int)
    for t in tiles:
        covered[t.rows[0]:t.rows[1], t.cols[0]:t.cols[1]] += 1
        # every tile lies inside one shard of the zone's array
        zr, zc = native.rows[0] + t.rows[0], native.cols[0] + t.cols[0]
        assert zr // shard == (native.rows[0] + t.rows[1] - 1) // shard
        assert zc // shard == (native.cols[0] + t.cols[1] - 1) // shard
    assert (covered == 1).all()  # each pixel in exactly one task
    assert len({t.name for t in tiles}) == len(tiles)


def test_local_tiles_equal_the_single_file(store, tmp_path):
    ref = export(store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "ref.tif")))[0]
    steps = []
    vrt, = export(store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "tiled.vrt"), tile=128, block=128),
                  progress=steps.append)
    assert vrt == tmp_path / "tiled.vrt"
    assert _left(tmp_path) == ["ref.tif", "tiled.tiles", "tiled.vrt"]
    tiles = sorted((tmp_path / "tiled.tiles").iterdir())
    assert tiles and all(p.suffix == ".tif" for p in tiles)
    assert is_cog(tiles[0])  # (GDAL 3.13 reports LAYOUT=COG of any tiled GeoTIFF)
    a, b = _read(ref), _read(vrt)
    assert a.shape == b.shape and np.array_equal(a, b, equal_nan=True)
    ds = gdal.Open(str(vrt))
    assert ds.GetRasterBand(7).GetDescription() == "A007"
    assert np.isnan(ds.GetRasterBand(1).GetNoDataValue())
    assert ds.GetMetadataItem("TESSERA_YEAR") == "2024"
    assert steps == sorted(steps) and steps[-1] == 1.0
    # Again into the same name: the old tiles are replaced, not mixed with the new ones.
    export(store, ExportRequest(BBOX, "EPSG:4326", 2025, str(vrt), tile=256, block=128))
    assert gdal.Open(str(vrt)).GetMetadataItem("TESSERA_YEAR") == "2025"
    assert len(list((tmp_path / "tiled.tiles").iterdir())) < len(tiles)
    assert _left(tmp_path) == ["ref.tif", "tiled.tiles", "tiled.vrt"]


def test_a_finished_tile_is_not_written_again(store, tmp_path):
    prep = prepare(store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "x.vrt"), block=128))
    tile = cluster.plan_tiles(prep, 128)[0]
    grid = tile.grid(prep.plans[0][1])
    names = cluster.run_tile(prep.store, prep.req, prep.bands, prep.pca, grid, str(tmp_path), tile.name)
    first = (tmp_path / names[0]).stat()
    again = cluster.run_tile(prep.store, prep.req, prep.bands, prep.pca, grid, str(tmp_path), tile.name)
    assert again == names and (tmp_path / names[0]).stat().st_mtime_ns == first.st_mtime_ns
    assert _left(tmp_path) == names  # no temporary files


def test_a_worker_without_the_shared_folder_says_so(store, tmp_path):
    prep = prepare(store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "x.vrt"), block=128))
    tile = cluster.plan_tiles(prep, 128)[0]
    with pytest.raises(ExportError, match="cannot be reached from .*share"):
        cluster.run_tile(prep.store, prep.req, prep.bands, prep.pca, tile.grid(prep.plans[0][1]),
                         str(tmp_path / "not-here"), tile.name)
    assert _left(tmp_path) == []


@pytest.mark.parametrize("kind, region, extra", [
    ("float32", BBOX, {"bands": [1, 5, 128]}),
    ("int8", ACROSS, {"dst_crs": "EPSG:3857"}),
    ("pca", ACROSS, {"per_zone": True}),
])
def test_dask_export_equals_the_local_one(store, sample_store, dask_cluster, tmp_path, kind, region, extra):
    local = export(store, ExportRequest(region, "EPSG:4326", 2024, str(tmp_path / "local.tif"), kind=kind, **extra))
    steps = []
    with tiles_ran_on_workers(dask_cluster.scheduler_address):
        remote = export(store, ExportRequest(region, "EPSG:4326", 2024, str(tmp_path / "remote.tif"), kind=kind,
                                             dask=dask_cluster.scheduler_address, tile=128, block=128, **extra),
                        progress=steps.append)
    assert len(remote) == len(local) >= 1
    for a, b in zip(sorted(local), sorted(remote)):
        assert a.name.replace("local", "remote") == b.name
        x, y = _read(a), _read(b)
        assert x.shape == y.shape and np.array_equal(x, y, equal_nan=True), (a.name, b.name)
        assert gdal.Open(str(a)).GetRasterBand(1).GetDescription() == gdal.Open(str(b)).GetRasterBand(1).GetDescription()
    assert steps and steps[-1] == 1.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files or tiles


def test_dask_vrt_output_with_polygon_mask(store, dask_cluster, tmp_path):
    from tessera_qgis.core.classify import polygon_mask

    mask = polygon_mask(["POLYGON((-0.045 52.18,-0.02 52.18,-0.03 52.22,-0.045 52.18))"], "EPSG:4326")
    local = export(store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "l.tif"), mask=mask, bands=[3]))[0]
    with tiles_ran_on_workers(dask_cluster.scheduler_address):
        vrt = export(store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "r.vrt"), mask=mask, bands=[3],
                                          dask=dask_cluster.scheduler_address, tile=128, block=128))[0]
    a, b = _read(local), _read(vrt)
    assert np.isnan(a).any() and np.isfinite(a).any()
    assert np.array_equal(a, b, equal_nan=True)
    assert _left(tmp_path) == ["l.tif", "r.tiles", "r.vrt"]


@pytest.fixture
def slow_store(range_server, sample_store):
    """The sample store over HTTP with 20 ms per request, so an export's tasks take a while."""
    srv = range_server(sample_store.parent, latency=0.02)
    return open_store(f"{srv.url}/{sample_store.name}")


def test_a_killed_worker_still_gives_a_complete_output(store, slow_store, tmp_path):
    from distributed import Client, LocalCluster

    ref = export(store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "ref.tif"), bands=[2, 64]))[0]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, worker_dashboard_address=None) as c, \
            Client(c.scheduler_address) as client:
        pids = list(client.run(os.getpid).values())
        killed = []

        def progress(f):
            if f > 0 and not killed:  # one task done: kill a worker while the others run
                killed.append(pids[0])
                os.kill(pids[0], signal.SIGKILL)

        out = export(slow_store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "k.vrt"), bands=[2, 64],
                                               dask=c.scheduler_address, tile=64, block=64), progress=progress)[0]
        assert killed
        assert pids[0] not in client.run(os.getpid).values()
    a, b = _read(ref), _read(out)
    assert np.array_equal(a, b, equal_nan=True)
    tiles = sorted(p.name for p in (tmp_path / "k.tiles").iterdir())
    prep = prepare(store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "k.vrt"), tile=64, block=64))
    assert tiles == sorted(t.name for t in cluster.plan_tiles(prep, 64))  # one file per task, no leftovers


def test_cancel_stops_the_cluster_and_leaves_nothing(slow_store, dask_cluster, tmp_path):
    from distributed import Client

    state = {"cancel": False}

    def progress(f):
        if f > 0:
            state["cancel"] = True

    t0 = time.monotonic()
    with pytest.raises(Cancelled):
        export(slow_store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "c.vrt"), dask=dask_cluster.scheduler_address,
                                         tile=64, block=64), progress=progress, cancel=lambda: state["cancel"])
    assert time.monotonic() - t0 < 60
    assert _left(tmp_path) == []
    with Client(dask_cluster.scheduler_address) as client:
        running = [k for ks in client.run(cluster._executing).values() for k in ks if "tessera-tile" in k]
        assert running == []
        events = client.run_on_scheduler(
            lambda dask_scheduler: [n for n in dask_scheduler.extensions["events"]._events if "tessera" in str(n)])
        assert events == [], "the export's cancel Event is deleted afterwards"
        for _ in range(50):  # the scheduler forgets the cancelled tasks
            if not client.run_on_scheduler(
                    lambda dask_scheduler: [k for k in dask_scheduler.tasks if "tessera-tile" in str(k)]):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the scheduler still holds the export's tasks")
    time.sleep(1.0)
    assert _left(tmp_path) == []  # no task wrote anything afterwards


def test_secrets_stay_out_of_the_graph_and_the_logs(s3_server, sample_store, dask_cluster, tmp_path):
    from distributed import Client

    url = s3_server.upload_folder(sample_store, "tessera", "dask-secret.zarr")
    secret = "dask-secret-" + os.urandom(6).hex()
    key = "dask-key-" + os.urandom(6).hex()
    options = StoreOptions(key=key, secret=secret, endpoint_url=s3_server.endpoint_url, region=s3_server.REGION)
    st = open_store(url, options)
    with Client(dask_cluster.scheduler_address) as client:
        def graph_text(dask_scheduler):
            return [repr(ts.run_spec) for ts in dask_scheduler.tasks.values()]

        stop = threading.Event()
        graphs: list[str] = []

        def watch():
            while not stop.is_set():
                graphs.extend(client.run_on_scheduler(graph_text))
                time.sleep(0.05)

        th = threading.Thread(target=watch)
        th.start()
        try:
            out = export(st, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "s.tif"), bands=[1],
                                           dask=dask_cluster.scheduler_address, tile=128, block=128))[0]
        finally:
            stop.set()
            th.join()
        assert any("tessera-tile" in g or "_dask_tile" in g for g in graphs)  # the watcher did see tasks
        logs = str(client.get_scheduler_logs()) + str(client.get_worker_logs())
        # after the export, the workers hold the secret no longer
        held = client.run(lambda: __import__("tessera_qgis.core.export.cluster", fromlist=["_SECRETS"])._SECRETS)
    text = "\n".join(graphs) + logs + gdal.Info(str(out))
    assert secret not in text and key not in text
    assert all(not v for v in held.values())
    ref = export(st, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "l.tif"), bands=[1]))[0]
    assert np.array_equal(_read(ref), _read(out), equal_nan=True)


def test_split_secrets_keeps_only_public_options():
    opts = StoreOptions(key="K", secret="S", proxy="http://u:p@127.0.0.1:9", endpoint_url="http://127.0.0.1:1")
    spec, secrets = cluster.split_secrets("https://user:pw@127.0.0.1:8/s.zarr", opts, "tok")
    assert "pw" not in repr(spec) and "S" not in (spec.options.secret or "") and spec.options.key is None
    assert spec.url == "https://user:***@127.0.0.1:8/s.zarr" and spec.options.endpoint_url == "http://127.0.0.1:1"
    assert secrets == {"key": "K", "secret": "S", "proxy": "http://u:p@127.0.0.1:9",
                       "url": "https://user:pw@127.0.0.1:8/s.zarr"}


def test_an_unreachable_scheduler_is_a_clear_error(store, tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2.0)
    from support.servers import free_port

    port = free_port()
    with pytest.raises(ExportError, match=f"could not reach the Dask scheduler at tcp://127.0.0.1:{port}"):
        export(store, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "x.tif"), dask=f"tcp://127.0.0.1:{port}"))
    assert _left(tmp_path) == []


def test_without_dask_installed_the_message_says_what_to_install(sample_store, tmp_path):
    code = f"""
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("distributed", "dask"):
            raise ImportError("No module named " + repr(name))
sys.meta_path.insert(0, Block())
from tessera_qgis.core.store import open_store
from tessera_qgis.core.export import ExportRequest, export
from tessera_qgis.core.errors import ExportError
st = open_store({str(sample_store)!r})
export(st, ExportRequest({BBOX!r}, "EPSG:4326", 2024, {str(tmp_path / 'local.tif')!r}))  # works as before
try:
    export(st, ExportRequest({BBOX!r}, "EPSG:4326", 2024, {str(tmp_path / 'x.tif')!r}, dask="tcp://127.0.0.1:1"))
except ExportError as exc:
    print(exc)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert 'pip install "dask[distributed]"' in res.stdout
    assert _left(tmp_path) == ["local.tif"]


def test_command_line_dask_export(sample_store, dask_cluster, tmp_path):
    out = tmp_path / "cli.vrt"
    with tiles_ran_on_workers(dask_cluster.scheduler_address):
        res = subprocess.run([sys.executable, "-m", "tessera_qgis", "export", str(sample_store), "--bbox",
                              ",".join(map(str, BBOX)), "--year", "2025", "--bands", "9", "--out", str(out),
                              "--dask", dask_cluster.scheduler_address, "--tile", "256"],
                             capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(out)
    st = open_store(sample_store)
    ref = export(st, ExportRequest(BBOX, "EPSG:4326", 2025, str(tmp_path / "ref.tif"), bands=[9]))[0]
    assert np.array_equal(_read(ref), _read(out), equal_nan=True)


@pytest.mark.parametrize("where", ["threads", "dask"])
def test_progress_moves_within_a_task(slow_store, dask_cluster, tmp_path, where):
    """One big task: progress still moves block by block, as in a local export."""
    store = slow_store
    steps = []
    req = ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "one.vrt"), bands=[1, 2], tile=1024, block=64,
                        dask=dask_cluster.scheduler_address if where == "dask" else None)
    prep = prepare(store, req)
    assert len(cluster.plan_tiles(prep, 1024)) == 1
    export(store, req, progress=steps.append)
    inside = [v for v in steps if 0 < v < 1]
    assert len(inside) >= 2, steps
    assert steps == sorted(steps) and steps[-1] == 1.0


@pytest.mark.parametrize("where", ["threads", "dask"])
def test_a_failing_task_fails_the_export_and_leaves_nothing(sample_store, range_server, dask_cluster, tmp_path,
                                                            where):
    """One shard's chunks come back corrupt, every time: that task fails (the checksum or the
    codec says so), the others stop, and no tile, VRT or temporary file is left."""
    from support.servers import Faults
    from tessera_qgis.core.errors import TesseraError

    srv = range_server(sample_store.parent, faults=Faults("corrupt", match="/utm30/embeddings/c/0/0/1/1"))
    st = open_store(f"{srv.url}/{sample_store.name}", StoreOptions(retries=0))
    (tmp_path / "f.vrt").write_text("an older output")
    with pytest.raises(TesseraError, match="(?i)corrupt|checksum|decode"):
        export(st, ExportRequest(BBOX, "EPSG:4326", 2024, str(tmp_path / "f.vrt"), bands=[1], tile=128, block=64,
                                 dask=dask_cluster.scheduler_address if where == "dask" else None))
    assert _left(tmp_path) == ["f.vrt"] and (tmp_path / "f.vrt").read_text() == "an older output"
