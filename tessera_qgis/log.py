"""One way to report: the "TESSERA" tab of the QGIS message log, and the message bar.

`report()` is safe from any thread: the log is thread-safe, and message-bar messages are
queued to the main thread through a signal (widgets are touched only there).
"""
from __future__ import annotations

import time

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import QObject, pyqtSignal

TAG = "TESSERA"
# Characters of text one message-bar line holds over a narrow map (690 px, after "TESSERA: ");
# the bar cuts a second line, so a longer text shows its start and the rest under "Show more".
ONE_LINE = 56


class _Notifier(QObject):
    """Carries messages from render threads to whoever shows them on the main thread."""

    message = pyqtSignal(str, str, int)  # title, text, Qgis.MessageLevel value


notifier = _Notifier()


def log(text: str, level: Qgis.MessageLevel = Qgis.MessageLevel.Info) -> None:
    QgsMessageLog.logMessage(text, TAG, level)


def report(title: str, text: str, level: Qgis.MessageLevel = Qgis.MessageLevel.Warning) -> None:
    """Log it, and ask the main thread to show it in the message bar."""
    log(f"{title}: {text}", level)
    notifier.message.emit(title, text, int(level.value if hasattr(level, "value") else level))


class MessageBarBridge(QObject):
    """Shows notifier messages in a QGIS message bar (connected by the plugin), at most one
    per distinct text every few seconds so a render storm does not flood the bar; each on one
    line (a long one cut at a word, in full under "Show more")."""

    def __init__(self, message_bar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.bar = message_bar
        self._last: dict[str, float] = {}
        notifier.message.connect(self.show)

    def show(self, title: str, text: str, level: int) -> None:
        now = time.monotonic()
        if now - self._last.get(text, -1e9) < 5.0:
            return
        self._last[text] = now
        if len(text) > ONE_LINE:
            short = text[:ONE_LINE - 1].rsplit(" ", 1)[0].rstrip(",;:(") + "…"
            self.bar.pushMessage(title, short, text, Qgis.MessageLevel(level), 8)
        else:
            self.bar.pushMessage(title, text, Qgis.MessageLevel(level), 8)

    def close(self) -> None:
        try:
            notifier.message.disconnect(self.show)
        except (TypeError, RuntimeError):
            pass
