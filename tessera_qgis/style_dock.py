"""The styling dock: year, mode (3 bands as RGB, 1 band with a colour ramp, PCA), bands,
stretch (2-98 % of the view, or fixed), "fit PCA to this view" and "lock PCA".

Changing bands or the year gives the layer a new data source; the decoded chunks are shared
by every layer of a store, so what was already fetched is not fetched again. Stretches are
computed in a task from the view (cached chunks) and applied to the renderer only.
"""
from __future__ import annotations

from qgis.core import QgsCoordinateTransform, QgsProject, QgsRasterLayer
from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QHBoxLayout, QLabel,
                                 QPushButton, QSpinBox, QWidget)

from . import tasks
from .core.layerspec import LayerSpec, encode_pca
from .layers import apply_ramp, apply_rgb
from .provider import PROVIDER_KEY, state_for
from .tools import fit_pca_to

MODES = ("rgb", "ramp", "pca")


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraStyleDock", text)


class StyleDock(QgsDockWidget):
    def __init__(self, iface, parent=None) -> None:
        super().__init__(tr("TESSERA style"), parent)
        self.setObjectName("TesseraStyleDock")
        self.iface = iface
        self.layer: QgsRasterLayer | None = None
        self.last_task = None
        body = QWidget(self)
        form = QFormLayout(body)
        self.layer_label = QLabel(tr("Select a TESSERA layer"), body)
        self.year = QComboBox(body)
        self.mode = QComboBox(body)
        for key, text in zip(MODES, (tr("3 bands as RGB"), tr("1 band with a colour ramp"), tr("PCA"))):
            self.mode.addItem(text, key)
        self.bands = [QSpinBox(body) for _ in range(3)]
        row = QHBoxLayout()
        for i, box in enumerate(self.bands):
            box.setRange(1, 128)
            box.setValue(i + 1)
            row.addWidget(box)
        self.stretch = QComboBox(body)
        self.stretch.addItem(tr("2-98 % of the view"), "view")
        self.stretch.addItem(tr("fixed"), "fixed")
        self.lo, self.hi = QDoubleSpinBox(body), QDoubleSpinBox(body)
        for box, value in ((self.lo, -2.5), (self.hi, 2.5)):
            box.setRange(-1000, 1000)
            box.setDecimals(3)
            box.setValue(value)
        fixed = QHBoxLayout()
        fixed.addWidget(self.lo)
        fixed.addWidget(self.hi)
        self.apply_button = QPushButton(tr("Apply"), body)
        self.fit_button = QPushButton(tr("Fit PCA to this view"), body)
        self.lock = QCheckBox(tr("Lock PCA (kept in the project, never refitted)"), body)
        form.addRow(self.layer_label)
        form.addRow(tr("Year"), self.year)
        form.addRow(tr("Mode"), self.mode)
        form.addRow(tr("Bands"), row)
        form.addRow(tr("Stretch"), self.stretch)
        form.addRow(tr("Min / max"), fixed)
        form.addRow(self.apply_button)
        form.addRow(self.fit_button)
        form.addRow(self.lock)
        self.setWidget(body)
        self.apply_button.clicked.connect(self.apply)
        self.fit_button.clicked.connect(self.fit_pca)
        self.lock.toggled.connect(self.set_locked)
        iface.currentLayerChanged.connect(self.set_layer)

    # -- which layer ---------------------------------------------------------------------------
    def set_layer(self, layer) -> None:
        ok = isinstance(layer, QgsRasterLayer) and layer.providerType() == PROVIDER_KEY
        self.layer = layer if ok else None
        for w in (self.year, self.mode, self.apply_button, self.fit_button, self.lock, self.stretch):
            w.setEnabled(ok)
        if not ok:
            self.layer_label.setText(tr("Select a TESSERA layer"))
            return
        spec = LayerSpec.from_uri(layer.source())
        self.layer_label.setText(layer.name())
        state = state_for(layer.source())
        store = state.opened_store  # only what is open already: no network on the UI thread
        years = store.years if store is not None else [spec.year]
        self.year.clear()
        for y in years:
            self.year.addItem(str(y), y)
        self.year.setCurrentIndex(max(0, years.index(spec.year)) if spec.year in years else 0)
        self.mode.setEnabled(spec.similarity is None)
        if spec.similarity is not None:  # a similarity map: only its threshold and ramp top
            self.stretch.setCurrentIndex(1)
            renderer = layer.renderer()
            if hasattr(renderer, "classificationMin"):
                self.lo.setValue(renderer.classificationMin())
                self.hi.setValue(renderer.classificationMax())
        elif spec.pca is not None:
            self.mode.setCurrentIndex(MODES.index("pca"))
        elif spec.bands is not None:
            self.mode.setCurrentIndex(MODES.index("rgb" if len(spec.bands) == 3 else "ramp"))
            for box, b in zip(self.bands, spec.bands):
                box.setValue(b)
        self.lock.blockSignals(True)
        self.lock.setChecked(bool(spec.pca and spec.pca.startswith("b64:")))
        self.lock.blockSignals(False)

    # -- actions -------------------------------------------------------------------------------
    def wanted_spec(self) -> LayerSpec:
        spec = LayerSpec.from_uri(self.layer.source())
        if spec.similarity is not None:
            return spec.with_(year=self.year.currentData() or spec.year)
        mode = self.mode.currentData()
        year = self.year.currentData() or spec.year
        if mode == "pca":
            pca = spec.pca or "global"
            return spec.with_(year=year, bands=None, similarity=None, pca=pca)
        bands = tuple(b.value() for b in self.bands[: 3 if mode == "rgb" else 1])
        return spec.with_(year=year, bands=bands, pca=None, similarity=None)

    def apply(self) -> None:
        """Apply year, mode and bands (a new source only if they changed), then the stretch."""
        if self.layer is None:
            return
        spec = self.wanted_spec()
        if spec.to_uri() != self.layer.source():
            self.layer.setDataSource(spec.to_uri(), self.layer.name(), PROVIDER_KEY)
        self.apply_stretch()

    def apply_stretch(self) -> None:
        layer = self.layer
        spec = LayerSpec.from_uri(layer.source())
        state = state_for(layer.source())
        if spec.similarity is not None:  # min is the threshold: less similar is transparent
            apply_ramp(layer, self.lo.value(), self.hi.value(), clip=True)
            return
        if spec.pca is not None:
            pca = state.pca_model() if state.opened_store is not None else state.pca
            if pca is not None:
                apply_rgb(layer, list(zip(pca.lo.tolist(), pca.hi.tolist())))
            return
        n = len(spec.bands)
        if self.stretch.currentData() == "fixed":
            ranges = [(self.lo.value(), self.hi.value())] * n
            self._apply_ranges(ranges)
            return
        canvas = self.iface.mapCanvas()
        extent = canvas.mapSettings().visibleExtent()
        tr_ = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(), QgsProject.instance())
        ext = tr_.transformBoundingBox(extent)
        bounds = (ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum())
        layer_crs = layer.crs().authid()

        def work(cancel, _progress):
            return state.view().sample_ranges(bounds, layer_crs, cancel)

        self.last_task = tasks.start(tr("TESSERA stretch"), work, self._apply_ranges)

    def _apply_ranges(self, ranges) -> None:
        if self.layer is None:
            return
        if len(ranges) == 3:
            apply_rgb(self.layer, ranges)
        else:
            apply_ramp(self.layer, *ranges[0])
        self.lo.setValue(ranges[0][0])
        self.hi.setValue(ranges[0][1])

    def fit_pca(self) -> None:
        if self.layer is None or LayerSpec.from_uri(self.layer.source()).pca is None or self.lock.isChecked():
            return
        canvas = self.iface.mapCanvas()
        self.last_task = fit_pca_to(self.iface, self.layer, canvas.mapSettings().visibleExtent(),
                                    canvas.mapSettings().destinationCrs())

    def set_locked(self, locked: bool) -> None:
        """Locked: the current PCA goes into the layer's source (saved with the project);
        unlocked: back to the store's global PCA."""
        if self.layer is None:
            return
        spec = LayerSpec.from_uri(self.layer.source())
        if spec.pca is None:
            return
        state = state_for(self.layer.source())
        pca = state.pca
        if locked and pca is not None:
            new = spec.with_(pca=encode_pca(pca))
        elif not locked:
            new = spec.with_(pca="global")
        else:
            return
        renderer = self.layer.renderer().clone()
        self.layer.setDataSource(new.to_uri(), self.layer.name(), PROVIDER_KEY)
        if locked:
            self.layer.setRenderer(renderer)
        else:
            self.apply_stretch()
        self.fit_button.setEnabled(not locked)
