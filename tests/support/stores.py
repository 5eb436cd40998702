"""Sample stores for tests, generated once per generator version and spec, then reused."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tessera_qgis.core import sample

REPO = Path(__file__).resolve().parents[2]


def cache_root() -> Path:
    return Path(os.environ.get("TESSERA_TEST_STORES", REPO / "build" / "test-stores"))


def cached_sample(spec: sample.SampleSpec = sample.SampleSpec(), tag: str = "") -> Path:
    """Path of a sample store for `spec`, generated on first use.

    The cache key covers the generator's source and the spec, so a changed generator
    makes a new store (and `tag`: e.g. the zarr version, for a store that must come from this
    environment's own zarr). Generation goes to a temporary folder renamed into place, so an
    interrupted run never leaves a half-written store behind.
    """
    key = hashlib.sha256(Path(sample.__file__).read_bytes() + repr(asdict(spec)).encode()
                         + tag.encode()).hexdigest()[:16]
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


def partial_year_sample() -> Path:
    """A two-zone store (utm30, utm31) where utm31 lacks 2025: utm31 comes from a 2024-only
    sample of the same area, and the root's consolidated metadata is rebuilt. The generator
    has no per-zone years option, so the store is put together from two generated ones."""
    import zarr

    bbox = (-0.02, 52.19, 0.02, 52.205)
    both = cached_sample(sample.SampleSpec(bbox=bbox, shard=64, years=(2024, 2025)))
    only = cached_sample(sample.SampleSpec(bbox=bbox, shard=64, years=(2024,)))
    path = cache_root() / f"partial-{both.name[7:-5]}-{only.name[7:-5]}.zarr"
    if path.exists():
        return path
    tmp = Path(tempfile.mkdtemp(prefix=".gen-", dir=path.parent))
    try:
        shutil.copytree(both, tmp / "store")
        shutil.rmtree(tmp / "store" / "utm31")
        shutil.copytree(only / "utm31", tmp / "store" / "utm31")
        zarr.consolidate_metadata(str(tmp / "store"))
        os.replace(tmp / "store", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _zone_groups(store: Path):
    """(name, group, years, to_lonlat(row, col)) of each zone group, read with zarr-python."""
    import zarr
    from pyproj import Transformer

    root = zarr.open_group(str(store), mode="r")
    for name in sorted(root.group_keys()):
        if not name.startswith("utm"):
            continue
        g = root[name]
        px, _, x0, _, py, y0 = g.attrs["spatial:transform"]
        to_lonlat = Transformer.from_crs(g.attrs["proj:code"], "EPSG:4326", always_xy=True)

        def lonlat(row: int, col: int, x0=x0, y0=y0, px=px, py=py, to_lonlat=to_lonlat) -> tuple[float, float]:
            return to_lonlat.transform(x0 + px * (col + 0.5), y0 + py * (row + 0.5))

        yield name, g, g["time"][:].tolist(), lonlat


def pixel_where(store: Path, year: int, pick) -> dict:
    """The first pixel (zone by zone, row-major) whose raw stored scale `pick(scales)` marks
    True, read with zarr-python: {"zone", "year", "row", "col", "scale", "lon", "lat"}."""
    for name, g, years, lonlat in _zone_groups(store):
        s = np.asarray(g["scales"][years.index(year)])
        rows, cols = np.nonzero(pick(s))
        if len(rows):
            r, c = int(rows[0]), int(cols[0])
            lon, lat = lonlat(r, c)
            return {"zone": name, "year": year, "row": r, "col": c, "scale": float(s[r, c]), "lon": lon, "lat": lat}
    raise LookupError(f"no such pixel in {store} for {year}")


def invalid_scale_pixels(store: Path) -> list[dict]:
    """The pixels the generator gave out-of-range scales (v2 and v1 stores), read from each
    zone's `sample_landcover` attribute, with the year and the lon/lat of each pixel centre,
    ready for a reader's pixel lookup: [{"zone", "year", "row", "col", "scale", "lon", "lat"}]."""
    out = []
    for name, g, years, lonlat in _zone_groups(store):
        for t, row, col, scale in g["sample_landcover"].attrs.get("invalid_scale_pixels", []):
            lon, lat = lonlat(row, col)
            out.append({"zone": name, "year": years[t], "row": row, "col": col, "scale": scale,
                        "lon": lon, "lat": lat})
    return out
