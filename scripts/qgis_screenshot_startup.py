"""Run inside a real QGIS desktop (qgis --code THIS): load the plugin from the checkout, add
the sample store as a PCA layer, inspect three pixels, and save screenshots of the window.

Driven by scripts/screenshots.sh; the output folder comes from TESSERA_SHOTS.
"""
import os
import sys
import traceback

from qgis.core import QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY, QgsProject, QgsRectangle
from qgis.PyQt.QtCore import QTimer
from qgis.utils import iface

SRC = os.environ.get("TESSERA_SRC", "/src")
OUT = os.environ.get("TESSERA_SHOTS", os.path.join(SRC, "docs", "images"))
STORE = os.environ.get("TESSERA_STORE", os.path.join(SRC, "build", "demo", "sample.zarr"))
sys.path.insert(0, SRC)
state = {}


def log(msg):
    with open(os.path.join(OUT, "screenshot.log"), "a") as f:
        f.write(msg + "\n")


def step1():
    try:
        import tessera_qgis
        from tessera_qgis.layers import make_layer

        win = iface.mainWindow()
        win.showNormal()
        win.setGeometry(0, 0, 1400, 880)
        for bar in win.findChildren(type(iface.messageBar())):
            bar.clearWidgets()
        plugin = tessera_qgis.classFactory(iface)
        plugin.initGui()
        state["plugin"] = plugin
        layer = make_layer(STORE, 2024, pca="global")
        QgsProject.instance().addMapLayer(layer)
        canvas = iface.mapCanvas()
        QgsProject.instance().setCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
        canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
        QgsApplication.processEvents()
        tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), canvas.mapSettings().destinationCrs(),
                                    QgsProject.instance())
        canvas.setExtent(tr.transformBoundingBox(QgsRectangle(-0.045, 52.178, 0.045, 52.222)))
        iface.setActiveLayer(layer)
        canvas.refresh()
        state["layer"] = layer
        insp = plugin.controllers["inspector"]
        canvas.setMapTool(insp.tool)
        for i, (lon, lat) in enumerate(((-0.03, 52.2), (0.02, 52.19), (0.012, 52.205))):
            p = tr.transform(QgsPointXY(lon, lat))
            QTimer.singleShot(1500 * (i + 1), lambda p=p: insp.start(p))
        QTimer.singleShot(7000, step2)
    except Exception:
        log(traceback.format_exc())
        QgsApplication.exit(1)


def step2():
    try:
        iface.messageBar().clearWidgets()
        state["plugin"].dock.show()
        state["plugin"].dock.raise_()
        QgsApplication.processEvents()
        QTimer.singleShot(2000, step3)
    except Exception:
        log(traceback.format_exc())
        QgsApplication.exit(1)


def step3():
    try:
        iface.mainWindow().grab().save(os.path.join(OUT, "qgis-pca-inspector.png"))
        log("saved qgis-pca-inspector.png")
        plugin = state["plugin"]
        plugin.show_style_dock()
        QTimer.singleShot(1500, step4)
    except Exception:
        log(traceback.format_exc())
        QgsApplication.exit(1)


def step4():
    try:
        iface.mainWindow().grab().save(os.path.join(OUT, "qgis-style-dock.png"))
        log("saved qgis-style-dock.png")
        plugin = state["plugin"]
        plugin.show_dialog()
        widget = plugin.dialog
        widget.connect_store()  # the first connection: the offline sample
        state["waited"] = 0
        QTimer.singleShot(2000, wait_connected)
    except Exception:
        log(traceback.format_exc())
        os._exit(1)


def wait_connected():
    """The sample is built on first use (about 15 s): wait until the dialog has connected."""
    state["waited"] += 1
    if state["plugin"].dialog.store is None and state["waited"] < 60:
        QTimer.singleShot(1000, wait_connected)
        return
    QTimer.singleShot(1000, step5)


def step5():
    try:
        dialog = state["plugin"].dialog
        dialog.mode.setCurrentIndex(0)
        QgsApplication.processEvents()
        dialog.grab().save(os.path.join(OUT, "qgis-dialog.png"))
        log("saved qgis-dialog.png")
        dialog.close()
        plugin = state["plugin"]
        plugin.style_dock.hide()
        canvas = iface.mapCanvas()
        tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), canvas.mapSettings().destinationCrs(),
                                    QgsProject.instance())
        iface.setActiveLayer(state["layer"])
        plugin.controllers["similarity"].start(point=tr.transform(QgsPointXY(0.02, 52.205)))
        QTimer.singleShot(8000, step6)
    except Exception:
        log(traceback.format_exc())
        os._exit(1)


def step6():
    try:
        iface.mainWindow().grab().save(os.path.join(OUT, "qgis-similarity.png"))
        log("saved qgis-similarity.png")
        from qgis import processing
        from tessera_qgis.tools import export_parameters

        canvas = iface.mapCanvas()
        params = export_parameters(state["layer"], canvas.extent(), canvas.mapSettings().destinationCrs())
        dlg = processing.createAlgorithmDialog("tessera:export", params)
        dlg.show()
        state["alg_dialog"] = dlg
        QTimer.singleShot(3000, step7)
    except Exception:
        log(traceback.format_exc())
        os._exit(1)


def step7():
    try:
        state["alg_dialog"].grab().save(os.path.join(OUT, "qgis-export-algorithm.png"))
        log("saved qgis-export-algorithm.png")
    except Exception:
        log(traceback.format_exc())
    os._exit(0)


QTimer.singleShot(3000, step1)
