"""What the analysis algorithms (cluster, classify, apply_model, trajectory) share beyond
`base`: the depth parameter, lists of years, report and model file destinations, and the
optional scikit-learn message.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from qgis.core import (QgsProcessingException, QgsProcessingParameterDefinition, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterNumber)

from ..core.analysis.models import sklearn_available
from ..dependencies import python_executable
from .base import tr


def add_depth(alg) -> None:
    """DEPTH: the leading embedding dimensions to use (4, 16 or 128 on stores declaring
    Matryoshka depths); 0 = all of them."""
    p = QgsProcessingParameterNumber("DEPTH", tr("Depth: embedding dimensions to use (0 = all; 4 or 16 on stores "
                                                 "with Matryoshka depths)"),
                                     QgsProcessingParameterNumber.Type.Integer, 0, optional=True, minValue=0,
                                     maxValue=1024)
    p.setFlags(p.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
    alg.addParameter(p)


def depth(alg, parameters, context) -> int | None:
    value = alg.parameterAsInt(parameters, "DEPTH", context) if parameters.get("DEPTH") not in (None, "") else 0
    return value or None


def add_file_output(alg, name: str, description: str, file_filter: str) -> None:
    """A file destination; left empty (qgis_process, scripts), the file goes beside OUTPUT."""
    alg.addParameter(QgsProcessingParameterFileDestination(name, description, file_filter, optional=True,
                                                           createByDefault=True))


def file_output(alg, parameters, context, name: str, output: str, suffix: str) -> str:
    """The path chosen for a file output; when none is given, `<OUTPUT's stem><suffix>` beside
    the main output."""
    value = (alg.parameterAsFileOutput(parameters, name, context) or "").strip()
    if value:
        return value
    out = Path(output)
    return str(out.with_name(out.stem + suffix))


def parse_years(text: str) -> list[int]:
    """'2017-2020, 2024' -> [2017, 2018, 2019, 2020, 2024]."""
    years: set[int] = set()
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1)
                lo, hi = int(a), int(b)
                if hi < lo or hi - lo > 200:
                    raise ValueError
                years.update(range(lo, hi + 1))
            else:
                years.add(int(part))
        except ValueError:
            raise QgsProcessingException(tr("Years are written like 2017-2020, 2024; got {}").format(part)) from None
    return sorted(years)


def need_sklearn() -> None:
    """Random forests need scikit-learn (optional): a clear message with the command."""
    if not sklearn_available():
        cmd = " ".join(shlex.quote(a) for a in [python_executable(), "-m", "pip", "install", "--user", "scikit-learn"])
        raise QgsProcessingException(tr("Random forests need the optional package scikit-learn in QGIS's Python "
                                        "(k nearest neighbours work without it). Install it with: {}").format(cmd))
