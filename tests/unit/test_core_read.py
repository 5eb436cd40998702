"""Reading extents: values equal what zarr-python reads directly, in every CRS, across zones,
years, edge chunks and nodata; extents outside the data give nodata, not errors."""
from __future__ import annotations

import numpy as np
import pytest
import zarr
from pyproj import Transformer

from tessera_qgis.core.errors import ExtentError
from tessera_qgis.core.region import lonlat_bounds, plan, read_extent, read_grid, read_grid_quantised
from tessera_qgis.core.store import open_store


def _assert_window_matches(win, g, t, rows, cols):
    """Bit-exact before dequantisation, with the window clipped to the array (outside: nodata)."""
    h, w = g.attrs["spatial:shape"]
    r0, r1, c0, c1 = max(rows[0], 0), min(rows[1], h), max(cols[0], 0), min(cols[1], w)
    sub = (slice(r0 - rows[0], r1 - rows[0]), slice(c0 - cols[0], c1 - cols[0]))
    want_s = g["scales"][t, r0:r1, c0:c1]
    want_q = g["embeddings"][t, :, r0:r1, c0:c1]
    np.testing.assert_array_equal(win.scales[sub], want_s)
    valid = np.isfinite(want_s)
    np.testing.assert_array_equal(win.q[(slice(None),) + sub][:, valid], want_q[:, valid])
    outside = np.ones(win.scales.shape, bool)
    outside[sub] = False
    assert np.isposinf(win.scales[outside]).all() and (win.q[:, outside] == 0).all()


@pytest.mark.parametrize("zone", ["utm30", "utm31"])
@pytest.mark.parametrize("year,t", [(2024, 0), (2025, 1)])
@pytest.mark.parametrize("rows,cols", [
    ((0, 40), (0, 40)),            # top-left corner chunk
    ((250, 262), (250, 262)),      # across a shard corner (shards are 256)
    ((700, 800), (480, 530)),      # beyond the array's bottom-right edge
    ((-10, 20), (-5, 3)),          # before its top-left
    ((333, 334), (101, 102)),      # one pixel
])
def test_windows_bit_exact(store, ref, zone, year, t, rows, cols):
    win = store.zones[zone].read(year, rows, cols)
    _assert_window_matches(win, ref[zone], t, rows, cols)


def test_dequantised_values_and_nodata(store, ref):
    win = store.zones["utm31"].read(2025, (0, 768), (0, 512))
    vals = win.dequantised([1, 64, 128])
    g = ref["utm31"]
    s = g["scales"][1]
    with np.errstate(invalid="ignore"):
        want = g["embeddings"][1][[0, 63, 127]].astype(np.float32) * s
    valid = np.isfinite(s)
    assert np.isnan(s).any() and np.isposinf(s[s.shape[0] // 2]).any(), "water and the unembedded strip"
    np.testing.assert_array_equal(vals[:, valid], want[:, valid])
    assert np.isnan(vals[:, ~valid]).all()
    assert vals.dtype == np.float32


def test_extent_in_lonlat_spans_both_zones(store, ref):
    bounds = (-0.01, 52.195, 0.01, 52.205)
    wins = read_extent(store, bounds, "EPSG:4326", 2024)
    assert [w.zone.name for w in wins] == ["utm30", "utm31"]
    for w in wins:
        assert w.zone.crs == ref[w.zone.name].attrs["proj:code"]
        a, _, c, _, e, f = w.transform
        x0, y0 = ref[w.zone.name].attrs["spatial:transform"][2], ref[w.zone.name].attrs["spatial:transform"][5]
        assert (c - x0) / 10 == w.col0 and (y0 - f) / 10 == w.row0
        # The window covers the part of the extent in that zone, and no more than a pixel beyond.
        tr = Transformer.from_crs(w.zone.crs, "EPSG:4326", always_xy=True)
        h, wd = w.scales.shape
        lon0, lat1 = tr.transform(c, f)
        lon1, lat0 = tr.transform(c + 10 * wd, f - 10 * h)
        assert lat0 <= 52.195 + 1e-4 and lat1 >= 52.205 - 1e-4
        if w.zone.name == "utm30":
            assert lon0 <= -0.0099 and lon1 >= -0.0002
        else:
            assert lon0 <= 0.0002 and lon1 >= 0.0099
        _assert_window_matches(w, ref[w.zone.name], 0, (w.row0, w.row0 + h), (w.col0, w.col0 + wd))


def test_extents_in_web_mercator_and_utm_match_lonlat(store):
    ll = plan(store, (0.005, 52.195, 0.015, 52.2), "EPSG:4326")
    t = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    (x0, x1), (y0, y1) = t.transform([0.005, 0.015], [52.195, 52.2])
    merc = plan(store, (x0, y0, x1, y1), "EPSG:3857")
    assert [p.zone.name for p in merc] == [p.zone.name for p in ll] == ["utm31"]
    assert abs(merc[0].rows[0] - ll[0].rows[0]) <= 1 and abs(merc[0].cols[1] - ll[0].cols[1]) <= 1
    zone = store.zones["utm31"]
    a, _, cx, _, e, fy = zone.transform
    utm = plan(store, (cx + 1000, fy - 3000, cx + 2000, fy - 2500), "EPSG:32631")
    assert len(utm) == 1 and utm[0].cols == (100, 200) and utm[0].rows == (250, 300)


def test_extents_outside_the_data_are_nodata_not_errors(store):
    assert plan(store, (10.0, 45.0, 10.1, 45.1), "EPSG:4326") == []
    assert read_extent(store, (10.0, 45.0, 10.1, 45.1), "EPSG:4326", 2024) == []
    # Partly outside: the window is clipped to the zone's array.
    parts = plan(store, (0.05, 52.2, 0.5, 52.6), "EPSG:4326")
    assert [p.zone.name for p in parts] == ["utm31"]
    assert parts[0].cols[1] == store.zones["utm31"].shape[1] and parts[0].rows[0] == 0
    grid = read_grid(store, 2024, "EPSG:4326", (0.0001, 0, 10.0, 0, -0.0001, 45.1), 50, 40, bands=[1])
    assert grid.shape == (1, 40, 50) and np.isnan(grid).all()


@pytest.mark.parametrize("bounds", [
    (1, 2, 1, 3), (2, 2, 1, 3), (float("nan"), 1, 2, 3), (0, float("inf"), 1, 2), (1, 2, 3),
])
def test_bad_extents_have_clear_messages(store, bounds):
    with pytest.raises(ExtentError, match="empty or inverted|not finite|four numbers"):
        plan(store, bounds, "EPSG:4326")


def test_extent_beyond_utm_latitudes(store):
    with pytest.raises(ExtentError, match="outside the UTM latitudes"):
        lonlat_bounds((0, 85, 1, 89), "EPSG:4326")


def test_read_grid_is_nearest_and_seamless_across_the_meridian(store, ref):
    # A Web Mercator grid straddling 0 degrees at about 10 m: every land pixel is filled and
    # every value is an exact source value (nearest neighbour, never blended).
    t = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    (x0, x1), (y0, y1) = t.transform([-0.003, 0.003], [52.199, 52.203])
    res = 16.0
    w, h = int((x1 - x0) / res), int((y1 - y0) / res)
    q, s = read_grid_quantised(store, 2024, "EPSG:3857", (res, 0, x0, 0, -res, y1), w, h)
    # In 2024 every pixel of the area is embedded land (finite) or water (NaN): +inf would be
    # a hole between the zones.
    assert not np.isposinf(s).any(), "no seam of holes at the meridian"
    valid = np.isfinite(s)
    assert valid.mean() > 0.5
    scales = np.concatenate([ref[z]["scales"][0].ravel() for z in ("utm30", "utm31")])
    assert np.isin(s[valid], scales).all()
    vals = read_grid(store, 2024, "EPSG:3857", (res, 0, x0, 0, -res, y1), w, h, bands=[2])
    np.testing.assert_allclose(vals[0][valid], q[1][valid].astype(np.float32) * s[valid])


def test_southern_store_negative_northings_and_descending_time(south_store):
    store = open_store(south_store)
    zone = store.zones["utm37"]
    assert zone.transform[5] < 0
    assert zone.years == {2025: 0, 2024: 1, 2023: 2}, "years by value, not position"
    g = zarr.open_group(str(south_store), mode="r")["utm37"]
    win = zone.read(2023, (20, 60), (30, 90))
    _assert_window_matches(win, g, 2, (20, 60), (30, 90))
    px = store.pixel(36.815, -1.30, 2024)
    assert px["zone"] == "utm37" and px["valid"]
    want = g["embeddings"][1, :, px["row"], px["col"]].astype(np.float32) * g["scales"][1, px["row"], px["col"]]
    np.testing.assert_array_equal(np.array(px["embedding"], dtype=np.float32), want)
    parts = plan(store, (36.81, -1.305, 36.82, -1.295), "EPSG:4326")
    assert len(parts) == 1 and parts[0].rows[1] - parts[0].rows[0] in (111, 112, 113)


def test_band_selection_and_strips_equal_the_full_read(store, monkeypatch):
    import tessera_qgis.core.region as region
    from tessera_qgis.core.layerspec import LayerSpec
    from tessera_qgis.core.pca import PCA
    from tessera_qgis.core.storeref import StoreRef
    from tessera_qgis.core.view import View

    full = store.zones["utm31"].read(2024, (100, 300), (50, 260))
    some = store.zones["utm31"].read_embeddings(2024, (100, 300), (50, 260), bands=[3, 77, 128])
    np.testing.assert_array_equal(some, full.q[[2, 76, 127]])
    t = (10.0, 0.0, store.zones["utm31"].transform[2] + 500, 0.0, -10.0, store.zones["utm31"].transform[5] - 1000)
    whole = read_grid(store, 2024, "EPSG:32631", t, 200, 150)
    monkeypatch.setattr(region, "REDUCE_PIXELS", 7)  # force tiny blocks
    stripped = read_grid(store, 2024, "EPSG:32631", t, 200, 150)
    np.testing.assert_array_equal(stripped, whole)
    pca = PCA.from_stretch(store.stretch(2024))
    comps = View(store, LayerSpec(store=StoreRef(store.url), year=2024, pca="global")).values(
        "EPSG:32631", t, 200, 150)
    np.testing.assert_allclose(comps, pca.project(whole), rtol=1e-4, atol=1e-4)


def test_zoomed_out_grid_fetches_only_the_chunks_it_samples(sample_store, sample_http):
    """At 640 m per output pixel each output pixel samples one source pixel out of every
    2 x 2 chunks: about a quarter of the embeddings chunks are fetched, not all."""
    def emb_bytes():
        return sum(r.bytes for r in sample_http.requests()
                   if "/embeddings/" in r.path and not r.range.startswith("bytes=-"))

    z = open_store(sample_http.store_url).zones["utm31"]
    sample_http.reset()
    z.read(2024, (0, 768), (0, 512))
    everything = emb_bytes()
    store = open_store(sample_http.store_url)
    t = (640.0, 0.0, z.transform[2], 0.0, -640.0, z.transform[5])
    sample_http.reset()
    grid = read_grid(store, 2024, "EPSG:32631", t, 8, 12, bands=[1])
    assert np.isfinite(grid).mean() > 0.5
    assert 0 < emb_bytes() < 0.35 * everything


@pytest.mark.parametrize("bands", [None, [128, 1, 64], [2, 3]])
def test_scattered_pixels_equal_zarr(store, ref, bands):
    """read_pixels (what a map view gathers) gives zarr-python's values at every pixel asked
    for, inside and outside the zone's array, in the order asked for."""
    rng = np.random.default_rng(7)
    zone = store.zones["utm31"]
    h, w = ref["utm31"].attrs["spatial:shape"]
    rows = np.r_[rng.integers(0, h, 400), -3, h + 5, 10]
    cols = np.r_[rng.integers(0, w, 400), 4, 7, w]
    q, s = zone.read_pixels(2025, rows, cols, bands=bands)
    g = ref["utm31"]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    scales = np.full(len(rows), np.inf, np.float32)
    scales[inside] = g["scales"].vindex[np.full(inside.sum(), 1), rows[inside], cols[inside]]
    np.testing.assert_array_equal(s, scales)
    b = list(range(128)) if bands is None else [x - 1 for x in bands]
    want = np.zeros((len(b), len(rows)), np.int8)
    for i, (r, c) in enumerate(zip(rows, cols)):
        if inside[i]:
            want[:, i] = g["embeddings"][1, b, r, c]
    valid = np.isfinite(scales)
    assert valid.sum() > 200
    np.testing.assert_array_equal(q[:, valid], want[:, valid])
    assert (q[:, ~inside] == 0).all()


def test_scattered_pixels_on_the_per_year_layout(per_year_store):
    st = open_store(per_year_store / "2024.zarr")
    zone = next(iter(st.zones.values()))
    g = zarr.open_group(str(per_year_store / "2024.zarr"), mode="r")[zone.name]
    rows, cols = np.array([0, 5, 17, 40]), np.array([3, 60, 9, 33])
    q, s = zone.read_pixels(2024, rows, cols, bands=[1, 7])
    np.testing.assert_array_equal(s, g["scales"][:41, :61][rows, cols])
    valid = np.isfinite(s)
    assert valid.any()
    np.testing.assert_array_equal(q[:, valid], g["embeddings"][:41, :61, :][rows, cols][:, [0, 6]].T[:, valid])


def _expected_grid(ref, zone, year_index, crs, transform, width, height, bands):
    """Nearest source pixel of each output pixel centre, worked out with pyproj and read with
    zarr-python: (q (bands, h, w), scales (h, w)); +inf outside the zone's array."""
    g = ref[zone.name]
    a, _, c, _, e, f = transform
    xs, ys = np.meshgrid(c + a * (np.arange(width) + 0.5), f + e * (np.arange(height) + 0.5))
    zx, zy = Transformer.from_crs(crs, zone.crs, always_xy=True).transform(xs, ys)
    za, _, zx0, _, ze, zy0 = g.attrs["spatial:transform"]
    col = np.floor((zx - zx0) / za).astype(int)
    row = np.floor((zy - zy0) / ze).astype(int)
    h, w = g.attrs["spatial:shape"]
    inside = (row >= 0) & (row < h) & (col >= 0) & (col < w)
    r0, r1, c0, c1 = row[inside].min(), row[inside].max() + 1, col[inside].min(), col[inside].max() + 1
    emb = g["embeddings"][year_index, :, r0:r1, c0:c1]
    scl = g["scales"][year_index, r0:r1, c0:c1]
    s = np.full((height, width), np.inf, np.float32)
    q = np.zeros((len(bands), height, width), np.int8)
    s[inside] = scl[row[inside] - r0, col[inside] - c0]
    q[:, inside] = emb[[b - 1 for b in bands]][:, row[inside] - r0, col[inside] - c0]
    return q, s


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("crs,res", [("EPSG:32631", 10.0), ("EPSG:3857", 16.0), ("EPSG:32631", 7.0),
                                     ("EPSG:32631", 12.0)])
def test_grids_near_the_store_resolution_equal_zarr_whichever_path(store, ref, monkeypatch, crs, res, dense):
    """A grid near the store's own resolution is read as a window (the dense path: pixels fill
    their bounding window), others pixel by pixel; both give each output pixel its nearest
    source pixel exactly, as pyproj and zarr-python place and read it."""
    import tessera_qgis.core.region as region

    if not dense:
        monkeypatch.setattr(region, "DENSE_RATIO", 0.0)  # every part pixel by pixel
    zone = store.zones["utm31"]
    x0, y1 = zone.transform[2] + 1234.0, zone.transform[5] - 987.0
    if crs != zone.crs:
        x0, y1 = Transformer.from_crs(zone.crs, crs, always_xy=True).transform(x0, y1)
    t, w, h = (res, 0.0, x0, 0.0, -res, y1), 180, 140
    calls = []
    monkeypatch.setattr(type(zone), "read_pixels",
                        lambda self, *a, _orig=type(zone).read_pixels, **k: calls.append(1) or _orig(self, *a, **k))
    bands = [2, 1, 77]
    q, s = read_grid_quantised(store, 2025, crs, t, w, h, bands=bands)
    assert bool(calls) is not dense, "the path under test was taken"
    want_q, want_s = _expected_grid(ref, zone, 1, crs, t, w, h, bands)
    np.testing.assert_array_equal(s, want_s)
    valid = np.isfinite(want_s)
    assert valid.mean() > 0.5
    np.testing.assert_array_equal(q[:, valid], want_q[:, valid])
    vals = read_grid(store, 2025, crs, t, w, h, bands=[77])
    np.testing.assert_array_equal(np.isnan(vals[0]), ~valid)
    np.testing.assert_allclose(vals[0][valid], want_q[2][valid].astype(np.float32) * want_s[valid])


def test_a_window_read_fetches_only_the_chunks_holding_wanted_pixels(sample_http, ref):
    """Zone.read(wanted=mask): chunks holding no wanted pixel are neither fetched nor read;
    the wanted pixels equal zarr-python's."""
    store = open_store(sample_http.store_url)
    zone = store.zones["utm31"]
    ch = zone.embeddings.chunk_shape[zone.emb_axes.index("y")]
    h, w = zone.shape
    r0, c0 = (h // 2 // ch) * ch + ch // 2, (w // 2 // ch) * ch + ch // 2  # mid-zone, on land
    rows, cols = (r0, r0 + 3 * ch), (c0, c0 + 3 * ch)  # over 4 x 4 chunks
    wanted = np.zeros((3 * ch, 3 * ch), bool)
    wanted[:4, :4] = True  # only in the first chunk
    sample_http.reset()
    win = zone.read(2024, rows, cols, wanted=wanted, bands=[1, 2, 3])
    got = [r for r in sample_http.requests() if "/embeddings" in r.path and not r.range.startswith("bytes=-")]
    fetched = sum(r.bytes for r in got)
    g = ref["utm31"]
    assert np.isfinite(win.scales[:4, :4]).all()
    np.testing.assert_array_equal(win.scales[:4, :4], g["scales"][0, rows[0]:rows[0] + 4, cols[0]:cols[0] + 4])
    np.testing.assert_array_equal(win.q[:, :4, :4], g["embeddings"][0, :3, rows[0]:rows[0] + 4, cols[0]:cols[0] + 4])
    assert np.isposinf(win.scales[-4:, -4:]).all(), "a chunk without wanted pixels is not read"
    sample_http.reset()
    open_store(sample_http.store_url).zones["utm31"].read(2024, rows, cols, bands=[1, 2, 3])
    everything = sum(r.bytes for r in sample_http.requests()
                     if "/embeddings" in r.path and not r.range.startswith("bytes=-"))
    assert 0 < fetched <= everything / 8  # 1 chunk of the 16 (the same depth either way)


def test_a_few_bands_of_a_chunk_are_all_that_is_kept_and_whole_chunks_serve_them(sample_http, ref):
    """bands= of 128-band chunks: each chunk fetched is decoded and only those bands are kept
    in memory (under a key of their own); the values equal zarr-python's in the order asked
    for; a warm re-read makes no request; a read of every band fetches the chunks whole,
    and a read of other bands after it is pasted from those without a request."""
    store = open_store(sample_http.store_url)
    zone = store.zones["utm31"]
    g = ref["utm31"]
    rows, cols = (100, 300), (50, 260)
    lru = zone.embeddings.caches.chunks
    band_axis = zone.emb_axes.index("band")

    def data_requests():
        return [r for r in sample_http.requests() if "/embeddings" in r.path and not r.range.startswith("bytes=-")]

    def expect(bands):
        return g["embeddings"][0][[b - 1 for b in bands], rows[0]:rows[1], cols[0]:cols[1]]

    bands = [77, 5, 20]  # beyond 16: the 128-band array, whatever depths the store has
    sample_http.reset()
    win = zone.read(2024, rows, cols, bands=bands)
    valid = np.isfinite(win.scales)
    assert valid.mean() > 0.5 and data_requests()
    np.testing.assert_array_equal(win.q[:, valid], expect(bands)[:, valid])
    kept = [a for key, a in lru._items.items() if key[0].startswith(zone.embeddings.path)]
    assert kept and {a.shape[band_axis] for a in kept} == {3}

    sample_http.reset()
    np.testing.assert_array_equal(zone.read(2024, rows, cols, bands=bands).q, win.q)
    assert not data_requests(), "a warm re-read is served from memory"

    full = zone.read(2024, rows, cols)
    assert data_requests(), "the kept bands cannot serve every band: whole chunks are fetched"
    np.testing.assert_array_equal(full.q[:, valid], expect(range(1, 129))[:, valid])
    sample_http.reset()
    other = zone.read(2024, rows, cols, bands=[128, 2, 2])
    assert not data_requests(), "bands of chunks held whole come from memory"
    np.testing.assert_array_equal(other.q[:, valid], expect([128, 2, 2])[:, valid])


def test_a_map_view_of_a_few_bands_keeps_only_those_and_whole_chunks_serve_them(sample_http, ref):
    """read_reduced (a map view's values worked out chunk by chunk) for a few bands of
    128-band chunks: only those bands are kept in memory, the values are those of
    zarr-python's bands in the order asked for, cold, warm (no request) and from chunks held
    whole by an earlier read of every band."""
    zone = open_store(sample_http.store_url).zones["utm31"]
    g = ref["utm31"]
    rows, cols = (60, 230), (40, 250)
    lru = zone.embeddings.caches.chunks
    band_axis = zone.emb_axes.index("band")
    bands = [77, 5, 20]  # beyond 16: the 128-band array
    want = g["embeddings"][0][[b - 1 for b in bands], rows[0]:rows[1], cols[0]:cols[1]].astype(np.float32)

    def data_requests():
        return [r for r in sample_http.requests() if "/embeddings" in r.path and not r.range.startswith("bytes=-")]

    def view(bands_):
        got = zone.read_reduced(2024, rows, cols, bands_, lambda q: q.astype(np.float32), len(bands_))
        assert got is not None
        return got

    sample_http.reset()
    values, s = view(bands)
    valid = np.isfinite(s)
    assert valid.mean() > 0.5 and data_requests()
    np.testing.assert_array_equal(values[:, valid], want[:, valid])
    kept = [a for key, a in lru._items.items() if key[0].startswith(zone.embeddings.path)]
    assert kept and {a.shape[band_axis] for a in kept} == {3}, "only the three bands are kept"

    sample_http.reset()
    np.testing.assert_array_equal(view(bands)[0][:, valid], want[:, valid])
    assert not data_requests(), "a warm view is served from memory"

    zone.read(2024, rows, cols)  # every band: the chunks fetched and kept whole
    sample_http.reset()
    other = [128, 2, 2]
    got = view(other)[0]
    assert not data_requests(), "bands of chunks held whole come from memory"
    np.testing.assert_array_equal(
        got[:, valid], g["embeddings"][0][[b - 1 for b in other], rows[0]:rows[1], cols[0]:cols[1]][:, valid])


@pytest.mark.parametrize("bands", [None, [2, 1], [100, 3, 50]])
def test_a_window_partly_in_memory_equals_zarr(sample_store, ref, bands):
    """Chunks in memory are pasted row by row (joined along x), the rest fetched: a window
    over two earlier ones (their chunks in memory, in broken rows, with gaps and single
    chunks) gives zarr-python's values; so does reading it again, all from memory."""
    zone = open_store(sample_store).zones["utm31"]
    g = ref["utm31"]
    zone.read(2024, (37, 101), (5, 200), bands=bands)      # a band of rows, many chunks wide
    zone.read(2024, (150, 170), (90, 125), bands=bands)    # a little block further down
    zone.read(2024, (200, 215), (61, 70), bands=bands)     # a single chunk
    rows, cols = (30, 230), (3, 211)
    idx = list(range(128)) if bands is None else [b - 1 for b in bands]
    want_q = g["embeddings"][0][idx, rows[0]:rows[1], cols[0]:cols[1]]
    want_s = g["scales"][0, rows[0]:rows[1], cols[0]:cols[1]]
    for _ in range(2):
        win = zone.read(2024, rows, cols, bands=bands)
        valid = np.isfinite(win.scales)
        assert valid.mean() > 0.5
        np.testing.assert_array_equal(win.scales[valid], want_s[valid])
        np.testing.assert_array_equal(win.q[:, valid], want_q[:, valid])


def _holders(arr: np.ndarray) -> list:
    """Weak references to an array and everything down its chain of bases (views, the
    buffer's exporter): while any of them lives, the array's memory is held."""
    import weakref

    out, obj = [], arr
    while obj is not None:
        out.append(weakref.ref(obj))
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
    return out


@pytest.mark.parametrize("where", ["file", "http"])
def test_a_read_leaves_nothing_holding_its_output(sample_store, sample_http, where):
    """Once the caller lets go of a window, its arrays are freed at once, cold or warm (a
    reference cycle through the read's paste functions kept each window's output alive
    until Python's cycle collector ran: an export of 7 GB then peaked at 870 MB, not 340;
    and each decode thread kept the last callback it ran, with the read's output, until
    its next one)."""
    import gc

    zone = open_store(sample_store if where == "file" else sample_http.store_url).zones["utm31"]
    gc.disable()
    try:
        for bands in (None, [5, 40, 77], None):  # cold, cold (a few bands), warm
            win = zone.read(2024, (3, 170), (9, 160), bands=bands)
            refs = _holders(win.q) + _holders(win.scales)
            assert len(refs) >= 2
            del win
            assert [r() for r in refs] == [None] * len(refs), bands
    finally:
        gc.enable()
