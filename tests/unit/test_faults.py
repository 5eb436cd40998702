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


def _damaged_copy(sample_store, tmp_path):
    """A copy of the sample with utm30's embeddings damaged, scales untouched: shard row 1 of
    2024 deleted, and one inner chunk of shard (0, 0) removed from its shard (zarr-python
    drops a chunk written with nothing but the fill value)."""
    import shutil

    import zarr

    copy = tmp_path / "copy.zarr"
    shutil.copytree(sample_store, copy)
    shutil.rmtree(copy / "utm30" / "embeddings" / "c" / "0" / "0" / "1")
    emb = zarr.open_array(str(copy / "utm30" / "embeddings"), mode="r+")
    with zarr.config.set({"array.write_empty_chunks": False}):
        emb[0, :, 96:128, 160:192] = 0
    return copy


def _stored_pixels(copy, tmp_path, t, rows, cols):
    """zarr-python's view of which embeddings exist: the array opened with a fill value no
    stored int8 takes (-128; the sample's values are within -127..127)."""
    import json

    import zarr

    ref = tmp_path / "ref-embeddings"
    ref.mkdir()
    meta = json.loads((copy / "utm30" / "embeddings" / "zarr.json").read_text())
    meta["fill_value"] = -128
    (ref / "zarr.json").write_text(json.dumps(meta))
    (ref / "c").symlink_to(copy / "utm30" / "embeddings" / "c")
    band0 = zarr.open_array(str(ref), mode="r")[t, 0, rows[0]:rows[1], cols[0]:cols[1]]
    return band0 != -128


def test_pixels_without_stored_embeddings_are_nodata(sample_store, range_server, tmp_path, caplog):
    """Issue 19, defect 2: a pixel whose embeddings chunk (a whole shard, or one inner chunk)
    is not stored is nodata whatever its scale says, with one warning per missing object."""
    import logging

    import zarr

    copy = _damaged_copy(sample_store, tmp_path)
    rows, cols = (64, 320), (128, 200)  # across the missing inner chunk and into the missing shard
    stored = _stored_pixels(copy, tmp_path, 0, rows, cols)
    g = zarr.open_group(str(copy), mode="r")["utm30"]
    scales = g["scales"][0, rows[0]:rows[1], cols[0]:cols[1]]
    want_valid = np.isfinite(scales) & stored
    assert (np.isfinite(scales) & ~stored).sum() > 1000, "the damage hides pixels that have scales"
    assert want_valid.sum() > 1000
    srv = range_server(tmp_path)
    store = open_store(f"{srv.url}/copy.zarr")
    with caplog.at_level(logging.WARNING, logger="tessera_qgis"):
        win = store.zones["utm30"].read(2024, rows, cols)
        again = store.zones["utm30"].read(2024, rows, cols, bands=[5])
    np.testing.assert_array_equal(win.valid, want_valid)
    np.testing.assert_array_equal(again.valid, want_valid)
    np.testing.assert_array_equal(win.scales[want_valid], scales[want_valid])
    q = g["embeddings"][0, :, rows[0]:rows[1], cols[0]:cols[1]]
    np.testing.assert_array_equal(win.q[:, want_valid], q[:, want_valid])
    assert np.isnan(win.dequantised()[:, ~want_valid]).all(), "no zeros shown as data"
    named = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(named) == 2, named
    assert any("utm30/embeddings/c/0/0/1/0 (the whole shard)" in m for m in named)
    assert any("utm30/embeddings/c/0/0/0/0 (inner chunk [0, 0, 3, 5])" in m for m in named)
    # The pixel command and the grid path (the map layer) agree.
    px = store.pixel(*_lonlat(g, 100, 170), 2024)
    assert (px["row"], px["col"]) == (100, 170) and not px["valid"]
    from tessera_qgis.core.region import read_grid_quantised

    a, _, x0, _, e, y0 = g.attrs["spatial:transform"]
    grid_t = (a, 0.0, x0 + a * cols[0], 0.0, e, y0 + e * rows[0])
    _, s = read_grid_quantised(store, 2024, g.attrs["proj:code"], grid_t, cols[1] - cols[0], rows[1] - rows[0])
    np.testing.assert_array_equal(np.isfinite(s), want_valid)
    rr, cc = np.nonzero(np.ones(want_valid.shape, bool))
    _, s_px = store.zones["utm30"].read_pixels(2024, rr + rows[0], cc + cols[0], bands=[1])
    np.testing.assert_array_equal(np.isfinite(s_px), want_valid.ravel())


def _lonlat(g, row, col):
    from pyproj import Transformer

    a, _, x0, _, e, y0 = g.attrs["spatial:transform"]
    t = Transformer.from_crs(g.attrs["proj:code"], "EPSG:4326", always_xy=True)
    return t.transform(x0 + a * (col + 0.5), y0 + e * (row + 0.5))


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
