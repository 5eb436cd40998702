"""The `tessera` raster provider inside a real QGIS: rendering, streaming, identify, projects,
clones, and failures that must never take QGIS down."""
from __future__ import annotations

import gc

import numpy as np
import pytest
from qgis.core import (Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform,
                       QgsMapRendererParallelJob, QgsMapSettings, QgsPointXY, QgsProject, QgsRasterLayer,
                       QgsRectangle)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QImage

from tessera_qgis import provider as prov
from tessera_qgis.core.layerspec import LayerSpec
from tessera_qgis.core.pca import PCA
from tessera_qgis.core.storeref import StoreRef
from tessera_qgis.core.view import View
from tessera_qgis.core.store import open_store
from tessera_qgis.layers import make_layer
from tessera_qgis.log import notifier
from tessera_qgis.store_access import shared_store


@pytest.fixture(autouse=True)
def fresh_provider_state():
    prov.register()
    prov.forget_stores()
    yield
    prov.forget_stores()
    prov.unregister()


def render(layers, crs: str, extent: QgsRectangle, size=(400, 300)) -> tuple[np.ndarray, QgsMapSettings, list]:
    ms = QgsMapSettings()
    ms.setLayers(layers)
    ms.setDestinationCrs(QgsCoordinateReferenceSystem(crs))
    ms.setOutputSize(QSize(*size))
    ms.setExtent(extent)
    ms.setBackgroundColor(QColor(0, 0, 0, 0))  # so nodata shows as transparent
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    img = job.renderedImage().convertToFormat(QImage.Format.Format_RGBA8888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    arr = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[:, :img.width()]
    return arr.copy(), ms, list(job.errors())


def core_rgba(store, year, pca: PCA, crs: str, ms: QgsMapSettings) -> np.ndarray:
    ext = ms.visibleExtent()
    w, h = ms.outputSize().width(), ms.outputSize().height()
    t = (ext.width() / w, 0.0, ext.xMinimum(), 0.0, -ext.height() / h, ext.yMaximum())
    view = View(store, LayerSpec(store=StoreRef(store.url), year=year, pca="global"))
    view.set_pca(pca)
    return pca.stretch_components(view.values(crs, t, w, h, budget=None))


def view_in(layer, crs: str, lon0, lat0, lon1, lat1) -> QgsRectangle:
    tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), QgsCoordinateReferenceSystem(crs),
                                QgsProject.instance())
    return tr.transformBoundingBox(QgsRectangle(lon0, lat0, lon1, lat1))


def test_pca_layer_renders_what_the_core_computes_in_layer_crs_and_web_mercator(sample_store, sample_http):
    layer = make_layer(sample_http.store_url, 2024, pca="global")
    assert layer.isValid() and layer.providerType() == "tessera" and layer.bandCount() == 3
    store = open_store(sample_store)
    pca = PCA.from_stretch(store.stretch(2024))
    crs = layer.crs().authid()
    # Web Mercator at about 9 m a pixel (finer than the 10 m source): at coarser scales each
    # nearest-neighbour resampler picks its own one of several source pixels per output pixel.
    for dest, size in ((crs, (400, 300)), ("EPSG:3857", (800, 600))):
        extent = view_in(layer, dest, -0.03, 52.185, 0.02, 52.215)  # across the 0 degree seam
        img, ms, errors = render([layer], dest, extent, size)
        assert not errors
        want = core_rgba(store, 2024, pca, dest, ms)
        transparent = img[..., 3] == 0
        # nodata (water, outside) is transparent where the core has no data
        assert (transparent == (want[3] == 0)).mean() > 0.98
        both = (~transparent) & (want[3] == 255)
        rgb, ref = img[..., :3].astype(int), np.moveaxis(want[:3], 0, -1).astype(int)
        if dest == crs:  # the provider's own grid: the same pixels, colour within 1
            close = (np.abs(rgb - ref) <= 1).all(axis=-1)
        else:
            # QGIS reprojects by resampling a layer-CRS block (nearest neighbour), so a pixel
            # may come from a neighbouring source pixel: its colour must be within 1 of the
            # core's colour at that pixel or one of its 8 neighbours.
            pad = np.pad(ref, ((1, 1), (1, 1), (0, 0)), mode="edge")
            close = np.zeros(both.shape, bool)
            for dy in (0, 1, 2):
                for dx in (0, 1, 2):
                    shifted = pad[dy:dy + ref.shape[0], dx:dx + ref.shape[1]]
                    close |= (np.abs(rgb - shifted) <= 1).all(axis=-1)
        share = close[both].mean()
        assert share > 0.99, f"{dest}: {share:.3f} of pixels within 1"


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


def test_project_saves_and_reloads_the_layer(sample_http, tmp_path):
    project = QgsProject.instance()
    layer = make_layer(sample_http.store_url, 2024, pca="global", name="tessera raster")
    project.addMapLayer(layer)
    path = tmp_path / "p.qgz"
    assert project.write(str(path))
    project.clear()
    prov.forget_stores()
    sample_http.reset()
    assert project.read(str(path))
    layers = project.mapLayersByName("tessera raster")
    assert len(layers) == 1 and layers[0].isValid() and layers[0].providerType() == "tessera"
    assert sample_http.stats()["requests"] == 0, "opening the project touches no network"
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
    assert not bad.isValid()
    secret = QgsRasterLayer("url=s3://b/x.zarr&year=2024&bands=1&secret=abc", "secret", "tessera")
    assert not secret.isValid()
    assert not QgsRasterLayer("url=/x&bands=1", "noyear", "tessera").isValid()


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


def test_a_failing_chunk_shows_nodata_and_a_warning_not_a_crash(sample_store, range_server):
    from support.servers import Faults

    shown = []
    notifier.message.connect(lambda title, text, level: shown.append(text))
    srv = range_server(sample_store.parent)
    layer = make_layer(f"{srv.url}/{sample_store.name}", 2024, bands=[1, 2, 3], stretch=[(-2, 2)] * 3)
    srv.faults = Faults("503", match="/embeddings/")  # every embeddings request fails from now on
    img, _, errors = render([layer], layer.crs().authid(), layer.extent(), size=(80, 60))
    QgsApplication.processEvents()
    assert not (img[..., 3] > 0).any(), "nothing drawn from failed chunks"
    assert any("could not be drawn" in t and "HTTP 503" in t for t in shown), shown
    srv.faults = None
    prov.state_for(layer.source()).tiles.clear()
    img, _, _ = render([layer], layer.crs().authid(), layer.extent(), size=(80, 60))
    assert (img[..., 3] > 0).mean() > 0.5, "drawn once the server recovers"


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
