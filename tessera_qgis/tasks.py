"""Background jobs: one QgsTask subclass that every job of the plugin runs in.

A job is a function `fn(cancel, progress)`: `cancel()` says whether the user cancelled (hand
it to the core's `cancel=` hooks, which stop downloading), `progress(fraction)` moves the
task's progress bar (0 to 1). Its result, or its error, arrives on the main thread, where
widgets may be touched. Cancelling is not failing: a cancelled job delivers neither its
result nor an error.

Python must keep a task object alive while QGIS runs it (a task only C++ holds is dropped
and never runs): `start()` keeps each task in `_RUNNING` until its `finished()` has run.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from qgis.core import Qgis, QgsApplication, QgsTask
from qgis.PyQt.QtCore import QCoreApplication

from .core.urls import redact_url
from .core.errors import Cancelled
from .log import log, report

CancelCheck = Callable[[], bool]
Progress = Callable[[float], None]
Job = Callable[[CancelCheck, Progress], Any]

_RUNNING: set["Task"] = set()
_RUNNING_LOCK = threading.Lock()


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraTasks", text)


class Task(QgsTask):
    """Runs `fn(cancel, progress)` off the main thread; then, on the main thread,
    `on_done(result)`, `on_failed(error)` or `on_cancelled()`. Without `on_failed`, a failure
    is reported in the message bar and the log. No exception leaves run() or finished()."""

    def __init__(self, description: str, fn: Job, on_done: Callable[[Any], None] | None = None,
                 on_failed: Callable[[BaseException], None] | None = None,
                 on_cancelled: Callable[[], None] | None = None) -> None:
        super().__init__(redact_url(description), QgsTask.Flag.CanCancel)  # the task manager shows it
        self.fn = fn
        self.on_done = on_done
        self.on_failed = on_failed
        self.on_cancelled = on_cancelled
        self.result: Any = None
        self.error: BaseException | None = None
        # "done", "failed" or "cancelled" once finished() has run (readable after QGIS has
        # deleted the C++ task, unlike status()).
        self.outcome: str | None = None

    def report_progress(self, fraction: float) -> None:
        self.setProgress(100.0 * min(max(float(fraction), 0.0), 1.0))

    def run(self) -> bool:  # a worker thread
        try:
            self.result = self.fn(self.isCanceled, self.report_progress)
        except Cancelled:
            pass
        except BaseException as exc:  # delivered on the main thread by finished()
            self.error = exc
        return self.error is None and not self.isCanceled()

    def finished(self, ok: bool) -> None:  # the main thread
        try:
            self.outcome = "cancelled" if self.isCanceled() else "failed" if self.error is not None else "done"
            if self.outcome == "cancelled":  # whatever the job did after the user's cancel, it is not an error
                log(tr("{} cancelled").format(self.description()))
                if self.on_cancelled is not None:
                    self.on_cancelled()
            elif self.outcome == "failed":
                if self.on_failed is not None:
                    self.on_failed(self.error)
                else:
                    report("TESSERA", tr("{} failed: {}").format(self.description(), self.error),
                           Qgis.MessageLevel.Warning)
            elif ok and self.on_done is not None:
                self.on_done(self.result)
        except Exception as exc:  # a slot must not raise
            report("TESSERA", f"{self.description()}: {exc}", Qgis.MessageLevel.Warning)
        finally:
            self.fn = self.on_done = self.on_failed = self.on_cancelled = None  # no cycles through closures
            with _RUNNING_LOCK:
                _RUNNING.discard(self)


def start(description: str, fn: Job, on_done: Callable[[Any], None] | None = None,
          on_failed: Callable[[BaseException], None] | None = None,
          on_cancelled: Callable[[], None] | None = None) -> Task:
    """Run a job in QGIS's task manager (its progress and Cancel button show in the status
    bar); returns the task, kept alive here until it has finished."""
    task = Task(description, fn, on_done, on_failed, on_cancelled)
    with _RUNNING_LOCK:
        _RUNNING.add(task)
    if not QgsApplication.taskManager().addTask(task):  # refused: it will never run nor finish
        with _RUNNING_LOCK:
            _RUNNING.discard(task)
    return task


def running() -> list[Task]:
    """The started tasks that have not finished yet."""
    with _RUNNING_LOCK:
        return list(_RUNNING)
