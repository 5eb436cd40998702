"""The styling dock: year, mode (3 bands as RGB, 1 band with a colour ramp, PCA), bands,
stretch (2-98 % of the view, or fixed), "fit PCA to this view" and "lock PCA"; for a
similarity layer its threshold.

It always shows the selected layer's own settings (read from its source, its renderer and
its `tessera/stretch` property), and only the controls that apply to the mode shown.
Changing the mode, bands or year gives the layer a new data source and a name that says so;
the decoded chunks are shared by every layer of a store, so what was already fetched is not
fetched again. Stretches are computed in a task from the view (cached chunks) and applied to
the renderer only; a PCA fit runs as a task with progress and Cancel in the dock.
"""
from __future__ import annotations

from qgis.core import QgsCoordinateTransform, QgsProject, QgsRasterLayer, QgsTask
from qgis.gui import QgsDockWidget
from qgis.PyQt import sip
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QProgressBar,
                                 QPushButton, QSpinBox, QVBoxLayout, QWidget)

from . import tasks
from .core.layerspec import LayerSpec, encode_pca
from .cluster_view import cluster_this_view
from .layers import STRETCH_PROPERTY, apply_ramp, apply_rgb, layer_title, retitle
from .provider import PROVIDER_KEY, state_for
from .tools import fit_pca_to

MODE_CHOICES = (("rgb", "3 bands as RGB"), ("ramp", "1 band with a colour ramp"), ("pca", "PCA"))
MODES = tuple(key for key, _text in MODE_CHOICES)
# The rows each mode shows (besides the layer's name): nothing else is visible.
ROWS = {
    None: (),
    "rgb": ("year", "mode", "bands", "stretch", "range", "apply", "cluster"),
    "ramp": ("year", "mode", "bands", "stretch", "range", "apply", "cluster"),
    "pca": ("year", "mode", "apply", "fit", "lock", "cluster"),
    "similarity": ("year", "range", "apply"),
}


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraStyleDock", text)


def layer_mode(spec: LayerSpec) -> str:
    """"similarity", "pca", "rgb" (3 bands) or "ramp" (1 band)."""
    if spec.similarity is not None:
        return "similarity"
    if spec.pca is not None:
        return "pca"
    return "rgb" if len(spec.bands) == 3 else "ramp"


def renderer_range(layer: QgsRasterLayer) -> tuple[float, float] | None:
    """The (min, max) the layer's renderer stretches its first band (or red) to."""
    r = layer.renderer()
    if hasattr(r, "classificationMin"):
        return r.classificationMin(), r.classificationMax()
    ce = r.redContrastEnhancement() if hasattr(r, "redContrastEnhancement") else None
    if ce is not None:
        return ce.minimumValue(), ce.maximumValue()
    return None


class StyleDock(QgsDockWidget):
    def __init__(self, iface, parent=None) -> None:
        super().__init__(tr("TESSERA style"), parent)
        self.setObjectName("TesseraStyleDock")
        self.iface = iface
        self.layer: QgsRasterLayer | None = None
        self.last_task = None
        self.fit_task = None
        self.rows: dict[str, QWidget] = {}
        self.labels: list[QLabel] = []
        body = QWidget(self)
        # Rows in a box layout, not a QFormLayout: a hidden row there still takes its spacing.
        self.column = QVBoxLayout(body)
        self.layer_label = QLabel(tr("Select a TESSERA layer"), body)
        self.layer_label.setWordWrap(True)
        self.column.addWidget(self.layer_label)
        self.year = QComboBox(body)
        self._row("year", tr("Year"), self.year)
        self.mode = QComboBox(body)
        for key, text in MODE_CHOICES:
            self.mode.addItem(tr(text), key)
        self._row("mode", tr("Mode"), self.mode)
        self.bands = [QSpinBox(body) for _ in range(3)]
        for i, box in enumerate(self.bands):
            box.setRange(1, 128)
            box.setValue(i + 1)
        self._row("bands", tr("Bands"), self._line(body, self.bands))
        self.stretch = QComboBox(body)
        self.stretch.addItem(tr("2-98 % of the view"), "view")
        self.stretch.addItem(tr("the store's range"), "store")
        self.stretch.addItem(tr("fixed"), "fixed")
        self._row("stretch", tr("Stretch"), self.stretch)
        self.lo, self.hi = QDoubleSpinBox(body), QDoubleSpinBox(body)
        for box, value in ((self.lo, -2.5), (self.hi, 2.5)):
            box.setRange(-1000, 1000)
            box.setDecimals(3)
            box.setValue(value)
        self.range_label = QLabel(tr("Min / max"), body)
        self._row("range", self.range_label, self._line(body, [self.lo, self.hi]))
        self.apply_button = QPushButton(tr("Apply"), body)
        self._row("apply", None, self.apply_button)
        self.fit_button = QPushButton(tr("Fit PCA to this view"), body)
        self._row("fit", None, self.fit_button)
        self.fit_progress = QProgressBar(body)
        self.fit_progress.setRange(0, 100)
        self.fit_progress.setFormat(tr("Fitting PCA… %p%"))
        self.fit_cancel = QPushButton(tr("Cancel"), body)
        self._row("fitting", None, self._line(body, [self.fit_progress, self.fit_cancel]))
        self.lock = QCheckBox(tr("Lock PCA (kept in the project)"), body)
        self._row("lock", None, self.lock)
        self.cluster_button = QPushButton(tr("Cluster this view"), body)
        self.cluster_button.setToolTip(tr("k-means of the layer's year over the map view"))
        self._row("cluster", None, self.cluster_button)
        self.column.addStretch(1)
        width = max([label.sizeHint().width() for label in self.labels]
                    + [self.range_label.fontMetrics().horizontalAdvance(tr("Threshold / top")) + 6])
        for label in self.labels:
            label.setFixedWidth(width)
        self.setWidget(body)
        self.apply_button.clicked.connect(self.apply)
        self.fit_button.clicked.connect(self.fit_pca)
        self.fit_cancel.clicked.connect(self.cancel_fit)
        self.cluster_button.clicked.connect(self.cluster_view)
        self.lock.toggled.connect(self.set_locked)
        self.mode.currentIndexChanged.connect(self.show_controls)
        self.stretch.currentIndexChanged.connect(self.show_controls)
        iface.currentLayerChanged.connect(self.set_layer)
        self.show_controls()

    def _row(self, key: str, label, widget: QWidget) -> None:
        """A row (a label, if any, and its field) that show_controls() shows or hides whole."""
        row = QWidget(widget.parentWidget())
        line = QHBoxLayout(row)
        line.setContentsMargins(0, 0, 0, 0)
        if isinstance(label, str):
            label = QLabel(label, row)
        if label is not None:
            self.labels.append(label)
            line.addWidget(label)
        line.addWidget(widget, 1)
        self.column.addWidget(row)
        self.rows[key] = row

    @staticmethod
    def _line(parent: QWidget, widgets) -> QWidget:
        holder = QWidget(parent)
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        for w in widgets:
            row.addWidget(w)
        return holder

    # -- what is shown -------------------------------------------------------------------------
    def current_mode(self) -> str | None:
        """The mode the controls are for: the similarity layer's, else the mode box's."""
        if self.layer is None:
            return None
        if LayerSpec.from_uri(self.layer.source()).similarity is not None:
            return "similarity"
        return self.mode.currentData()

    def show_controls(self, *_args) -> None:
        """Only the rows that apply to the mode (and a fit's progress while it runs)."""
        mode = self.current_mode()
        shown = set(ROWS[mode])
        if mode == "pca" and self._fitting():
            shown.add("fitting")
        for key, row in self.rows.items():
            row.setVisible(key in shown)
        for i, box in enumerate(self.bands):
            box.setVisible(mode == "rgb" or i == 0)
        fixed = mode == "similarity" or self.stretch.currentData() == "fixed"
        self.lo.setEnabled(fixed)
        self.hi.setEnabled(fixed)
        self.range_label.setText(tr("Threshold / top") if mode == "similarity" else tr("Min / max"))
        self.fit_button.setEnabled(mode == "pca" and not self.lock.isChecked() and not self._fitting())

    def visible_rows(self) -> set[str]:
        """The rows shown now (for tests and screenshots)."""
        return {key for key, row in self.rows.items() if not row.isHidden()}

    # -- which layer ---------------------------------------------------------------------------
    def set_layer(self, layer) -> None:
        """Show this layer's own settings (nothing of the layer shown before)."""
        ok = isinstance(layer, QgsRasterLayer) and not sip.isdeleted(layer) and layer.providerType() == PROVIDER_KEY
        self.layer = layer if ok else None
        if not ok:
            self.layer_label.setText(tr("Select a TESSERA layer"))
            self.show_controls()
            return
        spec = LayerSpec.from_uri(layer.source())
        mode = layer_mode(spec)
        self.layer_label.setText(layer.name())
        store = state_for(layer.source()).opened_store  # only what is open already: no network here
        years = store.years if store is not None else [spec.year]
        for w in (self.year, self.mode, self.stretch, self.lock):
            w.blockSignals(True)
        self.year.clear()
        for y in years:
            self.year.addItem(str(y), y)
        self.year.setCurrentIndex(years.index(spec.year) if spec.year in years else 0)
        if mode != "similarity":
            self.mode.setCurrentIndex(MODES.index(mode))
        for i, box in enumerate(self.bands):
            box.setValue(spec.bands[i] if spec.bands and i < len(spec.bands) else i + 1)
        stretch = "fixed" if mode == "similarity" else str(layer.customProperty(STRETCH_PROPERTY, "view"))
        self.stretch.setCurrentIndex(max(0, self.stretch.findData(stretch)))
        lo, hi = renderer_range(layer) or ((0.5, 1.0) if mode == "similarity" else (-2.5, 2.5))
        self.lo.setValue(lo)
        self.hi.setValue(hi)
        self.lock.setChecked(bool(spec.pca and spec.pca.startswith("b64:")))
        for w in (self.year, self.mode, self.stretch, self.lock):
            w.blockSignals(False)
        self.show_controls()

    # -- actions -------------------------------------------------------------------------------
    def wanted_spec(self) -> LayerSpec:
        spec = LayerSpec.from_uri(self.layer.source())
        year = self.year.currentData() or spec.year
        if spec.similarity is not None:
            return spec.with_(year=year)
        mode = self.mode.currentData()
        if mode == "pca":
            return spec.with_(year=year, bands=None, similarity=None, pca=spec.pca or "global")
        bands = tuple(b.value() for b in self.bands[: 3 if mode == "rgb" else 1])
        return spec.with_(year=year, bands=bands, pca=None, similarity=None)

    def apply(self) -> None:
        """Apply year, mode and bands (a new source and name only if they changed), then the
        stretch."""
        if self.layer is None:
            return
        old = LayerSpec.from_uri(self.layer.source())
        spec = self.wanted_spec()
        if spec.to_uri() != self.layer.source():
            store = state_for(self.layer.source()).opened_store
            name = retitle(self.layer.name(), layer_title(store, old), layer_title(store, spec))
            self.layer.setDataSource(spec.to_uri(), name, PROVIDER_KEY)
            self.layer_label.setText(name)
        self.apply_stretch()
        self.show_controls()

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
        layer.setCustomProperty(STRETCH_PROPERTY, self.stretch.currentData())
        if self.stretch.currentData() == "fixed":
            self._apply_ranges([(self.lo.value(), self.hi.value())] * n)
            return
        if self.stretch.currentData() == "store":  # the published range (else a sample of the layer)
            self.last_task = tasks.start(tr("Stretching colours to the store's range"),
                                         lambda cancel, _progress: state.view().default_ranges(cancel=cancel),
                                         lambda ranges: self._apply_ranges(ranges, layer))
            return
        canvas = self.iface.mapCanvas()
        extent = canvas.mapSettings().visibleExtent()
        tr_ = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), layer.crs(), QgsProject.instance())
        ext = tr_.transformBoundingBox(extent)
        bounds = (ext.xMinimum(), ext.yMinimum(), ext.xMaximum(), ext.yMaximum())
        layer_crs = layer.crs().authid()

        def work(cancel, _progress):
            return state.view().sample_ranges(bounds, layer_crs, cancel)

        self.last_task = tasks.start(tr("Stretching colours to the view"), work,
                                     lambda ranges: self._apply_ranges(ranges, layer))

    def _apply_ranges(self, ranges, layer=None) -> None:
        layer = layer or self.layer
        if layer is None or sip.isdeleted(layer):
            return
        if len(ranges) == 3:
            apply_rgb(layer, ranges)
        else:
            apply_ramp(layer, *ranges[0])
        if layer is self.layer:
            self.lo.setValue(ranges[0][0])
            self.hi.setValue(ranges[0][1])

    # -- PCA fit and lock ----------------------------------------------------------------------
    def _fitting(self) -> bool:
        """A fit of the selected layer is running."""
        task = self.fit_task
        return task is not None and task.layer is self.layer and task.outcome is None and task in tasks.running()

    def cluster_view(self) -> None:
        """k-means (automatic k) of this layer's store and year over the map view: a task that
        adds the styled clusters to the project."""
        if self.layer is not None:
            self.cluster_task = cluster_this_view(self.iface, self.layer)

    def fit_pca(self) -> None:
        """Fit the PCA to the view in a task: progress and Cancel in the dock, a message-bar
        line when done."""
        if self.layer is None or LayerSpec.from_uri(self.layer.source()).pca is None or self.lock.isChecked():
            return
        if self._fitting():
            return
        canvas = self.iface.mapCanvas()
        task = fit_pca_to(self.iface, self.layer, canvas.mapSettings().visibleExtent(),
                          canvas.mapSettings().destinationCrs())
        task.layer = self.layer
        self.last_task = self.fit_task = task
        self.fit_progress.setValue(0)
        task.progressChanged.connect(lambda value: self.fit_progress.setValue(int(value)))
        task.statusChanged.connect(self._fit_status)
        self.show_controls()

    def _fit_status(self, status) -> None:
        ended = {getattr(s, "value", s) for s in (QgsTask.TaskStatus.Complete, QgsTask.TaskStatus.Terminated)}
        if getattr(status, "value", status) in ended:
            self.fit_task = None
            self.show_controls()

    def cancel_fit(self) -> None:
        task, self.fit_task = self.fit_task, None
        if task is not None:
            task.cancel()
        self.show_controls()

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
        self.show_controls()
