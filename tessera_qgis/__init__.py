"""tessera-qgis: TESSERA geospatial embeddings in QGIS.

The package root imports nothing from Qt or QGIS, so ``python -m tessera_qgis`` and the
core (``tessera_qgis.core``) work in a plain Python; QGIS reaches the plugin through
:func:`classFactory`.
"""
from __future__ import annotations

from pathlib import Path

PLUGIN_DIR = Path(__file__).resolve().parent


def _read_version() -> str:
    try:
        for line in (PLUGIN_DIR / "metadata.txt").read_text(encoding="utf-8").splitlines():
            if line.startswith("version="):
                return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return "0+unknown"


__version__ = _read_version()


def classFactory(iface):  # noqa: N802 (QGIS's name)
    """Called by QGIS to create the plugin; `iface` is the QgisInterface.

    With a required package missing, a stand-in plugin shows one dialog with the install
    command instead of a traceback. The imports wait until here: the plugin's modules need
    those packages, and QGIS imports this file to read the plugin's metadata."""
    from .dependencies import problems

    missing = problems()
    if missing:
        from .missing import MissingDependenciesPlugin

        return MissingDependenciesPlugin(iface, missing)
    from .plugin import TesseraPlugin

    return TesseraPlugin(iface)
