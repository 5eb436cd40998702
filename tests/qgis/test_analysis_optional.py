"""scikit-learn is optional: never a problem that stops the plugin, offered (unticked) by the
missing-packages dialog, and added to the install command only when ticked."""
from __future__ import annotations

import sys

from support.qgis_helpers import wait_for
from tessera_qgis import dependencies, missing
from tessera_qgis.missing import MissingDependenciesPlugin


def test_scikit_learn_is_never_required(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # as if it were not installed
    assert dependencies.problems() == []
    assert dependencies.optional_missing() == [("scikit-learn>=1.3", "random forests in Classify from labelled points")]


def test_the_dialog_offers_it_unticked(monkeypatch, qgis_iface, tmp_path):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    plugin = MissingDependenciesPlugin(qgis_iface, ["zarr is not installed"])
    plugin.initGui()
    try:
        text = plugin.box.text()
        assert "zarr is not installed" in text
        assert "Optional, not needed to start" in text and "scikit-learn>=1.3: random forests" in text
        assert "scikit-learn" not in plugin.command_text()
        assert plugin.optional_box is not None and not plugin.optional_box.isChecked()
        out = tmp_path / "args"
        record = [sys.executable, "-c", f"import sys; open({str(out)!r}, 'w').write(' '.join(sys.argv[1:]))"]
        monkeypatch.setattr(missing, "install_command", lambda: list(record))
        plugin.install()
        wait_for(plugin.task)
        assert out.read_text() == ""
        plugin.optional_box.setChecked(True)
        plugin.install()
        wait_for(plugin.task)
        assert out.read_text() == "scikit-learn>=1.3"
    finally:
        plugin.unload()


def test_no_checkbox_when_it_is_installed(monkeypatch, qgis_iface):
    monkeypatch.setattr(missing, "optional_missing", lambda: [])
    plugin = MissingDependenciesPlugin(qgis_iface, ["zarr is not installed"])
    plugin.initGui()
    try:
        assert plugin.optional_box is None and "Optional" not in plugin.box.text()
    finally:
        plugin.unload()
