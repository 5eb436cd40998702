"""`make package` builds a zip the plugin manager accepts; installed into a fresh QGIS
profile folder, QGIS finds it, loads it and unloads it."""
from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs in a separate QGIS process whose only copy of the plugin is the installed one.
LOADER = r"""
import json, os, sys
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QApplication, QMainWindow, QToolBar
app = QgsApplication([], True)  # profile root from QGIS_CUSTOM_CONFIG_PATH
app.initQgis()
import qgis.utils
from qgis.PyQt.QtWidgets import QMenu
from qgis.PyQt.QtCore import QObject, pyqtSignal


class Iface(QObject):  # the part of QgisInterface the plugin's initGui/unload use
    currentLayerChanged = pyqtSignal(object)

    def __init__(self):
        super().__init__()
        self.window = QMainWindow()
        self.menu = QMenu("Raster", self.window)
    def mainWindow(self):
        return self.window
    def addToolBar(self, name):
        return self.window.addToolBar(name)
    def addPluginToRasterMenu(self, name, action):
        self.menu.addAction(action)
    def removePluginRasterMenu(self, name, action):
        self.menu.removeAction(action)
    def mapCanvas(self):
        from qgis.gui import QgsMapCanvas
        if not hasattr(self, "canvas"):
            self.canvas = QgsMapCanvas(self.window)
        return self.canvas
    def addDockWidget(self, area, dock):
        self.window.addDockWidget(area, dock)
    def removeDockWidget(self, dock):
        self.window.removeDockWidget(dock)
    def activeLayer(self):
        return None
    def addCustomActionForLayerType(self, action, menu, layer_type, all_layers):
        self.custom = action
    def removeCustomActionForLayerType(self, action):
        self.custom = None
    def addCustomActionForLayer(self, action, layer):
        pass
    def registerOptionsWidgetFactory(self, factory):
        self.options = factory
    def unregisterOptionsWidgetFactory(self, factory):
        self.options = None
    def messageBar(self):
        from qgis.gui import QgsMessageBar
        if not hasattr(self, "bar"):
            self.bar = QgsMessageBar(self.window)
        return self.bar


iface = Iface()
window = iface.window
qgis.utils.iface = iface
plugins = os.path.join(QgsApplication.qgisSettingsDirPath(), "python", "plugins")
sys.path.insert(0, plugins)
qgis.utils.plugin_paths = [plugins]
if "block-zarr" in sys.argv:
    sys.modules["zarr"] = None  # as if zarr were not installed in this QGIS's Python
if "old-zarr" in sys.argv:  # zarr 2.18 installed first on the path, as an old QGIS Python has it
    old = os.path.join(os.getcwd(), "old-packages")
    os.makedirs(os.path.join(old, "zarr"), exist_ok=True)
    os.makedirs(os.path.join(old, "zarr-2.18.0.dist-info"), exist_ok=True)
    open(os.path.join(old, "zarr", "__init__.py"), "w").write("__version__ = '2.18.0'\n")
    open(os.path.join(old, "zarr-2.18.0.dist-info", "METADATA"), "w").write(
        "Metadata-Version: 2.1\nName: zarr\nVersion: 2.18.0\n")
    sys.path.insert(0, old)
qgis.utils.updateAvailablePlugins()
out = {"available": list(qgis.utils.available_plugins),
       "name": qgis.utils.pluginMetadata("tessera_qgis", "name"),
       "version": qgis.utils.pluginMetadata("tessera_qgis", "version")}
out["loaded"] = qgis.utils.loadPlugin("tessera_qgis") and qgis.utils.startPlugin("tessera_qgis")
import tessera_qgis
out["module_file"] = tessera_qgis.__file__
out["plugin_class"] = type(qgis.utils.plugins["tessera_qgis"]).__name__
from qgis.PyQt.QtWidgets import QMessageBox
out["dialogs"] = [b.text() for b in QApplication.topLevelWidgets() if isinstance(b, QMessageBox) and b.isVisible()]
out["toolbars"] = [t.objectName() for t in window.findChildren(QToolBar)]
out["unloaded"] = qgis.utils.unloadPlugin("tessera_qgis")
out["active_after"] = list(qgis.utils.active_plugins)
print("RESULT " + json.dumps(out))
app.exitQgis()
"""


def build_zip(dest: Path) -> Path:
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "package.py"), "--dest", str(dest)],
                         capture_output=True, text=True, check=True)
    return Path(res.stdout.strip())


def test_zip_layout(tmp_path):
    path = build_zip(tmp_path)
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(REPO / "metadata.txt")
    assert path.name == f"tessera_qgis-{meta['general']['version']}.zip"
    names = zipfile.ZipFile(path).namelist()
    assert all(n.startswith("tessera_qgis/") for n in names)
    for needed in ("tessera_qgis/__init__.py", "tessera_qgis/metadata.txt", "tessera_qgis/LICENSE",
                   "tessera_qgis/resources/icon.svg", "tessera_qgis/plugin.py", "tessera_qgis/core/sample.py",
                   "tessera_qgis/processing/__init__.py", "tessera_qgis/processing/export.py"):
        assert needed in names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n
                or ".qgis-settings" in n]
    with zipfile.ZipFile(path) as zf:
        packed = zf.read("tessera_qgis/metadata.txt").decode()
    assert packed == (REPO / "metadata.txt").read_text(), "metadata.txt stored as a file, not a link"


def test_metadata_has_every_field_the_plugin_repository_expects():
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(REPO / "metadata.txt")
    general = meta["general"]
    for field in ("name", "qgisMinimumVersion", "qgisMaximumVersion", "description", "about", "version",
                  "author", "email", "homepage", "tracker", "repository", "tags", "category", "icon",
                  "experimental", "changelog"):
        assert general.get(field, "").strip(), f"metadata.txt lacks {field}"
    assert general["qgisMinimumVersion"] == "3.40" and general["qgisMaximumVersion"] == "4.99"
    assert (REPO / "tessera_qgis" / general["icon"]).is_file()


def run_installed(tmp_path, *flags) -> dict:
    path = build_zip(tmp_path / "dist")
    profile = tmp_path / "profiles" / "default"
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    zipfile.ZipFile(path).extractall(plugins)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(tmp_path)  # as `qgis --profiles-path`
    res = subprocess.run([sys.executable, "-c", LOADER, *flags], capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
    assert res.returncode == 0 and lines, res.stdout + res.stderr
    return json.loads(lines[-1][len("RESULT "):]) | {"plugins": str(plugins)}


def test_installed_zip_loads_in_a_fresh_profile(tmp_path):
    out = run_installed(tmp_path)
    plugins = out["plugins"]
    assert out["plugin_class"] == "TesseraPlugin" and out["dialogs"] == []
    assert "tessera_qgis" in out["available"]
    assert out["name"] == "TESSERA Embeddings"
    assert out["loaded"] is True
    assert out["module_file"].startswith(plugins), "QGIS loaded the installed copy"
    assert "TesseraToolbar" in out["toolbars"]
    assert out["unloaded"] is True and "tessera_qgis" not in out["active_after"]


def test_a_missing_package_shows_one_dialog_and_qgis_keeps_running(tmp_path):
    out = run_installed(tmp_path, "block-zarr")
    assert out["loaded"] is True, "the plugin loads (as a stand-in), no traceback"
    assert out["plugin_class"] == "MissingDependenciesPlugin"
    assert len(out["dialogs"]) == 1
    text = out["dialogs"][0]
    assert "zarr is not installed" in text and "-m pip install --user" in text and "zarr>=3.0" in text
    assert out["unloaded"] is True


def test_a_too_old_package_shows_its_version_and_the_install_command(tmp_path):
    out = run_installed(tmp_path, "old-zarr")
    assert out["loaded"] is True and out["plugin_class"] == "MissingDependenciesPlugin"
    text, = out["dialogs"]
    assert "zarr 2.18.0 is too old (need 3.0 or newer)" in text, text
    assert "is not installed" not in text and "-m pip install --user" in text and "'zarr>=3.0'" in text
    assert out["unloaded"] is True
