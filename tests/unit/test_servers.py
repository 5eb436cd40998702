"""The test servers behave like object storage: Range (suffix too), 404s, a request log,
added latency; zarr-python reads the sample store through HTTP and through S3 (moto)."""
from __future__ import annotations

import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import zarr


def get(url, rng=None):
    req = urllib.request.Request(url, headers={"Range": rng} if rng else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.headers, r.read()


def test_range_requests_including_suffix(range_server, tmp_path):
    data = bytes(range(256)) * 40
    (tmp_path / "blob").write_bytes(data)
    srv = range_server(tmp_path)
    assert srv.url.startswith("http://127.0.0.1:")
    assert get(f"{srv.url}/blob")[2] == data
    status, headers, body = get(f"{srv.url}/blob", "bytes=100-199")
    assert status == 206 and body == data[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    status, _, body = get(f"{srv.url}/blob", "bytes=-16")
    assert status == 206 and body == data[-16:]
    with pytest.raises(urllib.error.HTTPError) as err:
        get(f"{srv.url}/missing")
    assert err.value.code == 404
    log = srv.requests()
    assert [r.range for r in log] == [None, "bytes=100-199", "bytes=-16", None]
    assert [r.bytes for r in log[:3]] == [len(data), 100, 16]
    assert log[3].status == 404
    assert srv.stats()["requests"] == 4
    srv.reset()
    assert srv.stats() == {"requests": 0, "bytes": 0}


def test_added_latency(range_server, tmp_path):
    (tmp_path / "f").write_bytes(b"x")
    srv = range_server(tmp_path, latency=0.2)
    t0 = time.perf_counter()
    get(f"{srv.url}/f")
    assert time.perf_counter() - t0 >= 0.2


def _window(group):
    return group["utm31"]["embeddings"][1, :, 300:340, 10:50], group["utm31"]["scales"][1, 300:340, 10:50]


def test_zarr_reads_sample_over_http(sample_store, sample_http):
    local = zarr.open_group(str(sample_store), mode="r")
    sample_http.reset()
    remote = zarr.open_group(sample_http.store_url, mode="r")
    for a, b in zip(_window(local), _window(remote)):
        np.testing.assert_array_equal(a, b)
    log = sample_http.requests()
    assert any(r.range and r.range.startswith("bytes=-") for r in log), "shard index read by suffix range"
    assert all(r.status in (200, 206, 404) for r in log)


def test_zarr_reads_sample_over_s3(sample_store, sample_s3):
    url, options = sample_s3
    assert options["client_kwargs"]["endpoint_url"].startswith("http://127.0.0.1:")
    local = zarr.open_group(str(sample_store), mode="r")
    remote = zarr.open_group(url, mode="r", storage_options=options)
    assert sorted(remote.group_keys()) == ["utm30", "utm31"]
    for a, b in zip(_window(local), _window(remote)):
        np.testing.assert_array_equal(a, b)


def test_every_test_server_binds_loopback_only(tmp_path):
    from support.servers import ForwardProxy, RangeHTTPServer, S3Server

    with RangeHTTPServer(tmp_path) as http:
        assert http._runner.addresses[0][0] == "127.0.0.1"
    proxy = ForwardProxy().start()
    try:
        assert proxy._server.server_address[0] == "127.0.0.1"
    finally:
        proxy.stop()
    with S3Server() as s3:
        assert s3.endpoint_url.startswith("http://127.0.0.1:")
        assert s3._server._server.server_address[0] == "127.0.0.1"


def _raw_get(port: int, path: str, rng: str) -> tuple[bytes, bytes, BaseException | None]:
    """(headers, body, error) of a GET read off the socket until the server closes it."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: {rng}\r\nConnection: close\r\n\r\n"
                     .encode())
        data, error = b"", None
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except OSError as exc:
            error = exc
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body, error


def test_truncate_sends_a_short_body_and_reset_resets_the_connection(range_server, tmp_path):
    from support.servers import Faults

    data = bytes(range(256)) * 100
    (tmp_path / "blob").write_bytes(data)
    srv = range_server(tmp_path, faults=Faults("truncate", times=1))
    head, body, error = _raw_get(srv.port, "/blob", "bytes=1000-8999")
    assert b"Content-Length: 8000" in head and error is None, "an orderly close (FIN), no reset"
    assert body == data[1000:5000], "exactly half of the promised body, then nothing"
    srv.faults = Faults("reset", times=1)
    head, body, error = _raw_get(srv.port, "/blob", "bytes=1000-8999")
    assert b"Content-Length: 8000" in head and isinstance(error, ConnectionResetError), error
    assert len(body) <= 4000
    assert [r.fault for r in srv.requests()] == ["truncate", "reset"]
    head, body, error = _raw_get(srv.port, "/blob", "bytes=1000-1999")  # faults used up: the real answer
    assert body == data[1000:2000] and error is None
