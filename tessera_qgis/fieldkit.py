"""The field kit in QGIS: "Take this area offline…" from the region tool, and opening a pack
(or any folder store) from a folder picker, as a saved connection.

Hooks (one call each) for the region tool's menu and the data-source dialog; the work itself
is the Processing algorithm `tessera:pack` (processing/pack.py), which runs as a background
task with progress, cancel and resume.
"""
from __future__ import annotations

import json
from pathlib import Path

from qgis.core import Qgis, QgsCoordinateReferenceSystem, QgsRectangle
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QFileDialog, QMessageBox

from .core.connections import Connection
from .core.layerspec import LayerSpec
from .log import report
from .settings import all_connections, upsert_connection

def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraFieldKit", text)


def pack_parameters(layer, rect: QgsRectangle | None, crs: QgsCoordinateReferenceSystem | None) -> dict:
    """Pre-filled parameters of tessera:pack: the layer's store and year, the region."""
    params: dict = {}
    if layer is not None:
        spec = LayerSpec.from_uri(layer.source())
        params.update(STORE=spec.url, YEARS=str(spec.year))
        if rect is None:
            rect, crs = layer.extent(), layer.crs()
    if rect is not None and crs is not None:
        params["EXTENT"] = (f"{rect.xMinimum()},{rect.xMaximum()},{rect.yMinimum()},{rect.yMaximum()} "
                            f"[{crs.authid()}]")
    return params


def take_area_offline(iface, layer, rect: QgsRectangle | None = None,
                      crs: QgsCoordinateReferenceSystem | None = None):
    """The dialog of tessera:pack for a region (from the region tool), pre-filled with the
    layer's store and year; it runs in the background and logs the estimate first."""
    from qgis import processing  # the Processing plugin: loaded when the user asks for it

    if layer is None:
        report("TESSERA", tr("Add a TESSERA layer to take its area offline."), Qgis.MessageLevel.Info)
        return None
    return processing.execAlgorithmDialog("tessera:pack", pack_parameters(layer, rect, crs))


def describe_folder(path: str | Path) -> str:
    """One line about a folder store, read from its root zarr.json (local, small: fine on the
    UI thread). Raises ValueError with a message if it is not a Zarr v3 store."""
    root = Path(path) / "zarr.json"
    try:
        meta = json.loads(root.read_text(encoding="utf-8"))
    except OSError:
        raise ValueError(tr("{} is not a Zarr store (it has no zarr.json)").format(path)) from None
    except ValueError:
        raise ValueError(tr("{} has a damaged zarr.json").format(path)) from None
    if not isinstance(meta, dict) or meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
        raise ValueError(tr("{} is not a Zarr v3 store").format(path))
    packed = (meta.get("attributes") or {}).get("tessera:pack")
    if isinstance(packed, dict):
        depth = packed.get("depth") or tr("every depth")
        return tr("a pack of {zones}, years {years}, depth {depth}, from {source}").format(
            zones=", ".join(packed.get("zones") or {}), years=", ".join(map(str, packed.get("years") or [])),
            depth=depth, source=packed.get("source", "?"))
    return tr("a folder store")


def folder_connection(path: str | Path) -> Connection:
    """A saved connection for a folder store (named after the folder; an existing connection
    to the same folder is reused)."""
    path = str(Path(path).absolute())
    for conn in all_connections():
        if conn.url == path:
            return conn
    taken = {c.name for c in all_connections()}
    base = tr("Folder: {}").format(Path(path).name)
    name, n = base, 2
    while name in taken:
        name, n = f"{base} ({n})", n + 1
    conn = Connection(name, path)
    upsert_connection(conn)
    return conn


def open_folder_store(parent=None) -> Connection | None:
    """Pick a folder (a pack copied from a USB stick, the sample, any folder store): checked,
    saved as a connection, and returned (None if cancelled or not a store)."""
    folder = QFileDialog.getExistingDirectory(parent, tr("Open a TESSERA folder store or pack"))
    if not folder:
        return None
    try:
        what = describe_folder(folder)
    except ValueError as exc:
        QMessageBox.warning(parent, tr("TESSERA"), str(exc))
        return None
    conn = folder_connection(folder)
    report("TESSERA", tr("{}: {}").format(conn.name, what), Qgis.MessageLevel.Info)
    return conn

