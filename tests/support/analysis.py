"""Helpers of the analysis tests: the sample's ground truth under an output raster, labelled
points drawn from it, and the agreement measures worked out here with numpy (never by the
code under test)."""
from __future__ import annotations

import json
import os
from math import comb
from pathlib import Path

import numpy as np
import zarr

from tessera_qgis.core.sample import CLASSES

# Regions inside one zone, so outputs are on the zone's own grid (ground truth pixel for pixel).
EXTENT_BOUNDS = (-0.045, 52.175, -0.005, 52.225)  # utm30: the changed block; no built-up land in 2024
EXTENT = "-0.045,-0.005,52.175,52.225 [EPSG:4326]"  # the same, as Processing writes an extent
TOWN_BOUNDS = (0.002, 52.172, 0.044, 52.228)  # utm31: the town, so all five classes with embeddings
TOWN = "0.002,0.044,52.172,52.228 [EPSG:4326]"
NAMES = {v: k for k, v in CLASSES.items()}  # class name -> code of the sample's land cover


def ari(a: np.ndarray, b: np.ndarray) -> float:
    """Adjusted Rand index of two labellings (Hubert and Arabie), from the contingency table."""
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    _, ia = np.unique(a, return_inverse=True)
    _, ib = np.unique(b, return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    pairs = sum(comb(int(v), 2) for v in table.ravel())
    rows = sum(comb(int(v), 2) for v in table.sum(axis=1))
    cols = sum(comb(int(v), 2) for v in table.sum(axis=0))
    total = comb(len(a), 2)
    expected = rows * cols / total
    return (pairs - expected) / ((rows + cols) / 2 - expected)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    return float((a & b).sum() / max((a | b).sum(), 1))


def window_of(path, store_path: Path, zone: str = "utm30") -> tuple[int, int, int, int]:
    """(row0, col0, height, width) of a GeoTIFF written on a zone's own grid."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    gt = ds.GetGeoTransform()
    attrs = json.loads((store_path / zone / "zarr.json").read_text())["attributes"]
    _, _, x0, _, _, y0 = attrs["spatial:transform"]
    return round((y0 - gt[3]) / 10), round((gt[0] - x0) / 10), ds.RasterYSize, ds.RasterXSize


def truth(store_path: Path, path, year_index: int = 0, zone: str = "utm30") -> np.ndarray:
    """The sample's land cover (codes 1-6, 0 no data) under a GeoTIFF on a zone's grid, read
    by zarr-python."""
    r0, c0, h, w = window_of(path, store_path, zone)
    g = zarr.open_group(str(store_path), mode="r")
    return np.asarray(g[f"{zone}/sample_landcover"][year_index, r0:r0 + h, c0:c0 + w])


def valid_truth(store_path: Path, path, year_index: int = 0, zone: str = "utm30") -> np.ndarray:
    """Where the store has a valid embedding (0 < scale < 1) under a GeoTIFF, read by zarr-python."""
    r0, c0, h, w = window_of(path, store_path, zone)
    g = zarr.open_group(str(store_path), mode="r")
    s = np.asarray(g[f"{zone}/scales"][year_index, r0:r0 + h, c0:c0 + w])
    with np.errstate(invalid="ignore"):
        return (s > 0) & (s < 1)


def labelled_points(store_path: Path, per_class: int = 20, seed: int = 7, zone: str = "utm30",
                    bounds=EXTENT_BOUNDS) -> list[tuple[float, float, str]]:
    """`per_class` random pixel centres (lon, lat, class name) of each class that has
    embeddings (not water) inside `bounds`, from the 2024 ground truth."""
    from pyproj import Transformer

    g = zarr.open_group(str(store_path), mode="r")
    attrs = json.loads((store_path / zone / "zarr.json").read_text())["attributes"]
    a, _, x0, _, e, y0 = attrs["spatial:transform"]
    lc = np.asarray(g[f"{zone}/sample_landcover"][0])
    s = np.asarray(g[f"{zone}/scales"][0])
    to_ll = Transformer.from_crs(attrs["proj:code"], "EPSG:4326", always_xy=True)
    rows, cols = np.indices(lc.shape)
    lon, lat = to_ll.transform(x0 + a * (cols + 0.5), y0 + e * (rows + 0.5))
    inside = (lon > bounds[0]) & (lon < bounds[2]) & (lat > bounds[1]) & (lat < bounds[3]) & np.isfinite(s)
    rng = np.random.default_rng(seed)
    out = []
    for code, name in CLASSES.items():
        rr, cc = np.nonzero(inside & (lc == code))
        if len(rr) < per_class:
            continue
        for i in rng.choice(len(rr), per_class, replace=False):
            out.append((float(lon[rr[i], cc[i]]), float(lat[rr[i], cc[i]]), name))
    return out


def points_geojson(points, path: Path) -> Path:
    feats = [{"type": "Feature", "properties": {"class": name},
              "geometry": {"type": "Point", "coordinates": [lon, lat]}} for lon, lat, name in points]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return path


def with_root_attrs(src: Path, dst: Path, change) -> Path:
    """A store whose root attributes are changed by `change(attrs)`: the root zarr.json is
    rewritten, the zone groups are symlinks to the source store's."""
    dst.mkdir()
    meta = json.loads((src / "zarr.json").read_text())
    change(meta["attributes"])
    (dst / "zarr.json").write_text(json.dumps(meta))
    for child in src.iterdir():
        if child.is_dir():
            os.symlink(child, dst / child.name)
    return dst


def declare_depths(attrs: dict) -> None:
    attrs["geoemb:depths"] = [{"dimensions": 4, "array": "embeddings_d4"},
                              {"dimensions": 16, "array": "embeddings_d16"},
                              {"dimensions": 128, "array": "embeddings"}]
