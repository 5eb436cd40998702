"""The stand-in plugin loaded when a dependency is missing: one dialog, no traceback."""
from __future__ import annotations

import shlex
import subprocess
import time

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QCheckBox, QMessageBox

from . import tasks
from .core.errors import Cancelled
from .dependencies import install_command, optional_missing

INSTALL_TIMEOUT_S = 900


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraMissing", text)


class MissingDependenciesPlugin:
    def __init__(self, iface, problems: list[str]) -> None:
        self.iface = iface
        self.problems = problems
        self.box: QMessageBox | None = None
        self.task = None
        self.optional = optional_missing()  # offered, never required
        self.optional_box: QCheckBox | None = None

    def command_text(self) -> str:
        return " ".join(shlex.quote(part) for part in install_command())

    def initGui(self) -> None:  # noqa: N802
        text = tr("The TESSERA plugin needs Python packages that this QGIS does not have:\n\n  - {}\n\n"
                  "Install them with this command (then restart QGIS):\n\n{}").format(
            "\n  - ".join(self.problems), self.command_text())
        if self.optional:
            text += "\n\n" + tr("Optional, not needed to start:\n\n  - {}").format(
                "\n  - ".join(f"{req}: {purpose}" for req, purpose in self.optional))
        QgsMessageLog.logMessage(text, "TESSERA", Qgis.MessageLevel.Warning)
        parent = self.iface.mainWindow() if self.iface is not None else None
        box = QMessageBox(QMessageBox.Icon.Warning, tr("TESSERA: packages missing"), text,
                          QMessageBox.StandardButton.Close, parent)
        self.install_button = box.addButton(tr("Install now"), QMessageBox.ButtonRole.AcceptRole)
        if self.optional:
            self.optional_box = QCheckBox(tr("Also install the optional packages"))
            box.setCheckBox(self.optional_box)
        self.install_button.clicked.connect(self.install)
        box.setModal(False)
        box.show()  # not exec(): QGIS keeps running
        self.box = box

    def install(self) -> None:
        """Run the install command in a background task (Cancel stops pip); say how it went."""
        command = install_command()
        if self.optional_box is not None and self.optional_box.isChecked():
            command = command + [req for req, _ in self.optional]

        def work(cancel, _progress) -> None:
            run_pip(command, cancel)

        self.task = tasks.start(tr("Install TESSERA plugin packages"), work, lambda _none: self._tell(None),
                                self._tell)

    def _tell(self, error: BaseException | None) -> None:
        bar = self.iface.messageBar() if self.iface is not None else None
        if error is None:
            msg, level = tr("Packages installed: restart QGIS to use the TESSERA plugin."), Qgis.MessageLevel.Success
        else:
            msg, level = tr("Installing the packages failed: {}").format(error), Qgis.MessageLevel.Critical
        QgsMessageLog.logMessage(msg, "TESSERA", level)
        if bar is not None:
            bar.pushMessage("TESSERA", msg, level, 0)

    def unload(self) -> None:
        if self.box is not None:
            self.box.close()
            self.box.deleteLater()
            self.box = None


def run_pip(command: list[str], cancel, timeout: float = INSTALL_TIMEOUT_S) -> None:
    """Run the install command; stop it when `cancel()` turns true or after `timeout` seconds.
    Raises RuntimeError with the end of pip's output when it fails."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, err = proc.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if cancel() or time.monotonic() > deadline:
                proc.kill()
                proc.communicate()
                if cancel():
                    raise Cancelled("cancelled") from None
                raise RuntimeError(f"no answer after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(err[-2000:] or out[-2000:])
