"""README claims about layers and settings: a layer's `cache=` folder draws a seen area with
the server gone, `pca=view` fits its PCA to the first view drawn (checked against a fit worked
out by hand), and every field of the Options page reaches the store a layer opens."""
from __future__ import annotations

import numpy as np
import pytest
from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsRasterLayer, QgsRectangle

from support.reference import within
from tessera_qgis import provider as prov
from tessera_qgis.core.layerspec import LayerSpec
from tessera_qgis.layers import make_layer
from tessera_qgis.settings import Settings

pytestmark = pytest.mark.usefixtures("provider_active")


def view_in(layer, lon0, lat0, lon1, lat1) -> QgsRectangle:
    tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), layer.crs(), QgsProject.instance())
    return tr.transformBoundingBox(QgsRectangle(lon0, lat0, lon1, lat1))


def block_values(layer, extent: QgsRectangle, w: int, h: int, band: int = 1) -> np.ndarray:
    block = layer.dataProvider().block(band, extent, w, h)
    return np.frombuffer(bytes(block.data()), np.float32).reshape(h, w).astype(np.float64)


def transform_of(extent: QgsRectangle, w: int, h: int) -> tuple:
    return (extent.width() / w, 0.0, extent.xMinimum(), 0.0, -extent.height() / h, extent.yMaximum())


def test_a_layers_disk_cache_draws_a_seen_area_with_the_server_gone(sample_store, range_server, tmp_path,
                                                                      zarr_reference):
    srv = range_server(sample_store.parent)
    url = f"{srv.url}/{sample_store.name}"
    cached = make_layer(url, 2024, bands=[1, 2, 3], stretch=[(-2, 2)] * 3, cache=str(tmp_path / "cache"),
                        name="tessera layer")
    plain = make_layer(url, 2024, bands=[1, 2, 3], stretch=[(-2, 2)] * 3, name="tessera layer")
    assert LayerSpec.from_uri(cached.source()).store.cache == str(tmp_path / "cache")
    view, w, h = view_in(cached, -0.04, 52.19, -0.01, 52.21), 120, 90
    want = zarr_reference(2024).values(cached.crs().authid(), transform_of(view, w, h), w, h, [2])
    online = block_values(cached, view, w, h, 2)
    assert within(online[None], want.values, 0.0)[want.decided].all()
    assert any(p.is_file() for p in (tmp_path / "cache").rglob("*")), "the chunks went to the cache folder"
    srv.stop()  # offline from now on; and a new session: nothing held in memory
    prov.forget_stores()
    offline = QgsRasterLayer(cached.source(), "tessera layer", "tessera")  # as a project reload makes it
    assert offline.isValid()
    got = block_values(offline, view, w, h, 2)
    np.testing.assert_array_equal(got, online)
    assert prov.state_for(offline.source()).opened_store.offline, "opened from the cache"
    # The same layer without cache= has nothing to draw from.
    without = QgsRasterLayer(plain.source(), "tessera layer", "tessera")
    assert np.isnan(block_values(without, view, w, h, 2)).all()


def _hand_fit(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, components (3, bands) with each one's largest loading positive, 2 % and 98 % of
    the projections) of (n, bands) samples, by SVD."""
    mean = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:3] * np.sign(vt[:3][np.arange(3), np.abs(vt[:3]).argmax(axis=1)])[:, None]
    proj = (x - mean) @ comps.T
    return mean, comps, np.percentile(proj, 2, axis=0), np.percentile(proj, 98, axis=0)


def test_pca_view_fits_the_first_view_drawn_and_keeps_the_fit(sample_http, zarr_reference):
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize
    from qgis.PyQt.QtGui import QColor, QImage

    layer = make_layer(sample_http.store_url, 2024, pca="view", name="tessera layer")
    state = prov.state_for(layer.source())
    assert LayerSpec.from_uri(layer.source()).pca == "view" and state.pca is None, "nothing fitted before a draw"
    view, w, h = view_in(layer, -0.035, 52.19, -0.012, 52.206), 160, 120  # utm30 only, off the source edges
    ms = QgsMapSettings()
    ms.setLayers([layer])
    ms.setDestinationCrs(layer.crs())
    ms.setOutputSize(QSize(w, h))
    ms.setExtent(view)
    ms.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    assert not list(job.errors())
    fit = state.pca
    assert fit is not None and fit.source == "fit"
    # By hand: every pixel of that view (zarr-python's values at the source pixel under each
    # output pixel centre), all 128 bands, fitted by SVD.
    ref = zarr_reference(2024)
    every = ref.values(layer.crs().authid(), transform_of(ms.visibleExtent(), w, h), w, h, range(1, 129), margin=0.0)
    x = every.values.reshape(128, -1).T
    x = x[np.isfinite(x).all(axis=1)]
    assert len(x) > 5000
    mean, comps, lo, hi = _hand_fit(x)
    np.testing.assert_allclose(fit.mean, mean, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fit.components, comps, rtol=0, atol=1e-5)
    np.testing.assert_allclose(fit.lo, lo, rtol=0, atol=1e-4)
    np.testing.assert_allclose(fit.hi, hi, rtol=0, atol=1e-4)
    # The drawn colours: that projection, stretched as the layer's renderer says.
    img = job.renderedImage().convertToFormat(QImage.Format.Format_RGBA8888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    rgba = np.frombuffer(ptr, np.uint8).reshape(h, img.bytesPerLine() // 4, 4)[:, :w]
    r = layer.renderer()
    ranges = [(ce.minimumValue(), ce.maximumValue()) for ce in (r.redContrastEnhancement(),
                                                                r.greenContrastEnhancement(),
                                                                r.blueContrastEnhancement())]
    vals = every.values.reshape(128, -1)
    proj = (comps @ (vals - mean[:, None])).reshape(3, h, w)
    want = np.stack([np.floor(np.clip((p - a) / (b - a) * 255, 0, 255)) for p, (a, b) in zip(proj, ranges)])
    decided = ref.values(layer.crs().authid(), transform_of(ms.visibleExtent(), w, h), w, h, [1]).decided
    ok = within(np.moveaxis(rgba[..., :3], -1, 0), np.nan_to_num(want), 1.0)
    assert (rgba[..., 3][decided] == np.where(every.valid, 255, 0)[decided]).all()
    assert ok[decided & every.valid].all(), f"{int((~ok & decided & every.valid).sum())} pixels off"
    # Another view keeps the fit of the first.
    other = view_in(layer, -0.05, 52.18, -0.03, 52.2)
    layer.dataProvider().block(1, other, 100, 100)
    assert state.pca is fit


def test_every_options_page_field_reaches_the_store_a_layer_opens(sample_http, tmp_path):
    from qgis.core import QgsNetworkAccessManager

    from tessera_qgis.options import TesseraOptionsPage

    page = TesseraOptionsPage()
    page.cache_dir.setFilePath(str(tmp_path / "opt-cache"))
    page.cache_limit.setValue(123)
    page.memory.setValue(77)
    page.concurrency.setValue(12)
    page.timeout.setValue(9)
    page.default_year.setValue(2025)
    page.dask.setText(" tcp://127.0.0.1:8786 ")
    page.apply()
    try:
        s = Settings.load()
        assert (s.cache_dir, s.cache_limit_mb, s.memory_mb, s.concurrency, s.timeout_s, s.default_year,
                s.dask_scheduler) == (str(tmp_path / "opt-cache"), 123, 77, 12, 9, 2025, "tcp://127.0.0.1:8786")
        again = TesseraOptionsPage()  # shows what was saved
        assert (again.cache_dir.filePath(), again.cache_limit.value(), again.memory.value(), again.concurrency.value(),
                again.timeout.value(), again.default_year.value(), again.dask.text()) == (
            str(tmp_path / "opt-cache"), 123, 77, 12, 9, 2025, "tcp://127.0.0.1:8786")
        prov.forget_stores()
        layer = make_layer(sample_http.store_url, 2024, bands=[1], stretch=[(-2, 2)], name="tessera layer")
        store = prov.shared_store(LayerSpec.from_uri(layer.source()).store)  # what its draws use
        o = store.options
        assert (o.cache_dir, o.cache_limit_bytes, o.memory_cache_bytes, o.concurrency, o.timeout) == (
            str(tmp_path / "opt-cache"), 123 << 20, 77 << 20, 12, 9.0)
        assert store.caches.chunks.max_bytes == 77 << 20 and store.caches.disk is not None
        assert store.caches.disk.limit == 123 << 20 and str(store.caches.disk.root) == str(tmp_path / "opt-cache")
        page.timeout.setValue(0)  # "QGIS's network timeout"
        assert page.timeout.specialValueText() and page.timeout.text() == page.timeout.specialValueText()
        page.apply()
        old = QgsNetworkAccessManager.timeout()
        QgsNetworkAccessManager.setTimeout(4000)
        try:
            assert Settings.load().store_options().timeout == 4.0
        finally:
            QgsNetworkAccessManager.setTimeout(old)
    finally:
        Settings().save()
        prov.forget_stores()
