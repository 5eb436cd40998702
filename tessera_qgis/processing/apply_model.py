"""tessera:apply_model: a model saved by tessera:classify (k-NN, random forest) or the
centroids of tessera:cluster, applied to another year or area: a class raster with its QGIS
style (and a confidence raster for classifiers), streamed block by block."""
from __future__ import annotations

from qgis.core import (QgsProcessingOutputMultipleLayers, QgsProcessingParameterFile,
                       QgsProcessingParameterRasterDestination)

from ..core.analysis import jobs
from ..core.analysis.models import load_model, model_kind
from ..core.export import ExportRequest
from .base import TesseraAlgorithm, open_for, tr


class ApplyModelAlgorithm(TesseraAlgorithm):
    def name(self) -> str:
        return "apply_model"

    def displayName(self) -> str:  # noqa: N802
        return tr("Apply a saved model")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr("Applies a model file written by Classify from labelled points (k nearest neighbours or random "
                  "forest: classes and confidence) or the centroids written by Cluster (k-means: clusters) to a "
                  "region and year of a store. The model reads as many embedding dimensions as it was trained on.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("MODEL", tr("Model file (JSON)"), extension="json"))
        self.add_store()
        self.add_extent()
        self.add_dask()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Classes")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUTS", tr("All files written")))

    def execute(self, parameters, context, feedback):
        model, meta = load_model(self.parameterAsFile(parameters, "MODEL", context))
        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year = self.parameterAsInt(parameters, "YEAR", context)
        store.check_year(year)
        feedback.pushInfo(tr("{} model, {} classes, {} dimensions (trained on {} {})").format(
            model_kind(model), len(model.names), model.dims, meta.get("store", "?"), meta.get("year", "?")))
        bounds, crs = self.region(parameters, context)
        progress, cancel = self.hooks(feedback)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        paths = jobs.apply_model(store, ExportRequest(bounds, crs, year, out, dask=self.dask(parameters, context)),
                                 model, progress=progress, cancel=cancel)
        return {"OUTPUT": str(paths[0]), "OUTPUTS": [str(p) for p in paths]}
