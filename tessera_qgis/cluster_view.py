"""*Cluster this view*: k-means (automatic k) on a TESSERA layer's store and year over what
the map shows, in a background task; the clusters (with their paletted style) and the
centroids (a model file for Apply a saved model) are written to a folder and the clusters
are added to the project. The style dock calls `cluster_this_view(iface, layer)`.
"""
from __future__ import annotations

import time
from pathlib import Path

from qgis.core import (Qgis, QgsCoordinateTransform, QgsProcessingUtils, QgsProject, QgsRasterLayer,
                       QgsRectangle)
from qgis.PyQt.QtCore import QCoreApplication

from . import tasks
from .core.analysis import jobs
from .core.export import ExportRequest
from .core.layerspec import LayerSpec
from .log import report
from .provider import PROVIDER_KEY
from .store_access import shared_store


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraClusterView", text)


def view_region(iface, layer) -> tuple[tuple, str]:
    """(bounds, crs) of the map view, clipped to the layer's extent."""
    canvas = iface.mapCanvas()
    crs = canvas.mapSettings().destinationCrs()
    view = QgsRectangle(canvas.extent())
    to_map = QgsCoordinateTransform(layer.crs(), crs, QgsProject.instance())
    area = view.intersect(to_map.transformBoundingBox(layer.extent()))
    if area.isEmpty():
        raise ValueError(tr("The map does not show the layer's area: pan to it first"))
    return (area.xMinimum(), area.yMinimum(), area.xMaximum(), area.yMaximum()), crs.authid() or crs.toWkt()


def cluster_this_view(iface, layer, k: int = 0, folder: str | Path | None = None):
    """Start clustering what the map shows of a TESSERA layer; returns the task (None, with a
    message, when the layer is not a TESSERA layer or the map shows none of it)."""
    if layer is None or layer.providerType() != PROVIDER_KEY:
        report("TESSERA", tr("Choose a TESSERA layer to cluster"), Qgis.MessageLevel.Info)
        return None
    spec = LayerSpec.from_uri(layer.source())
    try:
        bounds, crs = view_region(iface, layer)
    except ValueError as exc:
        report("TESSERA", str(exc), Qgis.MessageLevel.Info)
        return None
    folder = Path(folder or QgsProcessingUtils.tempFolder())
    stem = f"tessera_clusters_{spec.year}_{time.strftime('%Y%m%d_%H%M%S')}"
    out, centroids = folder / f"{stem}.tif", folder / f"{stem}_centroids.json"

    def work(cancel, progress):
        store = shared_store(spec.store, cancel)
        return jobs.cluster(store, ExportRequest(bounds, crs, spec.year, str(out)), k, centroids,
                            progress=progress, cancel=cancel)

    def done(result) -> None:
        added = QgsRasterLayer(str(result.paths[0]), tr("Clusters {} ({} clusters)").format(
            spec.year, len(result.model.names)))
        QgsProject.instance().addMapLayer(added)  # its paletted style loads from the .qml beside it
        report("TESSERA", tr("{} clusters written to {}; centroids in {}").format(
            len(result.model.names), result.paths[0], result.centroids), Qgis.MessageLevel.Success)

    return tasks.start(tr("Cluster this view"), work, done)
