"""The data-source dialog: saved connections, connect (in the background, cancellable),
the store's metadata, and "Add layer" for the current canvas extent.

The same widget serves as a standalone dialog (toolbar, Raster menu) and as the TESSERA tab
of QGIS's Data Source Manager (through QgsSourceSelectProvider).
"""
from __future__ import annotations

import html
from pathlib import Path

from qgis.core import Qgis, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProject, QgsProviderRegistry
from qgis.gui import QgsAbstractDataSourceWidget, QgsAuthConfigSelect, QgsSourceSelectProvider
from qgis.PyQt.QtCore import QCoreApplication, QObject, Qt, pyqtSignal
from qgis.PyQt.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                                 QGroupBox, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QProgressBar,
                                 QPushButton, QSpinBox, QTextBrowser, QVBoxLayout)

from . import tasks
from .core.connections import Connection, describe_failure, from_xml, to_xml
from .core.store import describe_years
from .credentials import has_password, secure_connection
from .fieldkit import open_folder_store
from .icons import icon
from .layers import build_layer, prepare_layer
from .log import log
from .settings import (Settings, all_connections, remove_connection, resolve_url, save_custom_connections,
                       custom_connections, upsert_connection)
from .store_access import shared_store

# QGIS 3 names it QgsProviderRegistry.WidgetMode; later versions move it to Qgis.
WIDGET_MODE = getattr(Qgis, "ProviderDialogWidgetMode", None) or QgsProviderRegistry.WidgetMode
MODES = (("pca", "PCA (the store's global PCA)"), ("view", "PCA fitted to the view"),
         ("rgb", "3 bands as RGB"), ("ramp", "1 band with a colour ramp"))
FAILURE_TITLES = {
    "unreachable": "Cannot reach the store",
    "timeout": "The store did not answer in time",
    "forbidden": "Access denied",
    "certificate": "The server's certificate is not trusted",
    "not found": "Nothing found at that address (404)",
    "not zarr v3": "Not a Zarr v3 store",
    "not tessera": "Not a TESSERA store",
    "error": "Cannot open the store",
}


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraDialog", text)


class _Steps(QObject):
    """Carries a task's steps (sample building) to the dialog on the main thread."""

    step = pyqtSignal(int, int, str)  # step, of steps, message


class ConnectionEditor(QDialog):
    """New or edit a custom connection: name, URL or folder, S3 settings, auth configuration."""

    def __init__(self, parent=None, conn: Connection | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(tr("TESSERA connection"))
        self.result_connection: Connection | None = None  # what OK saved (a URL's password moved out)
        form = QFormLayout(self)
        self.name = QLineEdit(conn.name if conn else "", self)
        self.url = QLineEdit(conn.url if conn else "", self)
        self.url.setPlaceholderText("https://..., s3://bucket/path.zarr or a folder")
        browse = QPushButton(tr("Folder…"), self)
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.url)
        row.addWidget(browse)
        s3 = QGroupBox(tr("S3 settings"), self)
        s3f = QFormLayout(s3)
        self.anon = QCheckBox(tr("Anonymous (public bucket)"), s3)
        self.anon.setChecked(conn.anon if conn else False)
        self.endpoint = QLineEdit(conn.s3_endpoint if conn else "", s3)
        self.endpoint.setPlaceholderText(tr("default AWS; or an S3-compatible endpoint URL"))
        self.region = QLineEdit(conn.s3_region if conn else "", s3)
        self.auth = QgsAuthConfigSelect(s3)
        if conn and conn.authcfg:
            self.auth.setConfigId(conn.authcfg)
        s3f.addRow(self.anon)
        s3f.addRow(tr("Endpoint URL"), self.endpoint)
        s3f.addRow(tr("Region"), self.region)
        s3f.addRow(tr("Credentials"), self.auth)
        form.addRow(tr("Name"), self.name)
        form.addRow(tr("URL or folder"), row)
        form.addRow(s3)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, tr("TESSERA store folder"))
        if folder:
            self.url.setText(folder)

    def connection(self) -> Connection:
        return Connection(name=self.name.text().strip(), url=self.url.text().strip(), anon=self.anon.isChecked(),
                          s3_endpoint=self.endpoint.text().strip(), s3_region=self.region.text().strip(),
                          authcfg=self.auth.configId())

    def _accept(self) -> None:
        """A password typed into the URL goes into QGIS's authentication database here (the
        connection keeps the configuration's id); if it cannot, the dialog stays open."""
        try:
            self.result_connection = secure_connection(self.connection())
        except ValueError as exc:
            QMessageBox.warning(self, tr("TESSERA connection"), str(exc))
            return
        if self.result_connection.authcfg != self.auth.configId():
            self.url.setText(self.result_connection.url)
            self.auth.setConfigId(self.result_connection.authcfg)
        self.accept()


class TesseraSourceWidget(QgsAbstractDataSourceWidget):
    def __init__(self, parent=None, fl=Qt.WindowType.Widget,
                 mode=WIDGET_MODE.Standalone, iface=None) -> None:
        super().__init__(parent, fl, mode)
        self.iface = iface
        self.store = None
        self.ref = None  # the connected store's StoreRef
        self._generation = 0
        self.task: tasks.Task | None = None
        self.add_task: tasks.Task | None = None
        self.last_failure: tuple[str, str] | None = None
        self.last_layer = None
        self.steps_seen: list[tuple[int, int, str]] = []
        self.steps = _Steps(self)
        self.steps.step.connect(self.show_step)
        self._build()
        self.reload_connections()

    # -- widgets -----------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.connections = QComboBox(self)
        self.connections.setMinimumWidth(320)
        self.connect_button = QPushButton(tr("Connect"), self)
        row.addWidget(QLabel(tr("Connection"), self))
        row.addWidget(self.connections, 1)
        row.addWidget(self.connect_button)
        layout.addLayout(row)
        edits = QHBoxLayout()
        self.new_button = QPushButton(tr("New"), self)
        self.edit_button = QPushButton(tr("Edit"), self)
        self.remove_button = QPushButton(tr("Remove"), self)
        self.import_button = QPushButton(tr("Import…"), self)
        self.export_button = QPushButton(tr("Export…"), self)
        self.folder_button = QPushButton(tr("Open folder…"), self)
        self.folder_button.clicked.connect(self.open_folder)
        for b in (self.new_button, self.edit_button, self.remove_button, self.import_button, self.export_button,
                  self.folder_button):
            edits.addWidget(b)
        edits.addStretch(1)
        layout.addLayout(edits)
        self.status = QLabel(self)  # what a wait is doing, and what to do next
        self.status.setWordWrap(True)
        self.status.setVisible(False)
        layout.addWidget(self.status)
        busy = QHBoxLayout()
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 0)  # a busy indicator until a step count is known
        self.progress.setVisible(False)
        self.cancel_button = QPushButton(tr("Cancel"), self)
        self.cancel_button.setVisible(False)
        busy.addWidget(self.progress, 1)
        busy.addWidget(self.cancel_button)
        layout.addLayout(busy)
        self.info = QTextBrowser(self)
        self.info.setMinimumHeight(170)
        layout.addWidget(self.info, 1)
        form = QFormLayout()
        self.year = QComboBox(self)
        self.mode = QComboBox(self)
        for key, text in MODES:
            self.mode.addItem(tr(text), key)
        self.bands = [QSpinBox(self) for _ in range(3)]
        bands_row = QHBoxLayout()
        for i, box in enumerate(self.bands):
            box.setRange(1, 128)
            box.setValue(i + 1)
            bands_row.addWidget(box)
        self.zone = QComboBox(self)
        self.depth = QComboBox(self)
        self.depth.setToolTip(tr("Dimensions PCA uses (Matryoshka depths)"))
        self.colours = QComboBox(self)
        self.colours.setToolTip(tr("The store's published stretch"))
        form.addRow(tr("Year"), self.year)
        form.addRow(tr("Show"), self.mode)
        form.addRow(tr("Bands"), bands_row)
        form.addRow(tr("Depth"), self.depth)
        form.addRow(tr("Colours"), self.colours)
        form.addRow(tr("Zone"), self.zone)
        layout.addLayout(form)
        self.add_button = QPushButton(tr("Add layer"), self)
        self.add_button.setEnabled(False)
        bottom = QHBoxLayout()
        bottom.addWidget(self.add_button, 1)
        self.close_button = None
        if self.widgetMode() == WIDGET_MODE.Standalone:  # in the Data Source Manager, its own Close
            self.close_button = QPushButton(tr("Close"), self)
            self.close_button.clicked.connect(self.close)
            bottom.addWidget(self.close_button)
        layout.addLayout(bottom)
        self.connect_button.clicked.connect(self.connect_store)
        self.cancel_button.clicked.connect(self.cancel)
        self.new_button.clicked.connect(self.new_connection)
        self.edit_button.clicked.connect(self.edit_connection)
        self.remove_button.clicked.connect(self.remove_selected)
        self.import_button.clicked.connect(self.import_connections)
        self.export_button.clicked.connect(self.export_connections)
        self.add_button.clicked.connect(self.addButtonClicked)
        self.connections.currentIndexChanged.connect(self._selection_changed)
        self.mode.currentIndexChanged.connect(self._mode_changed)
        self._mode_changed()

    def reload_connections(self, select: str | None = None) -> None:
        current = select or self.connections.currentText()
        self.connections.blockSignals(True)
        self.connections.clear()
        for c in all_connections():
            self.connections.addItem(c.name, c)
        idx = self.connections.findText(current) if current else -1
        self.connections.setCurrentIndex(max(idx, 0))
        self.connections.blockSignals(False)
        self._selection_changed()

    def current(self) -> Connection | None:
        return self.connections.currentData()

    def _selection_changed(self, *_args) -> None:
        c = self.current()
        self.edit_button.setEnabled(bool(c and c.editable))
        self.remove_button.setEnabled(bool(c and c.editable))

    def _mode_changed(self, *_args) -> None:
        mode = self.mode.currentData()
        for i, box in enumerate(self.bands):
            box.setEnabled(mode == "rgb" or (mode == "ramp" and i == 0))

    # -- connections -------------------------------------------------------------------------
    def new_connection(self) -> None:
        editor = ConnectionEditor(self)
        if editor.exec():
            conn = editor.result_connection
            upsert_connection(conn)
            self.reload_connections(conn.name)

    def edit_connection(self) -> None:
        c = self.current()
        if c is None or not c.editable:
            return
        editor = ConnectionEditor(self, c)
        if editor.exec():
            conn = editor.result_connection
            upsert_connection(conn, old_name=c.name)
            self.reload_connections(conn.name)

    def remove_selected(self) -> None:
        c = self.current()
        if c is not None and c.editable:
            remove_connection(c.name)
            self.reload_connections()

    def open_folder(self) -> None:
        """A pack (or any folder store) from a folder picker: saved as a connection, connected."""
        conn = open_folder_store(self)
        if conn is not None:
            self.reload_connections(conn.name)
            self.connect_store()

    def export_connections(self, path: str | None = None) -> None:
        path = path or QFileDialog.getSaveFileName(self, tr("Export TESSERA connections"), "tessera.xml",
                                                   "XML (*.xml)")[0]
        if path:
            Path(path).write_text(to_xml(custom_connections()), encoding="utf-8")

    def import_connections(self, path: str | None = None) -> None:
        path = path or QFileDialog.getOpenFileName(self, tr("Import TESSERA connections"), "", "XML (*.xml)")[0]
        if not path:
            return
        try:
            new = from_xml(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.show_failure("error", f"{path}: {exc}")
            return
        names = {c.name for c in new}
        try:
            save_custom_connections([c for c in custom_connections() if c.name not in names] + new)
        except ValueError as exc:  # a password in a URL that QGIS's authentication database cannot keep
            self.show_failure("error", f"{path}: {exc}")
            return
        self.reload_connections(new[0].name if new else None)

    # -- connect -----------------------------------------------------------------------------
    def busy(self, on: bool, text: str = "") -> None:
        """Show (or hide) the wait: what is happening, a bar, Cancel."""
        self.progress.setRange(0, 0)
        self.progress.setVisible(on)
        self.cancel_button.setVisible(on)
        self.connect_button.setEnabled(not on)
        self.say(text if on else "")

    def say(self, text: str) -> None:
        self.status.setText(text)
        self.status.setVisible(bool(text))

    def show_step(self, step: int, steps: int, message: str) -> None:
        """A step of building the sample store (from the task, on the main thread)."""
        self.steps_seen.append((step, steps, message))
        if self.progress.isHidden():  # cancelled meanwhile
            return
        self.progress.setRange(0, steps)
        self.progress.setValue(step - 1)
        self.progress.setFormat(tr("step {} of {}").format(step, steps))
        self.say(tr("Building the sample store (first use only): {}").format(message))

    def connect_store(self) -> None:
        conn = self.current()
        if conn is None:
            return
        if conn.editable and has_password(conn.url):  # saved before passwords left saved URLs
            try:
                secured = secure_connection(conn)
                upsert_connection(secured, old_name=conn.name)
            except ValueError as exc:
                self.show_failure("error", str(exc))
                return
            self.reload_connections(secured.name)
            conn = secured
        self.store = None
        self.add_button.setEnabled(False)
        self.last_failure = None
        self.info.setHtml(html.escape(tr("Connecting to {}…").format(conn.name)))
        self.busy(True, tr("Connecting to {}: reading what the store holds…").format(conn.name))
        self.steps_seen = []
        steps = self.steps

        def work(cancel, progress):
            def step(i: int, n: int, message: str) -> None:  # a worker thread: through a signal
                progress((i - 1) / n)
                steps.step.emit(i, n, message)

            ref = conn.ref(resolve_url(conn, progress=step))
            return ref, shared_store(ref, cancel)

        def done(result) -> None:
            self.busy(False)
            self.ref, self.store = result
            self.show_store()
            self.say(tr("Connected. Choose a year and what to show, then Add layer."))

        def failed(exc) -> None:
            self.busy(False)
            self.show_failure(*describe_failure(exc))

        def cancelled() -> None:  # also when cancelled from QGIS's task list, not this dialog
            if self.task is not None and self.task.isCanceled():  # and no newer connect since
                self.busy(False)
                self.info.setHtml(html.escape(tr("Cancelled.")))

        self.task = tasks.start(tr("Connect to {}").format(conn.name), work, done, failed, cancelled)

    def cancel(self) -> None:
        """Cancel the connect or the layer being added: the dialog is free at once, and the
        task stops downloading (a cancelled task delivers neither a result nor an error)."""
        adding = self.add_task is not None and self.add_task.outcome is None and self.add_task in tasks.running()
        self.busy(False)
        if adding:
            self.add_task.cancel()
            self.add_button.setEnabled(self.store is not None)
            self.say(tr("Cancelled: no layer added."))
            return
        self.info.setHtml(html.escape(tr("Cancelled.")))
        if self.task is not None:
            self.task.cancel()

    def show_failure(self, category: str, message: str) -> None:
        self.last_failure = (category, message)
        title = tr(FAILURE_TITLES.get(category, FAILURE_TITLES["error"]))
        if category == "certificate":
            message += " " + tr("In QGIS, add its certificate authority in Settings > Options > Authentication > "
                                "Certificate Manager (Authorities), or an SSL server exception for this host.")
        self.info.setHtml(f"<h3>{html.escape(title)}</h3><p>{html.escape(message)}</p>")
        log(f"{title}: {message}", Qgis.MessageLevel.Warning)

    def show_store(self) -> None:
        info = self.store.info()
        rows = [(tr("Store"), info["url"]), (tr("Dataset"), info["dataset"] or "-"),
                (tr("Model"), info["model"] or "-"), (tr("Layout"), info["layout"]),
                (tr("Years"), describe_years(info)), (tr("Bands"), str(info["bands"])),
                (tr("Global PCA"), ", ".join(map(str, info["global_pca_years"])) or tr("none")),
                (tr("Depths"), ", ".join(map(str, info["depths"]))),
                (tr("Published stretch"), ", ".join(f"{y} {m}" for y, m in info["stretch"].items()) or tr("none"))]
        for name, z in info["zones"].items():
            e = z["embeddings"]
            rows.append((name, f"{z['crs']}, {z['shape'][0]} x {z['shape'][1]} px, years {z['years']}, chunks "
                               f"{e['chunk_px'][0]} px, shards {e['shard']}, extent "
                               + ", ".join(f"{v:.0f}" for v in z["bounds"])))
        self.info.setHtml("<table>" + "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{html.escape(str(v))}"
                                              "</td></tr>" for k, v in rows) + "</table>")
        self.year.clear()
        for y in info["years"]:
            partial = info["partial_years"].get(y)
            self.year.addItem(tr("{} (partial)").format(y) if partial else str(y), y)
            if partial:
                self.year.setItemData(self.year.count() - 1, tr("only in {}").format(", ".join(partial)),
                                      Qt.ItemDataRole.ToolTipRole)
        default = Settings.load().default_year
        self.year.setCurrentIndex(max(0, self.year.findData(default)))
        self.zone.clear()
        self.zone.addItem(tr("automatic (from the map extent)"), None)
        for name in info["zones"]:
            self.zone.addItem(name, name)
        self.depth.clear()
        for d in sorted(info["depths"], reverse=True):  # all dimensions first
            self.depth.addItem(tr("{} dimensions").format(d), None if d == info["bands"] else d)
        self.depth.setEnabled(len(info["depths"]) > 1)
        self.colours.clear()
        self.colours.addItem(tr("the store's stretch"), None)
        self.colours.addItem(tr("equalised (the store's CDF)"), "cdf")
        self.colours.addItem(tr("each zone's own stretch"), "zone")
        self.colours.setEnabled(bool(info["stretch"]))
        self.add_button.setEnabled(True)

    # -- add layer ---------------------------------------------------------------------------
    def view_bounds(self):
        canvas = self.iface.mapCanvas() if self.iface is not None else None
        if canvas is None or canvas.extent().isEmpty():
            return None, "EPSG:4326"
        wgs = QgsCoordinateReferenceSystem("EPSG:4326")
        tr_ = QgsCoordinateTransform(canvas.mapSettings().destinationCrs(), wgs, QgsProject.instance())
        try:
            e = tr_.transformBoundingBox(canvas.extent())
        except Exception:
            return None, "EPSG:4326"
        if not (-180 <= e.xMinimum() <= 180 and -90 <= e.yMinimum() <= 90):
            return None, "EPSG:4326"
        return (e.xMinimum(), e.yMinimum(), e.xMaximum(), e.yMaximum()), "EPSG:4326"

    def addButtonClicked(self) -> None:  # noqa: N802 (QgsAbstractDataSourceWidget's name)
        if self.store is None:
            return
        mode = self.mode.currentData()
        kwargs: dict = dict(year=self.year.currentData(), zone=self.zone.currentData())
        if mode in ("pca", "view"):
            kwargs["pca"] = "global" if mode == "pca" else "view"
            if self.depth.currentData() is not None:
                kwargs["depth"] = self.depth.currentData()
        else:
            kwargs["bands"] = [b.value() for b in self.bands[: 3 if mode == "rgb" else 1]]
        if self.colours.currentData() is not None:
            kwargs["colours"] = self.colours.currentData()
        bounds, crs = self.view_bounds()
        ref = self.ref
        self.add_button.setEnabled(False)
        self.busy(True, tr("Adding the layer: opening {} and sampling the map view for its colours…").format(
            kwargs["year"]))

        def work(cancel, _progress):
            return prepare_layer(ref, view_bounds=bounds, view_crs=crs, cancel=cancel, **kwargs)

        def done(prepared) -> None:
            self.busy(False)
            self.add_button.setEnabled(True)
            layer = build_layer(prepared)
            QgsProject.instance().addMapLayer(layer)
            self.last_layer = layer
            self.say(tr("Added “{}” to the map. Add another, or close this window.").format(layer.name()))

        def failed(exc) -> None:
            self.busy(False)
            self.add_button.setEnabled(True)
            self.show_failure(*describe_failure(exc))

        def cancelled() -> None:  # also when cancelled from QGIS's task list
            self.busy(False)
            self.add_button.setEnabled(True)
            self.say(tr("Cancelled: no layer added."))

        self.add_task = tasks.start(tr("Adding a TESSERA layer"), work, done, failed, cancelled)


def standalone_dialog(iface, parent=None) -> TesseraSourceWidget:
    """The source widget (a QDialog itself) as the plugin's own window (toolbar and menu)."""
    widget = TesseraSourceWidget(parent, Qt.WindowType.Window, WIDGET_MODE.Standalone, iface=iface)
    widget.setWindowTitle(tr("Add TESSERA embeddings layer"))
    widget.resize(640, 600)
    return widget


class TesseraSourceSelectProvider(QgsSourceSelectProvider):
    """The TESSERA tab of the Data Source Manager."""

    def __init__(self, iface) -> None:
        super().__init__()
        self.iface = iface

    def providerKey(self) -> str:  # noqa: N802
        return "tessera"

    def text(self) -> str:
        return "TESSERA"

    def toolTip(self) -> str:  # noqa: N802
        return tr("Add TESSERA embeddings (Zarr v3) layers")

    def icon(self):
        return icon()

    def ordering(self) -> int:
        return QgsSourceSelectProvider.Ordering.OrderOtherProvider

    def createDataSourceWidget(self, parent=None, fl=Qt.WindowType.Widget,
                               widgetMode=WIDGET_MODE.Embedded):  # noqa: N802, N803
        return TesseraSourceWidget(parent, fl, widgetMode, iface=self.iface)

