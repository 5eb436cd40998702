"""tessera:classify: k nearest neighbours trained on labelled points' embeddings; a class
raster (with its QGIS style) and a confidence raster."""
from __future__ import annotations

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputMultipleLayers,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterField,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination)

from ..core.classify import KNNClassifier
from ..core.export import ExportRequest, export
from .base import TesseraAlgorithm, open_for, points_lonlat, tr


class ClassifyAlgorithm(TesseraAlgorithm):
    def name(self) -> str:
        return "classify"

    def displayName(self) -> str:  # noqa: N802
        return tr("Classify from labelled points")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr("The labelled points' embeddings train a k-nearest-neighbour classifier (cosine similarity); "
                  "out come a class raster (class names in its QGIS style) and a confidence raster (the share of "
                  "the k neighbours that agree).")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource("INPUT", tr("Labelled points"),
                                                              [QgsProcessing.SourceType.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField("CLASS_FIELD", tr("Class field"), parentLayerParameterName="INPUT"))
        self.add_store()
        self.add_extent()
        self.addParameter(QgsProcessingParameterNumber("K", tr("Neighbours (k)"),
                                                       QgsProcessingParameterNumber.Type.Integer, 5, minValue=1,
                                                       maxValue=50))
        self.add_dask()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Classes")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUTS", tr("Classes and confidence")))

    def execute(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, "INPUT", context)
        field = self.parameterAsString(parameters, "CLASS_FIELD", context)
        if source is None or source.fields().indexOf(field) < 0:
            raise QgsProcessingException(tr("Give a point layer and its class field"))
        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year = self.parameterAsInt(parameters, "YEAR", context)
        store.check_year(year)
        vectors, labels = [], []
        for f, ll in points_lonlat(source, feedback):
            if ll is None or f[field] is None:
                continue
            px = store.pixel(ll[0], ll[1], year)
            if px["valid"]:
                vectors.append(px["embedding"])
                labels.append(str(f[field]))
        if len(set(labels)) < 2:
            raise QgsProcessingException(tr("Need labelled points of at least two classes on valid pixels"))
        feedback.pushInfo(tr("{} labelled pixels, {} classes").format(len(labels), len(set(labels))))
        model = KNNClassifier.fit(vectors, labels, k=self.parameterAsInt(parameters, "K", context))
        bounds, crs = self.region(parameters, context)
        progress, cancel = self.hooks(feedback)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        paths = export(store, ExportRequest(bounds, crs, year, out, kind="classify", classifier=model,
                                            dask=self.dask(parameters, context)),
                       progress=progress, cancel=cancel)
        return {"OUTPUT": str(paths[0]), "OUTPUTS": [str(p) for p in paths]}
