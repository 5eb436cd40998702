"""Processing algorithm `tessera:pack`: take an area offline as a portable store (a pack).

The core does the work (core/pack); this turns parameters into areas in lon/lat, reports the
estimate first, then progress in bytes with the time left, and stops on cancel. An
interrupted pack stays in OUTPUT.part: running the algorithm again with the same output
resumes it.
"""
from __future__ import annotations

from pathlib import Path

from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsGeometry, QgsProcessing,
                       QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingParameterBoolean, QgsProcessingParameterExtent,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterNumber, QgsProcessingParameterString)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.errors import Cancelled, TesseraError
from ..core.pack import PackProgress, plan_pack, run_pack
from ..store_access import shared_store
from .base import ref_for

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraPack", text)


def parse_years(text: str) -> list[int]:
    try:
        years = [int(y) for y in (text or "").replace(" ", "").split(",") if y]
    except ValueError:
        raise QgsProcessingException(tr("Years must be numbers like 2024,2025")) from None
    if not years:
        raise QgsProcessingException(tr("Give the years to take, e.g. 2024,2025"))
    return years


class PackAlgorithm(QgsProcessingAlgorithm):
    def name(self) -> str:
        return "pack"

    def displayName(self) -> str:  # noqa: N802
        return tr("Take an area offline (pack)")

    def group(self) -> str:
        return tr("Embeddings")

    def groupId(self) -> str:  # noqa: N802
        return "embeddings"

    def createInstance(self):  # noqa: N802
        return type(self)()

    def shortHelpString(self) -> str:  # noqa: N802
        return tr("Copies the embeddings of an area (an extent, or the bounding boxes of polygons) and the years "
                  "asked for into a new folder: a TESSERA store that QGIS, zarr-python and GDAL open like the "
                  "original, without a network. Only the chunks of the area are fetched, as they are stored. "
                  "The log says first how many bytes it will fetch and how long that takes at the measured "
                  "speed. A stopped pack stays in OUTPUT.part: run again with the same output to resume it; "
                  "only what is missing is fetched. Each chunk is checked before the folder gets its name.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterString(
            "STORE", tr("Store (a saved TESSERA connection, a URL or a folder)")))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", tr("Area"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "POLYGONS", tr("Polygons (instead of an extent: the area around each)"),
            [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterString("YEARS", tr("Years (e.g. 2024,2025)"), "2024"))
        # An integer, as DEPTH is in the analysis algorithms and --depth on the command line:
        # DEPTH=16 means 16 dimensions everywhere (qgis_process, models, scripts).
        self.addParameter(QgsProcessingParameterNumber(
            "DEPTH", tr("Depth: keep only the array of 4, 16 or 128 dimensions (0 = every depth the store has)"),
            QgsProcessingParameterNumber.Type.Integer, 0, optional=True, minValue=0, maxValue=1024))
        self.addParameter(QgsProcessingParameterBoolean(
            "ESTIMATE_ONLY", tr("Only estimate the size and time (write nothing)"), False))
        self.addParameter(QgsProcessingParameterFolderDestination("OUTPUT", tr("Pack (a new folder)")))
        self.addOutput(QgsProcessingOutputNumber("BYTES", tr("Bytes fetched (or to fetch)")))
        self.addOutput(QgsProcessingOutputNumber("SECONDS", tr("Seconds taken (or estimated)")))

    def areas(self, parameters, context) -> list[tuple[float, float, float, float]]:
        """The areas as lon/lat boxes: each polygon's bounding box, else the extent."""
        source = self.parameterAsSource(parameters, "POLYGONS", context)
        if source is not None:
            xform = QgsCoordinateTransform(source.sourceCrs(), WGS84, context.transformContext())
            boxes = []
            for f in source.getFeatures():
                if f.hasGeometry():
                    geom = QgsGeometry(f.geometry())
                    geom.transform(xform)
                    b = geom.boundingBox()
                    boxes.append((b.xMinimum(), b.yMinimum(), b.xMaximum(), b.yMaximum()))
            if not boxes:
                raise QgsProcessingException(tr("The polygon layer has no (selected) features"))
            return boxes
        rect = self.parameterAsExtent(parameters, "EXTENT", context, WGS84)
        if rect is None or rect.isNull() or rect.isEmpty():
            raise QgsProcessingException(tr("Give an area: an extent or polygons"))
        return [(rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum())]

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802

        ref = ref_for(self.parameterAsString(parameters, "STORE", context))
        years = parse_years(self.parameterAsString(parameters, "YEARS", context))
        depth = (self.parameterAsInt(parameters, "DEPTH", context)
                 if parameters.get("DEPTH") not in (None, "") else 0) or None
        out = Path(self.parameterAsString(parameters, "OUTPUT", context))
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # Processing may have made the (temporary) folder already
        part = out.with_name(out.name + ".part")
        try:
            plan = plan_pack(ref, self.areas(parameters, context), years, out, depth=depth,
                             store=shared_store(ref), cancel=feedback.isCanceled)
            feedback.pushInfo(plan.describe())
            if self.parameterAsBool(parameters, "ESTIMATE_ONLY", context):
                return {"OUTPUT": None, "BYTES": plan.total_bytes, "SECONDS": round(plan.seconds(), 1)}

            def progress(p: PackProgress) -> None:
                feedback.setProgress(100.0 * p.fraction)
                left = "" if p.eta_seconds is None else tr(", about {} s left").format(round(p.eta_seconds))
                feedback.setProgressText(tr("{:.1f} of {:.1f} MB{}").format(p.done_bytes / 1e6,
                                                                            p.total_bytes / 1e6, left))
                if p.message:
                    feedback.pushInfo(p.message)

            summary = run_pack(plan, progress, feedback.isCanceled)
        except Cancelled:
            raise QgsProcessingException(self._kept(tr("Cancelled"), part)) from None
        except (TesseraError, ValueError, OSError) as exc:
            raise QgsProcessingException(self._kept(str(exc), part)) from None
        feedback.pushInfo(tr("{} chunks checked; {:.1f} MB on disk").format(summary["chunks_checked"],
                                                                           summary["bytes_on_disk"] / 1e6))
        return {"OUTPUT": str(out), "BYTES": summary["fetched_bytes"], "SECONDS": summary["seconds"]}

    @staticmethod
    def _kept(message: str, part: Path) -> str:
        if part.exists():
            return tr("{}: the unfinished pack is kept in {}; run again with the same output to resume it").format(
                message, part)
        return message
