"""Fixtures of the unit tests: the default sample store opened by the core, and by zarr-python
as the reference every read is compared with."""
from __future__ import annotations

import pytest
import zarr

from tessera_qgis.core.store import open_store


@pytest.fixture(scope="module")
def store(sample_store):
    return open_store(sample_store)


@pytest.fixture(scope="module")
def ref(sample_store):
    return zarr.open_group(str(sample_store), mode="r")
