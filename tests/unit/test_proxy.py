"""Through an HTTP proxy that wants a user name and password (as QGIS's proxy settings give
them): plain HTTP, HTTPS (a CONNECT tunnel) and S3 read the same values as the local store;
a wrong password is a clear error that does not show it."""
from __future__ import annotations

import numpy as np
import pytest

from support.servers import ForwardProxy
from tessera_qgis.core.errors import ReadError
from tessera_qgis.core.sources import StoreOptions
from tessera_qgis.core.store import open_store

USER, PASSWORD = "bob", "pr0xy-s3cret"
WINDOW = ((300, 340), (100, 160))


@pytest.fixture
def proxy():
    srv = ForwardProxy(auth=(USER, PASSWORD)).start()
    yield srv
    srv.stop()


def _proxy_url(proxy, password: str = PASSWORD) -> str:
    return f"http://{USER}:{password}@127.0.0.1:{proxy.port}"


def _same_window(store, sample_store) -> None:
    got = store.zones["utm31"].read(2024, *WINDOW)
    want = open_store(sample_store).zones["utm31"].read(2024, *WINDOW)
    np.testing.assert_array_equal(got.scales, want.scales)
    np.testing.assert_array_equal(got.q, want.q)


def test_http_through_a_proxy_with_a_password(proxy, sample_store, sample_http):
    store = open_store(sample_http.store_url, StoreOptions(proxy=_proxy_url(proxy), timeout=10))
    _same_window(store, sample_store)
    assert f"{sample_http.store_url}/zarr.json" in proxy.seen
    assert any("/utm31/embeddings/" in u for u in proxy.seen) and proxy.refused == 0


def test_a_wrong_proxy_password_is_refused_clearly(proxy, sample_http):
    with pytest.raises(ReadError) as err:
        open_store(sample_http.store_url, StoreOptions(proxy=_proxy_url(proxy, "wrong-pw"), timeout=10, retries=0))
    assert proxy.refused >= 1 and not proxy.seen
    assert "wrong-pw" not in str(err.value) and PASSWORD not in str(err.value)
    assert "the proxy refused the user name or password (HTTP 407)" in str(err.value), str(err.value)


def test_https_through_a_proxy_tunnel(proxy, sample_store, sample_https, loopback_ca):
    store = open_store(sample_https.store_url, StoreOptions(proxy=_proxy_url(proxy), ca_pem=loopback_ca.ca_pem,
                                                            timeout=10))
    _same_window(store, sample_store)
    assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{sample_https.port}"}
    assert proxy.refused == 0


def test_s3_through_a_proxy_with_a_password(proxy, sample_store, sample_s3, s3_server):
    url, opts = sample_s3
    store = open_store(url, StoreOptions(key=opts["key"], secret=opts["secret"], endpoint_url=s3_server.endpoint_url,
                                         region="us-east-1", proxy=_proxy_url(proxy), timeout=10))
    _same_window(store, sample_store)
    assert any(u.startswith(s3_server.endpoint_url) and u.endswith("/zarr.json") for u in proxy.seen), proxy.seen
    assert any("/utm31/embeddings/" in u for u in proxy.seen) and proxy.refused == 0
