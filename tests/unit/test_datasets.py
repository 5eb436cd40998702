"""The public datasets: presets through the gateway and the direct bucket, and the `~` in
v2's dataset name kept literal in every request (never %7E), over HTTP and S3."""
from __future__ import annotations

import shutil
from urllib.parse import urlparse

import numpy as np

from support.servers import ThrottlingS3Proxy
from tessera_qgis.core.connections import DATASETS, DIRECT, GATEWAY, presets
from tessera_qgis.core.sources import StoreOptions
from tessera_qgis.core.store import open_store

NAME = "v2-2B-L~beta1"


def test_presets_are_the_published_datasets_on_both_endpoints():
    assert set(DATASETS) == {"v1", "v1.1", "v1.1-dclimate", "v2-2B-L~beta1"}
    urls = {c.url for c in presets() if c.kind == "preset"}
    want = {t.format(dataset=d) for d in DATASETS for t in (GATEWAY, DIRECT)}
    assert urls == want
    assert any(urlparse(u).scheme == "https" and u.endswith("/tessera/tessera/zarr/v2-2B-L~beta1") for u in urls)
    assert not [u for u in urls if "%7E" in u]


def test_the_tilde_stays_literal_over_http(range_server, v2_store, tmp_path):
    (tmp_path / "zarr").mkdir()
    shutil.copytree(v2_store, tmp_path / "zarr" / NAME)  # the server follows no symlinks
    srv = range_server(tmp_path)
    url = f"{srv.url}/zarr/{NAME}"
    st = open_store(url)
    st.zones["utm31"].read(2025, (0, 64), (60, 124), bands=[1, 2, 3])
    px = st.pixel(0.005, 52.2, 2025)
    assert px["zone"] == "utm31"
    raws = [r.raw for r in srv.requests()]
    assert raws and all("/zarr/v2-2B-L~beta1/" in r for r in raws), raws[:5]
    assert not [r for r in raws if "%7E" in r.upper()]


def test_the_tilde_stays_literal_over_s3(s3_server, v2_store):
    url = s3_server.upload_folder(v2_store, "tessera", f"tessera/zarr/{NAME}")
    proxy = ThrottlingS3Proxy(s3_server.endpoint_url, times=0).start()
    try:
        opts = s3_server.storage_options()
        st = open_store(url, StoreOptions(key=opts["key"], secret=opts["secret"], endpoint_url=proxy.url,
                                          region="us-east-1"))
        win = st.zones["utm31"].read(2025, (0, 64), (60, 124), bands=[1, 2, 3])
        assert np.isfinite(win.scales).any()
        paths = list(proxy.paths)
        assert paths and all("v2-2B-L~beta1" in p for p in paths if "/zarr/" in p), paths[:5]
        assert not [p for p in paths if "%7E" in p.upper()]
    finally:
        proxy.stop()
