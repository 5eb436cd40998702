"""tessera:export: a region (an extent, or polygons with pixels outside them nodata) of a
store to GeoTIFF: float32 bands, PCA RGB or int8 plus scales; native UTM zone, a chosen CRS
or one file per zone; optionally one file per polygon, or a Cloud Optimized GeoTIFF."""
from __future__ import annotations

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputMultipleLayers,
                       QgsProcessingParameterBoolean, QgsProcessingParameterCrs, QgsProcessingParameterEnum,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterString, QgsRectangle)

from ..core.classify import polygon_mask
from ..core.export import ExportRequest, export
from .analysis import add_depth, depth
from .base import TesseraAlgorithm, open_for, tr

KIND_NAMES = ["float32 embeddings", "PCA RGB", "int8 + scales"]
KIND_KEYS = ["float32", "pca", "int8"]


class ExportAlgorithm(TesseraAlgorithm):
    def name(self) -> str:
        return "export"

    def displayName(self) -> str:  # noqa: N802
        return tr("Export embeddings")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr("Export a region of a TESSERA store to GeoTIFF: float32 embeddings (all bands or some), "
                  "PCA RGB, or int8 plus a scales file. The region is an extent or polygons (pixels outside "
                  "them are nodata), optionally one file per polygon. The native UTM zone grid is used unless "
                  "an output CRS is given; a region across zones can also be written as one file per zone.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_store()
        self.add_extent(optional=True)
        self.addParameter(QgsProcessingParameterFeatureSource(
            "POLYGONS", tr("Polygons (instead of an extent)"), [QgsProcessing.SourceType.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterBoolean("PER_FEATURE", tr("One file per polygon"), False))
        self.addParameter(QgsProcessingParameterEnum("KIND", tr("Output"), KIND_NAMES, defaultValue=0))
        self.addParameter(QgsProcessingParameterString("BANDS", tr("Bands (e.g. 1,2,3; empty: all)"), "",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterCrs("CRS", tr("Output CRS (empty: the native UTM zone)"),
                                                    optional=True))
        self.addParameter(QgsProcessingParameterBoolean("PER_ZONE", tr("One file per UTM zone"), False))
        self.addParameter(QgsProcessingParameterBoolean("COG", tr("Cloud Optimized GeoTIFF"), False))
        self.add_dask()
        add_depth(self)
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Output GeoTIFF")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUTS", tr("All files written")))

    def execute(self, parameters, context, feedback):
        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year = self.parameterAsInt(parameters, "YEAR", context)
        kind = KIND_KEYS[self.parameterAsEnum(parameters, "KIND", context)]
        bands_text = self.parameterAsString(parameters, "BANDS", context).strip()
        try:
            bands = [int(b) for b in bands_text.split(",")] if bands_text else None
        except ValueError:
            raise QgsProcessingException(tr("Bands must be numbers like 1,2,3")) from None
        crs = self.parameterAsCrs(parameters, "CRS", context)
        dst_crs = crs.authid() if crs.isValid() else None
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        common = dict(year=year, kind=kind, bands=bands, dst_crs=dst_crs,
                      per_zone=self.parameterAsBool(parameters, "PER_ZONE", context),
                      cog=self.parameterAsBool(parameters, "COG", context),
                      dask=self.dask(parameters, context), depth=depth(self, parameters, context))
        jobs = []
        source = self.parameterAsSource(parameters, "POLYGONS", context)
        if source is not None:
            layer_crs = source.sourceCrs().authid()
            features = [f for f in source.getFeatures() if f.hasGeometry()]
            if not features:
                raise QgsProcessingException(tr("The polygon layer has no (selected) features"))
            groups = [[f] for f in features] if self.parameterAsBool(parameters, "PER_FEATURE", context) \
                else [features]
            for i, group in enumerate(groups):
                box = QgsRectangle()
                for f in group:
                    box.combineExtentWith(f.geometry().boundingBox())
                target = out if len(groups) == 1 else out.replace(".tif", f"_{group[0].id()}.tif")
                jobs.append(ExportRequest((box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum()),
                                          layer_crs, out=target,
                                          mask=polygon_mask([f.geometry().asWkt() for f in group], layer_crs),
                                          **common))
        else:
            bounds, ext_crs = self.region(parameters, context)
            jobs.append(ExportRequest(bounds, ext_crs, out=out, **common))
        written = []
        for i, req in enumerate(jobs):
            progress, cancel = self.hooks(feedback, 1.0 / len(jobs), i / len(jobs))
            written += [str(p) for p in export(store, req, progress=progress, cancel=cancel)]
            feedback.pushInfo(tr("wrote {}").format(", ".join(written[-2:])))
        return {"OUTPUT": written[0], "OUTPUTS": written}
