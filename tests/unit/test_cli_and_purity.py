"""The command line, and the promise that the core works without Qt or QGIS."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import zarr

REPO = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tessera_qgis", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                                "PROJ_DATA": "/usr/share/proj"})


def test_core_and_cli_import_without_qt_or_qgis():
    code = ("import sys, tessera_qgis, tessera_qgis.cli, tessera_qgis.core.sample, tessera_qgis.core.utm;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6', 'sip')];"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PROJ_DATA": "/usr/share/proj"}, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_sample_writes_a_store_and_json_summary(tmp_path):
    out = tmp_path / "s.zarr"
    res = cli("sample", str(out), "--bbox", "0.01,52.2,0.02,52.205", "--shard", "64", "--json")
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["zones"]["utm31"]["crs"] == "EPSG:32631"
    assert summary["years"] == [2024, 2025]
    g = zarr.open_group(str(out), mode="r")
    assert g["utm31"]["embeddings"].shape[:2] == (2, 128)


def test_cli_errors_are_one_clear_line(tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "f").write_text("x")
    res = cli("sample", str(tmp_path / "used"))
    assert res.returncode == 1
    assert res.stderr.strip().startswith("error:") and "not empty" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    res = cli("sample", str(tmp_path / "x"), "--bbox", "1,2,3")
    assert res.returncode == 2 and "W,S,E,N" in res.stderr
    res = cli("--debug", "sample", str(tmp_path / "used"))
    assert res.returncode != 0 and "Traceback" in res.stderr
