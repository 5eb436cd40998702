"""The TESSERA page of QGIS's Options dialog: the typed settings, edited in place."""
from __future__ import annotations

from qgis.gui import QgsFileWidget, QgsOptionsPageWidget, QgsOptionsWidgetFactory
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QFormLayout, QLabel, QLineEdit, QSpinBox

from .icons import icon
from .settings import Settings


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
        form.addRow(QLabel(tr("A disk cache keeps every chunk you have seen, so those areas work offline. "
                              "Leave the folder empty for no disk cache."), self))
        form.addRow(tr("Cache folder"), self.cache_dir)
        form.addRow(tr("Cache size limit"), self.cache_limit)
        form.addRow(tr("Memory for decoded chunks"), self.memory)
        form.addRow(tr("Parallel requests"), self.concurrency)
        form.addRow(tr("Network timeout"), self.timeout)
        form.addRow(tr("Default year"), self.default_year)
        self.dask = QLineEdit(s.dask_scheduler, self)
        self.dask.setPlaceholderText("tcp://scheduler:8786")
        self.dask.setToolTip(tr("Exports run as tasks on this Dask cluster (needs the dask and distributed "
                                "packages here and on the cluster). Empty: on this computer."))
        form.addRow(tr("Dask scheduler for exports"), self.dask)
        form.addRow(QLabel(tr("Proxy and SSL settings come from Settings > Options > Network."), self))

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
                        dask_scheduler=self.dask.text().strip())

    def apply(self) -> None:
        self.settings().save()


class TesseraOptionsFactory(QgsOptionsWidgetFactory):
    def __init__(self) -> None:
        super().__init__()
        self.setTitle("TESSERA")

    def icon(self):
        return icon()

    def createWidget(self, parent=None):  # noqa: N802
        return TesseraOptionsPage(parent)
