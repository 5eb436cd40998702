"""One way to report: the "TESSERA" tab of the QGIS message log, and the message bar.

`report()` is safe from any thread: the log is thread-safe, and message-bar messages are
queued to the main thread through a signal (widgets are touched only there).
"""
from __future__ import annotations

from qgis.core import Qgis, QgsMessageLog
from qgis.PyQt.QtCore import QObject, pyqtSignal

from .core.urls import redact_url

TAG = "TESSERA"


class _Notifier(QObject):
    """Carries messages from render threads to whoever shows them on the main thread."""

    message = pyqtSignal(str, str, int)  # title, text, Qgis.MessageLevel value


notifier = _Notifier()


def log(text: str, level: Qgis.MessageLevel = Qgis.MessageLevel.Info) -> None:
    """To the message log; a password in a URL in the text is masked (the last line of defence)."""
    QgsMessageLog.logMessage(redact_url(text), TAG, level)


def report(title: str, text: str, level: Qgis.MessageLevel = Qgis.MessageLevel.Warning) -> None:
    """Log it, and ask the main thread to show it in the message bar."""
    title, text = redact_url(title), redact_url(text)
    log(f"{title}: {text}", level)
    notifier.message.emit(title, text, int(level.value if hasattr(level, "value") else level))


class MessageBarBridge(QObject):
    """Shows notifier messages in a QGIS message bar (connected by the plugin), at most one
    per distinct text every few seconds so a render storm does not flood the bar."""

    def __init__(self, message_bar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.bar = message_bar
        self._last: dict[str, float] = {}
        notifier.message.connect(self.show)

    def show(self, title: str, text: str, level: int) -> None:
        import time

        now = time.monotonic()
        if now - self._last.get(text, -1e9) < 5.0:
            return
        self._last[text] = now
        self.bar.pushMessage(title, text, Qgis.MessageLevel(level), 8)

    def close(self) -> None:
        try:
            notifier.message.disconnect(self.show)
        except (TypeError, RuntimeError):
            pass
