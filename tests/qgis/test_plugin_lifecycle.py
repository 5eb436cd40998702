"""The plugin loads in QGIS, and initGui then unload leave nothing behind, twice in a row."""
from __future__ import annotations

from qgis.core import Qgis
from qgis.PyQt.QtCore import QCoreApplication, QEvent
from qgis.PyQt.QtWidgets import QAction, QDockWidget, QToolBar

import tessera_qgis
from tessera_qgis.plugin import MENU, TOOLBAR_OBJECT_NAME, TesseraPlugin


def flush_deletes():
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    QCoreApplication.processEvents()


def our_toolbars(window):
    return [t for t in window.findChildren(QToolBar) if t.objectName() == TOOLBAR_OBJECT_NAME]


def our_menu(iface):
    return [a for a in iface.rasterMenu().actions() if a.text() == MENU]


def test_qgis_is_current():
    assert Qgis.QGIS_VERSION_INT >= 34000


def test_class_factory_returns_the_plugin(recording_iface):
    plugin = tessera_qgis.classFactory(recording_iface)
    assert isinstance(plugin, TesseraPlugin)
    assert plugin.iface is recording_iface


def our_docks(window):
    from tessera_qgis.inspector import InspectorDock
    from tessera_qgis.style_dock import StyleDock

    return [d for d in window.findChildren(QDockWidget) if isinstance(d, (InspectorDock, StyleDock))]


def test_init_gui_and_unload_twice_leave_nothing_behind(recording_iface, sample_store):
    """Toolbar, menu, Data Source Manager tab, Browser entries, the Processing provider, the
    Options page, both docks and the layer context action: added by initGui, and every one of
    them gone after unload (the layer action no longer offered to new TESSERA layers)."""
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
    from qgis.gui import QgsGui

    from tessera_qgis import provider

    window = recording_iface.mainWindow()
    actions_before = len(window.findChildren(QAction))
    uri = f"url={sample_store}&year=2024&bands=1,2,3"
    for _ in range(2):
        plugin = tessera_qgis.classFactory(recording_iface)
        plugin.initGui()
        toolbars = our_toolbars(window)
        assert len(toolbars) == 1 and toolbars[0].actions(), "one toolbar with our actions"
        menus = our_menu(recording_iface)
        assert len(menus) == 1 and menus[0].menu().actions() == plugin.actions
        assert len(plugin.actions) == 6, "add layer, inspector, similarity, region, style, about"
        assert QgsGui.sourceSelectProviderRegistry().providerByName("tessera") is not None
        assert QgsApplication.dataItemProviderRegistry().provider("TESSERA") is not None
        assert QgsApplication.processingRegistry().providerById("tessera") is not None
        assert [f.title() for f in recording_iface.options_factories] == ["TESSERA"]
        assert len(our_docks(window)) == 2, "the inspector and the style dock"
        assert [(a.text(), m) for a, m, _ in recording_iface.layer_type_actions] == [
            ("Export TESSERA embeddings…", "TESSERA")]
        layer = QgsRasterLayer(uri, "tessera layer", "tessera")
        QgsProject.instance().addMapLayer(layer)
        assert recording_iface.layer_actions == [(recording_iface.layer_type_actions[0][0], layer.id())]
        assert not plugin.actions[0].icon().isNull(), "the SVG icon loads"
        plugin.unload()
        flush_deletes()
        assert our_toolbars(window) == []
        assert QgsGui.sourceSelectProviderRegistry().providerByName("tessera") is None
        assert QgsApplication.dataItemProviderRegistry().provider("TESSERA") is None
        assert QgsApplication.processingRegistry().providerById("tessera") is None
        assert recording_iface.options_factories == [] and our_docks(window) == []
        assert recording_iface.layer_type_actions == [] and recording_iface.layer_actions == []
        provider.register()  # as if another copy of the plugin drew TESSERA layers
        later = QgsRasterLayer(uri, "tessera layer 2", "tessera")
        assert later.isValid() and QgsProject.instance().addMapLayer(later) is not None
        assert recording_iface.layer_actions == [], "new layers get no action from an unloaded plugin"
        QgsProject.instance().removeAllMapLayers()
        provider.unregister()
        assert our_menu(recording_iface) == []
        assert plugin.actions == [] and plugin.toolbar is None
        assert len(window.findChildren(QAction)) == actions_before


def test_about_action_names_the_version(recording_iface, monkeypatch):
    shown = {}
    monkeypatch.setattr("tessera_qgis.plugin.QMessageBox.about",
                        lambda parent, title, text: shown.update(title=title, text=text))
    plugin = tessera_qgis.classFactory(recording_iface)
    plugin.initGui()
    try:
        plugin.actions[-1].trigger()
        assert tessera_qgis.__version__ in shown["text"] and Qgis.QGIS_VERSION in shown["text"]
    finally:
        plugin.unload()


def test_provider_is_active_while_the_plugin_is_loaded(recording_iface, sample_store):
    from qgis.core import QgsProviderRegistry, QgsRasterLayer

    uri = f"url={sample_store}&year=2024&bands=1,2,3"
    plugin = tessera_qgis.classFactory(recording_iface)
    plugin.initGui()
    assert QgsProviderRegistry.instance().providerMetadata("tessera") is not None
    assert QgsRasterLayer(uri, "layer", "tessera").isValid()
    plugin.unload()
    assert not QgsRasterLayer(uri, "layer", "tessera").isValid(), "inactive once the plugin is unloaded"
    plugin = tessera_qgis.classFactory(recording_iface)
    plugin.initGui()
    assert QgsRasterLayer(uri, "layer", "tessera").isValid()
    plugin.unload()
