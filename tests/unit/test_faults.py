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
    """The server holds one request for 1.5 s; with a 1 s timeout the client gives up on it and
    asks again (the same object and range, at least a timeout later), and the values are right."""
    faults = Faults("stall", times=1, match="/utm30/", stall=1.5)
    srv = range_server(sample_store.parent, faults=faults)
    store = open_store(f"{srv.url}/{sample_store.name}", StoreOptions(timeout=1))
    win = store.zones["utm30"].read(2024, *WINDOW)
    np.testing.assert_array_equal(win.q, expected.q)
    assert faults.injected == 1 and store.stats()["retries"] >= 1
    (stalled_at, path, rng, kind), = faults.taken
    again = [r for r in srv.requests() if (r.path, r.range, r.fault) == (path, rng, None)]
    assert again and again[0].status in (200, 206), f"{path} {rng} was not asked for again"
    assert again[0].time - stalled_at >= 0.95, "asked again after the 1 s timeout, not before"


def test_retries_back_off_exponentially(range_server, sample_store):
    """Four 503s on zarr.json: five arrivals, spaced by the backoff (0.2 s x 2^k, times a jitter
    of 0.5 to 1): gaps of at least 0.1, 0.2, 0.4 and 0.8 s (the upper side left generous)."""
    srv = range_server(sample_store.parent, faults=Faults("503", times=4, match="/zarr.json"))
    store = open_store(f"{srv.url}/{sample_store.name}", StoreOptions(timeout=10, retries=4))
    assert store.stats()["retries"] == 4
    times = [r.time for r in srv.requests() if r.path.endswith(f"/{sample_store.name}/zarr.json")]
    assert len(times) == 5 and [r.status for r in srv.requests()][:5] == [503] * 4 + [200]
    gaps = np.diff(times)
    floors = 0.2 * 2.0 ** np.arange(4) * 0.5
    assert (gaps >= 0.95 * floors).all(), f"gaps {gaps.round(3)} below the backoff's floors {floors}"
    assert (gaps <= 2 * floors + 2.0).all(), f"gaps {gaps.round(3)}"


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
