"""Sample stores for tests, generated once per generator version and spec, then reused."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from tessera_qgis.core import sample

REPO = Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    return Path(os.environ.get("TESSERA_TEST_STORES", REPO / "build" / "test-stores"))


def cached_sample(spec: sample.SampleSpec = sample.SampleSpec()) -> Path:
    """Path of a sample store for `spec`, generated on first use.

    The cache key covers the generator's source and the spec, so a changed generator
    makes a new store. Generation goes to a temporary folder renamed into place, so an
    interrupted run never leaves a half-written store behind.
    """
    key = hashlib.sha256(Path(sample.__file__).read_bytes() + repr(asdict(spec)).encode()).hexdigest()[:16]
    path = cache_root() / f"sample-{key}.zarr"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=path.parent))
    try:
        sample.generate(tmp / "store", spec)
        os.replace(tmp / "store", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
