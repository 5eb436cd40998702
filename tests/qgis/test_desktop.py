"""What a user meets in the QGIS desktop (issue 18), driven through the real widgets: the
style dock on layers of different modes, feedback on every wait (building the sample, fitting
PCA, adding a layer), one short message per cause, the budget and previews in Options, the
inspector's plot and table, the toolbar, the Browser items and the export dialog's store.

Expected values come from the store read with zarr-python, from names worked out by hand
(the sample's dataset is "sample"), or from the layer's renderer, never from the code under test.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

import numpy as np
import pytest
import zarr
from qgis.core import (Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY,
                       QgsProject, QgsRasterLayer, QgsRectangle)
from qgis.PyQt.QtCore import QEvent, QPointF, Qt
from qgis.PyQt.QtGui import QColor, QMouseEvent
from qgis.PyQt.QtTest import QTest
from qgis.gui import QgsMessageBar
from qgis.PyQt.QtWidgets import QApplication, QTableWidgetSelectionRange, QTextBrowser, QToolButton

import tessera_qgis
from support.qgis_helpers import wait_for
from tessera_qgis import provider as prov
from tessera_qgis.browser import TesseraDataItemProvider
from tessera_qgis.core.connections import SAMPLE_NAME, Connection
from tessera_qgis.core.layerspec import LayerSpec
from tessera_qgis.core.store import open_store
from tessera_qgis.dialog import TesseraSourceWidget
from tessera_qgis.inspector import InspectorDock
from tessera_qgis.layers import make_layer
from tessera_qgis.log import MessageBarBridge, notifier
from tessera_qgis.options import TesseraOptionsPage
from tessera_qgis.settings import Settings, sample_store_path, save_custom_connections, upsert_connection
from tessera_qgis.style_dock import StyleDock
from tessera_qgis.tools import InspectorController, export_parameters

pytestmark = pytest.mark.usefixtures("provider_active", "no_saved_connections")

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def show(canvas, iface, layer, bbox=(-0.05, 52.185, -0.01, 52.215)):
    QgsProject.instance().addMapLayer(layer)
    canvas.setLayers([layer])
    canvas.setDestinationCrs(layer.crs())
    tr = QgsCoordinateTransform(WGS84, layer.crs(), QgsProject.instance())
    canvas.setExtent(tr.transformBoundingBox(QgsRectangle(*bbox)))
    iface.setActiveLayer(layer)


def render(layer, extent, size=(300, 200)):
    from qgis.core import QgsMapRendererParallelJob, QgsMapSettings
    from qgis.PyQt.QtCore import QSize

    ms = QgsMapSettings()
    ms.setLayers([layer])
    ms.setDestinationCrs(layer.crs())
    ms.setExtent(extent)
    ms.setOutputSize(QSize(*size))
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    QgsApplication.processEvents()


@pytest.fixture
def messages():
    """Every message meant for the message bar (title, text, level), and every line of the
    TESSERA message log."""
    bar, logged = [], []

    def on_bar(title, text, level):
        bar.append((title, text, level))

    def on_log(text, tag, level):
        if tag == "TESSERA":
            logged.append(text)

    notifier.message.connect(on_bar)
    QgsApplication.messageLog().messageReceived.connect(on_log)
    yield bar, logged
    notifier.message.disconnect(on_bar)
    QgsApplication.messageLog().messageReceived.disconnect(on_log)


def one_line_in_a_bar(text: str, width: int = 690) -> bool:
    """Pushed to a real message bar as wide as the map of a 1400 px QGIS window with the
    Browser, Layers and a TESSERA dock open (690 px), the message takes one line."""
    bar = QgsMessageBar()
    bar.setFixedWidth(width)
    bar.show()
    bar.pushMessage("TESSERA", text, Qgis.MessageLevel.Info, 0)
    QgsApplication.processEvents()
    browser = bar.items()[0].findChild(QTextBrowser)
    doc = browser.document()
    doc.setTextWidth(browser.viewport().width())
    lines = doc.size().height() / browser.fontMetrics().lineSpacing()
    bar.close()
    return lines < 2


# -- the style dock ---------------------------------------------------------------------------
def hidden(widget) -> bool:
    """Would not be seen when its window is shown (itself or a parent row hidden)."""
    return not widget.isVisibleTo(widget.window())


def test_style_dock_shows_each_layers_own_settings_and_only_its_controls(sample_store, sample_http, qgis_canvas,
                                                                         qgis_iface):
    ref = open_store(sample_store).pixel(-0.03, 52.2, 2024)["embedding"]
    similar = make_layer(sample_http.store_url, 2024, similarity=ref, threshold=0.5)
    pca = make_layer(sample_http.store_url, 2024, pca="global")
    bands = make_layer(sample_http.store_url, 2024, bands=[4, 5, 6])
    for layer in (similar, pca, bands):
        QgsProject.instance().addMapLayer(layer)
    show(qgis_canvas, qgis_iface, pca)
    dock = StyleDock(qgis_iface)

    dock.set_layer(similar)
    assert dock.lo.value() == pytest.approx(0.5) and not hidden(dock.lo), "the threshold"
    assert hidden(dock.mode) and hidden(dock.bands[0]) and hidden(dock.stretch) and hidden(dock.fit_button)
    dock.lo.setValue(0.8)  # edited, not applied: belongs to the similarity layer only

    dock.set_layer(pca)
    assert dock.mode.currentData() == "pca"
    assert all(hidden(b) for b in dock.bands), "PCA has no band boxes"
    assert hidden(dock.stretch) and hidden(dock.lo) and hidden(dock.hi), "nor a stretch"
    assert not hidden(dock.fit_button) and not hidden(dock.lock)

    dock.set_layer(bands)
    r = bands.renderer()
    want = (r.redContrastEnhancement().minimumValue(), r.redContrastEnhancement().maximumValue())
    assert dock.stretch.currentData() == "view", "not the similarity layer's fixed stretch"
    assert (dock.lo.value(), dock.hi.value()) == pytest.approx(want, abs=1e-3)
    assert (dock.lo.value(), dock.hi.value()) != pytest.approx((0.8, 1.0), abs=1e-3)
    assert [b.value() for b in dock.bands] == [4, 5, 6] and not any(hidden(b) for b in dock.bands)
    assert hidden(dock.fit_button) and hidden(dock.lock)
    dock.mode.setCurrentIndex(dock.mode.findData("ramp"))
    assert not hidden(dock.bands[0]) and hidden(dock.bands[1]) and hidden(dock.bands[2]), "one band"

    # PCA -> 3 bands as RGB: the name follows the mode ("sample" is the store's tessera:dataset)
    dock.set_layer(pca)
    assert pca.name() == "TESSERA sample 2024 PCA"
    dock.mode.setCurrentIndex(dock.mode.findData("rgb"))
    assert not any(hidden(b) for b in dock.bands) and not hidden(dock.stretch), "controls follow the mode box"
    dock.apply()
    wait_for(dock.last_task)
    assert LayerSpec.from_uri(pca.source()).bands == (1, 2, 3)
    assert pca.name() == "TESSERA sample 2024 bands 1,2,3"
    dock.year.setCurrentIndex(dock.year.findData(2025))
    dock.apply()
    wait_for(dock.last_task)
    assert pca.name() == "TESSERA sample 2025 bands 1,2,3"
    # a name the user chose is kept
    bands.setName("my fields")
    dock.set_layer(bands)
    dock.mode.setCurrentIndex(dock.mode.findData("pca"))
    dock.apply()
    assert bands.name() == "my fields" and LayerSpec.from_uri(bands.source()).pca == "global"


def test_fit_pca_shows_progress_says_when_done_and_cancels(sample_store, sample_http, range_server, qgis_canvas,
                                                           qgis_iface, messages):
    bar, _ = messages
    layer = make_layer(sample_http.store_url, 2024, pca="global")
    show(qgis_canvas, qgis_iface, layer)
    dock = StyleDock(qgis_iface)
    dock.set_layer(layer)
    assert hidden(dock.fit_progress)
    seen = []
    dock.fit_pca()
    task = dock.fit_task
    task.progressChanged.connect(seen.append)
    assert not hidden(dock.fit_progress) and not hidden(dock.fit_cancel), "progress and Cancel while fitting"
    assert not dock.fit_button.isEnabled()
    wait_for(task)
    assert task.outcome == "done" and prov.state_for(layer.source()).pca.source == "fit"
    assert any(0 < v < 100 for v in seen) and seen[-1] == 100, seen
    assert hidden(dock.fit_progress) and dock.fit_button.isEnabled()
    done = [text for _t, text, _l in bar if "fitted" in text]
    assert len(done) == 1 and one_line_in_a_bar(done[0]), bar

    # Cancel from the dock, against a slow server: the layer keeps its PCA
    slow = range_server(sample_store.parent, latency=0.3)
    other = make_layer(f"{slow.url}/{sample_store.name}", 2024, pca="global")
    show(qgis_canvas, qgis_iface, other, bbox=(-0.06, 52.17, 0.06, 52.23))
    dock.set_layer(other)
    dock.fit_pca()
    task = dock.fit_task
    dock.fit_cancel.click()
    assert hidden(dock.fit_progress) and dock.fit_button.isEnabled(), "free at once"
    wait_for(task)
    assert task.outcome == "cancelled" and prov.state_for(other.source()).pca.source == "global"


# -- the data-source dialog: building the sample, adding a layer, the export's store ------------
def test_sample_build_shows_its_steps_then_add_layer_says_the_dialog_can_be_closed(sample_store, qgis_iface,
                                                                                  qgis_canvas):
    shutil.rmtree(sample_store_path(), ignore_errors=True)
    w = TesseraSourceWidget(iface=qgis_iface)
    assert w.current().name == SAMPLE_NAME
    shown = []  # what the dialog showed at each step (read after its own slot ran)
    w.steps.step.connect(lambda *_: shown.append((w.progress.minimum(), w.progress.maximum(), w.progress.value(),
                                                  w.progress.text(), w.status.text())))
    w.connect_button.click()
    assert "Connecting to Sample data (offline)" in w.status.text() and not hidden(w.cancel_button)
    wait_for(w.task)
    assert w.store is not None
    # one step per zone, then the global preview (the sample follows the v2 layout)
    zones = sorted(k for k in zarr.open_group(str(sample_store), mode="r").group_keys() if k.startswith("utm"))
    zones.append("global_rgb")
    assert [s[2].split(":")[0] for s in w.steps_seen] == zones, w.steps_seen
    assert [s[:2] for s in w.steps_seen] == [(i + 1, len(zones)) for i in range(len(zones))]
    for i, (lo, hi, value, text, status) in enumerate(shown):
        assert (lo, hi, value) == (0, len(zones), i), "a bar that moves step by step"
        assert f"step {i + 1} of {len(zones)}" in text and "Building the sample store" in status
        assert zones[i] in status
    assert hidden(w.progress)

    w.mode.setCurrentIndex(w.mode.findData("pca"))
    w.addButtonClicked()
    assert "Adding the layer" in w.status.text() and not hidden(w.progress), "the wait says what it does"
    wait_for(w.add_task)
    layer = w.last_layer
    assert layer.name() == "TESSERA sample 2024 PCA"
    assert prov.state_for(layer.source()).pca.source == "fit", "v2 has no global PCA: fitted to the view"
    assert "close this window" in w.status.text() and layer.name() in w.status.text()
    assert w.close_button is not None
    w.show()
    w.close_button.click()
    assert not w.isVisible()

    # the export dialog names the connection, not the sample's folder inside the profile
    params = export_parameters(layer, None, None)
    assert params["STORE"] == SAMPLE_NAME
    from tessera_qgis.processing.base import open_for

    store, url = open_for(params["STORE"])
    assert url == str(sample_store_path()) and store.years == [2024, 2025]


def test_export_store_is_the_matching_connections_name(sample_http):
    layer = make_layer(sample_http.store_url, 2024, bands=[1, 2, 3])
    assert export_parameters(layer, None, None)["STORE"] == sample_http.store_url, "no connection: the URL"
    upsert_connection(Connection("my local store", sample_http.store_url + "/"))
    try:
        assert export_parameters(layer, None, None)["STORE"] == "my local store"
        upsert_connection(Connection("my local store", sample_http.store_url, anon=True), "my local store")
        assert export_parameters(layer, None, None)["STORE"] == sample_http.store_url, "other options: no match"
    finally:
        save_custom_connections([])


# -- messages, the budget and previews ------------------------------------------------------------
def test_over_budget_message_is_one_short_line_once_per_change(sample_http, messages):
    bar, logged = messages
    settings = Settings.load()
    settings.previews = "none"
    settings.save()
    shown = QgsMessageBar()
    bridge = MessageBarBridge(shown)
    try:
        layer = make_layer(sample_http.store_url, 2024, bands=[1, 2, 3], budget=100 * 100)
        whole = layer.extent()
        for _ in range(3):
            render(layer, whole)
        small = QgsRectangle(whole.center().x(), whole.center().y(), whole.center().x() + 500,
                             whole.center().y() + 500)
        render(layer, small)  # within the budget: no message
        render(layer, whole)  # over it again: said again, once
        QgsApplication.processEvents()
        said = [text for _t, text, _l in bar]
        assert len(said) == 2 and said[0] == said[1], said
        assert "Zoom in" in said[0] and "Options > TESSERA" in said[0], "what to do, and where"
        assert sum(said[0] in line for line in logged) == 2, logged
        assert [i.text() for i in shown.items()] == [said[0]], "the bar shows the same text once in 5 s"
        assert one_line_in_a_bar(said[0])
    finally:
        bridge.close()
        settings.previews = "auto"
        settings.save()


def test_every_provider_notice_fits_one_line():
    state = prov.LayerState(LayerSpec.of("/nowhere.zarr", 2024, pca="global"))
    for kind, label in (("preview", "preview (2024)"), ("coarse", "coarse preview"), ("over budget", "")):
        state.frame_kind, state.frame_label = kind, label
        text = state.notice()
        assert text and "\n" not in text and one_line_in_a_bar(text), text
        assert state.notice() is None, "said once per change"


def test_a_long_message_shows_one_line_and_the_rest_under_show_more():
    shown = QgsMessageBar()
    bridge = MessageBarBridge(shown)
    try:
        long = ("Some of the layer could not be drawn: timed out reading "
                "https://127.0.0.1:9/store.zarr/utm30/embeddings/c/0/0/3/4 (after 5 attempts)")
        notifier.message.emit("TESSERA", long, 1)
        QgsApplication.processEvents()
        item = shown.items()[0]
        assert long.startswith(item.text()[:-1]) and item.text().endswith("…")
        assert one_line_in_a_bar(item.text())
        more = [b for b in item.findChildren(QToolButton) if "more" in b.text().lower()]
        assert more, "the whole text one click away"
    finally:
        bridge.close()


def test_every_fixed_message_of_the_plugin_fits_one_line():
    """Each literal tr() text handed to log.report() (what the message bar shows)."""
    found = []
    for path in (Path(tessera_qgis.__file__).parent).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "report" and len(node.args) > 1
                    and isinstance(node.args[1], ast.Call) and getattr(node.args[1].func, "id", None) == "tr"
                    and isinstance(node.args[1].args[0], ast.Constant)):
                found.append(node.args[1].args[0].value)
    assert len(found) >= 3, found
    for text in found:
        assert one_line_in_a_bar(text), text


def test_options_page_sets_the_budget_and_previews_of_open_layers(sample_http):
    layer = make_layer(sample_http.store_url, 2024, bands=[1, 2, 3])
    pinned = make_layer(sample_http.store_url, 2024, bands=[4, 5, 6], budget=100 * 100)
    state, pinned_state = prov.state_for(layer.source()), prov.state_for(pinned.source())
    render(layer, layer.extent())
    assert state.tiles
    page = TesseraOptionsPage()
    assert page.budget.value() == Settings().budget_mpx and page.previews.currentData() == "auto"
    page.budget.setValue(3)
    page.previews.setCurrentIndex(page.previews.findData("none"))
    page.apply()
    try:
        s = Settings.load()
        assert (s.budget_mpx, s.previews) == (3, "none")
        assert TesseraOptionsPage().budget.value() == 3
        assert state.spec.budget == 3_000_000 and state.view().spec.budget == 3_000_000
        assert state.previews == "none" and not state.tiles, "an open layer follows at once"
        assert pinned_state.spec.budget == 100 * 100 and pinned_state.previews == "none", "a URI budget wins"
    finally:
        Settings().save()
        prov.apply_settings()


# -- the inspector ---------------------------------------------------------------------------------
def zarr_embedding(store_dir, zone: str, year: int, row: int, col: int) -> list[float]:
    """The dequantised embedding, read with zarr-python (the reference)."""
    g = zarr.open_group(str(store_dir), mode="r")[zone]
    t = list(g["time"][:]).index(year)
    q = g["embeddings"][t, :, row, col].astype(np.float64)
    return (q * float(g["scales"][t, row, col])).tolist()


def test_inspector_plot_table_and_rows(sample_store, sample_http, qgis_canvas, qgis_iface):
    layer = make_layer(sample_http.store_url, 2024, bands=[1, 2, 3])
    show(qgis_canvas, qgis_iface, layer)
    dock = InspectorDock()
    ctl = InspectorController(qgis_iface, dock)
    tr = QgsCoordinateTransform(WGS84, qgis_canvas.mapSettings().destinationCrs(), QgsProject.instance())
    for lon, lat in ((-0.03, 52.2), (-0.02, 52.19)):
        ctl.start(tr.transform(QgsPointXY(lon, lat)))
        wait_for(ctl.last_task)
    want = [zarr_embedding(sample_store, c["zone"], 2024, c["row"], c["col"]) for c in dock.clicks]
    dock.resize(320, 640)
    dock.show()
    QgsApplication.processEvents()
    plot = dock.plot
    # axes: band numbers on x, values on y, a zero line inside the plot
    r = plot.plot_rect()
    assert plot.x_of(1) == pytest.approx(r.left()) and plot.x_of(128) == pytest.approx(r.right())
    lo, hi = plot.value_range()
    assert lo <= min(min(v) for v in want) and hi >= max(max(v) for v in want) and lo < 0 < hi
    assert r.top() < plot.y_of(0.0) < r.bottom()
    img = plot.grab().toImage()

    def dark(x0, y0, x1, y1) -> int:
        return sum(QColor(img.pixel(x, y)).lightness() < 128 for x in range(x0, x1) for y in range(y0, y1))

    assert dark(0, int(r.top()), int(r.left()) - 4, int(r.bottom())) > 20, "value labels left of the plot"
    assert dark(int(r.left()), int(r.bottom()) + 5, int(r.right()), plot.height()) > 20, "band numbers below it"
    assert dark(int(r.left()), 0, int(r.right()), int(r.top())) > 10, "a legend above it"
    assert plot.labels == ["#1 2024", "#2 2024"]
    # the tooltip gives each pixel's value at the band under the mouse
    x, y = plot.x_of(37), plot.y_of(0.0)
    move = QMouseEvent(QEvent.Type.MouseMove, QPointF(x, y), QPointF(plot.mapToGlobal(QPointF(x, y).toPoint())),
                       Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(plot, move)
    tip = plot.last_tooltip
    assert "band 37" in tip and f"#1 2024: {want[0][36]:.4f}" in tip and f"#2 2024: {want[1][36]:.4f}" in tip, tip
    # the per-band table, and copying from it
    table = dock.table
    assert (table.rowCount(), table.columnCount()) == (128, 2)
    assert float(table.item(36, 1).text()) == pytest.approx(want[1][36], rel=1e-5)
    table.setRangeSelected(QTableWidgetSelectionRange(9, 0, 10, 1), True)
    table.setFocus()
    QTest.keyClick(table, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    lines = QApplication.clipboard().text().splitlines()
    assert lines[0].split("\t") == ["band", "#1 2024", "#2 2024"] and lines[1].startswith("A010\t")
    assert [float(v) for v in lines[2].split("\t")[1:]] == pytest.approx([want[0][10], want[1][10]], rel=1e-5)
    # rows that fit: no horizontal scroll bar, the year at the start of each row
    assert not dock.list.horizontalScrollBar().isVisible()
    for i in range(dock.list.count()):
        item = dock.list.item(i)
        assert item.text().startswith(f"#{i + 1} 2024")
        assert dock.list.visualItemRect(item).right() <= dock.list.viewport().width()


# -- the toolbar and the Browser ------------------------------------------------------------------
def test_toolbar_has_distinct_icons_short_tooltips_and_no_about(recording_iface):
    from tessera_qgis.plugin import TesseraPlugin

    plugin = TesseraPlugin(recording_iface)
    plugin.initGui()
    try:
        on_toolbar = plugin.toolbar.actions()
        by_name = {a.objectName(): a for a in plugin.actions}
        about, add = by_name["TesseraAboutAction"], by_name["TesseraAddLayerAction"]
        assert about not in on_toolbar and about in plugin.actions, "About: the menu only"
        assert add in on_toolbar
        images = {a.objectName(): a.icon().pixmap(32, 32).toImage() for a in plugin.actions}
        assert images["TesseraAboutAction"] != images["TesseraAddLayerAction"]
        assert len({bytes(img.constBits().asarray(img.sizeInBytes())) for img in images.values()}) == len(images)
        for action in on_toolbar:
            tip = action.toolTip()
            assert len(tip) <= 30 and ":" not in tip and not tip.endswith("."), tip
    finally:
        plugin.unload()


def test_browser_layer_items_are_named_and_have_no_expand_arrow(sample_http):
    upsert_connection(Connection("local http", sample_http.store_url))
    root = TesseraDataItemProvider().createDataItem("", None)
    conn = next(c for c in root.createChildren() if c.name() == "local http")
    year = next(y for y in conn.createChildren() if y.name() == "2025")
    items = year.createChildren()
    assert [i.name() for i in items] == ["TESSERA sample 2025 PCA", "TESSERA sample 2025 utm30 PCA",
                                         "TESSERA sample 2025 utm31 PCA"]
    assert not any(i.hasChildren() for i in items), "no expand arrows"
    uri = items[1].mimeUris()[0]
    layer = QgsRasterLayer(uri.uri, uri.name, uri.providerKey)
    assert layer.isValid() and layer.name() == "TESSERA sample 2025 utm30 PCA"
