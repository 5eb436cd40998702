"""tessera:sample: points with the 128 values of their pixel, its scale and a valid flag."""
from __future__ import annotations

from qgis.core import (QgsFeature, QgsFeatureSink, QgsField, QgsFields, QgsProcessing, QgsProcessingException,
                       QgsProcessingParameterFeatureSink, QgsProcessingParameterFeatureSource)
from qgis.PyQt.QtCore import QMetaType

from .base import TesseraAlgorithm, open_for, points_lonlat, tr


class SampleAlgorithm(TesseraAlgorithm):
    def name(self) -> str:
        return "sample"

    def displayName(self) -> str:  # noqa: N802
        return tr("Sample embeddings at points")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr("The same points with the 128 dequantised values of their pixel (A001 to A128), its scale and "
                  "a valid flag (0 where there is no data): a training table for classifiers.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource("INPUT", tr("Points"),
                                                              [QgsProcessing.SourceType.TypeVectorPoint]))
        self.add_store()
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", tr("Points with embeddings")))

    def execute(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, "INPUT", context)
        if source is None:
            raise QgsProcessingException(tr("Give a point layer"))
        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year = self.parameterAsInt(parameters, "YEAR", context)
        store.check_year(year)
        fields = QgsFields(source.fields())
        fields.append(QgsField("valid", QMetaType.Type.Int))
        fields.append(QgsField("scale", QMetaType.Type.Double))
        for b in range(1, store.bands + 1):
            fields.append(QgsField(f"A{b:03d}", QMetaType.Type.Double))
        sink, dest = self.parameterAsSink(parameters, "OUTPUT", context, fields, source.wkbType(), source.sourceCrs())
        total = max(1, source.featureCount())
        for i, (f, ll) in enumerate(points_lonlat(source, feedback)):
            px = store.pixel(ll[0], ll[1], year) if ll else {"valid": False}
            out = QgsFeature(fields)
            out.setGeometry(f.geometry())
            emb = px.get("embedding") if px.get("valid") else None
            out.setAttributes(list(f.attributes()) + [1 if emb else 0, px.get("scale") if emb else None]
                              + (list(emb) if emb else [None] * store.bands))
            sink.addFeature(out, QgsFeatureSink.Flag.FastInsert)
            feedback.setProgress(100.0 * (i + 1) / total)
        return {"OUTPUT": dest}
