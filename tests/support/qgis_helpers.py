"""Helpers for QGIS tests (import only where QGIS is loaded)."""
from __future__ import annotations

import time

from qgis.core import QgsApplication, QgsTask


def wait_for(task: QgsTask | None, timeout: float = 60) -> None:
    """Process events until a task has finished and its finished() ran on the main thread."""
    t0 = time.monotonic()
    while task is not None and task.status() not in (QgsTask.TaskStatus.Complete, QgsTask.TaskStatus.Terminated):
        QgsApplication.processEvents()
        assert time.monotonic() - t0 < timeout, "task did not finish"
        time.sleep(0.01)
    for _ in range(5):
        QgsApplication.processEvents()


def auth_manager():
    """QGIS's authentication manager, unlocked with the tests' master password."""
    am = QgsApplication.authManager()
    if not am.masterPasswordIsSet():
        assert am.setMasterPassword("tessera-test-master", True)
    return am
