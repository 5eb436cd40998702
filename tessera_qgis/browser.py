"""Browser panel entries: TESSERA > connections > years > layers (all zones, and each zone).

QGIS fills collection items in a background thread, so opening a store here never blocks
the UI. Layer items carry a complete URI (CRS and extent included): double-click or drag
adds the layer without touching the network.
"""
from __future__ import annotations

from qgis.core import Qgis, QgsDataCollectionItem, QgsDataItemProvider, QgsErrorItem, QgsLayerItem
from qgis.PyQt.QtCore import QCoreApplication

from .core.connections import Connection
from .core.layerspec import LayerSpec
from .core.region import data_extent
from .core.storeref import StoreRef
from .credentials import has_password
from .icons import icon
from .layers import layer_title
from .core.urls import redact_url
from .settings import all_connections, resolve_url
from .store_access import shared_store


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraBrowser", text)


class TesseraRootItem(QgsDataCollectionItem):
    def __init__(self, parent=None) -> None:
        super().__init__(parent, "TESSERA", "tessera:")
        self.setIcon(icon())

    def createChildren(self):  # noqa: N802
        return [ConnectionItem(self, c) for c in all_connections()]


class ConnectionItem(QgsDataCollectionItem):
    def __init__(self, parent, conn: Connection) -> None:
        super().__init__(parent, conn.name, f"tessera:/{conn.name}")
        self.conn = conn
        self.setIcon(icon())

    def createChildren(self):  # noqa: N802
        if has_password(self.conn.url):  # saved before passwords left saved URLs; moved on Connect
            return [QgsErrorItem(self, tr("The URL holds a password: press Connect on it in the TESSERA dialog "
                                          "to keep it in QGIS's authentication database."), self.path() + "/error")]
        try:
            ref = self.conn.ref(resolve_url(self.conn))
            store = shared_store(ref)
        except Exception as exc:
            return [QgsErrorItem(self, redact_url(str(exc)), self.path() + "/error")]
        return [YearItem(self, ref, store, year) for year in store.years]


class YearItem(QgsDataCollectionItem):
    def __init__(self, parent: ConnectionItem, ref: StoreRef, store, year: int) -> None:
        super().__init__(parent, str(year), f"{parent.path()}/{year}")
        self.ref, self.store, self.year, self.conn = ref, store, year, parent.conn

    def createChildren(self):  # noqa: N802
        zones = [z for z in self.store.zones.values() if self.year in z.years]
        if not zones:
            return []
        first = zones[0]
        spec = LayerSpec(store=self.ref, year=self.year, pca="global", crs=first.crs,
                         extent=data_extent(self.store, first.crs))
        items = [layer_item(self, self.store, spec, f"{self.path()}/pca", tr("All zones, in {}").format(first.crs))]
        for zone in zones:
            spec = LayerSpec(store=self.ref, year=self.year, pca="global", crs=zone.crs, zone=zone.name,
                             extent=tuple(zone.bounds()))
            items.append(layer_item(self, self.store, spec, f"{self.path()}/{zone.name}", zone.crs))
        return items


def layer_item(parent, store, spec: LayerSpec, path: str, tooltip: str) -> QgsLayerItem:
    """A Browser entry that adds a layer (named like every TESSERA layer: store, year, what is
    shown). It has no children: marked populated, so QGIS draws no expand arrow."""
    item = QgsLayerItem(parent, layer_title(store, spec), path, spec.to_uri(), Qgis.BrowserLayerType.Raster,
                        "tessera")
    item.setState(Qgis.BrowserItemState.Populated)
    item.setToolTip(tooltip)
    return item


class TesseraDataItemProvider(QgsDataItemProvider):
    def name(self) -> str:
        return "TESSERA"

    def dataProviderKey(self) -> str:  # noqa: N802
        return "tessera"

    def capabilities(self):
        return Qgis.DataItemProviderCapability.NetworkSources

    def createDataItem(self, path, parent):  # noqa: N802
        return TesseraRootItem(parent) if not path else None
