"""tessera:cluster: k-means without labels. A sample of at most 200,000 valid pixels is
clustered (k given, or chosen from 2 to 12 by silhouette), then every pixel of the region is
assigned its nearest centroid, streamed block by block (here or on a Dask cluster). Out come
a class raster with its paletted QGIS style and the centroids as a model file, which
tessera:apply_model applies to another year or area."""
from __future__ import annotations

from qgis.core import (QgsProcessingOutputNumber, QgsProcessingParameterDefinition,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination)

from ..core.analysis import jobs
from ..core.analysis.sampling import MAX_SAMPLES
from ..core.export import ExportRequest
from .analysis import add_depth, add_file_output, depth, file_output
from .base import TesseraAlgorithm, open_for, tr


class ClusterAlgorithm(TesseraAlgorithm):
    def name(self) -> str:
        return "cluster"

    def displayName(self) -> str:  # noqa: N802
        return tr("Cluster (k-means)")

    def shortHelpString(self) -> str:  # noqa: N802
        return tr("Groups the pixels of a region by their embeddings, without labels. k-means runs on a random "
                  "sample of at most 200,000 valid pixels (K = 0 chooses the number of clusters from 2 to 12 by the "
                  "silhouette of a subsample), then every pixel takes its nearest centroid. Out come a class raster "
                  "(cluster 1 is the largest; a paletted style beside it) and the centroids as a JSON model file "
                  "that Apply a saved model uses on another year or area.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_store()
        self.add_extent()
        self.addParameter(QgsProcessingParameterNumber("K", tr("Number of clusters (0 = automatic, 2 to 12)"),
                                                       QgsProcessingParameterNumber.Type.Integer, 0, minValue=0,
                                                       maxValue=255))
        samples = QgsProcessingParameterNumber("SAMPLES", tr("Pixels sampled for k-means (at most 200,000)"),
                                               QgsProcessingParameterNumber.Type.Integer, MAX_SAMPLES,
                                               minValue=100, maxValue=MAX_SAMPLES)
        samples.setFlags(samples.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(samples)
        add_depth(self)
        self.add_dask()
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", tr("Clusters")))
        add_file_output(self, "CENTROIDS", tr("Centroids (model file; empty: beside the clusters)"),
                        tr("JSON files (*.json)"))
        self.addOutput(QgsProcessingOutputNumber("CLUSTERS", tr("Number of clusters")))

    def execute(self, parameters, context, feedback):
        store, _ = open_for(self.parameterAsString(parameters, "STORE", context))
        year = self.parameterAsInt(parameters, "YEAR", context)
        store.check_year(year)
        store.check_depth(depth(self, parameters, context))
        bounds, crs = self.region(parameters, context)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        centroids = file_output(self, parameters, context, "CENTROIDS", out, "_centroids.json")
        progress, cancel = self.hooks(feedback)
        req = ExportRequest(bounds, crs, year, out, depth=depth(self, parameters, context),
                            dask=self.dask(parameters, context))
        res = jobs.cluster(store, req, self.parameterAsInt(parameters, "K", context), centroids,
                           self.parameterAsInt(parameters, "SAMPLES", context), progress=progress, cancel=cancel)
        if res.scores:
            feedback.pushInfo(tr("silhouette by number of clusters: {}").format(
                ", ".join(f"{k}: {v:.3f}" for k, v in sorted(res.scores.items()))))
        feedback.pushInfo(tr("{} clusters from {} sampled pixels").format(len(res.model.names), res.samples))
        return {"OUTPUT": str(res.paths[0]), "CENTROIDS": str(res.centroids), "CLUSTERS": len(res.model.names)}

