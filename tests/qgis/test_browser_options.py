"""Browser entries (connections, years, zones, working layers) and the Options page."""
from __future__ import annotations

import numpy as np
import pytest
from qgis.core import QgsErrorItem, QgsLayerItem, QgsRasterLayer

from tessera_qgis.browser import TesseraDataItemProvider
from tessera_qgis.core.connections import Connection
from tessera_qgis.core.layerspec import LayerSpec
from tessera_qgis.options import TesseraOptionsFactory, TesseraOptionsPage
from tessera_qgis.settings import Settings, save_custom_connections, upsert_connection

pytestmark = pytest.mark.usefixtures("provider_active")


@pytest.fixture
def root():
    provider = TesseraDataItemProvider()
    item = provider.createDataItem("", None)
    yield item


def child(item, name):
    kids = {c.name(): c for c in item.createChildren()}
    assert name in kids, list(kids)
    return kids[name]


def test_browser_lists_connections_years_and_zones_with_working_layers(root, sample_http):
    upsert_connection(Connection("local http", sample_http.store_url))
    try:
        names = [c.name() for c in root.createChildren()]
        assert names[0] == "Sample data (offline)" and "local http" in names
        conn = child(root, "local http")
        years = conn.createChildren()
        assert [y.name() for y in years] == ["2024", "2025"]
        layers = years[0].createChildren()
        assert all(isinstance(i, QgsLayerItem) for i in layers)
        assert [i.name() for i in layers] == ["TESSERA sample 2024 PCA", "TESSERA sample 2024 utm30 PCA",
                                              "TESSERA sample 2024 utm31 PCA"]
        sample_http.reset()
        layer = QgsRasterLayer(layers[2].uri(), "tessera layer", layers[2].providerKey())
        assert layer.isValid() and layer.crs().authid() == "EPSG:32631"
        assert sample_http.stats()["requests"] == 0, "a browser layer opens without network"
        assert LayerSpec.from_uri(layers[2].uri()).zone == "utm31"
        block = layer.dataProvider().block(1, layer.extent(), 64, 96)
        values = np.frombuffer(bytes(block.data()), np.float32)
        assert np.isfinite(values).mean() > 0.3
    finally:
        save_custom_connections([])


def test_unreachable_connection_shows_an_error_item(root):
    upsert_connection(Connection("gone", "http://127.0.0.1:9/x.zarr"))
    try:
        kids = child(root, "gone").createChildren()
        assert len(kids) == 1 and isinstance(kids[0], QgsErrorItem) and "cannot" in kids[0].name()
    finally:
        save_custom_connections([])


def test_options_page_edits_the_settings():
    assert TesseraOptionsFactory().title() == "TESSERA"
    page = TesseraOptionsPage()
    page.concurrency.setValue(12)
    page.default_year.setValue(2025)
    page.cache_dir.setFilePath("/tmp/tessera-opt-cache")
    page.dask.setText(" tcp://127.0.0.1:8786 ")
    page.apply()
    try:
        s = Settings.load()
        assert (s.concurrency, s.default_year, s.cache_dir) == (12, 2025, "/tmp/tessera-opt-cache")
        assert s.dask_scheduler == "tcp://127.0.0.1:8786"
        assert TesseraOptionsPage().concurrency.value() == 12
        assert TesseraOptionsPage().dask.text() == "tcp://127.0.0.1:8786"
    finally:
        Settings().save()
