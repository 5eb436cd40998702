"""Fixtures shared by the unit tests (no QGIS) and the QGIS tests."""
from __future__ import annotations

import warnings

import pytest

from support.servers import RangeHTTPServer, S3Server
from support.system import why_no_mounts
from support.stores import cached_sample
from tessera_qgis.core.sample import SampleSpec

warnings.filterwarnings("ignore", message="Consolidated metadata")


@pytest.fixture(scope="session")
def sample_store():
    """The default sample store (two zones, two years), generated once."""
    return cached_sample()


@pytest.fixture(scope="session")
def zarr_reference(sample_store):
    """Factory: the sample store read by zarr-python for a year (support.reference), once a session."""
    from support.reference import StoreReference

    made: dict[int, StoreReference] = {}

    def get(year: int = 2024) -> StoreReference:
        if year not in made:
            made[year] = StoreReference(sample_store, year)
        return made[year]

    return get


@pytest.fixture(scope="session")
def per_year_store():
    """The earlier layout: one store per year, embeddings (y, x, band); a folder of YYYY.zarr."""
    return cached_sample(SampleSpec(bbox=(-0.02, 52.19, 0.02, 52.205), shard=64, layout="per-year"))


# Stores in the published layouts (../shared/TESSERA_LAYOUT.md), small and two zones each
# (the area straddles the 0 degree meridian); v2 shards must be multiples of 128 px.
PUBLISHED_BBOX = (-0.02, 52.19, 0.02, 52.205)


@pytest.fixture(scope="session")
def v2_store():
    """v2: year-keyed `bands` stretch, depths 4/16/128, global_rgb, out-of-range scales."""
    return cached_sample(SampleSpec(bbox=PUBLISHED_BBOX, shard=128, layout="v2"))


@pytest.fixture(scope="session")
def v1_store():
    """v1: year-keyed `pca` stretch, global_rgb drawn with the PCA, huge finite garbage scales."""
    return cached_sample(SampleSpec(bbox=PUBLISHED_BBOX, shard=128, layout="v1"))


@pytest.fixture(scope="session")
def dclimate_store():
    """v1.1-dclimate: NaN the only nodata (no +inf), per-pixel observation counts."""
    return cached_sample(SampleSpec(bbox=PUBLISHED_BBOX, shard=128, layout="v1.1-dclimate"))


@pytest.fixture(scope="session")
def south_store():
    """A southern area (negative northings), three years stored in descending order."""
    return cached_sample(SampleSpec(bbox=(36.80, -1.31, 36.83, -1.29), shard=64,
                                    years=(2023, 2024, 2025), time_order="descending"))


@pytest.fixture
def range_server():
    """Factory: start an HTTP Range server on 127.0.0.1 for a folder; stopped after the test."""
    servers = []

    def start(root, latency: float = 0.0, deny: tuple[str, ...] = (), faults=None) -> RangeHTTPServer:
        srv = RangeHTTPServer(root, latency=latency, deny=deny, faults=faults).start()
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


@pytest.fixture(scope="session")
def partial_year_store():
    """Two zones, utm30 with 2024 and 2025, utm31 with 2024 only."""
    from support.stores import partial_year_sample

    return partial_year_sample()


@pytest.fixture(scope="session")
def loopback_ca():
    """A certificate authority made for this test session, and a 127.0.0.1 certificate it signed."""
    from support.servers import make_test_ca

    return make_test_ca()


@pytest.fixture(scope="session")
def sample_https(sample_store, loopback_ca, tmp_path_factory):
    """The sample store's parent folder served over HTTPS with the session CA's certificate."""
    ctx = loopback_ca.server_context(tmp_path_factory.mktemp("tls"))
    srv = RangeHTTPServer(sample_store.parent, ssl_context=ctx).start()
    srv.store_url = f"{srv.url}/{sample_store.name}"
    yield srv
    srv.stop()


def pytest_collection_modifyitems(config, items):
    """Tests marked `mounts` need root in a private mount namespace (the test environment,
    where they always run); as a user (TESSERA_QGIS_ENV=host) they are left out, and the run's
    summary says why."""
    why = why_no_mounts()
    if why is None:
        return
    left = [item for item in items if item.get_closest_marker("mounts")]
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = [item for item in items if not item.get_closest_marker("mounts")]
        config._tessera_left_out = (len(left), why)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    left = getattr(config, "_tessera_left_out", None)
    if left:
        terminalreporter.write_line(f"{left[0]} tests that mount a tmpfs were left out: {left[1]}")
