"""Fixtures shared by the unit tests (no QGIS) and the QGIS tests."""
from __future__ import annotations

import warnings

import pytest

from support.servers import RangeHTTPServer, S3Server
from support.stores import cached_sample

warnings.filterwarnings("ignore", message="Consolidated metadata")


@pytest.fixture(scope="session")
def sample_store():
    """The default sample store (two zones, two years), generated once."""
    return cached_sample()


@pytest.fixture
def range_server():
    """Factory: start an HTTP Range server on 127.0.0.1 for a folder; stopped after the test."""
    servers = []

    def start(root, latency: float = 0.0) -> RangeHTTPServer:
        srv = RangeHTTPServer(root, latency=latency).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="session")
def sample_http(sample_store):
    """The sample store's parent folder served over HTTP; reset its log before use."""
    srv = RangeHTTPServer(sample_store.parent).start()
    srv.store_url = f"{srv.url}/{sample_store.name}"
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def s3_server():
    srv = S3Server().start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def sample_s3(s3_server, sample_store):
    """The sample store uploaded to the moto S3 server; yields (s3 url, storage options)."""
    url = s3_server.upload_folder(sample_store, "tessera", "sample.zarr")
    return url, s3_server.storage_options()
