"""Map tools on the plugin toolbar: the pixel inspector, similarity search and the region tool.

Clicks arrive on the main thread; anything that may touch the network runs in a QgsTask and
comes back to the main thread when done, so the canvas never freezes.
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np
from qgis.core import (Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY,
                       QgsProject, QgsRasterLayer, QgsRectangle, QgsTask, QgsWkbTypes)
from qgis.gui import QgsMapToolEmitPoint, QgsRubberBand
from qgis.PyQt.QtCore import QCoreApplication, QPoint, pyqtSignal
from qgis.PyQt.QtGui import QColor

from .core.layerspec import LayerSpec
from .core.urls import redact_url
from .log import log, report
from .provider import PROVIDER_KEY, shared_store, state_for


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


def run_task(description: str, fn: Callable, done: Callable[[object], None],
             failed: Callable[[BaseException], None] | None = None) -> QgsTask:
    """Run fn() in a QgsTask; done(result) or failed(exception) on the main thread. Without
    `failed`, a failure is reported in the message bar and the log."""
    def finished(exception, result=None):
        try:
            if exception is None:
                done(result)
            elif failed is not None:
                failed(exception)
            else:
                report("TESSERA", tr("{} failed: {}").format(description, exception), Qgis.MessageLevel.Warning)
        except Exception as exc:  # a slot must not raise either
            report("TESSERA", f"{description}: {exc}", Qgis.MessageLevel.Warning)

    description = redact_url(description)  # the task manager shows it
    task = QgsTask.fromFunction(description, lambda _task: fn(), on_finished=finished)
    QgsApplication.taskManager().addTask(task)
    return task


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

    def _rect_geometry(self, a: QPoint, b: QPoint):
        from qgis.core import QgsGeometry

        return QgsGeometry.fromRect(self._rect(a, b))

    def deactivate(self) -> None:
        self._band.reset(QgsWkbTypes.GeometryType.PolygonGeometry)
        super().deactivate()


def _reference(store, year: int, rect_lonlat: QgsRectangle | None, point: QgsPointXY | None) -> tuple[list, int]:
    """A reference embedding: the pixel at a point, or the mean over a small area (at most
    200 x 200 px). Returns (vector, pixels used)."""
    if rect_lonlat is None:
        px = store.pixel(point.x(), point.y(), year)
        if not px["valid"]:
            raise ValueError("there is no embedding at that point (nodata)")
        return px["embedding"], 1
    from .core.region import read_extent

    bounds = (rect_lonlat.xMinimum(), rect_lonlat.yMinimum(), rect_lonlat.xMaximum(), rect_lonlat.yMaximum())
    windows = read_extent(store, bounds, "EPSG:4326", year)
    if sum(w.scales.size for w in windows) > 200 * 200:
        raise ValueError("drag a smaller area (at most about 2 x 2 km) to average")
    vals = [w.dequantised() for w in windows]
    flat = np.concatenate([v.reshape(v.shape[0], -1) for v in vals], axis=1)
    flat = flat[:, np.isfinite(flat).all(axis=0)]
    if flat.shape[1] == 0:
        raise ValueError("there is no embedding in that area (nodata)")
    return flat.mean(axis=1).tolist(), int(flat.shape[1])


class SimilarityController:
    """Click (or drag over a small area): a new layer of cosine similarity to that embedding."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.tool = PickTool(iface.mapCanvas())
        self.tool.picked.connect(lambda p: self.start(point=p))
        self.tool.dragged.connect(lambda r: self.start(rect=r))
        self.last_task: QgsTask | None = None
        self.last_layer: QgsRasterLayer | None = None

    def start(self, point: QgsPointXY | None = None, rect: QgsRectangle | None = None) -> None:
        layer = tessera_layer(self.iface)
        if layer is None:
            report("TESSERA", tr("Add a TESSERA layer first, then click on it to search for similar pixels."),
                   Qgis.MessageLevel.Info)
            return
        canvas = self.iface.mapCanvas()
        spec = LayerSpec.from_uri(layer.source())
        xform = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), WGS84, QgsProject.instance())
        p = xform.transform(point) if point is not None else None
        r = xform.transformBoundingBox(rect) if rect is not None else None

        def work():
            from .layers import prepare_layer

            store = shared_store(spec)
            vector, n = _reference(store, spec.year, r, p)
            where = f"{p.x():.5f}, {p.y():.5f}" if p is not None else f"{n} px area"
            return prepare_layer(spec.url, spec.year, similarity=vector,
                                 name=f"TESSERA similarity {spec.year} ({where})", cache=spec.cache,
                                 authcfg=spec.authcfg, s3_endpoint=spec.s3_endpoint, s3_region=spec.s3_region,
                                 anon=spec.anon, budget=spec.budget)

        def done(prepared) -> None:
            from .layers import build_layer

            new = build_layer(prepared)
            QgsProject.instance().addMapLayer(new)
            self.last_layer = new
            log(f"similarity layer added: {new.name()}")

        self.last_task = run_task(tr("TESSERA similarity"), work, done)


class InspectorController:
    """Click: the pixel's 128 values for the layer's year, shown in the inspector dock."""

    def __init__(self, iface, dock) -> None:
        self.iface = iface
        self.dock = dock
        self.tool = PickTool(iface.mapCanvas(), allow_drag=False)
        self.tool.picked.connect(self.start)
        self.last_task: QgsTask | None = None

    def start(self, point: QgsPointXY) -> None:
        layer = tessera_layer(self.iface)
        if layer is None:
            report("TESSERA", tr("Add a TESSERA layer first, then click on it to inspect a pixel."),
                   Qgis.MessageLevel.Info)
            return
        spec = LayerSpec.from_uri(layer.source())
        p = to_lonlat(self.iface.mapCanvas(), point)

        def work():
            return shared_store(spec).pixel(p.x(), p.y(), spec.year)

        def done(px) -> None:
            px = dict(px, lon=p.x(), lat=p.y(), store=spec.url)
            self.dock.add(px)
            self.dock.show()

        self.last_task = run_task(tr("TESSERA pixel"), work, done)


class RegionController:
    """Drag a rectangle, then choose: fit the layer's PCA to it, or export it (the export
    algorithm's dialog, pre-filled with the region and the layer's store and year)."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.tool = PickTool(iface.mapCanvas())
        self.tool.dragged.connect(self.offer)
        self.last_task: QgsTask | None = None
        self.last_menu = None

    def offer(self, rect: QgsRectangle) -> None:
        from qgis.PyQt.QtGui import QCursor
        from qgis.PyQt.QtWidgets import QMenu

        menu = QMenu(self.iface.mapCanvas())
        menu.addAction(tr("Fit PCA colours to this region")).triggered.connect(lambda: self.fit_pca_here(rect))
        menu.addAction(tr("Export this region…")).triggered.connect(lambda: self.export_here(rect))
        self.last_menu = menu
        menu.popup(QCursor.pos())

    def fit_pca_here(self, rect: QgsRectangle) -> None:
        layer = tessera_layer(self.iface)
        if layer is None or LayerSpec.from_uri(layer.source()).pca is None:
            report("TESSERA", tr("Select a TESSERA PCA layer, then drag a region to fit its colours to."),
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
        params.update(STORE=spec.url, YEAR=spec.year)
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
    from qgis import processing

    return processing.execAlgorithmDialog("tessera:export", export_parameters(layer, rect, crs))


def fit_pca_to(iface, layer: QgsRasterLayer, rect: QgsRectangle, crs: QgsCoordinateReferenceSystem,
               on_done: Callable[[], None] | None = None) -> QgsTask:
    """Fit a PCA to a region (in a task) and apply it to a PCA layer and its renderer."""
    from .core.region import fit_pca
    from .layers import apply_rgb

    spec = LayerSpec.from_uri(layer.source())
    bounds = (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())
    authid = crs.authid()

    def work():
        return fit_pca(shared_store(spec), bounds, authid, spec.year)

    def done(pca) -> None:
        state_for(layer.source()).set_pca(pca)
        apply_rgb(layer, list(zip(pca.lo.tolist(), pca.hi.tolist())))
        layer.triggerRepaint()
        log("PCA fitted to the region")
        if on_done is not None:
            on_done()

    return run_task(tr("TESSERA PCA fit"), work, done)


def as_csv(clicks: list[dict]) -> str:
    head = ["lon", "lat", "year", "zone", "row", "col", "valid", "scale"] + [f"A{i:03d}" for i in range(1, 129)]
    lines = [",".join(head)]
    for c in clicks:
        emb = c.get("embedding") or [""] * 128
        row = [f"{c['lon']:.6f}", f"{c['lat']:.6f}", str(c["year"]), str(c.get("zone") or ""),
               str(c.get("row") if c.get("row") is not None else ""),
               str(c.get("col") if c.get("col") is not None else ""), str(bool(c["valid"])).lower(),
               "" if c.get("scale") is None else f"{c['scale']:.8g}"]
        row += [v if v == "" else f"{v:.6g}" for v in emb]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def as_json(clicks: list[dict]) -> str:
    return json.dumps(clicks, indent=1)

