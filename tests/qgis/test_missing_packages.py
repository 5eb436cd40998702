"""The stand-in plugin's *Install now*: the install command runs in a background task, and
the message bar and the log say how it went (the command is a stand-in here: no registry)."""
from __future__ import annotations

import shlex
import sys

import pytest
from qgis.core import Qgis, QgsApplication

from support.qgis_helpers import wait_for
from tessera_qgis import missing
from tessera_qgis.dependencies import install_command


@pytest.fixture
def log_lines():
    out: list[str] = []

    def logged(msg, tag, level):
        if tag == "TESSERA":
            out.append(msg)

    QgsApplication.messageLog().messageReceived.connect(logged)
    yield out
    QgsApplication.messageLog().messageReceived.disconnect(logged)


@pytest.mark.parametrize("outcome", ["ok", "fails"])
def test_install_now_runs_the_command_in_a_task_and_says_how_it_went(qgis_iface, monkeypatch, tmp_path, outcome,
                                                                     log_lines):
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')" + ("" if outcome == "ok" else "; raise SystemExit('pip: no such package')")
    plugin = missing.MissingDependenciesPlugin(qgis_iface, ["zarr 2.18.0 is too old (need 3.0 or newer)"])
    plugin.initGui()
    try:
        text = plugin.box.text()
        assert "zarr 2.18.0 is too old" in text
        assert " ".join(shlex.quote(a) for a in install_command()) in text, "the real command is shown"
        monkeypatch.setattr(missing, "install_command", lambda: [sys.executable, "-c", code])  # what runs
        qgis_iface.messageBar().clear_messages()
        plugin.install_button.click()
        assert plugin.task is not None and plugin.task.description() == "Install TESSERA plugin packages"
        wait_for(plugin.task)
        assert marker.exists(), "the command ran"
        if outcome == "ok":
            want, level = "Packages installed: restart QGIS to use the TESSERA plugin.", Qgis.MessageLevel.Success
        else:
            want, level = "Installing the packages failed: pip: no such package", Qgis.MessageLevel.Critical
        shown = qgis_iface.messageBar().get_messages(level)  # pytest-qgis's bar keeps them by level
        assert any(want in m for m in shown), qgis_iface.messageBar().messages
        assert any(want in m for m in log_lines), log_lines
    finally:
        plugin.unload()
