"""The styling dock: bands, mode, stretch, PCA fit and lock, applied to a real layer."""
from __future__ import annotations


import pytest
from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform,
                       QgsMultiBandColorRenderer, QgsProject, QgsRectangle, QgsSingleBandPseudoColorRenderer)

from tessera_qgis import provider as prov
from support.qgis_helpers import wait_for
from tessera_qgis.core.layerspec import LayerSpec
from tessera_qgis.layers import make_layer
from tessera_qgis.style_dock import MODES, StyleDock


pytestmark = pytest.mark.usefixtures("provider_active")


def show(canvas, layer, lon0=-0.05, lat0=0, lon1=0, lat1=0):
    QgsProject.instance().addMapLayer(layer)
    canvas.setLayers([layer])
    canvas.setDestinationCrs(layer.crs())
    tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), layer.crs(), QgsProject.instance())
    canvas.setExtent(tr.transformBoundingBox(QgsRectangle(-0.05, 52.185, -0.01, 52.215)))


def render_once(layer, canvas):
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize

    ms = QgsMapSettings()
    ms.setLayers([layer])
    ms.setDestinationCrs(canvas.mapSettings().destinationCrs())
    ms.setExtent(canvas.extent())
    ms.setOutputSize(QSize(400, 300))
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    assert not job.errors()


def test_bands_mode_and_stretch(sample_http, qgis_canvas, qgis_iface):
    layer = make_layer(sample_http.store_url, 2024, bands=[1, 2, 3], name="tessera layer")
    show(qgis_canvas, layer)
    sample_http.reset()
    render_once(layer, qgis_canvas)
    first = sample_http.requests()
    dock = StyleDock(qgis_iface)
    dock.set_layer(layer)
    assert [b.value() for b in dock.bands] == [1, 2, 3] and dock.mode.currentData() == "rgb"
    assert [dock.year.itemData(i) for i in range(dock.year.count())] == [2024, 2025]
    for box, b in zip(dock.bands, (10, 20, 30)):
        box.setValue(b)
    sample_http.reset()
    dock.apply()
    wait_for(dock.last_task)
    assert LayerSpec.from_uri(layer.source()).bands == (10, 20, 30)
    render_once(layer, qgis_canvas)
    again = sample_http.requests()
    assert not {(r.path, r.range) for r in again} & {(r.path, r.range) for r in first}, \
        "other bands of the same view come from the cached chunks: nothing is fetched twice"
    assert isinstance(layer.renderer(), QgsMultiBandColorRenderer)
    lo = layer.renderer().redContrastEnhancement().minimumValue()
    assert lo == pytest.approx(dock.lo.value(), abs=1e-3) and lo < 0
    # one band with a ramp and a fixed stretch
    dock.mode.setCurrentIndex(MODES.index("ramp"))
    dock.stretch.setCurrentIndex(dock.stretch.findData("fixed"))
    dock.lo.setValue(-1.0)
    dock.hi.setValue(1.5)
    dock.apply()
    assert isinstance(layer.renderer(), QgsSingleBandPseudoColorRenderer)
    assert layer.renderer().classificationMin() == -1.0 and layer.renderer().classificationMax() == 1.5
    # another year
    dock.year.setCurrentIndex(1)
    dock.apply()
    assert LayerSpec.from_uri(layer.source()).year == 2025


def test_fit_pca_to_view_and_lock(sample_http, qgis_canvas, qgis_iface, tmp_path):
    layer = make_layer(sample_http.store_url, 2024, pca="global", name="tessera layer")
    show(qgis_canvas, layer)
    dock = StyleDock(qgis_iface)
    dock.set_layer(layer)
    assert dock.mode.currentData() == "pca" and not dock.lock.isChecked()
    dock.fit_pca()
    wait_for(dock.last_task)
    state = prov.state_for(layer.source())
    assert state.pca.source == "fit"
    fitted = state.pca.components.copy()
    dock.lock.setChecked(True)
    spec = LayerSpec.from_uri(layer.source())
    assert spec.pca.startswith("b64:"), "the fit travels with the project"
    assert not dock.fit_button.isEnabled()
    locked = prov.state_for(layer.source()).pca
    assert abs(locked.components - fitted).max() < 1e-5
    dock.fit_pca()  # locked: nothing happens
    assert prov.state_for(layer.source()).pca is locked
    # saved and reloaded, the locked PCA is still there
    project = QgsProject.instance()
    project.write(str(tmp_path / "p.qgz"))
    project.clear()
    prov.forget_stores()
    project.read(str(tmp_path / "p.qgz"))
    again = project.mapLayersByName("tessera layer")[0]
    assert abs(prov.state_for(again.source()).pca.components - fitted).max() < 1e-5
    dock.set_layer(again)
    dock.lock.setChecked(False)
    assert LayerSpec.from_uri(again.source()).pca == "global"


def test_similarity_threshold_from_the_dock(sample_store, sample_http, qgis_canvas, qgis_iface):
    from tessera_qgis.core.store import open_store

    ref = open_store(sample_store).pixel(-0.03, 52.2, 2024)["embedding"]
    layer = make_layer(sample_http.store_url, 2024, similarity=ref, threshold=0.5, name="tessera similarity")
    show(qgis_canvas, layer)
    dock = StyleDock(qgis_iface)
    dock.set_layer(layer)
    assert not dock.mode.isVisibleTo(dock) and dock.lo.value() == pytest.approx(0.5)
    dock.lo.setValue(0.8)
    dock.apply()
    r = layer.renderer()
    assert isinstance(r, QgsSingleBandPseudoColorRenderer) and r.classificationMin() == pytest.approx(0.8)
    assert r.shader().rasterShaderFunction().clip(), "below the threshold is transparent"
    assert LayerSpec.from_uri(layer.source()).similarity is not None
