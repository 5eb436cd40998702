"""The stand-in plugin loaded when a dependency is missing: one dialog, no traceback."""
from __future__ import annotations

import shlex
import subprocess

from qgis.core import Qgis, QgsApplication, QgsMessageLog, QgsTask
from qgis.PyQt.QtCore import QCoreApplication
from qgis.PyQt.QtWidgets import QMessageBox

from .dependencies import install_command


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraMissing", text)


class MissingDependenciesPlugin:
    def __init__(self, iface, problems: list[str]) -> None:
        self.iface = iface
        self.problems = problems
        self.box: QMessageBox | None = None
        self.task = None

    def command_text(self) -> str:
        return " ".join(shlex.quote(part) for part in install_command())

    def initGui(self) -> None:  # noqa: N802
        text = tr("The TESSERA plugin needs Python packages that this QGIS does not have:\n\n  - {}\n\n"
                  "Install them with this command (then restart QGIS):\n\n{}").format(
            "\n  - ".join(self.problems), self.command_text())
        QgsMessageLog.logMessage(text, "TESSERA", Qgis.MessageLevel.Warning)
        parent = self.iface.mainWindow() if self.iface is not None else None
        box = QMessageBox(QMessageBox.Icon.Warning, tr("TESSERA: packages missing"), text,
                          QMessageBox.StandardButton.Close, parent)
        self.install_button = box.addButton(tr("Install now"), QMessageBox.ButtonRole.AcceptRole)
        self.install_button.clicked.connect(self.install)
        box.setModal(False)
        box.show()  # not exec(): QGIS keeps running
        self.box = box

    def install(self) -> None:
        """Run the install command in a background task; say how it went."""
        command = install_command()

        def run(_task):
            done = subprocess.run(command, capture_output=True, text=True, timeout=900)
            if done.returncode != 0:
                raise RuntimeError(done.stderr[-2000:] or done.stdout[-2000:])
            return True

        def finished(exception, result=None):
            bar = self.iface.messageBar() if self.iface is not None else None
            if exception is None:
                msg, level = tr("Packages installed: restart QGIS to use the TESSERA plugin."), Qgis.MessageLevel.Success
            else:
                msg, level = tr("Installing the packages failed: {}").format(exception), Qgis.MessageLevel.Critical
            QgsMessageLog.logMessage(msg, "TESSERA", level)
            if bar is not None:
                bar.pushMessage("TESSERA", msg, level, 0)

        self.task = QgsTask.fromFunction(tr("Install TESSERA plugin packages"), run, on_finished=finished)
        QgsApplication.taskManager().addTask(self.task)

    def unload(self) -> None:
        if self.box is not None:
            self.box.close()
            self.box.deleteLater()
            self.box = None
