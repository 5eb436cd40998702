"""Opening stores: every kind of URL, both layouts, and a clear message for each bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

from tessera_qgis.core.errors import (BandError, NotTessera, NotZarrV3, ReadError, StoreNotFound,
                                      YearNotFound)
from tessera_qgis.core.sources import StoreOptions
from tessera_qgis.core.store import open_store


def test_local_path_and_file_url_discover_everything(sample_store):
    for url in (str(sample_store), f"file://{sample_store}"):
        store = open_store(url)
        info = store.info()
        assert info["layout"] == "utm_zones"
        assert info["years"] == [2024, 2025] and info["bands"] == 128
        assert sorted(info["zones"]) == ["utm30", "utm31"]
        z = info["zones"]["utm31"]
        g = zarr.open_group(str(sample_store), mode="r")["utm31"]
        assert z["crs"] == "EPSG:32631" and z["transform"] == g.attrs["spatial:transform"]
        assert z["shape"] == g.attrs["spatial:shape"]
        assert z["embeddings"]["chunk"] == [1, 128, 32, 32] and z["embeddings"]["shard"] == [1, 128, 256, 256]
        assert z["embeddings"]["axes"] == ["time", "band", "y", "x"] and z["embeddings"]["dtype"] == "int8"
        assert z["scales"]["dtype"] == "float32"
        assert info["global_pca_years"] == [2024, 2025]


def test_http_and_s3_open_the_same_store(sample_store, sample_http, sample_s3):
    local = open_store(sample_store).info()
    http = open_store(sample_http.store_url).info()
    url, opts = sample_s3
    s3 = open_store(url, StoreOptions(key=opts["key"], secret=opts["secret"],
                                      endpoint_url=opts["client_kwargs"]["endpoint_url"], region="us-east-1")).info()
    for other in (http, s3):
        assert other["zones"] == local["zones"] and other["years"] == local["years"]


def test_earlier_per_year_layout(per_year_store):
    store = open_store(per_year_store / "2025.zarr")
    assert store.layout == "per_year" and store.years == [2025]
    zone = store.zones["utm31"]
    assert zone.emb_axes == ("y", "x", "band") and zone.scl_axes == ("y", "x")
    g = zarr.open_group(str(per_year_store / "2025.zarr"), mode="r")["utm31"]
    win = zone.read(2025, (10, 70), (5, 100))
    want_q = np.moveaxis(g["embeddings"][10:70, 5:100, :], -1, 0)
    want_s = g["scales"][10:70, 5:100]
    np.testing.assert_array_equal(win.scales, want_s)
    valid = np.isfinite(want_s)
    np.testing.assert_array_equal(win.q[:, valid], want_q[:, valid])
    with pytest.raises(YearNotFound, match="2024"):
        store.check_year(2024)


def test_missing_path_and_bad_urls(tmp_path):
    with pytest.raises(StoreNotFound, match="no such folder"):
        open_store(tmp_path / "nothing")
    with pytest.raises(StoreNotFound, match="unsupported URL scheme 'ftp'"):
        open_store("ftp://example/store")
    with pytest.raises(StoreNotFound, match="no host"):
        open_store("http:///store.zarr")  # refused before any connection (no host, not even 127.0.0.1)
    with pytest.raises(StoreNotFound, match="no bucket"):
        open_store("s3:///x")
    with pytest.raises(StoreNotFound, match="no store URL"):
        open_store("  ")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreNotFound, match="zarr.json not found"):
        open_store(tmp_path / "empty")
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(StoreNotFound, match="is a file"):
        open_store(tmp_path / "file.zarr")


def test_http_404_and_unreachable(range_server, tmp_path):
    srv = range_server(tmp_path)
    with pytest.raises(StoreNotFound, match="zarr.json not found"):
        open_store(f"{srv.url}/missing.zarr")
    with pytest.raises(ReadError, match="cannot reach the store"):
        open_store("http://127.0.0.1:9/store.zarr", StoreOptions(timeout=5, retries=0))


def test_zarr_v2_store_is_named(tmp_path):
    zarr.open_group(str(tmp_path / "v2.zarr"), mode="w", zarr_format=2).create_array("a", shape=(2,), dtype="i1")
    with pytest.raises(NotZarrV3, match="Zarr v2"):
        open_store(tmp_path / "v2.zarr")


def test_not_json_and_wrong_format(tmp_path):
    (tmp_path / "bad.zarr").mkdir()
    (tmp_path / "bad.zarr" / "zarr.json").write_text("{not json")
    with pytest.raises(NotZarrV3, match="not valid JSON"):
        open_store(tmp_path / "bad.zarr")
    (tmp_path / "v9.zarr").mkdir()
    (tmp_path / "v9.zarr" / "zarr.json").write_text(json.dumps({"zarr_format": 9, "node_type": "group"}))
    with pytest.raises(NotZarrV3, match="not a Zarr v3"):
        open_store(tmp_path / "v9.zarr")


def test_v3_store_without_tessera_content(tmp_path):
    g = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w", zarr_format=3)
    g.create_array("temperature", shape=(4, 4), dtype="f4")
    with pytest.raises(NotTessera, match="no UTM zone groups"):
        open_store(tmp_path / "plain.zarr")
    g = zarr.open_group(str(tmp_path / "half.zarr"), mode="w", zarr_format=3)
    z = g.create_group("utm30", attributes={"proj:code": "EPSG:32630"})
    z.create_array("embeddings", shape=(1, 128, 32, 32), dtype="i1", dimension_names=["time", "band", "y", "x"])
    with pytest.raises(NotTessera, match="utm30 lacks scales, spatial:transform"):
        open_store(tmp_path / "half.zarr")
    arr = zarr.open_array(str(tmp_path / "arr.zarr"), mode="w", shape=(2,), dtype="i1", zarr_format=3)
    del arr
    with pytest.raises(NotTessera, match="array, not a group"):
        open_store(tmp_path / "arr.zarr")


def test_unknown_axes_are_refused(tmp_path):
    g = zarr.open_group(str(tmp_path / "axes.zarr"), mode="w", zarr_format=3)
    z = g.create_group("utm30", attributes={"proj:code": "EPSG:32630", "spatial:transform": [10, 0, 0, 0, -10, 0]})
    z.create_array("embeddings", shape=(1, 128, 32, 32), dtype="i1", dimension_names=["time", "wavelength", "y", "x"])
    z.create_array("scales", shape=(1, 32, 32), dtype="f4", dimension_names=["time", "y", "x"])
    with pytest.raises(NotTessera, match="unknown axis 'wavelength'"):
        open_store(tmp_path / "axes.zarr")


def test_year_and_band_checks(sample_store):
    store = open_store(sample_store)
    with pytest.raises(YearNotFound, match="year 2019 is not in this store; it has 2024, 2025"):
        store.check_year(2019)
    with pytest.raises(BandError, match="1 to 128; got 0, 129"):
        store.check_bands([0, 5, 129])
    assert store.check_bands([1, 128]) == [1, 128]


def test_options_never_show_secrets():
    opts = StoreOptions(key="AKIDSECRETKEY", secret="verysecretvalue")
    assert "verysecretvalue" not in repr(opts) and "AKIDSECRETKEY" not in repr(opts)
