"""The TESSERA Processing provider: the toolbox group and the algorithms' "tessera:" ids."""
from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from ..icons import icon as plugin_icon
from .apply_model import ApplyModelAlgorithm
from .change import ChangeAlgorithm
from .classify import ClassifyAlgorithm
from .cluster import ClusterAlgorithm
from .export import ExportAlgorithm
from .pack import PackAlgorithm
from .sample import SampleAlgorithm
from .similarity import SimilarityAlgorithm
from .trajectory import TrajectoryAlgorithm

ALGORITHMS = (ExportAlgorithm, SimilarityAlgorithm, SampleAlgorithm, ChangeAlgorithm, ClassifyAlgorithm, PackAlgorithm,
              ClusterAlgorithm, ApplyModelAlgorithm, TrajectoryAlgorithm)


class TesseraProcessingProvider(QgsProcessingProvider):
    """`icon`: the toolbox icon, given by the caller (the plugin's own by default)."""

    def __init__(self, icon: QIcon | None = None) -> None:
        super().__init__()
        self._icon = icon if icon is not None else plugin_icon()

    def id(self) -> str:
        return "tessera"

    def name(self) -> str:
        return "TESSERA"

    def icon(self) -> QIcon:
        return self._icon

    def loadAlgorithms(self):  # noqa: N802
        for algorithm in ALGORITHMS:
            self.addAlgorithm(algorithm())
