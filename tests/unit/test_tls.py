"""HTTPS with a certificate authority the system does not know: a clear failure without it,
correct reads with its PEM in StoreOptions, and a per-host exception that skips the check."""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import zarr

from support.servers import make_test_ca
from tessera_qgis.core.connections import describe_failure
from tessera_qgis.core.errors import ReadError
from tessera_qgis.core.sources import StoreOptions, ca_bundle_file, host_port
from tessera_qgis.core.store import open_store


def test_untrusted_certificate_fails_clearly(sample_https):
    with pytest.raises(ReadError) as err:
        open_store(sample_https.store_url, StoreOptions(retries=0))
    assert err.value.kind == "certificate"
    text = str(err.value)
    assert "certificate is not trusted" in text and "self-signed certificate" in text, text
    assert "certificate authority" in text
    assert describe_failure(err.value)[0] == "certificate"


def test_another_ca_is_not_enough(sample_https):
    other = make_test_ca("some other CA")
    with pytest.raises(ReadError) as err:
        open_store(sample_https.store_url, StoreOptions(retries=0, ca_pem=other.ca_pem))
    assert err.value.kind == "certificate"


def test_extra_ca_opens_and_reads_correct_values(sample_https, sample_store, loopback_ca):
    opts = StoreOptions(ca_pem=loopback_ca.ca_pem)
    assert loopback_ca.ca_pem not in repr(opts) and "BEGIN CERTIFICATE" not in repr(opts)
    sample_https.reset()
    st = open_store(sample_https.store_url, opts)
    assert st.years == [2024, 2025]
    zone = st.zones["utm30"]
    ref = zarr.open_group(str(sample_store), mode="r")
    ti = list(ref["utm30/time"][:]).index(2024)
    win = zone.read(2024, (0, 64), (0, 64), skip_nodata=False)
    np.testing.assert_array_equal(win.scales, ref["utm30/scales"][ti, 0:64, 0:64])
    assert any(r.status == 206 for r in sample_https.requests()), "the data came over HTTPS from the server"


def test_an_insecure_host_exception_skips_the_check_for_that_host_only(sample_https):
    port = sample_https.port
    st = open_store(sample_https.store_url, StoreOptions(insecure_hosts=(f"127.0.0.1:{port}",)))
    assert st.years == [2024, 2025]
    with pytest.raises(ReadError) as err:
        open_store(sample_https.store_url, StoreOptions(retries=0, insecure_hosts=(f"127.0.0.1:{port + 1}",)))
    assert err.value.kind == "certificate"


def test_host_port_and_the_botocore_bundle(loopback_ca):
    assert host_port("https://LocalHost/a") == "localhost:443"
    assert host_port("http://localhost/a") == "localhost:80"
    assert host_port("https://127.0.0.1:8443/x.zarr") == "127.0.0.1:8443"
    path = ca_bundle_file(loopback_ca.ca_pem)
    assert ca_bundle_file(loopback_ca.ca_pem) == path, "one file per set of CAs"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = open(path).read()
    assert loopback_ca.ca_pem.strip() in text and text.count("BEGIN CERTIFICATE") > 1, "system CAs kept"


def test_s3_over_https_trusts_the_extra_ca(sample_s3, s3_server, loopback_ca, tmp_path):
    """moto behind an HTTPS front (the throttling proxy, throttling nothing) signed by the test CA."""
    from support.servers import ThrottlingS3Proxy

    url, opts = sample_s3
    front = ThrottlingS3Proxy(s3_server.endpoint_url, times=0)
    front.ssl_context = loopback_ca.server_context(tmp_path)
    front.start()
    try:
        base = dict(key=opts["key"], secret=opts["secret"], endpoint_url=front.url, region="us-east-1", retries=0)
        with pytest.raises(ReadError) as err:
            open_store(url, StoreOptions(**base))
        assert err.value.kind == "certificate", err.value
        st = open_store(url, StoreOptions(**base, ca_pem=loopback_ca.ca_pem))
        assert st.years == [2024, 2025]
        assert st.zones["utm31"].read(2025, (0, 32), (0, 32), skip_nodata=False).scales.shape == (32, 32)
        assert open_store(url, StoreOptions(**base, insecure_hosts=(host_port(front.url),))).years == [2024, 2025]
    finally:
        front.stop()
