"""Run inside a real QGIS desktop (qgis --code THIS) with a fresh profile: load the plugin from
the checkout and go through the workshop as a user would, saving screenshots on the way.

1. The data-source dialog builds the offline sample on first use (its steps shown), connects,
   and adds the PCA layer ("close this window" after Add layer).
2. The Browser lists the sample's layers; three pixels go into the inspector.
3. The style dock fits the PCA to the view (a message-bar line when done).
4. A similarity layer, with the dock showing its threshold.
5. Options > TESSERA (pixel budget, previews) and the export algorithm's dialog.
6. Analysis: k-means clusters, a classification from labelled points and its accuracy report,
   the year of the largest change, and the PCA layer following the time slider to 2025.

Driven by scripts/screenshots.sh; the output folder comes from TESSERA_SHOTS.
"""
import os
import sys
import time
import traceback

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QTimer
from qgis.gui import QgsBrowserTreeView
from qgis.PyQt.QtWidgets import QApplication, QTableWidgetSelectionRange
from qgis.utils import iface

SRC = os.environ.get("TESSERA_SRC", "/src")
OUT = os.environ.get("TESSERA_SHOTS", os.path.join(SRC, "docs", "images"))
sys.path.insert(0, SRC)
VIEW = (-0.045, 52.178, 0.045, 52.222)  # lon/lat of the map: the town, fields, woods, river
PIXELS = ((-0.03, 52.2), (0.02, 52.19), (0.012, 52.205))
state = {}


def log(msg):
    with open(os.path.join(OUT, "screenshot.log"), "a") as f:
        f.write(msg + "\n")


def save(widget, name):
    widget.grab().save(os.path.join(OUT, name))
    log(f"saved {name}")


def guarded(fn):
    def run():
        try:
            fn()
        except Exception:
            log(traceback.format_exc())
            os._exit(1)
    return run


def after(ms, fn):
    QTimer.singleShot(ms, guarded(fn))


def wait_until(condition, then, timeout_s=90, what=""):
    """Poll every 200 ms until condition() holds, then run `then`."""
    start = time.monotonic()

    def poll():
        if condition():
            then()
        elif time.monotonic() - start > timeout_s:
            log(f"gave up waiting for {what}")
            os._exit(1)
        else:
            QTimer.singleShot(200, guarded(poll))

    poll()


def to_map(lon, lat):
    canvas = iface.mapCanvas()
    tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), canvas.mapSettings().destinationCrs(),
                                QgsProject.instance())
    return tr.transform(QgsPointXY(lon, lat))


def clear_messages():
    for bar in iface.mainWindow().findChildren(type(iface.messageBar())):
        bar.clearWidgets()


# -- 1. the dialog ------------------------------------------------------------------------------
def start():
    import tessera_qgis

    win = iface.mainWindow()
    win.showNormal()
    win.setGeometry(0, 0, 1400, 880)
    win.activateWindow()  # an inactive QGIS adds "Task complete" notes to the message bar
    clear_messages()
    plugin = tessera_qgis.classFactory(iface)
    plugin.initGui()
    state["plugin"] = plugin
    canvas = iface.mapCanvas()
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    a, b = to_map(VIEW[0], VIEW[1]), to_map(VIEW[2], VIEW[3])
    canvas.setExtent(QgsRectangle(a, b))
    plugin.show_dialog()
    dialog = plugin.dialog
    dialog.move(380, 120)
    state["t0"] = time.monotonic()
    dialog.connect_store()  # the first connection: the offline sample, built now (fresh profile)
    wait_until(lambda: dialog.steps_seen and not dialog.progress.isHidden() and dialog.progress.maximum() > 0,
               lambda: after(300, building), what="the sample's first step")


def building():
    save(state["plugin"].dialog, "qgis-dialog-building.png")
    state["t_build"] = time.monotonic()
    dialog = state["plugin"].dialog
    wait_until(lambda: dialog.store is not None, connected, what="the connection")


def connected():
    log(f"connected to the sample (built on first use) after {time.monotonic() - state['t0']:.1f} s")
    dialog = state["plugin"].dialog
    dialog.mode.setCurrentIndex(dialog.mode.findData("pca"))
    dialog.addButtonClicked()
    wait_until(lambda: dialog.last_layer is not None and dialog.progress.isHidden(),
               lambda: after(500, added), what="the layer")


def added():
    dialog = state["plugin"].dialog
    save(dialog, "qgis-dialog.png")
    dialog.close()
    state["layer"] = dialog.last_layer
    iface.setActiveLayer(state["layer"])
    canvas = iface.mapCanvas()  # the first layer gave the project its CRS: back to Web Mercator
    QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    canvas.setExtent(QgsRectangle(to_map(VIEW[0], VIEW[1]), to_map(VIEW[2], VIEW[3])))
    canvas.refresh()
    expand_browser()
    after(1500, inspect)


def expand_browser():
    """TESSERA > Sample data (offline) > 2024 in the Browser panel (filled in the background)."""
    views = [v for v in iface.mainWindow().findChildren(QgsBrowserTreeView) if v.isVisible()]
    if not views:
        log("no Browser view found")
        return
    view = views[0]
    proxy = view.model()
    model = iface.browserModel()

    def expand(path, then=None, tries=25):
        index = model.findPath(path)
        if index.isValid():
            shown = proxy.mapFromSource(index) if hasattr(proxy, "mapFromSource") else index
            view.expand(shown)
            view.scrollTo(shown)
            if then:
                QTimer.singleShot(700, then)
        elif tries:
            QTimer.singleShot(300, lambda: expand(path, then, tries - 1))
        else:
            log(f"Browser: {path} not found")

    expand("tessera:", lambda: expand("tessera:/Sample data (offline)",
                                      lambda: expand("tessera:/Sample data (offline)/2024")))


# -- 2. the inspector -----------------------------------------------------------------------------
def inspect():
    plugin = state["plugin"]
    controller = plugin.controllers["inspector"]
    iface.mapCanvas().setMapTool(controller.tool)
    for i, (lon, lat) in enumerate(PIXELS):
        after(800 * (i + 1), lambda p=to_map(lon, lat): controller.start(p))
    wait_until(lambda: len(plugin.dock.clicks) == len(PIXELS), lambda: after(1500, inspected),
               what="the inspector")


def inspected():
    plugin = state["plugin"]
    clear_messages()
    plugin.dock.show()
    plugin.dock.raise_()
    QgsApplication.processEvents()
    after(1500, lambda: save(iface.mainWindow(), "qgis-pca-inspector.png") or after(200, table))


def table():
    dock = state["plugin"].dock
    dock.tabs.setCurrentWidget(dock.table)
    dock.table.setRangeSelected(QTableWidgetSelectionRange(0, 0, 5, 2), True)
    after(500, lambda: save(dock, "qgis-inspector-table.png") or after(200, style))


# -- 3. the style dock ----------------------------------------------------------------------------
def style():
    plugin = state["plugin"]
    plugin.dock.tabs.setCurrentWidget(plugin.dock.plot)
    plugin.dock.hide()
    plugin.show_style_dock()
    clear_messages()
    dock = plugin.style_dock
    dock.fit_button.click()
    task = dock.fit_task
    after(400, lambda: save(iface.mainWindow(), "qgis-style-dock-fitting.png") if task.outcome is None else None)
    wait_until(lambda: task.outcome is not None, lambda: after(2000, fitted), what="the PCA fit")


def fitted():
    # QGIS notes "Task complete" in the message bar only while its window is inactive, which
    # under Xvfb (no window manager) it always is: take that note away, keep the plugin's line.
    bar = iface.messageBar()
    for item in list(bar.items()):
        if item.title().startswith("Task complete"):
            bar.popWidget(item)
    QgsApplication.processEvents()
    save(iface.mainWindow(), "qgis-style-dock.png")
    after(200, similarity)


# -- 4. similarity --------------------------------------------------------------------------------
def similarity():
    plugin = state["plugin"]
    clear_messages()
    iface.setActiveLayer(state["layer"])
    controller = plugin.controllers["similarity"]
    controller.start(point=to_map(0.02, 52.205))
    wait_until(lambda: controller.last_layer is not None, lambda: after(300, similar), what="the similarity layer")


def similar():
    plugin = state["plugin"]
    layer = plugin.controllers["similarity"].last_layer
    iface.setActiveLayer(layer)
    plugin.style_dock.set_layer(layer)
    clear_messages()
    after(5000, lambda: save(iface.mainWindow(), "qgis-similarity.png") or after(200, options))


# -- 5. Options and the export algorithm ------------------------------------------------------------
def options():
    def grab_and_close():
        dialog = QApplication.activeModalWidget()
        if dialog is not None:
            save(dialog, "qgis-options.png")
            dialog.reject()
        else:
            log("the Options dialog was not found")
        after(300, export)

    def size():
        dialog = QApplication.activeModalWidget()
        if dialog is not None:
            dialog.resize(980, 560)
        after(1000, grab_and_close)

    after(2000, size)
    iface.showOptionsDialog(iface.mainWindow(), "TESSERA")  # modal: the timer above closes it


def export():
    from qgis import processing
    from tessera_qgis.tools import export_parameters

    canvas = iface.mapCanvas()
    params = export_parameters(state["layer"], canvas.extent(), canvas.mapSettings().destinationCrs())
    dlg = processing.createAlgorithmDialog("tessera:export", params)
    dlg.show()
    state["alg_dialog"] = dlg
    after(3000, lambda: save(dlg, "qgis-export-algorithm.png") or after(200, clusters))


# -- 6. analysis: clusters, a classification and its report, a trajectory, the time slider ----------
def work_dir():
    import tempfile

    if "work" not in state:
        state["work"] = tempfile.mkdtemp(prefix="tessera-shots-")
    return state["work"]


def sample_path():
    from tessera_qgis.core.layerspec import LayerSpec

    return LayerSpec.from_uri(state["layer"].source()).url


def view_extent():
    return f"{VIEW[0]},{VIEW[2]},{VIEW[1]},{VIEW[3]} [EPSG:4326]"


def show_only(*layers):
    root = QgsProject.instance().layerTreeRoot()
    for node in root.findLayers():
        node.setItemVisibilityChecked(node.layer() in layers)
    iface.mapCanvas().refresh()


def clusters():
    from qgis import processing

    state["alg_dialog"].close()
    clear_messages()
    res = processing.run("tessera:cluster", {"STORE": sample_path(), "YEAR": 2024, "EXTENT": view_extent(), "K": 0,
                                             "OUTPUT": os.path.join(work_dir(), "clusters.tif")})
    layer = iface.addRasterLayer(res["OUTPUT"], f"Clusters 2024 (k-means, {res['CLUSTERS']} clusters)")
    show_only(layer)
    log(f"k-means chose {res['CLUSTERS']} clusters")
    after(4000, lambda: save(iface.mainWindow(), "qgis-clusters.png") or after(200, classes))


def labelled_points(per_class=15, seed=3):
    """A point layer of `per_class` pixels of each land-cover class in the view (the sample's
    ground truth), as a user would digitise them."""
    import json

    import numpy as np
    import zarr
    from pyproj import Transformer
    from qgis.core import QgsFeature, QgsField, QgsGeometry, QgsVectorLayer
    from qgis.PyQt.QtCore import QMetaType
    from tessera_qgis.core.sample import CLASSES

    layer = QgsVectorLayer("Point?crs=EPSG:4326", "Labelled points", "memory")
    layer.dataProvider().addAttributes([QgsField("class", QMetaType.Type.QString)])
    layer.updateFields()
    g = zarr.open_group(sample_path(), mode="r")
    rng = np.random.default_rng(seed)
    for zone in ("utm30", "utm31"):
        attrs = json.loads(open(os.path.join(sample_path(), zone, "zarr.json")).read())["attributes"]
        a, _, x0, _, e, y0 = attrs["spatial:transform"]
        lc = np.asarray(g[f"{zone}/sample_landcover"][0])
        s = np.asarray(g[f"{zone}/scales"][0])
        rows, cols = np.nonzero(np.isfinite(s) & (lc > 0))
        lon, lat = Transformer.from_crs(attrs["proj:code"], "EPSG:4326", always_xy=True).transform(
            x0 + a * (cols + 0.5), y0 + e * (rows + 0.5))
        inside = (lon > VIEW[0]) & (lon < VIEW[2]) & (lat > VIEW[1]) & (lat < VIEW[3])
        for code, name in CLASSES.items():
            idx = np.nonzero(inside & (lc[rows, cols] == code))[0]
            for i in rng.choice(idx, min(len(idx), per_class // 2 + 1), replace=False) if len(idx) else []:
                f = QgsFeature(layer.fields())
                f.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(float(lon[i]), float(lat[i]))))
                f.setAttributes([name])
                layer.dataProvider().addFeature(f)
    return layer


def classes():
    from qgis import processing
    from tessera_qgis.core.analysis.models import sklearn_available

    points = labelled_points()
    QgsProject.instance().addMapLayer(points, False)  # into the legend above the classes, below
    res = processing.run("tessera:classify", {
        "INPUT": points, "CLASS_FIELD": "class", "STORE": sample_path(), "YEAR": 2024, "YEARS": "2025",
        "EXTENT": view_extent(), "METHOD": 1 if sklearn_available() else 0,
        "OUTPUT": os.path.join(work_dir(), "classes.tif"), "REPORT": os.path.join(work_dir(), "accuracy.html")})
    state["classes"] = res["OUTPUT"]
    state["report"] = res["REPORT"]
    state["confidence"] = next((p for p in res["OUTPUTS"] if "confidence" in os.path.basename(p)), None)
    layer = iface.addRasterLayer(res["OUTPUT"], "Classes 2024")
    QgsProject.instance().layerTreeRoot().insertLayer(0, points)
    show_only(layer, points)
    log(f"classified: accuracy {res['ACCURACY']:.3f} (stratified), {res['SPATIAL_ACCURACY']:.3f} (spatial)")
    after(4000, lambda: save(iface.mainWindow(), "qgis-classes.png") or after(200, report))


def report():
    from qgis.PyQt.QtWidgets import QTextBrowser

    view = QTextBrowser()
    view.setWindowTitle("Classification accuracy")
    view.setHtml(open(state["report"], encoding="utf-8").read())
    view.resize(900, 780)
    view.show()
    view.verticalScrollBar().setValue(330)  # from "Accuracy": the figures side by side, a matrix
    state["report_view"] = view
    def grab():
        save(view, "qgis-accuracy-report.png")
        view.close()
        after(200, confidence)

    after(1500, grab)


def confidence():
    """The classifier's confidence per pixel (the share of votes for the class it chose)."""
    if state.get("confidence"):
        layer = iface.addRasterLayer(state["confidence"], "Confidence 2024")
        show_only(layer)
        iface.setActiveLayer(layer)
        after(4000, lambda: save(iface.mainWindow(), "qgis-confidence.png") or after(200, trajectory))
    else:
        log("no confidence raster in the classifier's outputs")
        after(200, trajectory)


def trajectory():
    from qgis import processing

    res = processing.run("tessera:trajectory", {"STORE": sample_path(), "EXTENT": view_extent(),
                                                "CLASSES": state["classes"],
                                                "OUTPUT": os.path.join(work_dir(), "trajectory.tif")})
    years = iface.addRasterLayer(res["CHANGE_YEAR"], "Year of the largest change")
    state["change_report"] = res["REPORT"]
    show_only(years, state["layer"])
    iface.setActiveLayer(years)
    after(4000, lambda: save(iface.mainWindow(), "qgis-trajectory.png") or after(200, change_report))


def change_report():
    """The trajectory's change report (HTML: area changed per year and per class, a chart)."""
    from qgis.PyQt.QtWidgets import QTextBrowser

    import re

    from qgis.PyQt.QtCore import QByteArray
    from qgis.PyQt.QtGui import QImage, QPainter
    from qgis.PyQt.QtSvg import QSvgRenderer

    view = QTextBrowser()
    view.setWindowTitle("Change report")
    path = state["change_report"]
    html = open(path, encoding="utf-8").read()

    def as_image(match):  # a browser draws the report's inline SVG chart; QTextBrowser cannot
        renderer = QSvgRenderer(QByteArray(match.group(0).encode()))
        size = renderer.defaultSize()
        img = QImage(size, QImage.Format.Format_ARGB32)
        img.fill(0xFFFFFFFF)
        painter = QPainter(img)
        renderer.render(painter)
        painter.end()
        png = os.path.join(work_dir(), f"chart{match.start()}.png")
        img.save(png)
        return f'<br><img src="{png}">'

    view.setHtml(re.sub(r"<svg.*?</svg>", as_image, html, flags=re.S))
    view.resize(900, 780)
    view.show()
    state["change_view"] = view

    def grab():
        save(view, "qgis-change-report.png")
        view.close()
        after(200, cluster_view)

    after(1500, grab)


def cluster_view():
    """The style dock's *Cluster this view* on the PCA layer: k-means of the view, added styled."""
    plugin = state["plugin"]
    show_only(state["layer"])
    iface.setActiveLayer(state["layer"])
    plugin.show_style_dock()
    dock = plugin.style_dock
    dock.set_layer(state["layer"])
    before = set(QgsProject.instance().mapLayers())
    dock.cluster_button.click()
    task = dock.cluster_task

    def added():
        new = [lyr for k, lyr in QgsProject.instance().mapLayers().items() if k not in before]
        if new:
            show_only(new[0])
            iface.setActiveLayer(new[0])
        after(4000, lambda: save(iface.mainWindow(), "qgis-cluster-view.png") or after(200, slider))

    wait_until(lambda: task is None or task.outcome is not None, added, what="Cluster this view")


def slider():
    from qgis.core import QgsDateTimeRange, QgsInterval, QgsTemporalNavigationObject
    from qgis.PyQt.QtWidgets import QDockWidget
    from tessera_qgis.temporal import year_range

    show_only(state["layer"])
    iface.setActiveLayer(state["layer"])
    canvas = iface.mapCanvas()
    nav = canvas.temporalController()
    nav.setTemporalExtents(QgsDateTimeRange(year_range(2024).begin(), year_range(2025).end(), True, False))
    nav.setFrameDuration(QgsInterval(1, 0, 0, 0, 0, 0, 0))  # one year a frame
    nav.setNavigationMode(QgsTemporalNavigationObject.NavigationMode.Animated)
    nav.setCurrentFrameNumber(1)  # 2025
    for dock in iface.mainWindow().findChildren(QDockWidget):
        if dock.objectName() == "TemporalControllerDock" or "Temporal Controller" in dock.windowTitle():
            dock.show()
            dock.raise_()
    after(5000, lambda: save(iface.mainWindow(), "qgis-time-slider.png") or after(200, depth4))


def depth4():
    """Bands 1-3 of the v2 sample: read from its depth-4 array, in the store's own colours."""
    from qgis.PyQt.QtWidgets import QDockWidget
    from tessera_qgis.layers import make_layer

    for dock in iface.mainWindow().findChildren(QDockWidget):
        if dock.objectName() == "TemporalControllerDock" or "Temporal Controller" in dock.windowTitle():
            dock.hide()
    canvas = iface.mapCanvas()
    canvas.temporalController().setNavigationMode(canvas.temporalController().NavigationMode.NavigationOff)
    clear_messages()
    path = sample_path()
    # the last shots: only their own layers, and a Layers panel wide enough to read the legend
    QgsProject.instance().removeAllMapLayers()
    from qgis.PyQt.QtCore import Qt

    for dock in iface.mainWindow().findChildren(QDockWidget):
        if dock.objectName() == "Browser":
            dock.hide()
        if dock.objectName() == "Layers":
            dock.show()
            iface.mainWindow().resizeDocks([dock], [330], Qt.Orientation.Horizontal)
    state["sample"] = path
    layer = make_layer(path, 2025, bands=[1, 2, 3])
    QgsProject.instance().addMapLayer(layer)
    state["depth4"] = layer
    show_only(layer)
    iface.setActiveLayer(layer)
    canvas.setExtent(QgsRectangle(to_map(VIEW[0], VIEW[1]), to_map(VIEW[2], VIEW[3])))
    canvas.refresh()
    after(5000, lambda: save(iface.mainWindow(), "qgis-depth4.png") or after(200, preview))


def preview():
    """Zoomed out past the layer's pixel budget: the store's global preview, said in the
    legend and once in the message bar."""
    from tessera_qgis.layers import make_layer

    clear_messages()
    layer = make_layer(state["sample"], 2025, bands=[1, 2, 3], budget=50_000,
                       name="TESSERA sample 2025 bands 1,2,3 (budget 50,000 px)")
    QgsProject.instance().addMapLayer(layer)
    show_only(layer)
    iface.setActiveLayer(layer)
    canvas = iface.mapCanvas()
    lon, lat = (VIEW[0] + VIEW[2]) / 2, (VIEW[1] + VIEW[3]) / 2
    canvas.setExtent(QgsRectangle(to_map(lon - 0.25, lat - 0.12), to_map(lon + 0.25, lat + 0.12)))
    canvas.refresh()
    view = iface.layerTreeView()
    after(4000, lambda: view.expandAll())
    after(7000, lambda: save(iface.mainWindow(), "qgis-preview.png") or os._exit(0))


after(3000, start)
