"""The `tessera` raster provider inside a real QGIS: rendering, streaming, identify, projects,
clones, and failures that must never take QGIS down."""
from __future__ import annotations

import gc
import time

import numpy as np
import pytest
from qgis.core import (Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform,
                       QgsMapSettings, QgsPointXY, QgsProject, QgsRasterLayer, QgsRectangle)

from tessera_qgis import provider as prov
from tessera_qgis.core.layerspec import LayerSpec
from tessera_qgis.core.pca import PCA
from tessera_qgis.core.store import open_store
from tessera_qgis.core.storeref import StoreRef
from tessera_qgis.layers import make_layer
from tessera_qgis.log import notifier
from tessera_qgis.store_access import shared_store
from support.qgis_helpers import projected_blocks
from support.qgis_helpers import render_layers as render
from support.reference import within


@pytest.fixture(autouse=True)
def fresh_provider_state():
    prov.register()
    prov.forget_stores()
    yield
    prov.forget_stores()
    prov.unregister()


def quiet_for(srv, seconds: float, timeout: float = 30.0) -> None:
    """Process events until the server has had no request for `seconds`."""
    t0 = time.monotonic()
    while True:
        QgsApplication.processEvents()
        last = max((t for t, _ in srv.arrivals()), default=0.0)
        if time.monotonic() - last >= seconds:
            return
        assert time.monotonic() - t0 < timeout, "the server never went quiet"
        time.sleep(0.02)


def view_in(layer, crs: str, lon0, lat0, lon1, lat1) -> QgsRectangle:
    tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), QgsCoordinateReferenceSystem(crs),
                                QgsProject.instance())
    return tr.transformBoundingBox(QgsRectangle(lon0, lat0, lon1, lat1))


def _transform_of(ms: QgsMapSettings) -> tuple:
    ext = ms.visibleExtent()
    w, h = ms.outputSize().width(), ms.outputSize().height()
    return (ext.width() / w, 0.0, ext.xMinimum(), 0.0, -ext.height() / h, ext.yMaximum())


@pytest.mark.parametrize("dest,size", [("layer", (400, 300)), ("EPSG:3857", (800, 600))])
def test_pca_layer_draws_each_pixel_in_its_hand_computed_colour(sample_http, zarr_reference, dest, size):
    """The PCA layer drawn by QGIS, in its own CRS and in Web Mercator: each output pixel has
    the colour of its own source pixel (zarr-python's values, pyproj's position), projected on
    the store's global PCA and stretched from its min to max by hand, within 1. In Web
    Mercator QGIS draws from a layer-CRS block at the layer's 10 m resolution (not aligned to
    the source grid): the expected pixel is the source pixel under the centre of the block
    pixel under the output pixel's centre."""
    layer = make_layer(sample_http.store_url, 2024, pca="global")
    assert layer.isValid() and layer.providerType() == "tessera" and layer.bandCount() == 3
    crs = layer.crs().authid() if dest == "layer" else dest
    extent = view_in(layer, crs, -0.03, 52.185, 0.02, 52.215)  # across the 0 degree seam
    img, ms, errors = render([layer], crs, extent, size)
    assert not errors
    transform = _transform_of(ms)
    ref = zarr_reference(2024)
    if dest == "layer":
        want = ref.pca_colours(crs, transform, *size)
    else:
        _, (block_extent, bw, bh) = projected_blocks(layer.dataProvider(), layer.crs(), crs, ms.visibleExtent(),
                                                     *size)
        want = ref.resampled("pca", crs, transform, *size, layer.crs().authid(), block_extent, bw, bh)
    d = want.decided
    assert d.sum() > 10_000 and want.valid[d].mean() > 0.6 and (~want.valid[d]).any()
    drawn = img[..., 3] == 255
    assert (drawn[d] == want.valid[d]).all(), "drawn exactly where the source pixel has data"
    got = np.moveaxis(img[..., :3], -1, 0)
    ok = within(got, want.values, 1.0)
    assert ok[d & want.valid].all(), f"{int((~ok & d & want.valid).sum())} pixels off their hand-made colour"


@pytest.mark.parametrize("crs", ["EPSG:3857", "EPSG:4326"])
def test_bands_layer_values_reprojected_by_qgis_are_the_source_pixels(sample_http, zarr_reference, crs):
    """QGIS's raster projector (the step of the layer's pipe that reprojects for the map) gives
    each output pixel the dequantised value of its own source pixel, exactly."""
    layer = make_layer(sample_http.store_url, 2024, bands=[1, 2, 3], stretch=[(-2, 2)] * 3)
    extent = view_in(layer, crs, -0.03, 52.185, 0.02, 52.215)
    w, h = 600, 450
    got, (block_extent, bw, bh) = projected_blocks(layer.dataProvider(), layer.crs(), crs, extent, w, h, (1, 2, 3))
    transform = (extent.width() / w, 0.0, extent.xMinimum(), 0.0, -extent.height() / h, extent.yMaximum())
    want = zarr_reference(2024).resampled("values", crs, transform, w, h, layer.crs().authid(), block_extent, bw, bh,
                                          bands=[1, 2, 3])
    d = want.decided
    assert d.sum() > 10_000 and want.valid[d].mean() > 0.6
    ok = within(got.astype(np.float64), want.values, 0.0)
    assert ok[d].all(), f"{int((~ok & d).sum())} of {int(d.sum())} pixels differ from their source pixel"


def test_bands_block_on_the_zone_grid_equals_zarr(sample_store, sample_http, zarr_reference):
    """block() on the zone's own 10 m grid: every pixel is zarr-python's int8 * scale (float32),
    NaN where the scale is not valid; east of the meridian, utm31's pixels."""
    layer = make_layer(sample_http.store_url, 2025, bands=[2, 64, 127], stretch=[(-2, 2)] * 3)
    assert layer.crs().authid() == "EPSG:32630"
    ref = zarr_reference(2025)
    zone = ref.zones["utm30"]
    a, _, x0, _, e, y0 = zone["transform"]
    r0, c0, h, w = 100, 180, 300, 332  # across the 0 degree meridian (utm30's column 488 or so)
    extent = QgsRectangle(x0 + a * c0, y0 + e * (r0 + h), x0 + a * (c0 + w), y0 + e * r0)
    want = ref.values("EPSG:32630", (a, 0.0, x0 + a * c0, 0.0, e, y0 + e * r0), w, h, [2, 64, 127])
    assert (zone["s"][r0:r0 + h, c0:c0 + w].shape == (h, w))
    west = np.isfinite(zone["s"][r0:r0 + h, c0:c0 + w])
    assert want.valid[west].all() and want.decided.mean() > 0.8
    for i in range(3):
        block = layer.dataProvider().block(i + 1, extent, w, h)
        got = np.frombuffer(bytes(block.data()), np.float32).reshape(h, w)
        q = zone["q"][[2, 64, 127][i] - 1, r0:r0 + h, c0:c0 + w]
        np.testing.assert_array_equal(got[west], q[west].astype(np.float32) * zone["s"][r0:r0 + h, c0:c0 + w][west])
        ok = within(got[None].astype(np.float64), want.values[i:i + 1], 0.0)
        assert ok[want.decided].all(), f"band {i + 1}: {int((~ok & want.decided).sum())} pixels differ"


def test_pca_colours_agree_across_the_zone_seam(sample_http):
    layer = make_layer(sample_http.store_url, 2024, pca="global")
    extent = view_in(layer, "EPSG:3857", -0.004, 52.19, 0.004, 52.21)
    img, ms, _ = render([layer], "EPSG:3857", extent, size=(200, 400))
    mid = img.shape[1] // 2
    left, right = img[:, mid - 3, :3].astype(int), img[:, mid + 3, :3].astype(int)
    ok = (img[:, mid - 3, 3] > 0) & (img[:, mid + 3, 3] > 0)
    assert ok.mean() > 0.8, "both sides of the meridian are drawn"
    # The same landscape continues across the seam: colours 6 px apart differ as little as
    # 6 px apart anywhere else in the image.
    seam = np.abs(left - right)[ok].mean()
    elsewhere = np.abs(img[:, 20:-6, :3].astype(int) - img[:, 26:, :3].astype(int))[
        (img[:, 20:-6, 3] > 0) & (img[:, 26:, 3] > 0)].mean()
    assert seam < 2.0 * elsewhere + 5


def test_small_view_fetches_only_what_it_needs_and_warm_fetches_nothing(sample_store, sample_http):
    layer = make_layer(sample_http.store_url, 2025, bands=[1, 2, 3])
    crs = layer.crs().authid()
    z = open_store(sample_store).zones["utm30"]
    x0, y0 = z.transform[2], z.transform[5]
    extent = QgsRectangle(x0 + 3000, y0 - 4000, x0 + 3640, y0 - 3520)  # 64 x 48 source px
    sample_http.reset()
    img, _, errors = render([layer], crs, extent, size=(64, 48))
    assert not errors and (img[..., 3] > 0).mean() > 0.9
    chunk_ranges = [r for r in sample_http.requests() if not r.range.startswith("bytes=-")]
    # 64 x 48 px starting on chunk borders: 2 x 2 chunks of scales and of embeddings
    assert sum(r.bytes for r in chunk_ranges) <= sum(
        _chunk_sizes(sample_store, "utm30", 1, (400, 448), (300, 364)))
    sample_http.reset()
    render([layer], crs, extent, size=(64, 48))
    assert sample_http.stats()["requests"] == 0, "a warm re-render fetches nothing"


def _chunk_sizes(store_dir, zone, t, rows, cols):
    from pathlib import Path

    for array in ("scales", "embeddings"):
        for cr in range(rows[0] // 32, -(-rows[1] // 32)):
            for cc in range(cols[0] // 32, -(-cols[1] // 32)):
                parts = [str(t), str(cr // 8), str(cc // 8)]
                if array == "embeddings":
                    parts.insert(1, "0")
                raw = (Path(store_dir) / zone / array / "c" / Path(*parts)).read_bytes()
                idx = np.frombuffer(raw[-(64 * 16 + 4):-4], "<u8").reshape(8, 8, 2)
                if idx[cr % 8, cc % 8, 0] != 2**64 - 1:
                    yield int(idx[cr % 8, cc % 8, 1])


def test_over_budget_with_previews_off_fetches_no_embeddings_and_says_zoom_in(sample_http, qgis_iface):
    from tessera_qgis.settings import Settings

    settings = Settings.load()
    settings.previews = "none"
    settings.save()
    try:
        messages = []
        notifier.message.connect(lambda title, text, level: messages.append(text))
        layer = make_layer(sample_http.store_url, 2024, bands=[1, 2, 3], budget=100 * 100)
        sample_http.reset()
        img, _, _ = render([layer], layer.crs().authid(), layer.extent())
        assert not (img[..., 3] > 0).any(), "nothing heavy drawn"
        assert not [r for r in sample_http.requests() if "/embeddings/" in r.path]
        QgsApplication.processEvents()
        assert sum("Zoom in" in m for m in messages) == 1, messages
    finally:
        settings.previews = "auto"
        settings.save()


def test_over_budget_view_draws_a_bounded_coarse_preview_and_says_so_once(sample_http, qgis_iface):
    """The sample has no global preview: over the budget the layer draws a coarse picture
    from at most 256 inner chunks and about 40 MB, and says so once, not per tile."""
    from tessera_qgis.core.preview import COARSE_BYTES, MAX_SAMPLED_CHUNKS

    messages = []
    notifier.message.connect(lambda title, text, level: messages.append(text))
    # a given stretch: nothing is sampled (and cached) at creation, the render starts cold
    layer = make_layer(sample_http.store_url, 2024, bands=[1, 2, 3], budget=100 * 100, stretch=[(-3.0, 3.0)] * 3)
    sample_http.reset()
    img, _, _ = render([layer], layer.crs().authid(), layer.extent())
    assert (img[..., 3] > 0).mean() > 0.5, "a picture, not a blank map"
    chunks = [r for r in sample_http.requests() if "/embeddings/" in r.path and not r.range.startswith("bytes=-")]
    fetched = sum(r.bytes for r in sample_http.requests())
    assert 0 < len(chunks) and fetched <= COARSE_BYTES, [(r.path, r.range) for r in sample_http.requests()][:20]
    chunk_requests = sum(1 for r in chunks)
    assert chunk_requests <= MAX_SAMPLED_CHUNKS
    render([layer], layer.crs().authid(), layer.extent())
    QgsApplication.processEvents()
    assert sum("coarse preview" in m for m in messages) == 1, messages


def test_identify_returns_dequantised_values(sample_store, sample_http):
    layer = make_layer(sample_http.store_url, 2024, bands=[1, 64, 128])
    store = open_store(sample_store)
    px = store.pixel(-0.03, 52.2, 2024)
    pt = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), layer.crs(),
                                QgsProject.instance()).transform(QgsPointXY(-0.03, 52.2))
    res = layer.dataProvider().identify(pt, Qgis.RasterIdentifyFormat.Value)
    assert res.isValid()
    got = res.results()
    assert got[1] == pytest.approx(px["embedding"][0]) and got[3] == pytest.approx(px["embedding"][127])
    pca_layer = make_layer(sample_http.store_url, 2024, pca="global")
    comps = pca_layer.dataProvider().identify(pt, Qgis.RasterIdentifyFormat.Value).results()
    pca = PCA.from_stretch(store.stretch(2024))
    want = pca.components @ (np.array(px["embedding"]) - pca.mean)
    assert [comps[i] for i in (1, 2, 3)] == pytest.approx(want.tolist(), rel=1e-4)


def test_project_saves_and_reloads_the_layer(sample_store, range_server, tmp_path, qgis_canvas, request):
    # its own server: late requests of other tests' layers cannot be counted as this one's
    sample_http = range_server(sample_store.parent)
    # The session's map canvas shows the project's layers once a test has used the iface: a
    # draw it starts while the project loads would fetch (a draw needs data), whenever the
    # host lets it run (the CI run of 2026-12-02 12:00 counted its zarr.json). Frozen here:
    # what is checked is that loading the project itself fetches nothing.
    qgis_canvas.freeze(True)
    request.addfinalizer(lambda: qgis_canvas.freeze(False))
    layer = make_layer(f"{sample_http.url}/{sample_store.name}", 2024, pca="global", name="tessera raster")
    project = QgsProject.instance()
    project.addMapLayer(layer)
    path = tmp_path / "p.qgz"
    assert project.write(str(path))
    project.clear()
    prov.forget_stores()
    quiet_for(sample_http, 0.5)  # whatever the layer's addition set going (a canvas draw) has ended
    sample_http.reset()
    assert project.read(str(path))
    layers = project.mapLayersByName("tessera raster")
    assert len(layers) == 1 and layers[0].isValid() and layers[0].providerType() == "tessera"
    assert sample_http.requests() == [], "opening the project touches no network"
    assert LayerSpec.from_uri(layers[0].source()).pca == "global"
    img, _, errors = render(layers, layers[0].crs().authid(), layers[0].extent(), size=(120, 100))
    assert not errors and (img[..., 3] > 0).mean() > 0.5
    project.clear()


def test_clones_survive_garbage_collection(sample_http):
    layer = make_layer(sample_http.store_url, 2024, bands=[1, 2, 3])
    clones = [layer.dataProvider().clone() for _ in range(5)]
    del clones
    gc.collect()
    clone = layer.dataProvider().clone()
    gc.collect()
    block = clone.block(1, layer.extent(), 50, 40)
    assert block.isValid() and block.width() == 50
    values = np.frombuffer(bytes(block.data()), np.float32)
    assert np.isfinite(values).mean() > 0.5


def test_an_exception_inside_the_provider_is_caught_and_reported(sample_http):
    from qgis.core import QgsMessageLog

    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda msg, tag, level: logged.append((tag, msg)))
    shown = []
    notifier.message.connect(lambda title, text, level: shown.append(text))
    layer = make_layer(sample_http.store_url, 2024, bands=[1, 2, 3])
    prov.state_for(layer.source()).fail_next = True
    img, _, _ = render([layer], layer.crs().authid(), layer.extent(), size=(100, 80))
    QgsApplication.processEvents()
    assert any(tag == "TESSERA" and "forced failure" in msg for tag, msg in logged)
    assert any("could not be drawn" in t for t in shown)
    # QGIS is alive and the layer draws again.
    img, _, errors = render([layer], layer.crs().authid(), layer.extent(), size=(100, 80))
    assert (img[..., 3] > 0).mean() > 0.5
    del QgsMessageLog


def test_bad_uris_make_invalid_layers_with_a_reason(tmp_path):
    bad = QgsRasterLayer("url=/no/such/store&year=2024&bands=1,2,3", "bad", "tessera")
    assert not bad.isValid() and "no such folder" in bad.dataProvider().lastError()
    noyear = QgsRasterLayer("url=/x&bands=1", "noyear", "tessera")
    assert not noyear.isValid() and "year=YYYY" in noyear.dataProvider().lastError()


@pytest.mark.parametrize("name", ["secret", "key", "password", "token", "AWS_SECRET_ACCESS_KEY"])
def test_a_secret_in_the_uri_is_refused_even_where_the_layer_would_open(sample_store, name):
    good = f"url={sample_store}&year=2024&bands=1,2,3"
    assert QgsRasterLayer(good, "tessera layer", "tessera").isValid(), "the same URI opens without the secret"
    layer = QgsRasterLayer(f"{good}&{name}=s3cr3t-value", "tessera layer", "tessera")
    assert not layer.isValid()
    error = layer.dataProvider().lastError()
    assert "credentials do not belong in a layer URI" in error and "authcfg" in error
    assert "s3cr3t-value" not in error


def test_s3_layer_with_keys_from_a_qgis_auth_configuration(sample_s3, s3_server, s3_authcfg, tmp_path):
    url, opts = sample_s3
    authcfg, _, _ = s3_authcfg
    layer = make_layer(url, 2024, pca="global", authcfg=authcfg, s3_endpoint=s3_server.endpoint_url,
                       s3_region="us-east-1", name="tessera s3 layer")
    assert layer.isValid()
    assert opts["secret"] not in layer.source() and opts["key"] not in layer.source()
    img, _, errors = render([layer], layer.crs().authid(), layer.extent(), size=(120, 100))
    assert not errors and (img[..., 3] > 0).mean() > 0.5
    project = QgsProject.instance()
    project.addMapLayer(layer)
    project.write(str(tmp_path / "s3.qgs"))
    text = (tmp_path / "s3.qgs").read_text()
    assert opts["secret"] not in text and opts["key"] not in text and authcfg in text
    project.clear()


def test_a_cancelled_render_stops_fetching(sample_store, range_server):
    from qgis.core import QgsRasterBlockFeedback

    srv = range_server(sample_store.parent, latency=0.05)
    layer = make_layer(f"{srv.url}/{sample_store.name}", 2024, bands=[1, 2, 3], stretch=[(-2, 2)] * 3)
    feedback = QgsRasterBlockFeedback()
    feedback.cancel()  # the next pan has overtaken this render
    srv.reset()
    block = layer.dataProvider().block(1, layer.extent(), 300, 250, feedback)
    assert block.isValid()
    assert np.isnan(np.frombuffer(bytes(block.data()), np.float32)).all()
    assert not [r for r in srv.requests() if "/embeddings/" in r.path and not r.range.startswith("bytes=-")]


def test_a_render_cancelled_mid_download_stops_fetching(sample_store):
    """The next pan overtakes a render whose chunk requests are already on their way (a view
    sends them all at once) over a slow line: block() returns soon after the cancel, and the
    line carries a small part of what the whole draw takes."""
    import threading

    from qgis.core import QgsRasterBlockFeedback

    from support.servers import Link, RangeHTTPServer

    def draw(cancel_when_data_flows: bool) -> tuple[int, float]:
        link = Link(rtt=0.02, mbit=8 if cancel_when_data_flows else 1000)
        srv = RangeHTTPServer(sample_store.parent, link=link).start()
        try:
            layer = make_layer(f"{srv.url}/{sample_store.name}", 2024, bands=list(range(1, 17)),
                               stretch=[(-2, 2)] * 3)
            feedback = QgsRasterBlockFeedback()
            start = [0.0]

            def watch() -> None:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and link.sent < 256 << 10:
                    time.sleep(0.005)  # the data wave is arriving
                start[0] = time.monotonic()
                feedback.cancel()

            if cancel_when_data_flows:
                threading.Thread(target=watch, daemon=True).start()
            block = layer.dataProvider().block(1, layer.extent(), 300, 250, feedback)
            took = time.monotonic() - start[0] if cancel_when_data_flows else 0.0
            assert block.isValid()
            time.sleep(0.3)  # a response still being sent would show here
            return link.sent, took
        finally:
            srv.stop()

    whole, _ = draw(False)
    sent, took = draw(True)
    assert whole > 2 << 20, whole
    assert sent < whole / 3, f"{sent / 2**20:.1f} of {whole / 2**20:.1f} MiB sent after the cancel"
    assert took < whole / 4e6, f"block() returned {took:.1f} s after the cancel (the whole draw takes {whole / 1e6:.0f} s)"


def test_a_failing_chunk_shows_nodata_and_a_warning_not_a_crash(sample_store, range_server, zarr_reference):
    from support.servers import Faults

    shown = []
    notifier.message.connect(lambda title, text, level: shown.append(text))
    srv = range_server(sample_store.parent)
    layer = make_layer(f"{srv.url}/{sample_store.name}", 2024, bands=[1, 2, 3], stretch=[(-2, 2)] * 3)
    crs = layer.crs().authid()
    view = view_in(layer, crs, -0.05, 52.18, 0.05, 52.22)  # inside the layer's extent: no edge resampling
    srv.faults = Faults("503", match="/embeddings/")  # every embeddings request fails from now on
    img, _, errors = render([layer], crs, view, size=(80, 60))
    QgsApplication.processEvents()
    assert not (img[..., 3] > 0).any(), "nothing drawn from failed chunks"
    assert any("could not be drawn" in t and "HTTP 503" in t for t in shown), shown
    srv.faults = None  # the server recovers: a new render draws the data, with no cache cleared by hand
    img, ms, errors = render([layer], crs, view, size=(80, 60))
    assert not errors, [e.message for e in errors]
    want = zarr_reference(2024).values(crs, _transform_of(ms), 80, 60, [1, 2, 3])
    colours = np.floor(np.clip((want.values + 2) / 4 * 255, 0, 255))  # the layer's stretch, -2 to 2
    d = want.decided
    assert ((img[..., 3] == 255) == want.valid)[d].all(), "drawn once the server recovers, all of it"
    assert within(np.moveaxis(img[..., :3], -1, 0), colours, 1.0)[d & want.valid].all()


def test_no_secret_in_errors_logs_or_exported_metadata_after_an_s3_session(sample_s3, s3_server, s3_authcfg,
                                                                          tmp_path):
    from osgeo import gdal

    from tessera_qgis.core.errors import TesseraError
    from tessera_qgis.core.export import ExportRequest, export

    url, _ = sample_s3
    authcfg, key, secret = s3_authcfg
    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda msg, tag, level: logged.append(msg))
    spec = LayerSpec.of(url, 2024, pca="global", authcfg=authcfg, s3_endpoint=s3_server.endpoint_url)
    store = shared_store(spec.store)
    out = export(store, ExportRequest((-0.01, 52.2, 0.0, 52.205), "EPSG:4326", 2024, str(tmp_path / "s3.tif"),
                                      bands=[1]))[0]
    gdal.UseExceptions()
    info = gdal.Info(str(out))
    messages = [info, repr(store.options), repr(spec)]
    for bad in (url.replace("sample.zarr", "missing.zarr"), "s3://no-such-bucket/x.zarr"):
        try:
            shared_store(spec.store.with_(url=bad))
        except TesseraError as exc:
            messages.append(str(exc))
        else:
            raise AssertionError(f"{bad} opened")
    QgsApplication.processEvents()
    for text in messages + logged:
        assert secret not in text and key not in text, text


def test_a_zone_alone_in_the_uri_gives_that_zones_crs_and_extent(sample_store):
    """zone=utm31 without crs= and extent=: the layer takes utm31's CRS and utm31's bounds,
    read here from the zone group's attributes by zarr-python."""
    import zarr

    attrs = zarr.open_group(str(sample_store), mode="r")["utm31"].attrs
    a, _, x0, _, e, y0 = attrs["spatial:transform"]
    h, w = attrs["spatial:shape"]
    for zone, epsg in (("utm31", "EPSG:32631"), (None, None)):
        uri = LayerSpec(store=StoreRef(str(sample_store)), year=2024, pca="global", zone=zone).to_uri()
        layer = QgsRasterLayer(uri, "tessera zone layer", "tessera")
        assert layer.isValid(), layer.dataProvider().lastError()
        if zone is None:  # without a zone: the first zone's CRS, every zone's extent (wider)
            assert layer.crs().authid() == "EPSG:32630" and layer.extent().width() > w * a
            continue
        assert layer.crs().authid() == epsg
        ext = layer.extent()
        assert (ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum()) == pytest.approx(
            (x0, y0 + e * h, x0 + a * w, y0), abs=1e-6)
    bad = LayerSpec(store=StoreRef(str(sample_store)), year=2024, pca="global", zone="utm07").to_uri()
    layer = QgsRasterLayer(bad, "tessera bad zone layer", "tessera")
    assert not layer.isValid() and "utm07" in layer.dataProvider().lastError()
