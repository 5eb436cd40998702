"""Reading under injected faults: transient ones are retried and the values come out right;
persistent ones end in a clear error naming what failed; corruption is never shown as data."""
from __future__ import annotations

import numpy as np
import pytest

from support.servers import Faults
from tessera_qgis.core.errors import ReadError
from tessera_qgis.core.sources import StoreOptions
from tessera_qgis.core.store import open_store

WINDOW = ((300, 400), (100, 220))


@pytest.fixture(scope="module")
def expected(sample_store):
    return open_store(sample_store).zones["utm30"].read(2024, *WINDOW)


def read_through(range_server, sample_store, faults, **options):
    srv = range_server(sample_store.parent, faults=faults)
    store = open_store(f"{srv.url}/{sample_store.name}", StoreOptions(**({"timeout": 10} | options)))
    return store, store.zones["utm30"].read(2024, *WINDOW)


@pytest.mark.parametrize("kind", ["503", "429", "reset", "truncate", "wrong-range", "ignore-range"])
def test_transient_faults_are_retried_and_values_are_right(kind, range_server, sample_store, expected):
    faults = Faults(kind, times=3, match="/utm30/")
    store, win = read_through(range_server, sample_store, faults)
    assert faults.injected == 3
    np.testing.assert_array_equal(win.q, expected.q)
    np.testing.assert_array_equal(win.scales, expected.scales)
    assert store.stats()["retries"] >= 3


def test_a_stall_times_out_and_is_retried(range_server, sample_store, expected):
    faults = Faults("stall", times=1, match="/utm30/", stall=3.0)
    _, win = read_through(range_server, sample_store, faults, timeout=1)
    np.testing.assert_array_equal(win.q, expected.q)


@pytest.mark.parametrize("kind,message", [
    ("503", "HTTP 503"), ("reset", "connection broke"), ("wrong-range", "server sent"),
    ("ignore-range", "ignored the Range request")])
def test_persistent_faults_end_in_a_clear_error(kind, message, range_server, sample_store):
    srv = range_server(sample_store.parent)
    store = open_store(f"{srv.url}/{sample_store.name}", StoreOptions(timeout=10, retries=2))
    srv.faults = Faults(kind, match="/utm30/")
    with pytest.raises(ReadError, match=message) as err:
        store.zones["utm30"].read(2024, *WINDOW)
    assert "utm30/" in str(err.value) and "after 3 attempts" in str(err.value)


def test_corrupted_bytes_are_reported_never_shown(range_server, sample_store):
    srv = range_server(sample_store.parent)
    store = open_store(f"{srv.url}/{sample_store.name}", StoreOptions(timeout=10, retries=1))
    srv.faults = Faults("corrupt", match="/utm30/scales/")  # indexes and chunks, every time
    with pytest.raises(ReadError, match="checksum|corrupt|decode"):
        store.zones["utm30"].read(2024, *WINDOW)


def test_missing_shards_are_nodata(sample_store, range_server, tmp_path):
    import shutil

    copy = tmp_path / "copy.zarr"
    shutil.copytree(sample_store, copy)
    shutil.rmtree(copy / "utm30" / "embeddings" / "c" / "0" / "0" / "1")  # shard row 1 of year 0
    srv = range_server(tmp_path)
    win = open_store(f"{srv.url}/copy.zarr").zones["utm30"].read(2024, (250, 300), (0, 40))
    assert (win.q[:, 6:, :] == 0).all(), "rows of the missing shard have no embedding values"
    assert np.isfinite(win.scales[6:]).any(), "scales of those rows are still there"


def test_s3_slowdown_is_retried(sample_store, sample_s3, s3_server):
    from support.servers import ThrottlingS3Proxy

    url, opts = sample_s3
    proxy = ThrottlingS3Proxy(s3_server.endpoint_url, times=4).start()
    try:
        store = open_store(url, StoreOptions(key=opts["key"], secret=opts["secret"], endpoint_url=proxy.url,
                                             timeout=10))
        win = store.zones["utm30"].read(2024, *WINDOW)
        local = open_store(sample_store).zones["utm30"].read(2024, *WINDOW)
        np.testing.assert_array_equal(win.q, local.q)
        assert proxy.throttled == 4
        proxy.remaining = None  # throttled for good: a clear error, not a hang
        with pytest.raises(ReadError, match="slow down|throttled|SlowDown|503"):
            store.zones["utm31"].read(2024, *WINDOW)
    finally:
        proxy.stop()
