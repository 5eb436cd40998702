"""The sample store has the real current TESSERA layout and looks like a landscape."""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from pyproj import Transformer

from support.stores import invalid_scale_pixels
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
            _, scl, lc = _dequantised(g, t)
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
    _, scl, lc = _dequantised(root["utm31"], 1)
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
    spec = SampleSpec(bbox=(-0.01, 52.2, 0.01, 52.21), shard=64)
    a = sample.generate(tmp_path / "a", spec)
    b = sample.generate(tmp_path / "b", spec)
    assert a["zones"] == b["zones"]
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    sample.generate(tmp_path / "c", SampleSpec(bbox=spec.bbox, shard=64, seed=7))
    assert _tree_digest(tmp_path / "c") != _tree_digest(tmp_path / "a")


def test_southern_area_has_negative_northings_and_descending_time(tmp_path):
    spec = SampleSpec(bbox=(36.80, -1.30, 36.82, -1.29), shard=64, time_order="descending",
                      years=(2023, 2024, 2025))
    s = sample.generate(tmp_path / "south", spec)
    assert list(s["zones"]) == ["utm37"]
    g = zarr.open_group(str(tmp_path / "south"), mode="r")["utm37"]
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


# ---------------------------------------------------------------------------------------
# The published layouts (v2, v1, v1.1-dclimate), read back with zarr-python and checked
# against ../shared/TESSERA_LAYOUT.md and numbers worked out here from the stored arrays.
# ---------------------------------------------------------------------------------------

PUBLISHED = {"v2": "v2_store", "v1": "v1_store", "v1.1-dclimate": "dclimate_store"}


@pytest.fixture(scope="module")
def published(request):
    """{layout: (path, root group)} of the three published-layout fixtures."""
    return {name: (request.getfixturevalue(fx), zarr.open_group(str(request.getfixturevalue(fx)), mode="r"))
            for name, fx in PUBLISHED.items()}


def _valid(scale):
    with np.errstate(invalid="ignore"):
        return np.isfinite(scale) & (scale > 0) & (scale < 1)


def _zone_pixels(g, lons, lats):
    """(row, col) of the zone group's pixels under lon/lat points, from its spatial:transform."""
    t = g.attrs["spatial:transform"]
    x, y = Transformer.from_crs("EPSG:4326", g.attrs["proj:code"], always_xy=True).transform(lons, lats)
    return (np.floor((t[5] - np.asarray(y)) / 10).astype(int), np.floor((np.asarray(x) - t[2]) / 10).astype(int))


def test_default_spec_is_still_the_legacy_layout(sample_store, root):
    assert SampleSpec().layout == "legacy" and SampleSpec(layout="zones") == SampleSpec()
    assert "geoemb:stretch" not in root.attrs and "geoemb:depths" not in root.attrs
    assert "global_rgb" not in root and "embeddings_d4" not in root["utm30"]


def test_v2_depths_are_byte_exact_prefixes_with_their_own_chunks(v2_store):
    root = zarr.open_group(str(v2_store), mode="r")
    assert root.attrs["geoemb:depths"] == [{"dimensions": 4, "array": "embeddings_d4"},
                                           {"dimensions": 16, "array": "embeddings_d16"},
                                           {"dimensions": 128, "array": "embeddings"}]
    for zone in ("utm30", "utm31"):
        g = root[zone]
        emb = g["embeddings"]
        full = emb[:]
        assert np.count_nonzero(full[:, :16]) > full[:, :16].size // 4
        for d, side in ((4, 128), (16, 64)):
            arr = g[f"embeddings_d{d}"]
            assert arr.dtype == np.int8 and arr.shape == (2, d) + emb.shape[2:]
            assert arr.chunks == (1, d, side, side) and arr.shards == (1, d) + emb.shards[2:]
            assert arr.metadata.dimension_names == ("time", f"band_d{d}", "y", "x")
            assert g[f"band_d{d}"][:].tolist() == list(range(d))
            assert g[f"band_d{d}"].metadata.dimension_names == (f"band_d{d}",)
            np.testing.assert_array_equal(arr[:], full[:, :d])
            assert (v2_store / zone / f"embeddings_d{d}" / "c" / "0" / "0" / "0" / "0").is_file()
        # One scales array for every depth.
        assert sorted(k for k in g.array_keys() if "scale" in k) == ["scales"]


@pytest.mark.parametrize("layout", ["v1", "v1.1-dclimate"])
def test_v1_layouts_have_one_depth_and_no_prefix_arrays(published, layout):
    _, root = published[layout]
    assert "geoemb:depths" not in root.attrs
    assert not any(k.startswith("embeddings_") for k in root["utm30"].array_keys())


def _stretch_channels(v, entry):
    if entry["mode"] == "pca":
        return (v - np.array(entry["pca_mean"])) @ np.array(entry["pca_components"]).T
    return v[:, :3]


@pytest.mark.parametrize("layout,mode", [("v2", "bands"), ("v1", "pca"), ("v1.1-dclimate", "pca")])
def test_stretch_is_one_attribute_keyed_by_year(published, layout, mode):
    _, root = published[layout]
    attrs = root.attrs.asdict()
    assert not [k for k in attrs if k.startswith("geoemb:stretch.")]
    stretch = attrs["geoemb:stretch"]
    assert sorted(stretch) == ["2024", "2025"]
    entries = list(stretch.values())
    if layout == "v2":
        zones = attrs["geoemb:stretch_zones"]
        assert sorted(zones) == ["2024", "2025"] and all(sorted(z) == ["utm30", "utm31"] for z in zones.values())
        entries += [e for z in zones.values() for e in z.values()]
    base = {"mode", "method", "bands", "samples", "min", "max", "p_low", "p_high", "cdf"}
    pca = {"pca_components", "pca_mean", "pca_explained_variance_ratio"}
    for e in entries:
        assert set(e) == (base | pca if mode == "pca" else base)
        assert e["mode"] == mode and (e["p_low"], e["p_high"]) == (2.0, 98.0) and e["samples"] > 1000
        assert e["bands"] == (list(range(128)) if mode == "pca" else [0, 1, 2])
        cdf = np.array(e["cdf"])
        assert cdf.shape == (3, 257) and (np.diff(cdf, axis=1) > 0).all()
        assert all(lo < hi for lo, hi in zip(e["min"], e["max"]))
        if mode == "pca":
            comps = np.array(e["pca_components"])
            assert comps.shape == (3, 128) and len(e["pca_mean"]) == 128
            assert np.allclose(comps @ comps.T, np.eye(3), atol=1e-5)
            evr = e["pca_explained_variance_ratio"]
            assert len(evr) == 3 and evr[0] >= evr[1] >= evr[2] > 0 and sum(evr) < 1
    # The published range is the 2-98 % range of the year's valid pixels: worked out here
    # from every valid pixel of both zones (the generator used a sample of them).
    entry = stretch["2024"]
    vals = []
    for zone in ("utm30", "utm31"):
        g = root[zone]
        t = g["time"][:].tolist().index(2024)
        scl = g["scales"][t]
        ok = _valid(scl)
        vals.append(np.moveaxis(g["embeddings"][t], 0, -1)[ok].astype(np.float32) * scl[ok][:, None])
    ch = _stretch_channels(np.concatenate(vals).astype(np.float64), entry)
    lo, hi = np.percentile(ch, 2, axis=0), np.percentile(ch, 98, axis=0)
    span = hi - lo
    assert np.all(np.abs(np.array(entry["min"]) - lo) < 0.05 * span)
    assert np.all(np.abs(np.array(entry["max"]) - hi) < 0.05 * span)
    median = np.array(entry["cdf"])[:, 128]
    assert np.all(np.abs(median - np.median(ch, axis=0)) < 0.05 * span)


@pytest.mark.parametrize("layout", ["v2", "v1"])
def test_global_rgb_levels_follow_the_resolution_formula(published, layout):
    path, root = published[layout]
    g = root["global_rgb"]
    attrs = g.attrs.asdict()
    assert attrs["proj:code"] == "EPSG:4326" and attrs["spatial:bbox"] == [-180.0, -90.0, 180.0, 90.0]
    assert {c["name"] for c in attrs["zarr_conventions"]} >= {"multiscales", "proj:", "spatial:"}
    layout_ = attrs["multiscales"]["layout"]
    assert len(layout_) == 10 and sorted(g.group_keys(), key=int) == [str(n) for n in range(10)]
    for n, item in enumerate(layout_):
        arr = g[f"{n}/rgb"]
        shape = (1_800_000 // 2 ** n, 3_600_000 // 2 ** n)
        assert arr.shape == shape + (4,) and arr.dtype == np.uint8
        assert arr.chunks == (512, 512, 4) and arr.shards is None and arr.fill_value == 0
        assert arr.metadata.dimension_names == ("lat", "lon", "band")
        res = 0.0001 * 2 ** n
        assert item["asset"] == str(n) and item["spatial:shape"] == list(shape)
        assert np.allclose(item["spatial:transform"], [res, 0, -180, 0, -res, 90], rtol=1e-12, atol=0)
        if n:
            assert item["derived_from"] == str(n - 1) and item["resampling_method"] == "mean"
            assert item["transform"]["scale"] == [2.0, 2.0]
    assert g["9/rgb"].shape == (3515, 7031, 4)
    # Only the chunks over the sample area are written: the store stays small.
    files = [p for p in (path / "global_rgb").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert 0 < sum(p.stat().st_size for p in files) < 2_000_000
    assert len(list((path / "global_rgb" / "0" / "rgb" / "c").rglob("*"))) < 20


def _level0_window(root):
    """Level-0 rows/cols of the preview over the store's bbox."""
    w, s, e, n = root.attrs["tessera:sample"]["bbox"]
    r0, r1 = int((90 - n) / 0.0001) - 2, int((90 - s) / 0.0001) + 2
    c0, c1 = int((w + 180) / 0.0001) - 2, int((e + 180) / 0.0001) + 2
    return r0, r1, c0, c1


@pytest.mark.parametrize("layout", ["v2", "v1"])
def test_global_rgb_colours_are_the_year_stretch_of_the_pixel_under_each_centre(published, layout):
    _, root = published[layout]
    year = root["global_rgb"].attrs["year"]
    entry = root.attrs["geoemb:stretch"][str(year)]
    assert year == 2025 and entry["mode"] == ("bands" if layout == "v2" else "pca")
    r0, r1, c0, c1 = _level0_window(root)
    rgba = root["global_rgb/0/rgb"][r0:r1, c0:c1]
    lat = 90 - (np.arange(r0, r1) + 0.5) * 0.0001
    lon = -180 + (np.arange(c0, c1) + 0.5) * 0.0001
    checked = {"colour": 0, "nodata": 0}
    rng = np.random.default_rng(5)
    for zone, lon_ok in (("utm30", (lon < -0.002)), ("utm31", (lon > 0.002))):
        g = root[zone]
        t = g["time"][:].tolist().index(year)
        scl, emb = g["scales"][t], g["embeddings"][t]
        ii, jj = np.meshgrid(np.arange(len(lat)), np.flatnonzero(lon_ok), indexing="ij")
        ii, jj = ii.ravel(), jj.ravel()
        rows, cols = _zone_pixels(g, lon[jj], lat[ii])
        inside = (rows >= 0) & (rows < scl.shape[0]) & (cols >= 0) & (cols < scl.shape[1])
        s = np.where(inside, scl[rows.clip(0, scl.shape[0] - 1), cols.clip(0, scl.shape[1] - 1)], np.inf)
        good = _valid(s)
        # Colours: 300 preview pixels over valid data, computed by hand.
        pick = rng.choice(np.flatnonzero(good), 300, replace=False)
        v = emb[:, rows[pick], cols[pick]].T.astype(np.float32) * s[pick][:, None]
        ch = _stretch_channels(v.astype(np.float64), entry)
        lo, hi = np.array(entry["min"]), np.array(entry["max"])
        expected = np.floor(np.clip((ch - lo) / (hi - lo), 0, 1) * 255)
        got = rgba[ii[pick], jj[pick]]
        assert (got[:, 3] == 255).all()
        assert np.abs(got[:, :3].astype(int) - expected).max() <= 1
        checked["colour"] += len(pick)
        # No data (water NaN, +inf outside the area or unembedded, out-of-range scales): alpha 0.
        empty = ~good
        assert (rgba[ii[empty], jj[empty]] == 0).all()
        checked["nodata"] += int(empty.sum())
    assert checked["colour"] == 600 and checked["nodata"] > 10_000
    # Colours vary with the land cover (bands 1-3 of v2 separate the classes).
    assert len(np.unique(rgba[rgba[..., 3] == 255][:, :3] // 32, axis=0)) > 10


@pytest.mark.parametrize("layout", ["v2", "v1"])
def test_coarser_levels_are_2x2_means_with_partial_alpha_at_edges(published, layout):
    _, root = published[layout]
    r0, r1, c0, c1 = _level0_window(root)
    r0, c0 = r0 // 512 * 512, c0 // 512 * 512
    r1, c1 = -(-r1 // 512) * 512, -(-c1 // 512) * 512
    prev = root["global_rgb/0/rgb"][r0:r1, c0:c1].astype(np.uint16)
    for n in range(1, 10):
        r0, r1, c0, c1 = r0 // 2, r1 // 2, c0 // 2, c1 // 2
        cur = root[f"global_rgb/{n}/rgb"][r0:r1, c0:c1]
        expected = (prev[0::2, 0::2] + prev[1::2, 0::2] + prev[0::2, 1::2] + prev[1::2, 1::2]) // 4
        np.testing.assert_array_equal(cur, expected)
        if n == 1:
            alpha = cur[..., 3]
            assert ((alpha > 0) & (alpha < 255)).sum() > 100, "edges carry partial alpha"
            assert (alpha == 255).sum() > 10_000
        prev = cur.astype(np.uint16)
    # Outside the area the pyramid is empty (fill 0, chunks absent).
    assert not root["global_rgb/0/rgb"][r0 * 512:r0 * 512 + 8, 0:8].any()


@pytest.mark.parametrize("layout,expected", [
    ("v2", {1.0e6, 3.5, 1.0, 0.0, np.float32(-0.02)}),
    ("v1", {np.float32(3.0e38), 1.0e6, 3.5, 1.0, 250.0}),
])
def test_out_of_range_scales_sit_where_recorded_with_nonzero_values(published, layout, expected):
    _, root = published[layout]
    found = set()
    for zone in ("utm30", "utm31"):
        g = root[zone]
        recorded = g["sample_landcover"].attrs["invalid_scale_pixels"]
        assert len(recorded) == 10
        scl, emb = g["scales"][:], g["embeddings"]
        for t, row, col, s in recorded:
            assert scl[t, row, col] == np.float32(s) and not 0 < s < 1
            assert np.count_nonzero(emb[t, :, row, col]) > 64, "garbage pixels keep their int8 values"
            assert g["sample_landcover"][t, row, col] > 1, "on land"
            found.add(np.float32(s))
        # Every other finite scale is valid: the record is complete.
        finite = np.isfinite(scl)
        bad = finite & ~_valid(scl)
        assert sorted(zip(*np.nonzero(bad))) == sorted((t, r, c) for t, r, c, _ in recorded)
    assert found == {np.float32(x) for x in expected}


def test_invalid_scale_pixels_helper_gives_their_centres(v2_store, dclimate_store):
    """support.stores.invalid_scale_pixels: the lon/lat it gives lands on the recorded pixel."""
    root = zarr.open_group(str(v2_store), mode="r")
    pixels = invalid_scale_pixels(v2_store)
    assert len(pixels) == 20 and {p["year"] for p in pixels} == {2024, 2025}
    for p in pixels:
        g = root[p["zone"]]
        rows, cols = _zone_pixels(g, [p["lon"]], [p["lat"]])
        assert (rows[0], cols[0]) == (p["row"], p["col"])
        t = g["time"][:].tolist().index(p["year"])
        assert g["scales"][t, p["row"], p["col"]] == np.float32(p["scale"])
    assert invalid_scale_pixels(dclimate_store) == []


def test_dclimate_has_nan_nodata_only_and_observation_counts(dclimate_store):
    root = zarr.open_group(str(dclimate_store), mode="r")
    assert "global_rgb" not in root and "geoemb:depths" not in root.attrs
    for zone in ("utm30", "utm31"):
        g = root[zone]
        scl = g["scales"][:]
        assert not np.isinf(scl).any(), "no +inf anywhere"
        assert math.isnan(g["scales"].fill_value)
        lc = g["sample_landcover"][:]
        assert np.isnan(scl[lc == WATER]).all() and np.isnan(scl[lc == 0]).all()
        finite = np.isfinite(scl)
        assert _valid(scl[finite]).all()
        counts = {}
        for name in ("s1_asc_obs_count", "s1_desc_obs_count", "s2_obs_count"):
            arr = g[name]
            assert arr.shape == scl.shape and arr.dtype == np.uint16
            assert arr.metadata.dimension_names == ("time", "y", "x")
            counts[name] = arr[:]
            assert (counts[name][~finite] == 0).all(), "0 where there is no data"
        s2, asc, desc = counts["s2_obs_count"], counts["s1_asc_obs_count"], counts["s1_desc_obs_count"]
        assert 10 <= s2[finite].min() and s2[finite].max() <= 70 and s2[finite].std() > 3
        assert 20 <= asc[finite].min() and asc[finite].max() <= 40
        assert desc[finite].max() <= 40
    # A gap of the descending orbit in the west: embedded pixels with no descending pass.
    g = root["utm30"]
    finite = np.isfinite(g["scales"][:])
    desc = g["s1_desc_obs_count"][:]
    assert 0.05 < (desc[finite] == 0).mean() < 0.9
    assert (desc[finite] > 0).any()


def _dequantised_depth(g, t, array):
    emb, scl = g[array][t], g["scales"][t]
    ok = _valid(scl)
    return np.moveaxis(emb, 0, -1)[ok].astype(np.float32) * scl[ok][:, None], g["sample_landcover"][t][ok]


def test_v2_dimensions_are_ordered_by_importance(published):
    ratios = {}
    for layout in ("v2", "v1"):
        v, _ = _dequantised_depth(published[layout][1]["utm31"], 0, "embeddings")
        var = v.var(axis=0)
        ratios[layout] = var[:4].mean() / var[99:].mean()
    assert ratios["v2"] > 50, "the first dimensions carry the variance"
    assert ratios["v1"] < 5, "v1 dimensions are not ordered"
    # Depth 4 alone separates the land-cover classes: nearest class mean, fitted on 2024
    # and tested on 2025 (both zones), against the ground truth.
    root = published["v2"][1]
    train, y_train = (np.concatenate(a) for a in zip(*(_dequantised_depth(root[z], 0, "embeddings_d4")
                                                       for z in ("utm30", "utm31"))))
    test, y_test = (np.concatenate(a) for a in zip(*(_dequantised_depth(root[z], 1, "embeddings_d4")
                                                     for z in ("utm30", "utm31"))))
    classes = np.unique(y_train)
    assert len(classes) == 5
    means = np.stack([train[y_train == c].mean(axis=0) for c in classes])
    pred = classes[np.argmin(((test[:, None, :] - means[None]) ** 2).sum(axis=-1), axis=1)]
    assert (pred == y_test).mean() > 0.95


@pytest.mark.parametrize("layout", ["v2", "v1", "v1.1-dclimate"])
def test_published_layouts_are_deterministic(tmp_path, layout):
    spec = SampleSpec(bbox=(-0.004, 52.2, 0.004, 52.204), shard=128, layout=layout, preview_levels=4)
    a = sample.generate(tmp_path / "a", spec)
    b = sample.generate(tmp_path / "b", spec)
    assert {k: v for k, v in a.items() if k not in ("path", "seconds")} == \
        {k: v for k, v in b.items() if k not in ("path", "seconds")}
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")


def test_published_layout_specs_are_checked():
    with pytest.raises(ValueError, match="multiple of 128"):
        SampleSpec(layout="v2", shard=64)
    with pytest.raises(ValueError, match="layout must be one of"):
        SampleSpec(layout="v3")
    SampleSpec(layout="v1", shard=64)  # no depth arrays, any shard


def _cli_sample(out, *args, shard="128"):
    repo = Path(sample.__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-m", "tessera_qgis", "sample", str(out), *args, "--bbox",
                           "0.001,52.2,0.004,52.202", "--shard", shard, "--preview-levels", "3", "--json"],
                          capture_output=True, text=True, cwd=repo,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(repo), "PROJ_DATA": "/usr/share/proj"})


def test_cli_sample_writes_v2_by_default_and_other_layouts_on_request(tmp_path):
    res = _cli_sample(tmp_path / "v2")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["layout"] == "v2" and out["depths"] == [4, 16, 128] and out["preview"]["levels"] == 3
    root = zarr.open_group(str(tmp_path / "v2"), mode="r")
    assert "embeddings_d4" in root["utm31"] and "2/rgb" in root["global_rgb"]
    res = _cli_sample(tmp_path / "v1", "--layout", "v1")
    assert res.returncode == 0, res.stderr
    root = zarr.open_group(str(tmp_path / "v1"), mode="r")
    assert root.attrs["geoemb:stretch"]["2025"]["mode"] == "pca" and "geoemb:depths" not in root.attrs
    res = _cli_sample(tmp_path / "bad", "--layout", "v2", shard="64")
    assert res.returncode == 1 and "multiple of 128" in res.stderr and "Traceback" not in res.stderr
