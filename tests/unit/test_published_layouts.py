"""The stores as they are published (#13): depths, valid scales, observation counts, the
stretch object; read through the core and the command line, checked against zarr-python
and the server's request log (which arrays were read)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from support.servers import arrays_read
from support.stores import invalid_scale_pixels, pixel_where
from tessera_qgis.core.errors import BandError, Cancelled
from tessera_qgis.core.store import OBSERVATIONS, open_store

REPO = Path(__file__).resolve().parents[2]


def served(range_server, path):
    srv = range_server(path.parent)
    return srv, f"{srv.url}/{path.name}"


@pytest.mark.parametrize("bands,array", [([1, 2, 3], "embeddings_d4"), ([5, 9, 12], "embeddings_d16"),
                                         ([1, 2, 20], "embeddings"), ([4], "embeddings_d4"),
                                         ([16, 1], "embeddings_d16")])
def test_bands_are_read_from_the_shallowest_array_holding_them(range_server, v2_store, bands, array):
    srv, url = served(range_server, v2_store)
    st = open_store(url)
    zone = st.zones["utm31"]
    srv.reset()
    win = zone.read(2025, (0, 256), (0, 256), bands=bands)
    assert arrays_read(srv) == {array, "scales"}, arrays_read(srv)
    g = zarr.open_group(str(v2_store), mode="r")["utm31"]
    t = list(g["time"][:]).index(2025)
    s = np.asarray(g["scales"][t, :256, :256])
    valid = np.isfinite(s) & (s > 0) & (s < 1)
    full = np.asarray(g["embeddings"][t][[b - 1 for b in bands], :256, :256])
    np.testing.assert_array_equal(win.q[:, valid], full[:, valid])
    np.testing.assert_array_equal(np.isfinite(win.scales), valid)


def test_the_map_path_reads_depth_4_for_three_bands(range_server, v2_store):
    """A bands 1-3 view on a grid (grid_reduce, what the map layer does): scales and
    embeddings_d4 only."""
    from tessera_qgis.core.region import read_grid

    srv, url = served(range_server, v2_store)
    st = open_store(url)
    srv.reset()
    z = st.zones["utm31"]
    c0 = 60  # east of the meridian (utm31 starts at it: column 22), where only utm31 has data
    t = (10.0, 0.0, z.transform[2] + 10 * c0, 0.0, -10.0, z.transform[5])
    vals = read_grid(st, 2025, z.crs, t, 96, 200, bands=[1, 2, 3])
    assert arrays_read(srv) == {"embeddings_d4", "scales"}
    g = zarr.open_group(str(v2_store), mode="r")["utm31"]
    ti = list(g["time"][:]).index(2025)
    s = np.asarray(g["scales"][ti, :200, c0:c0 + 96]).astype(np.float32)
    valid = np.isfinite(s) & (s > 0) & (s < 1)
    want = np.asarray(g["embeddings"][ti, :3, :200, c0:c0 + 96]).astype(np.float32) * np.where(valid, s, 0)
    np.testing.assert_array_equal(vals[:, valid], want[:, valid])
    assert np.isnan(vals[:, ~valid]).all() and valid.sum() > 5000


def test_scales_out_of_range_are_nodata_everywhere(v1_store, tmp_path):
    """v1's garbage scales (finite, >= 1, or <= 0): a window, a pixel (core and `pixel
    --json`) and an export say nodata there."""
    bad = invalid_scale_pixels(v1_store)
    assert bad and any(b["scale"] >= 1 for b in bad)
    st = open_store(v1_store)
    for b in bad:
        zone = st.zones[b["zone"]]
        win = zone.read(b["year"], (b["row"], b["row"] + 1), (b["col"], b["col"] + 1))
        assert np.isnan(win.scales[0, 0]) and np.isnan(win.dequantised()).all()
        px = st.pixel(b["lon"], b["lat"], b["year"])
        assert (px["row"], px["col"]) == (b["row"], b["col"]) and px["valid"] is False and px["embedding"] is None
        assert px["nodata"] == "invalid scale", (b, px["nodata"])
    b = bad[0]
    res = _pixel_cli(v1_store, b, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["valid"] is False and json.loads(res.stdout)["nodata"] == "invalid scale"
    assert "the stored scale is out of range" in _pixel_cli(v1_store, b).stdout


def _pixel_cli(store, b: dict, *more):
    return subprocess.run([sys.executable, "-m", "tessera_qgis", "pixel", str(store), "--lon", str(b["lon"]),
                           "--lat", str(b["lat"]), "--year", str(b["year"]), *more], capture_output=True, text=True,
                          cwd=REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                         "PROJ_DATA": "/usr/share/proj"})


def test_a_nodata_pixel_says_why(v1_store, dclimate_store):
    """Not embedded (+inf), water or no source data (NaN), a valid pixel (no reason), a point
    outside the zones: the pixels picked by their raw scales read with zarr-python."""
    st = open_store(v1_store)
    cases = [(pixel_where(v1_store, 2024, np.isposinf), "not embedded", "not embedded"),
             (pixel_where(v1_store, 2024, np.isnan), "no data", "water or no source data"),
             (pixel_where(v1_store, 2024, lambda s: (s > 0) & (s < 1)), None, None)]
    for b, reason, text in cases:
        px = st.pixel(b["lon"], b["lat"], b["year"])
        assert (px["zone"], px["row"], px["col"]) == (b["zone"], b["row"], b["col"])
        assert px["nodata"] == reason and px["valid"] is (reason is None), (b, px["nodata"])
        assert json.loads(_pixel_cli(v1_store, b, "--json").stdout)["nodata"] == reason
        if text is not None:
            out = _pixel_cli(v1_store, b).stdout
            assert f"row {b['row']} col {b['col']}: nodata in 2024 ({text}" in out, out
    far = st.pixel(-100.0, 52.2, 2024)  # another UTM zone than the store's
    assert far["zone"] is None and far["nodata"] == "outside"
    # v1.1-dclimate: NaN is its only nodata (no +inf), so every nodata pixel says "no data"
    b = pixel_where(dclimate_store, 2024, lambda s: ~((s > 0) & (s < 1)))
    assert open_store(dclimate_store).pixel(b["lon"], b["lat"], 2024)["nodata"] == "no data"


@pytest.mark.gdal
def test_an_export_writes_nodata_for_scales_out_of_range(v1_store, tmp_path):
    from osgeo import gdal

    from tessera_qgis.core.export import ExportRequest, export

    b = next(p for p in invalid_scale_pixels(v1_store) if p["scale"] >= 1)
    st = open_store(v1_store)
    d = 0.0003
    out = export(st, ExportRequest((b["lon"] - d, b["lat"] - d, b["lon"] + d, b["lat"] + d), "EPSG:4326",
                                   b["year"], str(tmp_path / "x.tif"), bands=[1], dst_crs="EPSG:4326",
                                   resolution=0.00002))[0]
    ds = gdal.Open(str(out))
    arr = ds.GetRasterBand(1).ReadAsArray()
    x0, a, _, y0, _, e = ds.GetGeoTransform()
    col, row = int((b["lon"] - x0) / a), int((b["lat"] - y0) / e)
    assert np.isnan(arr[row, col]) and np.isfinite(arr).any()


def test_observation_counts_come_with_a_pixel(dclimate_store):
    st = open_store(dclimate_store)
    g = zarr.open_group(str(dclimate_store), mode="r")["utm31"]
    x0, y0 = g.attrs["spatial:transform"][2], g.attrs["spatial:transform"][5]
    from tessera_qgis.core.geo import transformer

    ti = list(g["time"][:]).index(2024)
    s = np.asarray(g["scales"][ti, :128, :128])
    rows, cols = np.nonzero(np.isfinite(s))
    for r, c in list(zip(rows, cols))[:: max(1, len(rows) // 5)][:5]:
        lon, lat = transformer(g.attrs["proj:code"], "EPSG:4326").transform(x0 + 10 * (c + 0.5), y0 - 10 * (r + 0.5))
        px = st.pixel(lon, lat, 2024)
        assert px["zone"] == "utm31" and (px["row"], px["col"]) == (r, c)
        assert px["observations"] == {name: int(g[name][ti, r, c]) for name in OBSERVATIONS}


def test_stores_without_observations_have_none(v2_store):
    px = open_store(v2_store).pixel(0.005, 52.2, 2025)
    assert "observations" not in px


def test_info_reports_depths_and_stretch_modes(v2_store, v1_store, dclimate_store):
    i2, i1, ic = (open_store(p).info() for p in (v2_store, v1_store, dclimate_store))
    assert i2["depths"] == [4, 16, 128] and set(i2["stretch"].values()) == {"bands"}
    assert i2["global_pca_years"] == []
    assert i1["depths"] == [128] and set(i1["stretch"].values()) == {"pca"} and i1["global_pca_years"]
    assert ic["depths"] == [128]
    with pytest.raises(BandError, match="not ordered by importance"):
        open_store(v1_store).check_depth(4)


def test_opening_can_be_cancelled(range_server, sample_store):
    srv, url = served(range_server, sample_store)
    calls = []

    def cancel() -> bool:
        calls.append(1)
        return True

    srv.reset()
    with pytest.raises(Cancelled):
        open_store(url, cancel=cancel)
    assert calls
    assert not [r for r in srv.requests() if "/time/" in r.path], "no zone was read after the cancel"


@pytest.mark.gdal
def test_render_of_a_large_area_draws_the_preview_and_reads_no_embeddings_or_scales(range_server, v2_store,
                                                                                    tmp_path):
    from tessera_qgis.core.render import render_png

    srv, url = served(range_server, v2_store)
    st = open_store(url)
    srv.reset()
    info = render_png(st, (-0.05, 52.17, 0.05, 52.23), 2025, str(tmp_path / "p.png"), width=300, bands=[1, 2, 3],
                      budget=1000)
    assert info["source"] == "preview" and "preview (2025)" in info["mode"] and info["valid_fraction"] > 0
    assert arrays_read(srv) == {"rgb"}, arrays_read(srv)
    assert all("/global_rgb/" in r.path for r in srv.requests() if "/c/" in r.path)


def test_pca_and_similarity_at_depth_4_read_only_the_depth_4_array(range_server, v2_store):
    from tessera_qgis.core.layerspec import LayerSpec, encode_vector
    from tessera_qgis.core.storeref import StoreRef
    from tessera_qgis.core.view import View

    srv, url = served(range_server, v2_store)
    st = open_store(url)
    z = st.zones["utm31"]
    t = (10.0, 0.0, z.transform[2] + 600, 0.0, -10.0, z.transform[5] - 200)
    g = zarr.open_group(str(v2_store), mode="r")["utm31"]
    ti = list(g["time"][:]).index(2025)
    q = np.asarray(g["embeddings"][ti, :4, 20:120, 60:160]).astype(np.float64)
    s = np.asarray(g["scales"][ti, 20:120, 60:160]).astype(np.float64)
    valid = np.isfinite(s) & (s > 0) & (s < 1)
    v = q * np.where(valid, s, 0)
    ref = v[:, valid][:, 0]
    for mode in (dict(pca="global"), dict(similarity=encode_vector(ref))):
        spec = LayerSpec(store=StoreRef(url), year=2025, depth=4, **mode)
        assert LayerSpec.from_uri(spec.to_uri()).depth == 4
        view = View(st, spec)
        srv.reset()
        out = view.values(z.crs, t, 100, 100)
        assert arrays_read(srv) <= {"embeddings_d4", "scales"}, (mode, arrays_read(srv))
        if "pca" in mode:
            assert view.pca.source == "fit" and view.pca.mean.shape == (4,)
            want = view.pca.components @ (v[:, valid] - view.pca.mean[:, None])
        else:
            want = (ref @ v[:, valid]) / np.linalg.norm(ref) / np.linalg.norm(v[:, valid], axis=0)
        np.testing.assert_allclose(out[:, valid], np.atleast_2d(want), rtol=1e-4, atol=1e-4)


def test_a_depth_is_refused_on_stores_without_depths(v1_store):
    from tessera_qgis.core.layerspec import LayerSpec
    from tessera_qgis.core.storeref import StoreRef
    from tessera_qgis.core.view import View

    with pytest.raises(BandError, match="not ordered by importance"):
        View(open_store(v1_store), LayerSpec(store=StoreRef(str(v1_store)), year=2025, pca="global", depth=4))


@pytest.mark.gdal
@pytest.mark.parametrize("kind,depth,array", [("float32", None, "embeddings_d4"),
                                              ("similarity", 16, "embeddings_d16"),
                                              ("change", 4, "embeddings_d4")])
def test_exports_read_only_the_depth_they_need(range_server, v2_store, tmp_path, kind, depth, array):
    """Bands 1-3 (no depth given) come from embeddings_d4; a similarity at depth 16 from
    embeddings_d16; a change at depth 4 from embeddings_d4; values against numpy on zarr."""
    from osgeo import gdal

    from tessera_qgis.core.export import ExportRequest, export

    srv, url = served(range_server, v2_store)
    st = open_store(url)
    g = zarr.open_group(str(v2_store), mode="r")["utm31"]
    ti = list(g["time"][:]).index(2025)
    z = st.zones["utm31"]
    r0, c0, n = 40, 60, 64
    x0, y0 = z.transform[2] + 10 * c0, z.transform[5] - 10 * r0
    bounds = (x0 + 1, y0 - 10 * n + 1, x0 + 10 * n - 1, y0 - 1)
    q = np.asarray(g["embeddings"][ti, :, r0:r0 + n, c0:c0 + n]).astype(np.float64)
    s = np.asarray(g["scales"][ti, r0:r0 + n, c0:c0 + n]).astype(np.float64)
    valid = np.isfinite(s) & (s > 0) & (s < 1)
    extra = {}
    if kind == "float32":
        extra = dict(bands=[1, 2, 3])
    elif kind == "similarity":
        extra = dict(reference=list((q[:depth] * s)[:, valid][:, 0]))
    else:
        extra = dict(year2=2024)
    srv.reset()
    out = export(st, ExportRequest(bounds, z.crs, 2025, str(tmp_path / "o.tif"), kind=kind, depth=depth, **extra))[0]
    assert arrays_read(srv) == {array, "scales"}, arrays_read(srv)
    got = gdal.Open(str(out)).ReadAsArray()
    got = got if got.ndim == 3 else got[None]
    if kind == "float32":
        want = (q[:3] * np.where(valid, s, 0))[:, valid]
    elif kind == "similarity":
        v = q[:depth] * s
        ref = np.array(extra["reference"])
        want = (ref @ v[:, valid] / np.linalg.norm(ref) / np.linalg.norm(v[:, valid], axis=0))[None]
    else:
        ti2 = list(g["time"][:]).index(2024)
        q2 = np.asarray(g["embeddings"][ti2, :depth, r0:r0 + n, c0:c0 + n]).astype(np.float64)
        s2 = np.asarray(g["scales"][ti2, r0:r0 + n, c0:c0 + n]).astype(np.float64)
        both = valid & np.isfinite(s2) & (s2 > 0) & (s2 < 1)
        a, b = q[:depth][:, both], q2[:, both]
        want = (1 - (a * b).sum(0) / np.linalg.norm(a, axis=0) / np.linalg.norm(b, axis=0))[None]
        valid = both
    np.testing.assert_allclose(got[:, valid], want, rtol=1e-4, atol=1e-5)


def _entry(store_path, year, zone=None):
    attrs = json.loads((store_path / "zarr.json").read_text())["attributes"]
    if zone:
        return attrs["geoemb:stretch_zones"][str(year)][zone]
    return attrs["geoemb:stretch"][str(year)]


def test_stretch_zone_and_cdf_as_published(v2_store, v1_store):
    """stretch=zone: the zone's own range (geoemb:stretch_zones); stretch=cdf: each value's
    quantile in the published CDF, mapped onto the published range; for v2's bands 1-3 and
    v1's global PCA; worked out here from the attributes and zarr-python's values."""
    from tessera_qgis.core.layerspec import LayerSpec
    from tessera_qgis.core.storeref import StoreRef
    from tessera_qgis.core.view import View

    st = open_store(v2_store)
    z = st.zones["utm31"]
    zone_entry, year_entry = _entry(v2_store, 2025, "utm31"), _entry(v2_store, 2025)
    assert zone_entry["min"] != year_entry["min"], "the fixture's zones have their own ranges"
    spec = LayerSpec(store=StoreRef(str(v2_store)), year=2025, bands=(1, 2, 3), crs=z.crs, stretch="zone")
    assert LayerSpec.from_uri(spec.to_uri()).stretch == "zone"
    assert View(st, spec).default_ranges() == list(zip(zone_entry["min"], zone_entry["max"]))
    g = zarr.open_group(str(v2_store), mode="r")["utm31"]
    ti = list(g["time"][:]).index(2025)
    s = np.asarray(g["scales"][ti, 50:60, 60:70]).astype(np.float64)
    q = np.asarray(g["embeddings"][ti, :3, 50:60, 60:70]).astype(np.float64)
    ok = np.isfinite(s) & (s > 0) & (s < 1)
    v = (q * s)[:, ok]
    for path, mode, values in ((v2_store, dict(bands=(1, 2, 3)), v),):
        entry = _entry(path, 2025)
        view = View(st, LayerSpec(store=StoreRef(str(path)), year=2025, stretch="cdf", **mode))
        got = view.product().from_quantised(q.reshape(3, -1).astype(np.int8), s.reshape(-1).astype(np.float32))
        got = got.reshape(3, 10, 10)[:, ok]
        for c in range(3):
            u = np.interp(values[c], entry["cdf"][c], np.linspace(0, 1, len(entry["cdf"][c])))
            want = entry["min"][c] + u * (entry["max"][c] - entry["min"][c])
            np.testing.assert_allclose(got[c], want, rtol=1e-5, atol=1e-5)
    # v1: the global PCA, equalised by its CDF
    st1 = open_store(v1_store)
    entry = _entry(v1_store, 2025)
    view = View(st1, LayerSpec(store=StoreRef(str(v1_store)), year=2025, pca="global", stretch="cdf"))
    g1 = zarr.open_group(str(v1_store), mode="r")["utm31"]
    q1 = np.asarray(g1["embeddings"][ti, :, 50:60, 60:70]).astype(np.float64)
    s1 = np.asarray(g1["scales"][ti, 50:60, 60:70]).astype(np.float64)
    ok1 = np.isfinite(s1) & (s1 > 0) & (s1 < 1)
    comps, mean = np.array(entry["pca_components"])[:3], np.array(entry["pca_mean"])
    proj = comps @ ((q1 * s1)[:, ok1] - mean[:, None])
    got = view.product().from_quantised(q1.reshape(128, -1).astype(np.int8), s1.reshape(-1).astype(np.float32))
    got = got.reshape(3, 10, 10)[:, ok1]
    for c in range(3):
        u = np.interp(proj[c], entry["cdf"][c], np.linspace(0, 1, len(entry["cdf"][c])))
        np.testing.assert_allclose(got[c], entry["min"][c] + u * (entry["max"][c] - entry["min"][c]),
                                   rtol=1e-4, atol=1e-4)
