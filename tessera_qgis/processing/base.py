"""What every TESSERA Processing algorithm shares: the store and year parameters (a saved
connection's name, a URL or a folder), the region, the Dask scheduler, progress and cancel
hooks for the core, and turning the core's errors into QgsProcessingException.
"""
from __future__ import annotations

import shlex

from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsProcessingAlgorithm,
                       QgsProcessingException, QgsProcessingParameterDefinition, QgsProcessingParameterExtent,
                       QgsProcessingParameterNumber, QgsProcessingParameterString, QgsProject)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.errors import Cancelled, TesseraError
from ..core.storeref import StoreRef
from ..core.urls import redact_url
from ..dependencies import python_executable
from ..settings import Settings, all_connections, resolve_url
from ..store_access import shared_store

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraProcessing", text)


def ref_for(store_text: str) -> StoreRef:
    """A saved connection (by name) or a store URL / folder -> its StoreRef."""
    text = (store_text or "").strip()
    if not text:
        raise QgsProcessingException(tr("Give a store: a saved connection's name, a URL or a folder"))
    conn = next((c for c in all_connections() if c.name == text), None)
    return conn.ref(resolve_url(conn)) if conn else StoreRef(text)


def open_for(store_text: str):
    """A saved connection (by name) or a store URL / folder -> the opened store, and its URL."""
    ref = ref_for(store_text)
    return shared_store(ref), ref.url


def _default_scheduler() -> str:
    return Settings.load().dask_scheduler


class TesseraAlgorithm(QgsProcessingAlgorithm):
    """Shared parameters and error handling."""

    def group(self) -> str:
        return tr("Embeddings")

    def groupId(self) -> str:  # noqa: N802
        return "embeddings"

    def createInstance(self):  # noqa: N802
        return type(self)()

    def add_store(self) -> None:
        self.addParameter(QgsProcessingParameterString(
            "STORE", tr("Store (a saved TESSERA connection, a URL or a folder)")))
        self.addParameter(QgsProcessingParameterNumber("YEAR", tr("Year"), QgsProcessingParameterNumber.Type.Integer,
                                                       2024, minValue=1990, maxValue=2100))

    def add_dask(self) -> None:
        """The (advanced) Dask scheduler parameter; its default is the Options page's setting."""
        dask = QgsProcessingParameterString(
            "DASK", tr("Dask scheduler (e.g. tcp://host:8786; empty: this computer)"), _default_scheduler(),
            optional=True)
        dask.setFlags(dask.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        dask.setHelp(tr("Write the output rasters as tasks on a Dask cluster: the workers read the store and "
                        "write Cloud Optimized GeoTIFF tiles (learning, reports and model files stay on this "
                        "computer). An output ending in .vrt keeps the tiles (in a folder beside it) tied by a VRT; "
                        "a .tif output is mosaicked from them."))
        self.addParameter(dask)

    def dask(self, parameters, context) -> str | None:
        """The scheduler address, if any; with one, dask and distributed must be importable
        (the message gives the install command for this QGIS's Python)."""
        address = (self.parameterAsString(parameters, "DASK", context) or "").strip() or None
        if address:
            try:  # an optional package: only cluster exports need it
                import distributed  # noqa: F401
            except ImportError:
                cmd = " ".join(shlex.quote(a) for a in
                               [python_executable(), "-m", "pip", "install", "--user", "dask[distributed]"])
                raise QgsProcessingException(tr("A Dask cluster export needs the packages dask and distributed "
                                                "in QGIS's Python (and the same versions on the cluster). "
                                                "Install them with: {}").format(cmd)) from None
        return address

    def add_extent(self, optional: bool = False) -> None:
        self.addParameter(QgsProcessingParameterExtent("EXTENT", tr("Region"), optional=optional))

    def region(self, parameters, context) -> tuple[tuple, str]:
        rect = self.parameterAsExtent(parameters, "EXTENT", context)
        crs = self.parameterAsExtentCrs(parameters, "EXTENT", context)
        if rect is None or rect.isNull() or rect.isEmpty():
            raise QgsProcessingException(tr("Give a region (an extent)"))
        return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), crs.authid() or "EPSG:4326"

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        try:
            return self.execute(parameters, context, feedback)
        except Cancelled:
            raise QgsProcessingException(tr("Cancelled: nothing was written")) from None
        except (TesseraError, ValueError) as exc:
            raise QgsProcessingException(redact_url(str(exc))) from None

    def execute(self, parameters, context, feedback):
        raise NotImplementedError

    @staticmethod
    def hooks(feedback, share: float = 1.0, start: float = 0.0):
        return (lambda f: feedback.setProgress(100.0 * (start + share * f))), feedback.isCanceled


def points_lonlat(source, feedback):
    """(feature, (lon, lat) of its centroid or None when it has no geometry), stopping on cancel."""
    tr_ = QgsCoordinateTransform(source.sourceCrs(), WGS84, QgsProject.instance())
    for f in source.getFeatures():
        if feedback.isCanceled():
            raise Cancelled("cancelled")
        if not f.hasGeometry():
            yield f, None
            continue
        p = tr_.transform(f.geometry().centroid().asPoint())
        yield f, (p.x(), p.y())
