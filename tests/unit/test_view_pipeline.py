"""The core view pipeline, the store reference and the store pool, without QGIS.

Expected values come from zarr-python reading the store and from numpy arithmetic done here
by hand (never from the pipeline's own helpers)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from support.analysis import with_root_attrs
from tessera_qgis.core.geo import transformer
from tessera_qgis.core.layerspec import LayerSpec, encode_vector
from tessera_qgis.core.pca import PCA
from tessera_qgis.core.pool import StorePool
from tessera_qgis.core.quant import MAX_VALID_SCALE, dequantise, sanitise_scales, valid_scales
from tessera_qgis.core.store import open_store
from tessera_qgis.core.storeref import StoreRef
from tessera_qgis.core.view import View, choose_pca, mean_embedding, mean_over_polygons, published_ranges

YEAR = 2024


def spec(store, **mode) -> LayerSpec:
    return LayerSpec(store=StoreRef(store.url), year=YEAR, **mode)


def ref_pixel(ref_group, zone: str, row: int, col: int, t: int = 0) -> tuple[np.ndarray, float]:
    """(int8 embedding, scale) of one pixel, read by zarr-python."""
    q = np.asarray(ref_group[f"{zone}/embeddings"][t, :, row, col])
    s = float(ref_group[f"{zone}/scales"][t, row, col])
    return q, s


def valid_pixel(ref_group, zone: str = "utm31") -> tuple[int, int]:
    s = np.asarray(ref_group[f"{zone}/scales"][0, 100:164, 100:164])
    r, c = np.argwhere(np.isfinite(s))[0]
    return 100 + int(r), 100 + int(c)


# -- StoreRef and the pool -------------------------------------------------------------------------
def test_store_refs_are_normalised_so_one_store_has_one_key(sample_store, monkeypatch):
    monkeypatch.chdir(sample_store.parent)
    by_name = StoreRef(sample_store.name + "/")
    assert by_name == StoreRef(str(sample_store)) == StoreRef(f"file://{sample_store}")
    assert by_name.url == str(sample_store)
    remote = StoreRef(" https://127.0.0.1:9/tessera/zarr/v2-2B-L~beta1/ ")
    assert remote.url == "https://127.0.0.1:9/tessera/zarr/v2-2B-L~beta1"  # the ~ stays literal
    assert StoreRef("s3://b/x.zarr", s3_endpoint="") == StoreRef("s3://b/x.zarr")


def test_store_ref_hides_secrets_and_keeps_them_out_of_layer_uris():
    ref = StoreRef("https://alice:hunter2@127.0.0.1:9/x.zarr", s3_endpoint="http://127.0.0.1:1", key="AKIA1",
                   secret="s3cr3t", authcfg="abc")
    assert "s3cr3t" not in repr(ref) and "AKIA1" not in repr(ref)
    shown = repr(LayerSpec(store=ref, year=2024, bands=(1,)))  # what a log line or a traceback would show
    assert "hunter2" not in shown and "s3cr3t" not in shown and "alice:***@127.0.0.1:9" in shown, shown
    assert ref.public_url == "https://alice:***@127.0.0.1:9/x.zarr"
    with pytest.raises(ValueError, match="password in the store URL"):  # the QGIS side moves it to authcfg
        LayerSpec(store=ref, year=2024, bands=(1,)).to_uri()
    ref = ref.with_(url="https://alice@127.0.0.1:9/x.zarr")
    uri = LayerSpec(store=ref, year=2024, bands=(1,)).to_uri()
    assert "s3cr3t" not in uri and "AKIA1" not in uri
    back = LayerSpec.from_uri(uri).store
    assert back == ref.without_secrets() and back.s3_endpoint == "http://127.0.0.1:1" and back.authcfg == "abc"
    opts = ref.options()
    assert (opts.key, opts.secret, opts.endpoint_url) == ("AKIA1", "s3cr3t", "http://127.0.0.1:1")


def test_the_pool_opens_a_store_once_whatever_the_spelling(sample_http):
    pool = StorePool()
    sample_http.reset()
    a = pool.get(StoreRef(sample_http.store_url + "/"))
    b = pool.get(StoreRef("  " + sample_http.store_url))
    assert a is b
    roots = [r for r in sample_http.requests() if r.path.endswith(f"{Path(sample_http.store_url).name}/zarr.json")]
    assert len(roots) == 1, [r.path for r in sample_http.requests()]


# -- validity ---------------------------------------------------------------------------------------
def test_only_scales_strictly_between_0_and_1_are_valid():
    s = np.array([0.5, 1e-9, 0.0, -0.1, 1.0, 3.5, 1e30, np.inf, np.nan], dtype=np.float32)
    assert MAX_VALID_SCALE == 1.0
    assert valid_scales(s).tolist() == [True, True, False, False, False, False, False, False, False]
    q = np.full((2, s.size), 10, dtype=np.int8)
    out = dequantise(q, s)
    assert out[0, 0] == pytest.approx(5.0) and np.isnan(out[:, 2:]).all()
    clean = sanitise_scales(s.copy())
    assert np.isposinf(clean[7]) and np.isnan(clean[2:7]).all() and clean[0] == np.float32(0.5)


@pytest.mark.parametrize("odd", [1e-45, np.nextafter(np.float32(1), np.float32(0)), 1.0, 0.0, -0.0, -1e-45,
                                 -0.5, 2.0, 3e38, np.inf, -np.inf, np.nan])
def test_one_scale_at_the_edge_of_validity_in_an_otherwise_valid_chunk(odd):
    """A chunk of valid scales is passed through as it is (a quick check): one value at or
    past either edge, anywhere in it, must still be caught. Expected: Python's own floats."""
    for where in (0, 517, 1023):
        chunk = np.full((1, 32, 32), 0.25, dtype=np.float32)
        chunk.flat[where] = np.float32(odd)
        x = float(np.float32(odd))
        out = sanitise_scales(chunk.copy())
        if math.isfinite(x) and not 0 < x < 1:
            assert math.isnan(out.flat[where]), (odd, where)
        else:
            assert out.flat[where] == chunk.flat[where] or (math.isnan(x) and math.isnan(out.flat[where]))
        rest = np.delete(out.ravel(), where)
        assert (rest == np.float32(0.25)).all()


# -- products against zarr-python ---------------------------------------------------------------------
def test_each_mode_computes_what_numpy_computes_from_zarr_values(sample_store, store, ref):
    row, col = valid_pixel(ref)
    q, s = ref_pixel(ref, "utm31", row, col)
    v = q.astype(np.float64) * s
    attrs = ref.attrs.asdict()[f"geoemb:stretch.{YEAR}"]
    comps, mean = np.array(attrs["pca_components"])[:3], np.array(attrs["pca_mean"])
    reference = np.linspace(-1, 1, 128)
    expected = {
        "bands": v[[4, 9, 99]],
        "pca": comps @ (v - mean),
        "similarity": [reference @ v / np.linalg.norm(reference) / np.linalg.norm(v)],
    }
    modes = {"bands": dict(bands=(5, 10, 100)), "pca": dict(pca="global"),
             "similarity": dict(similarity=encode_vector(reference))}
    zone = store.zones["utm31"]
    x = zone.transform[2] + 10 * (col + 0.5)
    y = zone.transform[5] - 10 * (row + 0.5)
    for name, mode in modes.items():
        view = View(store, spec(store, **mode))
        product = view.product()
        # one pixel, through the block path and through the point path
        block = product.from_quantised(q[list(np.array(product.bands) - 1)][:, None], np.array([s], np.float32))
        np.testing.assert_allclose(block[:, 0], expected[name], rtol=2e-5, atol=2e-5, err_msg=name)
        at_point = view.pixel(x, y, zone.crs)["values"]
        np.testing.assert_allclose(at_point, expected[name], rtol=2e-5, atol=2e-5, err_msg=name)
        # and on a 1-pixel grid placed on that pixel's centre, through grid_reduce
        grid = view.values(zone.crs, (10.0, 0.0, x - 5, 0.0, -10.0, y + 5), 1, 1)
        np.testing.assert_allclose(grid[:, 0, 0], expected[name], rtol=2e-5, atol=2e-5, err_msg=name)


def test_a_scale_that_is_not_valid_is_nodata_in_every_mode(store):
    q = np.full((128, 3), 7, dtype=np.int8)
    s = np.array([0.01, 2.5, 1e20], dtype=np.float32)
    for mode in (dict(bands=(1, 2, 3)), dict(pca="global"), dict(similarity=encode_vector(np.ones(128)))):
        product = View(store, spec(store, **mode)).product()
        out = product.from_quantised(q[list(np.array(product.bands) - 1)], s)
        assert np.isfinite(out[:, 0]).all() and np.isnan(out[:, 1:]).all(), mode


# -- which PCA ----------------------------------------------------------------------------------------
def test_the_global_pca_is_used_when_the_store_has_one_else_a_fit_of_the_region(sample_store, store, tmp_path):
    g = choose_pca(store, YEAR, "global")
    attrs = json.loads((sample_store / "zarr.json").read_text())["attributes"][f"geoemb:stretch.{YEAR}"]
    assert g.source == "global"
    np.testing.assert_allclose(g.components, np.array(attrs["pca_components"])[:3])
    region = ((0.0, 52.19, 0.03, 52.21), "EPSG:4326")
    assert choose_pca(store, YEAR, "view", region).source == "fit"
    saved = PCA(g.mean, g.components, g.lo - 1, g.hi + 1, "saved")
    assert choose_pca(store, YEAR, saved) is saved
    bare = open_store(with_root_attrs(sample_store, tmp_path / "bare.zarr",
                                      lambda a: [a.pop(k) for k in list(a) if "stretch" in k]))
    with pytest.raises(ValueError, match="no global PCA"):
        choose_pca(bare, YEAR, "global")
    assert choose_pca(bare, YEAR, "global", region).source == "fit"
    view = View(bare, spec(bare, pca="global"))
    assert view.needs_fit
    view.values("EPSG:4326", (0.0001, 0, 0.0, 0, -0.0001, 52.21), 50, 50)
    assert not view.needs_fit and view.pca.source == "fit"


# -- the stretch as published -------------------------------------------------------------------------
def test_the_year_keyed_stretch_object_is_read_as_published(sample_store, tmp_path):
    def to_object(a):
        entries = {k.rsplit(".", 1)[1]: dict(a.pop(k), mode="pca") for k in list(a) if k.startswith("geoemb:stretch.")}
        a["geoemb:stretch"] = entries

    st = open_store(with_root_attrs(sample_store, tmp_path / "object.zarr", to_object))
    assert st.stretch_mode(YEAR) == "pca" and choose_pca(st, YEAR, "global").source == "global"
    info = st.info()
    assert info["stretch"] == {"2024": "pca", "2025": "pca"} and info["global_pca_years"] == [2024, 2025]


def test_a_bands_stretch_gives_the_published_ranges_and_no_pca(sample_store, tmp_path):
    entry = {"mode": "bands", "bands": [0, 1, 2], "min": [-1.5, -2.0, -0.5], "max": [1.5, 2.5, 0.75]}
    st = open_store(with_root_attrs(sample_store, tmp_path / "bands.zarr",
                                    lambda a: a.update({"geoemb:stretch": {"2024": entry}})
                                    or [a.pop(k) for k in list(a) if k.startswith("geoemb:stretch.")]))
    assert st.stretch_mode(YEAR) == "bands" and st.info()["global_pca_years"] == []
    assert st.info()["stretch"] == {"2024": "bands"}
    assert published_ranges(st, YEAR, [1, 2, 3]) == [(-1.5, 1.5), (-2.0, 2.5), (-0.5, 0.75)]
    assert published_ranges(st, YEAR, [1, 2, 4]) is None
    assert View(st, spec(st, bands=(1, 2, 3))).default_ranges() == [(-1.5, 1.5), (-2.0, 2.5), (-0.5, 0.75)]
    assert View(st, spec(st, pca="global")).needs_fit


# -- areas --------------------------------------------------------------------------------------------
def test_mean_embedding_equals_the_mean_of_zarr_values(store, ref):
    zone = store.zones["utm31"]
    r0, c0 = 200, 300
    x0, y0 = zone.transform[2] + 10 * c0, zone.transform[5] - 10 * r0
    bounds = (x0 + 1, y0 - 10 * 40 + 1, x0 + 10 * 30 - 1, y0 - 1)  # 40 rows x 30 columns
    q = np.asarray(ref["utm31/embeddings"][0, :, r0:r0 + 40, c0:c0 + 30]).astype(np.float64)
    s = np.asarray(ref["utm31/scales"][0, r0:r0 + 40, c0:c0 + 30]).astype(np.float64)
    ok = np.isfinite(s)
    expected = (q * s)[:, ok].mean(axis=1)
    vector, used = mean_embedding(store, YEAR, bounds, zone.crs)
    assert used == int(ok.sum()) and used > 0
    np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="more than"):
        mean_embedding(store, YEAR, bounds, zone.crs, max_pixels=100)


def test_sample_ranges_are_percentiles_of_the_view(store, ref):
    """2 and 98 % of band 7 over a 10 m grid of a 2 x 2.56 km area, against numpy on zarr values."""
    zone = store.zones["utm31"]
    r0, c0, n = 64, 64, 256
    x0, y0 = zone.transform[2] + 10 * c0, zone.transform[5] - 10 * r0
    lon, lat = transformer(zone.crs, "EPSG:4326").transform(x0 + 1280, y0 - 1280)
    view = View(store, LayerSpec(store=StoreRef(store.url), year=YEAR, bands=(7,), crs=zone.crs))
    (lo, hi), = view.sample_ranges((x0, y0 - 10 * n, x0 + 10 * n, y0), zone.crs)
    q = np.asarray(ref["utm31/embeddings"][0, 6, r0:r0 + n, c0:c0 + n]).astype(np.float64)
    s = np.asarray(ref["utm31/scales"][0, r0:r0 + n, c0:c0 + n]).astype(np.float64)
    v = (q * s)[np.isfinite(s)]
    assert (lo, hi) == pytest.approx(tuple(np.percentile(v, [2, 98])), rel=1e-5)
    assert np.isfinite([lon, lat]).all()


@pytest.mark.gdal
def test_mean_over_polygons_uses_the_pixels_inside_each_polygon(store, ref):
    """Two rectangles far apart (by pixel centres, as GDAL rasterises them): the mean is
    over the valid pixels inside either, weighted by their counts, worked out with numpy."""
    zone = store.zones["utm31"]
    x0, y0 = zone.transform[2], zone.transform[5]
    boxes = [(100, 120, 40, 60), (300, 310, 200, 230)]  # rows r0..r1, cols c0..c1 (exclusive ends)
    shapes, values = [], []
    for r0, r1, c0, c1 in boxes:
        b = (x0 + 10 * c0 + 0.5, y0 - 10 * r1 + 0.5, x0 + 10 * c1 - 0.5, y0 - 10 * r0 - 0.5)
        wkt = f"POLYGON(({b[0]} {b[1]},{b[2]} {b[1]},{b[2]} {b[3]},{b[0]} {b[3]},{b[0]} {b[1]}))"
        shapes.append((b, wkt))
        q = np.asarray(ref["utm31/embeddings"][0, :, r0:r1, c0:c1]).astype(np.float64)
        s = np.asarray(ref["utm31/scales"][0, r0:r1, c0:c1]).astype(np.float64)
        values.append((q * s)[:, np.isfinite(s)])
    expected = np.concatenate(values, axis=1)
    vector, used = mean_over_polygons(store, YEAR, shapes, zone.crs)
    assert used == expected.shape[1] > 0
    np.testing.assert_allclose(vector, expected.mean(axis=1), rtol=1e-5, atol=1e-6)


def test_depths_come_from_the_store_and_a_prefix_is_refused_without_them(sample_store, store, tmp_path):
    from tessera_qgis.core.errors import BandError

    assert store.depths == [128] and store.info()["depths"] == [128] and store.check_depth(None) == 128
    with pytest.raises(BandError, match="not ordered by importance"):
        store.check_depth(4)
    declared = [{"dimensions": 4, "array": "embeddings_d4"}, {"dimensions": 16, "array": "embeddings_d16"},
                {"dimensions": 128, "array": "embeddings"}]
    v2 = open_store(with_root_attrs(sample_store, tmp_path / "depths.zarr",
                                    lambda a: a.update({"geoemb:depths": declared})))
    assert v2.depths == [4, 16, 128] and v2.info()["depths"] == [4, 16, 128]
    assert v2.check_depth(16) == 16
    with pytest.raises(BandError, match="depth 8 is not in this store"):
        v2.check_depth(8)


@pytest.mark.parametrize("mode", ["bands", "pca", "similarity"])
def test_a_map_view_on_the_zone_grid_equals_numpy_on_zarr_values_cold_and_panned(sample_store, ref, mode):
    """A view on the zone's own grid is worked out chunk by chunk as the chunks arrive
    (Zone.read_reduced); panned by half a view, half its chunks come from memory (done beside
    the fetch). Both equal the mode's formula applied to zarr-python's values."""
    store = open_store(sample_store)  # a store of its own: nothing in memory yet
    zone = store.zones["utm31"]
    g = ref["utm31"]
    attrs = ref.attrs.asdict()[f"geoemb:stretch.{YEAR}"]
    comps, mean = np.array(attrs["pca_components"])[:3], np.array(attrs["pca_mean"])
    reference = np.linspace(-1, 1, 128)
    modes = {"bands": dict(bands=(5, 10, 100)), "pca": dict(pca="global"),
             "similarity": dict(similarity=encode_vector(reference))}
    view = View(store, spec(store, **modes[mode]))
    r0, c0, h, w = 100, 90, 70, 80
    for dc in (0, w // 2):  # the view, then panned right by half of it
        x0, y0 = zone.transform[2] + 10 * (c0 + dc), zone.transform[5] - 10 * r0
        got = view.values(zone.crs, (10.0, 0.0, x0, 0.0, -10.0, y0), w, h)
        q = g["embeddings"][0, :, r0:r0 + h, c0 + dc:c0 + dc + w].astype(np.float64)
        s = g["scales"][0, r0:r0 + h, c0 + dc:c0 + dc + w].astype(np.float64)
        valid = np.isfinite(s) & (s > 0) & (s < 1)
        assert valid.mean() > 0.5
        v = q * s
        if mode == "bands":
            want = v[[4, 9, 99]]
        elif mode == "pca":
            want = np.tensordot(comps, v - mean[:, None, None], axes=(1, 0))
        else:
            want = (np.tensordot(reference, v, axes=(0, 0)) / np.linalg.norm(reference)
                    / np.linalg.norm(v, axis=0))[None]
        np.testing.assert_allclose(got[:, valid], want[:, valid], rtol=1e-4, atol=1e-4, err_msg=f"{mode} {dc}")
        assert np.isnan(got[:, ~valid]).all()


@pytest.mark.parametrize("size", [(1000, 700), (300, 200), (1, 70_000), (70_000, 1)])
def test_output_pixel_centres_in_a_zone_crs_match_pyproj_exactly_enough(size):
    """grid_coords: the centre of every output pixel of a web-mercator view in the zone's
    CRS, within a tenth of a pixel of pyproj's exact transform of each centre (a large view
    is interpolated between exact points, a small or one-pixel-wide one is exact)."""
    from tessera_qgis.core.geo import grid_coords

    width, height = size
    res = 12.0
    transform = (res, 0.0, 260_000.0, 0.0, -res, 6_250_000.0)  # EPSG:3857, about 2.3 E, 48.9 N
    zx, zy = grid_coords(transform, width, height, "EPSG:3857", "EPSG:32631")
    assert zx.shape == zy.shape == (height, width)
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    ex, ey = transformer("EPSG:3857", "EPSG:32631").transform(260_000.0 + res * cols, 6_250_000.0 - res * rows)
    pixel = res * math.cos(math.radians(48.9))  # a web-mercator pixel on the ground, in metres
    err = np.hypot(zx - np.asarray(ex), zy - np.asarray(ey))
    assert err.max() < 0.1 * pixel, err.max() / pixel
