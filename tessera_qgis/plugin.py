"""The QGIS plugin object: provider registration, toolbar, menu, map tools, inspector dock."""
from __future__ import annotations

from qgis.core import Qgis, QgsApplication, QgsProject
from qgis.gui import QgsGui
from qgis.PyQt.QtCore import QCoreApplication, Qt, QTranslator
from qgis.PyQt.QtWidgets import QAction, QMessageBox

from . import PLUGIN_DIR, __version__, provider
from .browser import TesseraDataItemProvider
from .dialog import TesseraSourceSelectProvider, standalone_dialog
from .icons import icon
from .inspector import InspectorDock
from .log import MessageBarBridge
from .options import TesseraOptionsFactory
from .processing import TesseraProcessingProvider
from .style_dock import StyleDock
from .tools import InspectorController, RegionController, SimilarityController, open_export_dialog

MENU = "&TESSERA"
TOOLBAR_OBJECT_NAME = "TesseraToolbar"
# Compiled translations, i18n/tessera_qgis_<locale>.qm (`make i18n` makes them from the .ts files).
I18N_DIR = PLUGIN_DIR / "i18n"


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraPlugin", text)


def ui_locale() -> str:
    """The locale of QGIS's user interface ("de", "pt_BR"): the user's choice in Settings >
    Options > General (locale/userLocale) when set, otherwise the system's."""
    return QgsApplication.locale() or ""


def load_translator(locale: str, folder=None) -> QTranslator | None:
    """A translator holding i18n/tessera_qgis_<locale>.qm, or the language's file (pt_BR falls
    back to pt); None when there is no such file (English, the source language, has none)."""
    folder = I18N_DIR if folder is None else folder
    candidates = [locale, locale.split("_")[0]] if locale else []
    for name in dict.fromkeys(candidates):
        path = folder / f"tessera_qgis_{name}.qm"
        if path.is_file():
            translator = QTranslator()
            if translator.load(str(path)):
                return translator
    return None


class TesseraPlugin:
    """Owns every GUI object it adds, so `unload` can take all of them away again."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.toolbar = None
        self.actions: list[QAction] = []
        self.bridge = None
        self.dock = None
        self.style_dock = None
        self.controllers: dict = {}
        self.source_provider = None
        self.item_provider = None
        self.options_factory = None
        self.dialog = None
        self.processing_provider = None
        self.export_layer_action = None
        self.translator = None
        # Before any string is made (qgis_process calls initProcessing only, not initGui).
        self._install_translator()
        # The provider must exist before a project that uses it is read.
        provider.register()

    def initProcessing(self) -> None:  # noqa: N802 (QGIS's name; also what qgis_process calls)
        if self.processing_provider is None:
            self.processing_provider = TesseraProcessingProvider(icon())
            QgsApplication.processingRegistry().addProvider(self.processing_provider)

    def initGui(self) -> None:  # noqa: N802 (QGIS's name)
        self._install_translator()  # again after an unload
        provider.register()
        self.initProcessing()
        self.bridge = MessageBarBridge(self.iface.messageBar())
        self.toolbar = self.iface.addToolBar(tr("TESSERA"))
        self.toolbar.setObjectName(TOOLBAR_OBJECT_NAME)
        add = QAction(icon("add"), tr("Add TESSERA embeddings layer…"), self.iface.mainWindow())
        add.setObjectName("TesseraAddLayerAction")
        add.setToolTip(tr("Add TESSERA layer"))
        add.triggered.connect(self.show_dialog)
        self._add_action(add)
        self.source_provider = TesseraSourceSelectProvider(self.iface)
        QgsGui.sourceSelectProviderRegistry().addProvider(self.source_provider)
        self.item_provider = TesseraDataItemProvider()
        QgsApplication.dataItemProviderRegistry().addProvider(self.item_provider)
        self.options_factory = TesseraOptionsFactory()
        self.iface.registerOptionsWidgetFactory(self.options_factory)
        self.dock = InspectorDock(self.iface.mainWindow())
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()
        self.style_dock = StyleDock(self.iface, self.iface.mainWindow())
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.style_dock)
        self.style_dock.hide()
        self.controllers = {
            "inspector": InspectorController(self.iface, self.dock),
            "similarity": SimilarityController(self.iface),
            "region": RegionController(self.iface),
        }
        # Short names (the tooltips); what to do with the tool goes to the status bar.
        names = {
            "inspector": (tr("Pixel inspector"), tr("Click a pixel to see its 128 embedding values")),
            "similarity": (tr("Find similar pixels"), tr("Click a pixel, or drag over a small area, to map "
                                                    "how similar every pixel is")),
            "region": (tr("Fit or export a region"), tr("Drag a rectangle, then fit the PCA colours to it "
                                                           "or export it")),
        }
        for name, controller in self.controllers.items():
            text, hint = names[name]
            action = QAction(icon(name), text, self.iface.mainWindow())
            action.setObjectName(f"Tessera{name.title()}Action")
            action.setStatusTip(hint)
            action.setCheckable(True)
            controller.tool.setAction(action)
            action.triggered.connect(lambda checked, tool=controller.tool: self.iface.mapCanvas().setMapTool(tool))
            self._add_action(action)
        style = QAction(icon("style"), tr("TESSERA style"), self.iface.mainWindow())
        style.setObjectName("TesseraStyleAction")
        style.setStatusTip(tr("Year, bands, PCA and stretch of the selected TESSERA layer"))
        style.triggered.connect(self.show_style_dock)
        self._add_action(style)
        # The layer context menu of TESSERA layers: export the layer's area.
        self.export_layer_action = QAction(icon(), tr("Export TESSERA embeddings…"), self.iface.mainWindow())
        self.export_layer_action.triggered.connect(self.export_active_layer)
        self.iface.addCustomActionForLayerType(self.export_layer_action, tr("TESSERA"), Qgis.LayerType.Raster, False)
        QgsProject.instance().layersAdded.connect(self._offer_export_for)
        self._offer_export_for(QgsProject.instance().mapLayers().values())
        about = QAction(icon("about"), tr("About TESSERA embeddings"), self.iface.mainWindow())
        about.setObjectName("TesseraAboutAction")
        about.triggered.connect(self.show_about)
        self._add_action(about, toolbar=False)  # the menu only: the toolbar is for work

    def _install_translator(self) -> None:
        if self.translator is None:
            self.translator = load_translator(ui_locale())
            if self.translator is not None:
                QCoreApplication.installTranslator(self.translator)

    def _add_action(self, action: QAction, toolbar: bool = True) -> None:
        if toolbar:
            self.toolbar.addAction(action)
        self.iface.addPluginToRasterMenu(MENU, action)
        self.actions.append(action)

    def unload(self) -> None:
        if self.processing_provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.processing_provider)
            self.processing_provider = None
        if self.source_provider is not None:
            QgsGui.sourceSelectProviderRegistry().removeProvider(self.source_provider)
            self.source_provider = None
        if self.item_provider is not None:
            QgsApplication.dataItemProviderRegistry().removeProvider(self.item_provider)  # deletes it
            self.item_provider = None
        if self.options_factory is not None:
            self.iface.unregisterOptionsWidgetFactory(self.options_factory)
            self.options_factory = None
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
            self.dialog = None
        canvas = self.iface.mapCanvas()
        for controller in self.controllers.values():
            if canvas is not None and canvas.mapTool() is controller.tool:
                canvas.unsetMapTool(controller.tool)
        self.controllers.clear()
        if self.export_layer_action is not None:
            try:
                QgsProject.instance().layersAdded.disconnect(self._offer_export_for)
            except (TypeError, RuntimeError):
                pass
            self.iface.removeCustomActionForLayerType(self.export_layer_action)
            self.export_layer_action.setParent(None)
            self.export_layer_action = None
        for dock in (self.dock, self.style_dock):
            if dock is not None:
                self.iface.removeDockWidget(dock)
                dock.setParent(None)
                dock.deleteLater()
        if self.style_dock is not None:
            try:
                self.iface.currentLayerChanged.disconnect(self.style_dock.set_layer)
            except (TypeError, RuntimeError):
                pass
        self.dock = self.style_dock = None
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        provider.unregister()
        for action in self.actions:
            self.iface.removePluginRasterMenu(MENU, action)
            action.triggered.disconnect()
            action.setParent(None)
            action.deleteLater()
        self.actions.clear()
        if self.toolbar is not None:
            self.iface.mainWindow().removeToolBar(self.toolbar)
            self.toolbar.setParent(None)
            self.toolbar.deleteLater()
            self.toolbar = None
        if self.translator is not None:
            QCoreApplication.removeTranslator(self.translator)
            self.translator = None

    def _offer_export_for(self, layers) -> None:
        for layer in layers:
            if getattr(layer, "providerType", lambda: "")() == provider.PROVIDER_KEY:
                self.iface.addCustomActionForLayer(self.export_layer_action, layer)

    def export_active_layer(self) -> None:
        open_export_dialog(self.iface, self.iface.activeLayer())

    def show_dialog(self) -> None:
        if self.dialog is None:
            self.dialog = standalone_dialog(self.iface, self.iface.mainWindow())
        self.dialog.show()
        self.dialog.raise_()

    def show_style_dock(self) -> None:
        self.style_dock.set_layer(self.iface.activeLayer())
        self.style_dock.show()
        self.style_dock.raise_()

    def show_about(self) -> None:
        QMessageBox.about(
            self.iface.mainWindow(),
            tr("TESSERA embeddings"),
            tr("tessera-qgis {version}\nQGIS {qgis}\n\nTESSERA embeddings as Zarr v3 stores, "
               "streamed onto the map.").format(version=__version__, qgis=Qgis.QGIS_VERSION),
        )
