"""Map tools driven with synthetic mouse events on a real canvas: the pixel inspector, the
similarity search (checked against the sample's class map) and the region PCA fit."""
from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY,
                       QgsProject, QgsRectangle)
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt
from qgis.PyQt.QtWidgets import QApplication

from tessera_qgis import provider as prov
from support.qgis_helpers import wait_for
from tessera_qgis.core.layerspec import LayerSpec, decode_vector
from tessera_qgis.core.store import open_store
from tessera_qgis.inspector import InspectorDock
from tessera_qgis.layers import make_layer
from tessera_qgis.tools import InspectorController, RegionController, SimilarityController


pytestmark = pytest.mark.usefixtures("provider_active")


def setup_canvas(canvas, iface, layer, lon0, lat0, lon1, lat1):
    QgsProject.instance().addMapLayer(layer)
    canvas.setLayers([layer])
    canvas.setDestinationCrs(layer.crs())
    tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), layer.crs(), QgsProject.instance())
    canvas.setExtent(tr.transformBoundingBox(QgsRectangle(lon0, lat0, lon1, lat1)))
    canvas.refresh()
    iface.setActiveLayer(layer)


def screen_point(canvas, lon, lat) -> QPoint:
    tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), canvas.mapSettings().destinationCrs(),
                                QgsProject.instance())
    p = canvas.getCoordinateTransform().transform(tr.transform(QgsPointXY(lon, lat)))
    return QPoint(int(round(p.x())), int(round(p.y())))


def click(canvas, tool, pos: QPoint, end: QPoint | None = None) -> None:
    canvas.setMapTool(tool)
    press = QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonPress, pos, Qt.MouseButton.LeftButton,
                             Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    tool.canvasPressEvent(press)
    if end is not None:
        move = QgsMapMouseEvent(canvas, QEvent.Type.MouseMove, end, Qt.MouseButton.NoButton,
                                Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        tool.canvasMoveEvent(move)
    release = QgsMapMouseEvent(canvas, QEvent.Type.MouseButtonRelease, end or pos, Qt.MouseButton.LeftButton,
                               Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    tool.canvasReleaseEvent(release)


def test_pixel_inspector_click_fills_the_dock(sample_store, sample_http, qgis_canvas, qgis_iface):
    layer = make_layer(sample_http.store_url, 2025, bands=[1, 2, 3], name="tessera layer")
    setup_canvas(qgis_canvas, qgis_iface, layer, -0.05, 52.18, -0.01, 52.22)
    dock = InspectorDock()
    ctl = InspectorController(qgis_iface, dock)
    for lon, lat in ((-0.03, 52.2), (-0.02, 52.19)):
        click(qgis_canvas, ctl.tool, screen_point(qgis_canvas, lon, lat))
        wait_for(ctl.last_task)
    assert len(dock.clicks) == 2 and dock.list.count() == 2
    first = dock.clicks[0]
    want = open_store(sample_store).pixel(first["lon"], first["lat"], 2025)
    assert abs(first["lon"] - -0.03) < 0.001 and first["year"] == 2025
    assert first["embedding"] == want["embedding"] and len(first["embedding"]) == 128
    dock.copy_csv.click()
    csv = QApplication.clipboard().text().splitlines()
    assert len(csv) == 3 and csv[0].split(",")[9] == "A001" and len(csv[1].split(",")) == 9 + 128
    dock.copy_json.click()
    data = json.loads(QApplication.clipboard().text())
    assert data[1]["embedding"] == dock.clicks[1]["embedding"]
    dock.grab()  # paints the plot without error
    dock.clear()
    assert dock.clicks == [] and dock.list.count() == 0


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outranks a negative."""
    scores = np.concatenate([pos, neg])
    ranks = scores.argsort().argsort() + 1
    return (ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


@pytest.mark.parametrize("class_id", [3, 4])  # cropland, forest
def test_similarity_map_ranks_the_clicked_class_first(sample_store, sample_http, qgis_canvas, qgis_iface, class_id):
    g = zarr.open_group(str(sample_store), mode="r")["utm30"]
    lc = g["sample_landcover"][0]
    scales = g["scales"][0]
    rows, cols = np.nonzero((lc == class_id) & np.isfinite(scales))
    pick = len(rows) // 2
    x0, y0 = g.attrs["spatial:transform"][2], g.attrs["spatial:transform"][5]
    tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:32630"),
                                QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    p = tr.transform(QgsPointXY(x0 + 10 * cols[pick] + 5, y0 - 10 * rows[pick] - 5))
    layer = make_layer(sample_http.store_url, 2024, pca="global", name="tessera layer")
    setup_canvas(qgis_canvas, qgis_iface, layer, p.x() - 0.01, p.y() - 0.008, p.x() + 0.01, p.y() + 0.008)
    ctl = SimilarityController(qgis_iface)
    click(qgis_canvas, ctl.tool, screen_point(qgis_canvas, p.x(), p.y()))
    wait_for(ctl.last_task)
    sim = ctl.last_layer
    assert sim is not None and sim.isValid() and sim.id() in QgsProject.instance().mapLayers()
    spec = LayerSpec.from_uri(sim.source())
    assert spec.similarity and len(decode_vector(spec.similarity)) == 128
    # Similarity of every pixel of the zone (drawn by the provider on the zone's own grid).
    h, w = lc.shape
    block = sim.dataProvider().block(1, QgsRectangle(x0, y0 - 10 * h, x0 + 10 * w, y0), w, h)
    values = np.frombuffer(bytes(block.data()), np.float32).reshape(h, w)
    valid = np.isfinite(values) & (lc > 1)
    auc = _auc(values[valid & (lc == class_id)], values[valid & (lc != class_id)])
    assert auc >= 0.9, f"AUC {auc:.3f}"
    assert values[rows[pick], cols[pick]] == pytest.approx(1.0, abs=1e-3), "the clicked pixel is most similar"


def test_similarity_of_a_dragged_area_and_clicks_without_a_layer(sample_http, qgis_canvas, qgis_iface):
    from tessera_qgis.log import notifier

    messages = []
    notifier.message.connect(lambda title, text, level: messages.append(text))
    ctl = SimilarityController(qgis_iface)
    qgis_canvas.setLayers([])
    ctl.start(point=QgsPointXY(0, 0))
    assert any("Add a TESSERA layer first" in m for m in messages) and ctl.last_task is None
    layer = make_layer(sample_http.store_url, 2024, pca="global", name="tessera layer")
    setup_canvas(qgis_canvas, qgis_iface, layer, -0.03, 52.19, -0.01, 52.2)
    click(qgis_canvas, ctl.tool, screen_point(qgis_canvas, -0.025, 52.194), screen_point(qgis_canvas, -0.023, 52.196))
    wait_for(ctl.last_task)
    assert ctl.last_layer is not None and "px area" in ctl.last_layer.name()


def test_region_tool_fits_the_pca_to_the_dragged_rectangle(sample_http, qgis_canvas, qgis_iface):
    layer = make_layer(sample_http.store_url, 2024, pca="global", name="tessera layer")
    setup_canvas(qgis_canvas, qgis_iface, layer, -0.05, 52.18, 0.0, 52.22)
    state = prov.state_for(layer.source())
    assert state.pca_model().source == "global"
    ctl = RegionController(qgis_iface)
    click(qgis_canvas, ctl.tool, screen_point(qgis_canvas, -0.04, 52.21), screen_point(qgis_canvas, -0.02, 52.19))
    actions = ctl.last_menu.actions()
    assert [a.text() for a in actions] == ["Fit PCA colours to this region", "Export this region…",
                                          "Take this area offline…"]
    actions[0].trigger()
    wait_for(ctl.last_task)
    assert state.pca.source == "fit"
    ce = layer.renderer().redContrastEnhancement()
    assert ce.minimumValue() == pytest.approx(state.pca.lo[0]) and ce.maximumValue() == pytest.approx(state.pca.hi[0])


def test_export_parameters_are_prefilled_from_the_layer_and_region(sample_http):
    from qgis.core import QgsCoordinateReferenceSystem

    from tessera_qgis.tools import export_parameters

    layer = make_layer(sample_http.store_url, 2025, bands=[4, 5, 6], name="tessera layer")
    params = export_parameters(layer, QgsRectangle(1, 2, 3, 4), QgsCoordinateReferenceSystem("EPSG:3857"))
    assert params == {"STORE": sample_http.store_url, "YEAR": 2025, "BANDS": "4,5,6",
                      "EXTENT": "1.0,3.0,2.0,4.0 [EPSG:3857]"}
    whole = export_parameters(layer, None, None)
    assert whole["EXTENT"].endswith(f"[{layer.crs().authid()}]")


def test_similarity_from_a_depth_4_layer_compares_4_dimensions(v2_store, qgis_canvas, qgis_iface):
    """A click on a depth-4 layer makes a depth-4 similarity layer: the cosine of each pixel's
    first 4 dimensions with the clicked pixel's, worked out from zarr-python's values."""
    root = zarr.open_group(str(v2_store), mode="r")
    assert 4 in [d["dimensions"] for d in root.attrs["geoemb:depths"]]
    name = sorted(k for k in root.group_keys() if k.startswith("utm"))[0]
    g = root[name]
    h, w = g.attrs["spatial:shape"]
    a, _, x0, _, e, y0 = g.attrs["spatial:transform"]
    to_lonlat = QgsCoordinateTransform(QgsCoordinateReferenceSystem(g.attrs["proj:code"]),
                                       QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    centre = to_lonlat.transform(QgsPointXY(x0 + a * (w // 2 + 0.5), y0 + e * (h // 2 + 0.5)))
    lon, lat = centre.x(), centre.y()
    layer = make_layer(str(v2_store), 2024, pca="global", depth=4, name="tessera layer")
    setup_canvas(qgis_canvas, qgis_iface, layer, lon - 0.01, lat - 0.008, lon + 0.01, lat + 0.008)
    ctl = SimilarityController(qgis_iface)
    click(qgis_canvas, ctl.tool, screen_point(qgis_canvas, lon, lat))
    wait_for(ctl.last_task)
    spec = LayerSpec.from_uri(ctl.last_layer.source())
    assert spec.depth == 4
    px = open_store(v2_store).pixel(lon, lat, 2024)
    assert px["valid"] and px["zone"] == name
    t = list(root[name]["time"][:]).index(2024)
    r0, c0, n = px["row"] - 20, px["col"] - 20, 40
    block = ctl.last_layer.dataProvider().block(1, QgsRectangle(x0 + a * c0, y0 + e * (r0 + n), x0 + a * (c0 + n),
                                                                y0 + e * r0), n, n)
    got = np.frombuffer(bytes(block.data()), np.float32).reshape(n, n)
    q = g["embeddings"][t, :4, r0:r0 + n, c0:c0 + n].astype(np.float64)
    s = g["scales"][t, r0:r0 + n, c0:c0 + n]
    ref = q[:, 20, 20]  # the clicked pixel (its scale cancels out of the cosine)
    want = np.tensordot(ref, q, axes=(0, 0)) / (np.linalg.norm(ref) * np.linalg.norm(q, axis=0))
    valid = np.isfinite(s) & (s > 0) & (s < 1)
    assert valid.mean() > 0.5
    np.testing.assert_allclose(got[valid], want[valid], atol=1e-5)
    assert np.isnan(got[~valid]).all()
