"""Processing algorithms (toolbox, model designer, batch mode, qgis_process): export, similarity,
sampling at points, change between years, classification from labelled points.

Each one reports progress, honours cancel (the core stops and removes its temporary files)
and turns bad parameters into a clear QgsProcessingException.
"""
from __future__ import annotations

import numpy as np
from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsFeature, QgsFeatureSink, QgsField,
                       QgsFields, QgsProcessing, QgsProcessingAlgorithm, QgsProcessingException,
                       QgsProcessingOutputMultipleLayers, QgsProcessingParameterBoolean,
                       QgsProcessingParameterDefinition,
                       QgsProcessingParameterCrs, QgsProcessingParameterEnum, QgsProcessingParameterExtent,
                       QgsProcessingParameterFeatureSink, QgsProcessingParameterFeatureSource,
                       QgsProcessingParameterField, QgsProcessingParameterNumber, QgsProcessingParameterPoint,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterString,
                       QgsProcessingProvider, QgsProject, QgsRectangle)
from qgis.PyQt.QtCore import QCoreApplication, QMetaType

from .core.errors import Cancelled, TesseraError
from .core.urls import redact_url

WGS84 = QgsCoordinateReferenceSystem("EPSG:4326")
KIND_NAMES = ["float32 embeddings", "PCA RGB", "int8 + scales"]
KIND_KEYS = ["float32", "pca", "int8"]


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraProcessing", text)


def open_for(store_text: str):
    """A saved connection (by name) or a store URL / folder -> the opened store, and its URL."""
    from .core.layerspec import LayerSpec
    from .provider import shared_store
    from .settings import all_connections, resolve_url

    text = (store_text or "").strip()
    if not text:
        raise QgsProcessingException(tr("Give a store: a saved connection's name, a URL or a folder"))
    conn = next((c for c in all_connections() if c.name == text), None)
    options = conn.layer_options() if conn else {}
    url = resolve_url(conn) if conn else text
    return shared_store(LayerSpec(url=url, year=0, pca="global", **options)), url


def _default_scheduler() -> str:
    from .settings import Settings

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
        dask.setHelp(tr("Run the export as tasks on a Dask cluster: the workers read the store and write "
                        "Cloud Optimized GeoTIFF tiles. An output ending in .vrt keeps the tiles (in a folder "
                        "beside it) tied by a VRT; a .tif output is mosaicked from them."))
        self.addParameter(dask)

    def dask(self, parameters, context) -> str | None:
        """The scheduler address, if any; with one, dask and distributed must be importable
        (the message gives the install command for this QGIS's Python)."""
        address = (self.parameterAsString(parameters, "DASK", context) or "").strip() or None
        if address:
            try:
                import distributed  # noqa: F401
            except ImportError:
                import shlex

                from .dependencies import python_executable

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
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Output GeoTIFF")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUTS", tr("All files written")))

    def execute(self, parameters, context, feedback):
        from .core.classify import polygon_mask
        from .core.export import ExportRequest, export

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
                      dask=self.dask(parameters, context))
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
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Similarity")))

    def execute(self, parameters, context, feedback):
        from .core.classify import polygon_mask
        from .core.export import ExportRequest, export
        from .core.region import read_extent

        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year = self.parameterAsInt(parameters, "YEAR", context)
        store.check_year(year)
        polys = self.parameterAsSource(parameters, "REFERENCE_POLYGONS", context)
        if polys is not None:
            tr_ = QgsCoordinateTransform(polys.sourceCrs(), WGS84, QgsProject.instance())
            vectors = []
            for f in polys.getFeatures():
                b = tr_.transformBoundingBox(f.geometry().boundingBox())
                inside = polygon_mask([f.geometry().asWkt()], polys.sourceCrs().authid())
                for w in read_extent(store, (b.xMinimum(), b.yMinimum(), b.xMaximum(), b.yMaximum()),
                                     "EPSG:4326", year):
                    v = w.dequantised().reshape(store.bands, -1)
                    keep = inside(w.transform, w.scales.shape[1], w.scales.shape[0], w.zone.crs).reshape(-1)
                    vectors.append(v[:, keep & np.isfinite(v).all(axis=0)])  # pixels inside the polygon
            flat = np.concatenate(vectors, axis=1) if vectors else np.zeros((store.bands, 0))
            if flat.shape[1] == 0:
                raise QgsProcessingException(tr("The reference polygons hold no embedding (nodata)"))
            reference = flat.mean(axis=1)
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
        paths = export(store, ExportRequest(bounds, crs, year, out, kind="similarity", reference=list(reference),
                                            dask=self.dask(parameters, context)),
                       progress=progress, cancel=cancel)
        return {"OUTPUT": str(paths[0])}


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
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Change")))

    def execute(self, parameters, context, feedback):
        from .core.export import ExportRequest, export

        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year, year2 = (self.parameterAsInt(parameters, k, context) for k in ("YEAR", "YEAR2"))
        if year == year2:
            raise QgsProcessingException(tr("Choose two different years"))
        bounds, crs = self.region(parameters, context)
        progress, cancel = self.hooks(feedback)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        paths = export(store, ExportRequest(bounds, crs, year, out, kind="change", year2=year2,
                                            dask=self.dask(parameters, context)),
                       progress=progress, cancel=cancel)
        return {"OUTPUT": str(paths[0])}


def _points_lonlat(source, feedback):
    tr_ = QgsCoordinateTransform(source.sourceCrs(), WGS84, QgsProject.instance())
    for f in source.getFeatures():
        if feedback.isCanceled():
            raise Cancelled("cancelled")
        if not f.hasGeometry():
            yield f, None
            continue
        p = tr_.transform(f.geometry().centroid().asPoint())
        yield f, (p.x(), p.y())


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
        for i, (f, ll) in enumerate(_points_lonlat(source, feedback)):
            px = store.pixel(ll[0], ll[1], year) if ll else {"valid": False}
            out = QgsFeature(fields)
            out.setGeometry(f.geometry())
            emb = px.get("embedding") if px.get("valid") else None
            out.setAttributes(list(f.attributes()) + [1 if emb else 0, px.get("scale") if emb else None]
                              + (list(emb) if emb else [None] * store.bands))
            sink.addFeature(out, QgsFeatureSink.Flag.FastInsert)
            feedback.setProgress(100.0 * (i + 1) / total)
        return {"OUTPUT": dest}


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
        from .core.classify import KNNClassifier
        from .core.export import ExportRequest, export

        source = self.parameterAsSource(parameters, "INPUT", context)
        field = self.parameterAsString(parameters, "CLASS_FIELD", context)
        if source is None or source.fields().indexOf(field) < 0:
            raise QgsProcessingException(tr("Give a point layer and its class field"))
        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year = self.parameterAsInt(parameters, "YEAR", context)
        store.check_year(year)
        vectors, labels = [], []
        for f, ll in _points_lonlat(source, feedback):
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


class TesseraProcessingProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "tessera"

    def name(self) -> str:
        return "TESSERA"

    def icon(self):
        from .plugin import icon

        return icon()

    def loadAlgorithms(self):  # noqa: N802
        for alg in (ExportAlgorithm(), SimilarityAlgorithm(), SampleAlgorithm(), ChangeAlgorithm(),
                    ClassifyAlgorithm()):
            self.addAlgorithm(alg)

