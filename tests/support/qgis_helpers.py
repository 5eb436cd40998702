"""Helpers for QGIS tests (import only where QGIS is loaded)."""
from __future__ import annotations

import time

import numpy as np
from qgis.core import (QgsApplication, QgsCoordinateReferenceSystem, QgsMapRendererParallelJob, QgsMapSettings, QgsRasterInterface,
                       QgsRectangle, QgsTask)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QImage


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


class BlockRecorder(QgsRasterInterface):
    """A raster pipe step that passes its input's blocks through and records what was asked
    (extent as (xmin, ymin, xmax, ymax), width, height): to see which layer-CRS block QGIS's
    projector draws a reprojected view from."""

    def __init__(self, source) -> None:
        super().__init__(None)
        self.setInput(source)
        self.asked: list[tuple] = []

    def clone(self):
        return None

    def bandCount(self) -> int:  # noqa: N802
        return self.input().bandCount()

    def dataType(self, band):  # noqa: N802
        return self.input().dataType(band)

    def capabilities(self):
        return self.input().capabilities()

    def block(self, band, extent, width, height, feedback=None):
        self.asked.append(((extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()),
                           width, height))
        return self.input().block(band, extent, width, height, feedback)


def projected_blocks(provider, src_crs, dst_crs: str, extent, width: int, height: int, bands=(1,)):
    """QGIS's raster projector (the step of a layer's pipe that reprojects for the map) run on a
    provider: the float32 (len(bands), height, width) it gives for `extent` in `dst_crs`, and
    the one layer-CRS block (extent, width, height) it asked the provider for."""
    import numpy as np
    from qgis.core import QgsCoordinateReferenceSystem, QgsProject, QgsRasterProjector

    recorder = BlockRecorder(provider)
    projector = QgsRasterProjector()
    projector.setInput(recorder)
    projector.setCrs(src_crs, QgsCoordinateReferenceSystem(dst_crs), QgsProject.instance().transformContext())
    out = []
    for band in bands:
        block = projector.block(band, extent, width, height)
        out.append(np.frombuffer(bytes(block.data()), np.float32).reshape(height, width))
    asked = set(recorder.asked)
    assert len(asked) == 1, asked
    return np.array(out), asked.pop()


def render_layers(layers, crs, extent: QgsRectangle, size=(400, 300)) -> tuple[np.ndarray, QgsMapSettings, list]:
    """The layers drawn by QGIS in `crs` (an authid or a CRS) over `extent`: RGBA uint8
    (height, width, 4) on a transparent background (nodata shows as transparent), the map
    settings and the render job's errors."""
    ms = QgsMapSettings()
    ms.setLayers(layers)
    ms.setDestinationCrs(crs if isinstance(crs, QgsCoordinateReferenceSystem) else QgsCoordinateReferenceSystem(crs))
    ms.setExtent(extent)
    ms.setOutputSize(QSize(*size))
    ms.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    img = job.renderedImage().convertToFormat(QImage.Format.Format_RGBA8888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    arr = np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[:, :img.width()]
    return arr.copy(), ms, list(job.errors())


def render_rgba(layer, extent: QgsRectangle, width: int, height: int) -> np.ndarray:
    """The layer drawn by QGIS in its own CRS over `extent`: RGBA uint8 (height, width, 4),
    transparent background."""
    return render_layers([layer], layer.crs(), extent, (width, height))[0]
