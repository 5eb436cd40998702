"""Fixtures of the unit tests: the default sample store opened by the core, and by zarr-python
as the reference every read is compared with."""
from __future__ import annotations

import os

import pytest
import zarr

from tessera_qgis.core.store import open_store


@pytest.fixture(scope="module")
def store(sample_store):
    return open_store(sample_store)


@pytest.fixture(scope="module")
def ref(sample_store):
    return zarr.open_group(str(sample_store), mode="r")


# The oldest-dependencies run (numpy 1.26, zarr 3.0, no GDAL) leaves out the modules that
# need GDAL; `-m "not gdal and not sklearn"` leaves out the single tests that need GDAL or
# scikit-learn (neither is installed there).
if os.environ.get("TESSERA_OLDEST"):
    collect_ignore = ["test_gdal_reads_sample.py", "test_core_export.py", "test_core_products.py",
                      "test_cluster.py", "test_analysis_cluster.py", "test_analysis_jobs.py"]
