"""QGIS test helpers: an iface that really adds menus, on top of pytest-qgis's stub."""
from __future__ import annotations

import pytest
from pytest_qgis.qgis_interface import QgisInterface
from qgis.core import QgsProject
from qgis.PyQt.QtWidgets import QMainWindow, QMenu


class MenuRecordingIface(QgisInterface):
    """pytest-qgis's QgisInterface, plus a real Raster menu, real dock areas and records of the
    options pages and layer context actions registered, so tests can check what a plugin adds
    and that unloading takes all of it away."""

    def __init__(self, canvas, message_bar) -> None:
        self.window = QMainWindow()
        super().__init__(canvas, message_bar, self.window)
        self.raster_menu = self.window.menuBar().addMenu("&Raster")
        self.options_factories: list = []
        self.layer_type_actions: list = []  # (action, menu name, layer type)
        self.layer_actions: list = []  # (action, layer id)

    def addDockWidget(self, area, dock) -> None:  # noqa: N802
        self.window.addDockWidget(area, dock)

    def removeDockWidget(self, dock) -> None:  # noqa: N802
        self.window.removeDockWidget(dock)

    def registerOptionsWidgetFactory(self, factory) -> None:  # noqa: N802
        self.options_factories.append(factory)

    def unregisterOptionsWidgetFactory(self, factory) -> None:  # noqa: N802
        self.options_factories.remove(factory)

    def addCustomActionForLayerType(self, action, menu, layer_type, all_layers) -> None:  # noqa: N802
        self.layer_type_actions.append((action, menu, layer_type))

    def addCustomActionForLayer(self, action, layer) -> None:  # noqa: N802
        self.layer_actions.append((action, layer.id()))

    def removeCustomActionForLayerType(self, action) -> bool:  # noqa: N802 (QGIS drops it from every layer too)
        before = len(self.layer_type_actions)
        self.layer_type_actions = [e for e in self.layer_type_actions if e[0] is not action]
        self.layer_actions = [e for e in self.layer_actions if e[0] is not action]
        return len(self.layer_type_actions) < before

    def rasterMenu(self) -> QMenu:  # noqa: N802
        return self.raster_menu

    def _submenu(self, name: str, create: bool) -> QMenu | None:
        for action in self.raster_menu.actions():
            if action.menu() is not None and action.text() == name:
                return action.menu()
        return self.raster_menu.addMenu(name) if create else None

    def addPluginToRasterMenu(self, name, action) -> None:  # noqa: N802
        self._submenu(name, True).addAction(action)

    def removePluginRasterMenu(self, name, action) -> None:  # noqa: N802
        menu = self._submenu(name, False)
        if menu is None:
            return
        menu.removeAction(action)
        if not menu.actions():
            self.raster_menu.removeAction(menu.menuAction())
            menu.deleteLater()

    def addToolBar(self, name):  # noqa: N802
        toolbar = super().addToolBar(name)
        self.window.addToolBar(toolbar)
        return toolbar


@pytest.fixture
def recording_iface(qgis_canvas, qgis_iface):
    return MenuRecordingIface(qgis_canvas, qgis_iface.messageBar())


@pytest.fixture
def provider_active():
    """The provider registered and active, with no store or layer left from other tests."""
    from tessera_qgis import provider

    provider.register()
    provider.forget_stores()
    yield
    QgsProject.instance().removeAllMapLayers()
    provider.forget_stores()
    provider.unregister()


@pytest.fixture
def s3_authcfg(sample_s3):
    """A QGIS authentication configuration (Basic: key as username, secret as password)
    holding the moto server's keys; yields (config id, key, secret)."""
    from qgis.core import QgsAuthMethodConfig

    from support.qgis_helpers import auth_manager

    _, opts = sample_s3
    am = auth_manager()
    cfg = QgsAuthMethodConfig("Basic")
    cfg.setName("tessera moto keys")
    cfg.setConfig("username", opts["key"])
    cfg.setConfig("password", opts["secret"])
    assert am.storeAuthenticationConfig(cfg)[0]
    yield cfg.id(), opts["key"], opts["secret"]
    am.removeAuthenticationConfig(cfg.id())


@pytest.fixture
def no_saved_connections():
    """No custom connections before and after the test (the dialog tests use it)."""
    from tessera_qgis.settings import save_custom_connections

    save_custom_connections([])
    yield
    save_custom_connections([])


@pytest.fixture(scope="module")
def processing(qgis_processing, qgis_iface):
    """qgis.processing with the plugin's Processing provider registered the way QGIS (and
    qgis_process) does it, through the plugin's initProcessing(): tests run algorithms by id
    ("tessera:export"), whatever module holds them."""
    from qgis import processing as qgis_processing_module
    from qgis.core import QgsApplication

    import tessera_qgis

    plugin = tessera_qgis.classFactory(qgis_iface)
    plugin.initProcessing()
    assert QgsApplication.processingRegistry().providerById("tessera") is not None
    yield qgis_processing_module
    QgsApplication.processingRegistry().removeProvider(plugin.processing_provider)
