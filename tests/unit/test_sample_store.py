"""The sample store has the real current TESSERA layout and looks like a landscape."""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import zarr
from pyproj import Transformer

from tessera_qgis.core import sample
from tessera_qgis.core.sample import BUILT, CROP, WATER, SampleSpec


@pytest.fixture(scope="module")
def root(sample_store):
    return zarr.open_group(str(sample_store), mode="r")


def test_root_attributes_and_consolidated_metadata(sample_store, root):
    attrs = root.attrs
    assert attrs["geoemb:dimensions"] == 128
    assert attrs["geoemb:data_type"] == "int8"
    assert attrs["geoemb:gsd"] == 10.0
    assert attrs["geoemb:spatial_layout"] == "utm_zones"
    q = attrs["geoemb:quantization"]
    assert q["method"] == "per_pixel_scale"
    assert q["scale"] == {"type": "array", "array_name": "scales", "nodata": "+inf"}
    meta = json.loads((sample_store / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["node_type"] == "group"
    consolidated = meta["consolidated_metadata"]["metadata"]
    for name in ("utm30", "utm31", "utm30/embeddings", "utm31/scales", "utm30/time"):
        assert name in consolidated
    assert sorted(root.group_keys()) == ["utm30", "utm31"]


@pytest.mark.parametrize("zone", [30, 31])
def test_zone_group_layout(sample_store, root, zone):
    g = root[f"utm{zone}"]
    assert g.attrs["proj:code"] == f"EPSG:{32600 + zone}"
    t = g.attrs["spatial:transform"]
    h, w = g.attrs["spatial:shape"]
    assert t[0] == 10 and t[4] == -10 and t[1] == t[3] == 0
    assert g.attrs["spatial:registration"] == "pixel"
    assert g.attrs["spatial:dimensions"] == ["y", "x"]
    assert g.attrs["spatial:bbox"] == [t[2], t[5] - 10 * h, t[2] + 10 * w, t[5]]
    emb, scl = g["embeddings"], g["scales"]
    assert emb.shape == (2, 128, h, w) and emb.dtype == np.int8
    assert scl.shape == (2, h, w) and scl.dtype == np.float32
    assert emb.metadata.dimension_names == ("time", "band", "y", "x")
    assert scl.metadata.dimension_names == ("time", "y", "x")
    assert emb.chunks == (1, 128, 32, 32) and emb.shards == (1, 128, 256, 256)
    assert scl.chunks == (1, 32, 32) and scl.shards == (1, 256, 256)
    assert h % 256 == 0 and w % 256 == 0
    assert emb.fill_value == 0 and math.isinf(scl.fill_value) and scl.fill_value > 0
    # Codecs as zarr-python writes them: sharding with bytes + blosc(zstd, bitshuffle) inside,
    # and a bytes + crc32c index at the end of the shard.
    meta = json.loads((sample_store / f"utm{zone}" / "embeddings" / "zarr.json").read_text())
    shard = meta["codecs"][0]
    assert shard["name"] == "sharding_indexed"
    cfg = shard["configuration"]
    assert cfg["chunk_shape"] == [1, 128, 32, 32]
    assert [c["name"] for c in cfg["codecs"]] == ["bytes", "blosc"]
    blosc = cfg["codecs"][1]["configuration"]
    assert (blosc["cname"], blosc["clevel"], blosc["shuffle"]) == ("zstd", 3, "bitshuffle")
    assert [c["name"] for c in cfg["index_codecs"]] == ["bytes", "crc32c"]
    assert cfg.get("index_location", "end") == "end"
    # Chunk keys as in real stores.
    assert (sample_store / f"utm{zone}" / "embeddings" / "c" / "0" / "0" / "0" / "0").is_file()
    # Coordinates: pixel centres, years, bands.
    assert np.allclose(g["x"][:], t[2] + 10 * (np.arange(w) + 0.5))
    assert np.allclose(g["y"][:], t[5] - 10 * (np.arange(h) + 0.5))
    assert g["time"][:].tolist() == [2024, 2025] and g["time"].dtype == np.int32
    assert g["band"].shape == (128,)


def _dequantised(g, t):
    emb = g["embeddings"][t]
    scl = g["scales"][t]
    with np.errstate(invalid="ignore"):
        v = np.moveaxis(emb, 0, -1).astype(np.float32) * scl[..., None]
    return v, scl, g["sample_landcover"][t]


def test_nodata_water_nan_and_unembedded_strip_inf(root):
    for zone in ("utm30", "utm31"):
        g = root[zone]
        for t in (0, 1):
            scl, lc = g["scales"][t], g["sample_landcover"][t]  # the embeddings are not needed here
            water = scl[lc == WATER]
            assert water.size > 100
            if t == 0:
                assert np.isnan(water).all()
            else:  # the unembedded strip (+inf) covers some water in the last year
                assert (np.isnan(water) | np.isposinf(water)).all() and np.isnan(water).mean() > 0.5
            land = lc > 1
            finite = np.isfinite(scl)
            assert ((scl[finite] > 0) & (scl[finite] < 1)).all()
            if t == 0:
                assert finite[land].all(), "every land pixel of the first year is embedded"
    # The last year has a not-yet-embedded strip (+inf) on the east edge, in utm31.
    scl, lc = root["utm31"]["scales"][1], root["utm31"]["sample_landcover"][1]
    strip = np.isposinf(scl) & (lc > 1)
    assert strip.sum() > 1000
    cols = np.nonzero(strip.any(axis=0))[0]
    assert cols.min() > scl.shape[1] // 3


def test_landscape_is_spatially_coherent_with_separable_classes(root):
    v, scl, lc = _dequantised(root["utm30"], 0)
    classes, counts = np.unique(lc[lc > 0], return_counts=True)
    assert set(classes) >= {1, 2, 3, 4, 5}
    assert counts.max() / counts.sum() < 0.8, "no class swamps the area"
    same_right = (lc[:, 1:] == lc[:, :-1])[(lc[:, 1:] > 0) & (lc[:, :-1] > 0)]
    assert same_right.mean() > 0.95, "classes form regions, not noise"
    valid = np.isfinite(scl)
    centroids = {c: v[valid & (lc == c)].mean(axis=0) for c in classes if c != WATER}
    spread = {c: np.linalg.norm(v[valid & (lc == c)] - centroids[c], axis=1).mean() for c in centroids}
    keys = sorted(centroids)
    gaps = [np.linalg.norm(centroids[a] - centroids[b]) for i, a in enumerate(keys) for b in keys[i + 1:]]
    assert min(gaps) > 1.5 * max(spread.values()), "each class has its own prototype"
    assert max(spread.values()) > 0.5, "pixels of a class vary (texture, fields, noise)"


def test_zones_agree_across_the_meridian(root):
    """The landscape is one function of lon/lat: classes match on both sides of 0 deg."""
    def classes_at(zone, lons, lats):
        g = root[zone]
        x0, y0 = g.attrs["spatial:transform"][2], g.attrs["spatial:transform"][5]
        x, y = Transformer.from_crs("EPSG:4326", g.attrs["proj:code"], always_xy=True).transform(lons, lats)
        cols = np.floor((np.asarray(x) - x0) / 10).astype(int)
        rows = np.floor((y0 - np.asarray(y)) / 10).astype(int)
        return g["sample_landcover"][0][rows, cols]

    lats = np.linspace(52.171, 52.229, 400)
    west = classes_at("utm30", np.full(400, -0.0002), lats)
    east = classes_at("utm31", np.full(400, 0.0002), lats)
    assert (west > 0).all() and (east > 0).all()
    assert (west == east).mean() > 0.9


def test_years_drift_a_little_and_one_area_changes(root):
    g = root["utm31"]
    v0, s0, lc0 = _dequantised(g, 0)
    v1, s1, lc1 = _dequantised(root["utm31"], 1)
    both = np.isfinite(s0) & np.isfinite(s1) & (lc0 == lc1)
    drift = np.linalg.norm(v1[both] - v0[both], axis=1).mean()
    assert 0.05 < drift < 3.0
    g30 = root["utm30"]
    changed = (g30["sample_landcover"][0] == CROP) & (g30["sample_landcover"][1] == BUILT)
    assert changed.sum() > 5000, "a block of cropland became built-up in the last year"


def test_global_pca_attributes(root):
    for year in (2024, 2025):
        st = root.attrs[f"geoemb:stretch.{year}"]
        comps = np.array(st["pca_components"])
        assert comps.shape == (3, 128) and len(st["pca_mean"]) == 128
        assert np.allclose(comps @ comps.T, np.eye(3), atol=1e-5)
        assert all(lo < hi for lo, hi in zip(st["min"], st["max"]))
        cdf = np.array(st["cdf"])
        assert cdf.shape == (3, 21) and (np.diff(cdf, axis=1) >= 0).all()
    # The global PCA separates classes: class means project to distinct colours.
    v, scl, lc = _dequantised(root["utm30"], 0)
    st = root.attrs["geoemb:stretch.2024"]
    proj = (v - np.array(st["pca_mean"])) @ np.array(st["pca_components"]).T
    valid = np.isfinite(scl)
    means = [proj[valid & (lc == c)].mean(axis=0) for c in (2, 3, 4, 5)]
    dists = [np.linalg.norm(a - b) for i, a in enumerate(means) for b in means[i + 1:]]
    assert min(dists) > 0.5


def _tree_digest(path):
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(path).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_generation_is_deterministic(tmp_path):
    """A store generated now has the very bytes of one generated by the same generator earlier
    (cached from an earlier test session by this environment's zarr and numpy); another seed
    gives other bytes."""
    from support.stores import cached_sample

    spec = SampleSpec(bbox=(-0.01, 52.2, 0.01, 52.21), shard=64)
    tag = f"zarr {zarr.__version__}, numpy {np.__version__}"
    earlier = cached_sample(spec, tag)
    a = sample.generate(tmp_path / "a", spec)
    assert list(a["zones"]) == ["utm30", "utm31"]
    assert _tree_digest(tmp_path / "a") == _tree_digest(earlier)
    assert _tree_digest(cached_sample(SampleSpec(bbox=spec.bbox, shard=64, seed=7), tag)) != _tree_digest(earlier)


def test_southern_area_has_negative_northings_and_descending_time(south_store):
    assert sorted(zarr.open_group(str(south_store), mode="r").group_keys()) == ["utm37"]
    g = zarr.open_group(str(south_store), mode="r")["utm37"]
    assert g.attrs["proj:code"] == "EPSG:32637"
    assert g.attrs["spatial:transform"][5] < 0, "northern code, negative northings"
    assert g["time"][:].tolist() == [2025, 2024, 2023]


def test_bad_specs_are_refused_clearly(tmp_path):
    with pytest.raises(ValueError, match="W < E"):
        SampleSpec(bbox=(1, 52, 0, 53))
    with pytest.raises(ValueError, match="multiple of the chunk"):
        SampleSpec(shard=100)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        sample.generate(tmp_path / "full", SampleSpec(bbox=(0.0, 52.2, 0.01, 52.21), shard=64))
    assert (tmp_path / "full" / "x").read_text() == "keep me"
