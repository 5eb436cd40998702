"""tessera:classify: a classifier trained on labelled points' embeddings (k nearest
neighbours, or a random forest when scikit-learn is installed), assessed on every run
(stratified and spatial k-fold: an HTML report with the confusion matrix, and CSV), saved
as a model file, and applied to the region in one or more years: a class raster (with its
QGIS style) and a confidence raster per year, and the transitions between the years."""
from __future__ import annotations

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputMultipleLayers,
                       QgsProcessingOutputNumber, QgsProcessingParameterDefinition, QgsProcessingParameterEnum,
                       QgsProcessingParameterFeatureSource, QgsProcessingParameterField,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterString, QgsVariantUtils)

from ..core.analysis import accuracy, jobs
from ..core.export import ExportRequest
from .analysis import add_depth, add_file_output, depth, file_output, need_sklearn, parse_years
from .base import TesseraAlgorithm, open_for, points_lonlat, tr

METHODS = ["k nearest neighbours (cosine)", "random forest (needs scikit-learn)"]
METHOD_KEYS = ["knn", "random_forest"]


class ClassifyAlgorithm(TesseraAlgorithm):
    def name(self) -> str:
        return "classify"

    def displayName(self) -> str:  # noqa: N802
        return tr("Classify from labelled points")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr("The labelled points' embeddings train a classifier: k nearest neighbours (cosine similarity) or "
                  "a random forest (when the optional package scikit-learn is installed). Every run assesses it "
                  "with a stratified k-fold and a spatial k-fold that holds out whole 1 km blocks (neighbouring "
                  "pixels look alike, so this is the honest figure for new areas): confusion matrix, overall "
                  "accuracy, kappa and per-class precision, recall and F1 in an HTML report (and CSV). The model "
                  "is saved as a JSON file for Apply a saved model. Out come a class raster (class names in its "
                  "QGIS style) and a confidence raster; with other years, one pair per year (NAME_YEAR.tif) and "
                  "the class transitions between consecutive years (hectares) in the report.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFeatureSource("INPUT", tr("Labelled points"),
                                                              [QgsProcessing.SourceType.TypeVectorPoint]))
        self.addParameter(QgsProcessingParameterField("CLASS_FIELD", tr("Class field"), parentLayerParameterName="INPUT"))
        self.add_store()
        self.add_extent()
        self.addParameter(QgsProcessingParameterEnum("METHOD", tr("Classifier"), METHODS, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("K", tr("Neighbours (k)"),
                                                       QgsProcessingParameterNumber.Type.Integer, 5, minValue=1,
                                                       maxValue=50))
        trees = QgsProcessingParameterNumber("TREES", tr("Trees (random forest)"),
                                             QgsProcessingParameterNumber.Type.Integer, 100, minValue=1, maxValue=1000)
        folds = QgsProcessingParameterNumber("FOLDS", tr("Folds of the accuracy assessment"),
                                             QgsProcessingParameterNumber.Type.Integer, accuracy.FOLDS, minValue=2,
                                             maxValue=20)
        for p in (trees, folds):
            p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(p)
        self.addParameter(QgsProcessingParameterString("YEARS", tr("Other years to classify (e.g. 2017-2023, 2025)"),
                                                       "", optional=True))
        add_depth(self)
        self.add_dask()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Classes")))
        add_file_output(self, "REPORT", tr("Accuracy report (HTML, a CSV beside it; empty: beside the classes)"),
                        tr("HTML files (*.html)"))
        add_file_output(self, "MODEL", tr("Model file (empty: beside the classes)"), tr("JSON files (*.json)"))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUTS", tr("Classes and confidence")))
        self.addOutput(QgsProcessingOutputNumber("ACCURACY", tr("Overall accuracy (stratified k-fold)")))
        self.addOutput(QgsProcessingOutputNumber("SPATIAL_ACCURACY", tr("Overall accuracy (spatial k-fold)")))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", tr("Kappa (stratified k-fold)")))

    def execute(self, parameters, context, feedback):
        source = self.parameterAsSource(parameters, "INPUT", context)
        field = self.parameterAsString(parameters, "CLASS_FIELD", context)
        if source is None or source.fields().indexOf(field) < 0:
            raise QgsProcessingException(tr("Give a point layer and its class field"))
        method = METHOD_KEYS[self.parameterAsEnum(parameters, "METHOD", context)]
        if method == "random_forest":
            need_sklearn()
        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year = self.parameterAsInt(parameters, "YEAR", context)
        store.check_year(year)
        others = parse_years(self.parameterAsString(parameters, "YEARS", context))
        for y in others:
            store.check_year(y)
        dims = depth(self, parameters, context)
        store.check_depth(dims)
        points = []
        for f, ll in points_lonlat(source, feedback):
            value = f[field]
            label = None if value is None or QgsVariantUtils.isNull(value) else str(value)
            points.append((ll[0], ll[1], label) if ll else (float("nan"), float("nan"), None))
        bounds, crs = self.region(parameters, context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        report = file_output(self, parameters, context, "REPORT", out, "_report.html")
        model = file_output(self, parameters, context, "MODEL", out, "_model.json")
        progress, cancel = self.hooks(feedback)
        req = ExportRequest(bounds, crs, year, out, depth=dims, dask=self.dask(parameters, context))
        res = jobs.classify(store, req, points, "EPSG:4326", method, k=self.parameterAsInt(parameters, "K", context),
                            trees=self.parameterAsInt(parameters, "TREES", context), other_years=others,
                            folds=self.parameterAsInt(parameters, "FOLDS", context), report_path=report,
                            model_path=model, progress=progress, cancel=cancel, log=feedback.pushInfo)
        for a, b, _, ha in res.transitions:
            feedback.pushInfo(tr("transitions {} to {}: {:.2f} ha changed class").format(
                a, b, float(ha[1:, 1:].sum() - ha[1:, 1:].trace())))
        figures = {a.name.split()[0]: a.scores for a in res.assessments}
        strat, spatial = figures.get("stratified"), figures.get("spatial")
        return {"OUTPUT": str(res.paths[0]), "OUTPUTS": [str(p) for p in res.paths],
                "REPORT": str(res.report[0]), "MODEL": str(res.model_path),
                "ACCURACY": strat.overall if strat else None, "KAPPA": strat.kappa if strat else None,
                "SPATIAL_ACCURACY": spatial.overall if spatial else None}
