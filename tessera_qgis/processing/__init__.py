"""Processing algorithms (toolbox, model designer, batch mode, qgis_process): one module per
algorithm (export, similarity, change, sample, classify, cluster, apply_model,
trajectory; `analysis` holds what the analysis ones share), what they share in `base`, and the
provider that lists them.

Each one reports progress, honours cancel (the core stops and removes its temporary files)
and turns bad parameters into a clear QgsProcessingException.
"""
from .provider import TesseraProcessingProvider

__all__ = ["TesseraProcessingProvider"]
