"""tessera:trajectory: per pixel, the cosine distance of every year to a baseline (one year,
or the mean of the years before), the year of the largest change, and a change report."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (QgsProcessingException, QgsProcessingOutputMultipleLayers, QgsProcessingOutputRasterLayer,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer, QgsProcessingParameterString)

from ..core.analysis import jobs
from ..core.export import ExportRequest
from .analysis import add_depth, add_file_output, depth, file_output, parse_years
from .base import TesseraAlgorithm, open_for, tr

STORE_TEXT = "Store (a saved TESSERA connection, a URL or a folder)"


class TrajectoryAlgorithm(TesseraAlgorithm):
    def name(self) -> str:
        return "trajectory"

    def displayName(self) -> str:  # noqa: N802
        return tr("Change trajectory over years")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr("For every pixel, the cosine distance of each year's embedding to a baseline: one year's "
                  "embedding, or (baseline 0) the mean of the years before it. A pixel changed in a year where the "
                  "distance reaches the threshold. Out come the distances (one band per year), the year of the "
                  "largest change (NAME_year.tif; 0 where no year reaches the threshold) and a change report (HTML "
                  "with a chart, and CSV): the area changed per year, and per class when a class raster is given.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterString("STORE", tr(STORE_TEXT)))
        self.addParameter(QgsProcessingParameterString("YEARS", tr("Years (e.g. 2017-2025; empty: all the store's)"),
                                                       "", optional=True))
        self.addParameter(QgsProcessingParameterNumber("BASELINE", tr("Baseline year (0 = the mean of the years "
                                                                      "before each year)"),
                                                       QgsProcessingParameterNumber.Type.Integer, 0, minValue=0,
                                                       maxValue=2100))
        self.addParameter(QgsProcessingParameterNumber("THRESHOLD", tr("Changed where the cosine distance is at "
                                                                       "least"),
                                                       QgsProcessingParameterNumber.Type.Double, 0.25, minValue=0.001,
                                                       maxValue=2.0))
        self.add_extent()
        self.addParameter(QgsProcessingParameterRasterLayer("CLASSES", tr("Class raster for the report (optional)"),
                                                            optional=True))
        add_depth(self)
        self.add_dask()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Distances to the baseline")))
        add_file_output(self, "REPORT", tr("Change report (HTML, a CSV beside it; empty: beside the distances)"),
                        tr("HTML files (*.html)"))
        self.addOutput(QgsProcessingOutputRasterLayer("CHANGE_YEAR", tr("Year of the largest change")))
        self.addOutput(QgsProcessingOutputMultipleLayers("OUTPUTS", tr("All files written")))

    def execute(self, parameters, context, feedback):
        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        years = parse_years(self.parameterAsString(parameters, "YEARS", context)) or store.years
        for y in years:
            store.check_year(y)
        baseline = self.parameterAsInt(parameters, "BASELINE", context) or None
        if baseline is None and len(years) < 2:
            raise QgsProcessingException(tr("The mean of the years before needs at least two years"))
        dims = depth(self, parameters, context)
        store.check_depth(dims)
        classes = self.parameterAsRasterLayer(parameters, "CLASSES", context)
        class_path = classes.source() if classes is not None else None
        if class_path is not None and not Path(class_path.split("|")[0]).exists():
            raise QgsProcessingException(tr("The class raster must be a file (a GeoTIFF, say)"))
        bounds, crs = self.region(parameters, context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        report = file_output(self, parameters, context, "REPORT", out, "_report.html")
        progress, cancel = self.hooks(feedback)
        # 256 px blocks: a block holds two years of int8 embeddings and a float32 running sum
        req = ExportRequest(bounds, crs, min(years), out, depth=dims, block=256, dask=self.dask(parameters, context))
        res = jobs.trajectory(store, req, years, baseline, self.parameterAsDouble(parameters, "THRESHOLD", context),
                              class_path.split("|")[0] if class_path else None, report, progress, cancel)
        t = res.table
        for i, y in enumerate(t.years):
            feedback.pushInfo(tr("{}: {:.2f} ha changed of {:.2f} ha with data").format(
                y, t.changed_ha[i, 0], t.valid_ha[i, 0]))
        return {"OUTPUT": str(res.paths[0]), "CHANGE_YEAR": str(res.paths[1]), "REPORT": str(res.report[0]),
                "OUTPUTS": [str(p) for p in res.paths]}
