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
from .core.urls import redact_url
from .settings import all_connections, resolve_url


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraBrowser", text)


def _icon():
    from .plugin import icon

    return icon()


class TesseraRootItem(QgsDataCollectionItem):
    def __init__(self, parent=None) -> None:
        super().__init__(parent, "TESSERA", "tessera:")
        self.setIcon(_icon())

    def createChildren(self):  # noqa: N802
        return [ConnectionItem(self, c) for c in all_connections()]


class ConnectionItem(QgsDataCollectionItem):
    def __init__(self, parent, conn: Connection) -> None:
        super().__init__(parent, conn.name, f"tessera:/{conn.name}")
        self.conn = conn
        self.setIcon(_icon())

    def createChildren(self):  # noqa: N802
        from .provider import shared_store

        try:
            url = resolve_url(self.conn)
            store = shared_store(LayerSpec(url=url, year=0, pca="global", **self.conn.layer_options()))
        except Exception as exc:
            return [QgsErrorItem(self, redact_url(str(exc)), self.path() + "/error")]
        return [YearItem(self, url, store, year) for year in store.years]


class YearItem(QgsDataCollectionItem):
    def __init__(self, parent: ConnectionItem, url: str, store, year: int) -> None:
        super().__init__(parent, str(year), f"{parent.path()}/{year}")
        self.url, self.store, self.year, self.conn = url, store, year, parent.conn

    def createChildren(self):  # noqa: N802
        from .provider import data_extent

        items = []
        zones = [z for z in self.store.zones.values() if self.year in z.years]
        if not zones:
            return items
        options = self.conn.layer_options()
        first = zones[0]
        spec = LayerSpec(url=self.url, year=self.year, pca="global", crs=first.crs,
                         extent=data_extent(self.store, first.crs), **options)
        items.append(QgsLayerItem(self, tr("PCA, all zones"), f"{self.path()}/pca", spec.to_uri(),
                                  Qgis.BrowserLayerType.Raster, "tessera"))
        for zone in zones:
            spec = LayerSpec(url=self.url, year=self.year, pca="global", crs=zone.crs, zone=zone.name,
                             extent=tuple(zone.bounds()), **options)
            items.append(QgsLayerItem(self, tr("PCA, {} ({})").format(zone.name, zone.crs), f"{self.path()}/{zone.name}",
                                      spec.to_uri(), Qgis.BrowserLayerType.Raster, "tessera"))
        return items


class TesseraDataItemProvider(QgsDataItemProvider):
    def name(self) -> str:
        return "TESSERA"

    def dataProviderKey(self) -> str:  # noqa: N802
        return "tessera"

    def capabilities(self):
        return Qgis.DataItemProviderCapability.NetworkSources

    def createDataItem(self, path, parent):  # noqa: N802
        return TesseraRootItem(parent) if not path else None
