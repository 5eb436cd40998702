"""tessera:change: per-pixel cosine distance between two years' embeddings."""
from __future__ import annotations

from qgis.core import QgsProcessingException, QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination

from ..core.export import ExportRequest, export
from .analysis import add_depth, depth
from .base import TesseraAlgorithm, open_for, tr


class ChangeAlgorithm(TesseraAlgorithm):
    def name(self) -> str:
        return "change"

    def displayName(self) -> str:  # noqa: N802
        return tr("Change between years")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr("Per-pixel cosine distance between two years' embeddings (0: the same, up to 2: opposite); "
                  "nodata where either year has no data. High values show where the land changed.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_store()
        self.addParameter(QgsProcessingParameterNumber("YEAR2", tr("Second year"),
                                                       QgsProcessingParameterNumber.Type.Integer, 2025,
                                                       minValue=1990, maxValue=2100))
        self.add_extent()
        self.add_dask()
        add_depth(self)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Change")))

    def execute(self, parameters, context, feedback):
        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year, year2 = (self.parameterAsInt(parameters, k, context) for k in ("YEAR", "YEAR2"))
        if year == year2:
            raise QgsProcessingException(tr("Choose two different years"))
        bounds, crs = self.region(parameters, context)
        progress, cancel = self.hooks(feedback)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        paths = export(store, ExportRequest(bounds, crs, year, out, kind="change", year2=year2,
                                            dask=self.dask(parameters, context), depth=depth(self, parameters, context)),
                       progress=progress, cancel=cancel)
        return {"OUTPUT": str(paths[0])}
