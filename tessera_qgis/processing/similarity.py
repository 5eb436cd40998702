"""tessera:similarity: cosine similarity of every pixel of a region to a reference
embedding, the pixel at a point or the mean over polygons."""
from __future__ import annotations

from qgis.core import (QgsCoordinateTransform, QgsGeometry, QgsProcessing, QgsProcessingException,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterPoint,
                       QgsProcessingParameterRasterDestination, QgsProject)

from ..core.export import ExportRequest, export
from ..core.view import mean_over_polygons
from .analysis import add_depth, depth
from .base import WGS84, TesseraAlgorithm, open_for, tr


class SimilarityAlgorithm(TesseraAlgorithm):
    def name(self) -> str:
        return "similarity"

    def displayName(self) -> str:  # noqa: N802
        return tr("Similarity to a reference")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr("Cosine similarity between every pixel of a region and a reference embedding: the pixel at a "
                  "point, or the average over polygons.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_store()
        self.addParameter(QgsProcessingParameterPoint("POINT", tr("Reference point"), optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "REFERENCE_POLYGONS", tr("Reference polygons (average)"), [QgsProcessing.SourceType.TypeVectorPolygon],
            optional=True))
        self.add_extent()
        self.add_dask()
        add_depth(self)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Similarity")))

    def execute(self, parameters, context, feedback):
        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year = self.parameterAsInt(parameters, "YEAR", context)
        store.check_year(year)
        polys = self.parameterAsSource(parameters, "REFERENCE_POLYGONS", context)
        if polys is not None:
            tr_ = QgsCoordinateTransform(polys.sourceCrs(), WGS84, QgsProject.instance())
            shapes = []
            for f in polys.getFeatures():
                geom = QgsGeometry(f.geometry())
                geom.transform(tr_)
                b = geom.boundingBox()
                shapes.append(((b.xMinimum(), b.yMinimum(), b.xMaximum(), b.yMaximum()), geom.asWkt()))
            try:
                reference, _ = mean_over_polygons(store, year, shapes, "EPSG:4326", cancel=feedback.isCanceled)
            except ValueError:
                raise QgsProcessingException(tr("The reference polygons hold no embedding (nodata)")) from None
        else:
            pt = self.parameterAsPoint(parameters, "POINT", context, WGS84)
            if pt is None or (pt.x() == 0 and pt.y() == 0 and not parameters.get("POINT")):
                raise QgsProcessingException(tr("Give a reference point or reference polygons"))
            px = store.pixel(pt.x(), pt.y(), year)
            if not px["valid"]:
                raise QgsProcessingException(tr("There is no embedding at the reference point (nodata)"))
            reference = px["embedding"]
        bounds, crs = self.region(parameters, context)
        progress, cancel = self.hooks(feedback)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        dims = store.check_depth(depth(self, parameters, context))
        paths = export(store, ExportRequest(bounds, crs, year, out, kind="similarity", reference=list(reference)[:dims],
                                            dask=self.dask(parameters, context), depth=dims),
                       progress=progress, cancel=cancel)
        return {"OUTPUT": str(paths[0])}
