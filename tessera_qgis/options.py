"""The TESSERA page of QGIS's Options dialog: the typed settings, edited in place."""
from __future__ import annotations

from qgis.core import QgsProject, QgsRasterLayer
from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QComboBox, QFormLayout, QLabel, QLineEdit, QSpinBox

from . import provider
from .icons import icon
from .settings import Settings

# What a view over the budget draws (Settings.previews), in the order of the combo box.
PREVIEW_CHOICES = (("auto", "The store's preview, else a coarse one"),
                   ("coarse", "A coarse preview from a sample of the data"),
                   ("none", "Nothing: zoom in to see the layer"))


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraOptions", text)


class TesseraOptionsPage(QgsOptionsPageWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        s = Settings.load()
        form = QFormLayout(self)
        self.cache_dir = QgsFileWidget(self)
        self.cache_dir.setStorageMode(QgsFileWidget.StorageMode.GetDirectory)
        self.cache_dir.setFilePath(s.cache_dir)
        self.cache_limit = self._spin(16, 1_000_000, s.cache_limit_mb, " MB")
        self.memory = self._spin(32, 65_536, s.memory_mb, " MB")
        self.concurrency = self._spin(1, 256, s.concurrency, "")
        self.timeout = self._spin(0, 600, s.timeout_s, " s")
        self.timeout.setSpecialValueText(tr("QGIS's network timeout"))
        self.default_year = self._spin(2017, 2100, s.default_year, "")
        form.addRow(self._note(tr("A disk cache keeps every chunk you have seen, so those areas work offline. "
                                  "Leave the folder empty for no disk cache.")))
        form.addRow(tr("Cache folder"), self.cache_dir)
        form.addRow(tr("Cache size limit"), self.cache_limit)
        form.addRow(tr("Memory for decoded chunks"), self.memory)
        form.addRow(tr("Parallel requests"), self.concurrency)
        form.addRow(tr("Network timeout"), self.timeout)
        form.addRow(tr("Default year"), self.default_year)
        self.budget = self._spin(1, 100_000, s.budget_mpx, tr(" million pixels"))
        self.budget.setToolTip(tr("10 m pixels a map view may read (17 million: a view of about 41 x 41 km)"))
        self.previews = QComboBox(self)
        for key, text in PREVIEW_CHOICES:
            self.previews.addItem(tr(text), key)
        self.previews.setCurrentIndex(max(0, self.previews.findData(s.previews)))
        form.addRow(self._note(tr("A map view that needs more 10 m pixels than the budget draws a preview "
                                  "instead.")))
        form.addRow(tr("Pixel budget of a map view"), self.budget)
        form.addRow(tr("Over the budget, draw"), self.previews)
        self.dask = QLineEdit(s.dask_scheduler, self)
        self.dask.setPlaceholderText("tcp://scheduler:8786")
        self.dask.setToolTip(tr("Exports run as tasks on this Dask cluster (needs the dask and distributed "
                                "packages here and on the cluster). Empty: on this computer."))
        form.addRow(tr("Dask scheduler for exports"), self.dask)
        form.addRow(self._note(tr("Proxy and SSL settings come from Settings > Options > Network.")))

    def _note(self, text: str) -> QLabel:
        label = QLabel(text, self)
        label.setWordWrap(True)
        return label

    def _spin(self, lo: int, hi: int, value: int, suffix: str) -> QSpinBox:
        box = QSpinBox(self)
        box.setRange(lo, hi)
        box.setValue(value)
        box.setSuffix(suffix)
        return box

    def settings(self) -> Settings:
        return Settings(cache_dir=self.cache_dir.filePath().strip(), cache_limit_mb=self.cache_limit.value(),
                        memory_mb=self.memory.value(), concurrency=self.concurrency.value(),
                        timeout_s=self.timeout.value(), default_year=self.default_year.value(),
                        dask_scheduler=self.dask.text().strip(), budget_mpx=self.budget.value(),
                        previews=self.previews.currentData())

    def apply(self) -> None:
        """Save, and redraw open TESSERA layers with the new budget and preview choice."""
        self.settings().save()
        provider.apply_settings()
        for layer in QgsProject.instance().mapLayers().values():
            if isinstance(layer, QgsRasterLayer) and layer.providerType() == provider.PROVIDER_KEY:
                layer.triggerRepaint()


class TesseraOptionsFactory(QgsOptionsWidgetFactory):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("TESSERA")

    def icon(self):
        return icon()

    def createWidget(self, parent=None):  # noqa: N802
        return TesseraOptionsPage(parent)
