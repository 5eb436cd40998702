"""Map tools on the plugin toolbar: the pixel inspector, similarity search and the region tool.

Clicks arrive on the main thread; anything that may touch the network runs in a background
task (tasks.py) that Cancel stops, and comes back to the main thread when done, so the canvas
never freezes.
"""
from __future__ import annotations

from typing import Callable

from qgis.core import (Qgis, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsGeometry, QgsPointXY,
                       QgsProject, QgsRasterLayer, QgsRectangle, QgsWkbTypes)
from qgis.gui import QgsMapToolEmitPoint, QgsRubberBand
from qgis.PyQt.QtCore import QCoreApplication, QPoint, pyqtSignal
from qgis.PyQt.QtGui import QColor, QCursor
from qgis.PyQt.QtWidgets import QMenu

from . import tasks
from .core.layerspec import LayerSpec
from .layers import apply_rgb, build_layer, prepare_layer
from .fieldkit import take_area_offline
from .log import log, report
from .core.view import choose_pca, mean_embedding
from .provider import PROVIDER_KEY, state_for
from .settings import connection_name
from .store_access import shared_store
from .tasks import Task


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraTools", text)


WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def tessera_layer(iface) -> QgsRasterLayer | None:
    """The active layer if it is a TESSERA layer, else the topmost TESSERA layer."""
    active = iface.activeLayer()
    if isinstance(active, QgsRasterLayer) and active.providerType() == PROVIDER_KEY:
        return active
    for layer in iface.mapCanvas().layers():
        if isinstance(layer, QgsRasterLayer) and layer.providerType() == PROVIDER_KEY:
            return layer
    for layer in QgsProject.instance().mapLayers().values():
        if isinstance(layer, QgsRasterLayer) and layer.providerType() == PROVIDER_KEY:
            return layer
    return None


def to_lonlat(canvas, point: QgsPointXY) -> QgsPointXY:
    xform = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), WGS84, QgsProject.instance())
    return xform.transform(point)


class PickTool(QgsMapToolEmitPoint):
    """A click gives a point; a drag gives a rectangle (shown while dragging)."""

    picked = pyqtSignal(QgsPointXY)
    dragged = pyqtSignal(QgsRectangle)

    def __init__(self, canvas, allow_drag: bool = True) -> None:
        super().__init__(canvas)
        self.allow_drag = allow_drag
        self._start: QPoint | None = None
        self._band = QgsRubberBand(canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
        self._band.setColor(QColor(255, 0, 128, 60))
        self._band.setStrokeColor(QColor(255, 0, 128))

    def canvasPressEvent(self, event) -> None:  # noqa: N802
        self._start = event.pos()

    def canvasMoveEvent(self, event) -> None:  # noqa: N802
        if self._start is None or not self.allow_drag:
            return
        self._band.setToGeometry(self._rect_geometry(self._start, event.pos()), None)

    def canvasReleaseEvent(self, event) -> None:  # noqa: N802
        start, self._start = self._start, None
        self._band.reset(QgsWkbTypes.GeometryType.PolygonGeometry)
        end = event.pos()
        if self.allow_drag and start is not None and (abs(end.x() - start.x()) > 3 or abs(end.y() - start.y()) > 3):
            self.dragged.emit(self._rect(start, end))
        else:
            self.picked.emit(self.toMapCoordinates(end))

    def _rect(self, a: QPoint, b: QPoint) -> QgsRectangle:
        pa, pb = self.toMapCoordinates(a), self.toMapCoordinates(b)
        return QgsRectangle(pa, pb)

    def _rect_geometry(self, a: QPoint, b: QPoint) -> QgsGeometry:
        return QgsGeometry.fromRect(self._rect(a, b))

    def deactivate(self) -> None:
        self._band.reset(QgsWkbTypes.GeometryType.PolygonGeometry)
        super().deactivate()


def _reference(store, year: int, rect_lonlat: QgsRectangle | None, point: QgsPointXY | None,
               cancel: Callable[[], bool] | None = None) -> tuple[list, int]:
    """A reference embedding: the pixel at a point, or the mean over a small area (at most
    200 x 200 px). Returns (vector, pixels used)."""
    if rect_lonlat is None:
        px = store.pixel(point.x(), point.y(), year, cancel=cancel)
        if not px["valid"]:
            raise ValueError("there is no embedding at that point (nodata)")
        return px["embedding"], 1
    bounds = (rect_lonlat.xMinimum(), rect_lonlat.yMinimum(), rect_lonlat.xMaximum(), rect_lonlat.yMaximum())
    try:
        vector, used = mean_embedding(store, year, bounds, "EPSG:4326", max_pixels=200 * 200, cancel=cancel)
    except ValueError as exc:
        if "more than" in str(exc):
            raise ValueError("drag a smaller area (at most about 2 x 2 km) to average") from None
        raise
    return vector.tolist(), used


class SimilarityController:
    """Click (or drag over a small area): a new layer of cosine similarity to that embedding."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.tool = PickTool(iface.mapCanvas())
        self.tool.picked.connect(lambda p: self.start(point=p))
        self.tool.dragged.connect(lambda r: self.start(rect=r))
        self.last_task: Task | None = None
        self.last_layer: QgsRasterLayer | None = None

    def start(self, point: QgsPointXY | None = None, rect: QgsRectangle | None = None) -> None:
        layer = tessera_layer(self.iface)
        if layer is None:
            report("TESSERA", tr("Add a TESSERA layer first, then click on it."),
                   Qgis.MessageLevel.Info)
            return
        canvas = self.iface.mapCanvas()
        spec = LayerSpec.from_uri(layer.source())
        xform = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), WGS84, QgsProject.instance())
        p = xform.transform(point) if point is not None else None
        r = xform.transformBoundingBox(rect) if rect is not None else None

        def work(cancel, _progress):
            store = shared_store(spec.store, cancel)
            vector, n = _reference(store, spec.year, r, p, cancel)
            where = f"{p.x():.5f}, {p.y():.5f}" if p is not None else f"{n} px area"
            # on the clicked layer's Matryoshka prefix, if it has one (a depth-4 PCA: 4 dimensions)
            return prepare_layer(spec.store, spec.year, similarity=vector, detail=where, budget=spec.budget,
                                 depth=spec.depth, cancel=cancel)

        def done(prepared) -> None:
            new = build_layer(prepared)
            QgsProject.instance().addMapLayer(new)
            self.last_layer = new
            log(f"similarity layer added: {new.name()}")

        self.last_task = tasks.start(tr("TESSERA similarity"), work, done)


class InspectorController:
    """Click: the pixel's 128 values for the layer's year, shown in the inspector dock."""

    def __init__(self, iface, dock) -> None:
        self.iface = iface
        self.dock = dock
        self.tool = PickTool(iface.mapCanvas(), allow_drag=False)
        self.tool.picked.connect(self.start)
        self.last_task: Task | None = None

    def start(self, point: QgsPointXY) -> None:
        layer = tessera_layer(self.iface)
        if layer is None:
            report("TESSERA", tr("Add a TESSERA layer first, then click on it."),
                   Qgis.MessageLevel.Info)
            return
        spec = LayerSpec.from_uri(layer.source())
        p = to_lonlat(self.iface.mapCanvas(), point)

        def work(cancel, _progress):
            return shared_store(spec.store, cancel).pixel(p.x(), p.y(), spec.year, cancel=cancel)

        def done(px) -> None:
            px = dict(px, lon=p.x(), lat=p.y(), store=spec.store.public_url)
            self.dock.add(px)
            self.dock.show()

        self.last_task = tasks.start(tr("TESSERA pixel"), work, done)


class RegionController:
    """Drag a rectangle, then choose: fit the layer's PCA to it, or export it (the export
    algorithm's dialog, pre-filled with the region and the layer's store and year)."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.tool = PickTool(iface.mapCanvas())
        self.tool.dragged.connect(self.offer)
        self.last_task: Task | None = None
        self.last_menu = None

    def offer(self, rect: QgsRectangle) -> None:
        menu = QMenu(self.iface.mapCanvas())
        menu.addAction(tr("Fit PCA colours to this region")).triggered.connect(lambda: self.fit_pca_here(rect))
        menu.addAction(tr("Export this region…")).triggered.connect(lambda: self.export_here(rect))
        menu.addAction(tr("Take this area offline…")).triggered.connect(lambda: take_area_offline(
            self.iface, tessera_layer(self.iface), rect, self.iface.mapCanvas().mapSettings().destinationCrs()))
        self.last_menu = menu
        menu.popup(QCursor.pos())

    def fit_pca_here(self, rect: QgsRectangle) -> None:
        layer = tessera_layer(self.iface)
        if layer is None or LayerSpec.from_uri(layer.source()).pca is None:
            report("TESSERA", tr("Select a TESSERA PCA layer, then drag a region."),
                   Qgis.MessageLevel.Info)
            return
        self.last_task = fit_pca_to(self.iface, layer, rect, self.iface.mapCanvas().mapSettings().destinationCrs())

    def export_here(self, rect: QgsRectangle) -> None:
        open_export_dialog(self.iface, tessera_layer(self.iface), rect,
                           self.iface.mapCanvas().mapSettings().destinationCrs())


def export_parameters(layer, rect: QgsRectangle | None, crs) -> dict:
    """Pre-filled parameters of the export algorithm for a layer and (optionally) a region."""
    params: dict = {}
    if layer is not None:
        spec = LayerSpec.from_uri(layer.source())
        # The saved connection's name where one reaches this store ("Sample data (offline)",
        # not the sample's folder inside the profile): Processing accepts either.
        params.update(STORE=connection_name(spec.store) or spec.url, YEAR=spec.year)
        if spec.bands:
            params["BANDS"] = ",".join(map(str, spec.bands))
        if rect is None:
            rect, crs = layer.extent(), layer.crs()
    if rect is not None:
        params["EXTENT"] = (f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()} "
                            f"[{crs.authid()}]")
    return params


def open_export_dialog(iface, layer, rect: QgsRectangle | None = None, crs=None):
    """The Processing dialog of tessera:export, pre-filled (runs as a background task)."""
    # Here, not at the top: qgis.processing loads the Processing plugin, which is not there
    # (or not initialised) wherever this module is imported without a QGIS desktop.
    from qgis import processing

    return processing.execAlgorithmDialog("tessera:export", export_parameters(layer, rect, crs))


def fit_pca_to(iface, layer: QgsRasterLayer, rect: QgsRectangle, crs: QgsCoordinateReferenceSystem,
               on_done: Callable[[], None] | None = None) -> Task:
    """Fit a PCA to a region (in a task) and apply it to a PCA layer and its renderer."""
    spec = LayerSpec.from_uri(layer.source())
    bounds = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
    authid = crs.authid()

    def work(cancel, progress):
        return choose_pca(shared_store(spec.store, cancel), spec.year, "view", (bounds, authid), cancel, progress)

    def done(pca) -> None:
        state_for(layer.source()).set_pca(pca)
        apply_rgb(layer, list(zip(pca.lo.tolist(), pca.hi.tolist())))
        layer.triggerRepaint()
        report("TESSERA", tr("PCA colours fitted to the region."), Qgis.MessageLevel.Success)
        if on_done is not None:
            on_done()

    return tasks.start(tr("Fitting PCA colours to a region"), work, done)
