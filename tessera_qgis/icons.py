"""The plugin's icons (SVG files in resources/), in one place for every GUI module.

Nothing here imports another module of the plugin, so any of them can use it without an
import cycle.
"""
from __future__ import annotations

from qgis.PyQt.QtGui import QIcon

from . import PLUGIN_DIR

ICON_DIR = PLUGIN_DIR / "resources"


def icon(name: str = "icon") -> QIcon:
    """resources/<name>.svg: "icon" (the plugin's), "add" (add a layer), "about", "inspector",
    "similarity", "region", "style"."""
    return QIcon(str(ICON_DIR / f"{name}.svg"))
