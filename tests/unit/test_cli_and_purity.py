"""The command line, and the promise that the core works without Qt or QGIS."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import zarr

REPO = Path(__file__).resolve().parents[2]


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tessera_qgis", *args], capture_output=True, text=True,
                          cwd=cwd or REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                                "PROJ_DATA": "/usr/share/proj"})


def test_core_and_cli_import_without_qt_or_qgis():
    code = ("import sys, tessera_qgis, tessera_qgis.cli, tessera_qgis.core.sample, tessera_qgis.core.utm,"
            " tessera_qgis.core.store, tessera_qgis.core.region, tessera_qgis.core.pca,"
            " tessera_qgis.core.export, tessera_qgis.core.render, tessera_qgis.core.arrays;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('qgis', 'PyQt5', 'PyQt6', 'sip')];"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PROJ_DATA": "/usr/share/proj"}, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_sample_writes_a_store_and_json_summary(tmp_path):
    out = tmp_path / "s.zarr"
    res = cli("sample", str(out), "--bbox", "0.01,52.2,0.02,52.205", "--shard", "128", "--json")
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


def test_cli_info_json(sample_store):
    res = cli("info", str(sample_store), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["years"] == [2024, 2025] and sorted(info["zones"]) == ["utm30", "utm31"]
    text = cli("info", str(sample_store))
    assert "utm31: EPSG:32631" in text.stdout and "global PCA for: 2024, 2025" in text.stdout


def test_cli_pixel_json_matches_zarr(sample_store, sample_http):
    res = cli("pixel", sample_http.store_url, "--lon", "-0.03", "--lat", "52.2", "--year", "2025", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"zone", "crs", "row", "col", "year", "valid", "scale", "embedding", "nodata"}
    assert out["valid"] is True and out["nodata"] is None
    assert out["zone"] == "utm30" and out["crs"] == "EPSG:32630" and len(out["embedding"]) == 128
    g = zarr.open_group(str(sample_store), mode="r")["utm30"]
    scale = float(g["scales"][1, out["row"], out["col"]])
    assert out["scale"] == pytest.approx(scale)
    assert out["embedding"][:3] == pytest.approx((g["embeddings"][1, :3, out["row"], out["col"]] * scale).tolist())


@pytest.mark.gdal
def test_cli_render_and_export(sample_store, tmp_path):
    from osgeo import gdal

    gdal.UseExceptions()
    png = tmp_path / "pca.png"
    res = cli("render", str(sample_store), "--bbox", "-0.02,52.19,0.02,52.21", "--year", "2024", "--pca",
              "--out", str(png), "--width", "300")
    assert res.returncode == 0, res.stderr
    ds = gdal.Open(str(png))
    assert (ds.RasterXSize, ds.RasterCount) == (300, 4)
    tif = tmp_path / "e.tif"
    res = cli("export", str(sample_store), "--bbox", "0.005,52.195,0.015,52.2", "--year", "2025",
              "--bands", "1,2,3", "--out", str(tif))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(tif) and "100 %" in res.stderr
    assert gdal.Open(str(tif)).RasterCount == 3


@pytest.mark.parametrize("args,message", [
    (["info", "/no/such/store"], "no such folder"),
    (["pixel", "{store}", "--lon", "0", "--lat", "52.2", "--year", "1999"], "year 1999 is not in this store"),
    (["render", "{store}", "--bbox", "1,52,0,53", "--year", "2024", "--pca", "--out", "x.png"], "inverted"),
    (["export", "{store}", "--bbox", "0,52.2,0.01,52.21", "--year", "2024", "--bands", "0,200",
      "--out", "{tmp}/x.tif"], "numbered 1 to 128"),
    (["export", "{store}", "--bbox", "20,10,20.1,10.1", "--year", "2024", "--out", "{tmp}/x.tif"],
     "does not intersect"),
    (["info", "http://alice:hunter2@127.0.0.1:9/none.zarr"], "cannot reach the store at http://alice:***@127.0.0.1:9"),
])
def test_cli_bad_input_one_line_no_traceback(sample_store, tmp_path, args, message):
    args = [a.format(store=sample_store, tmp=tmp_path) for a in args]
    res = cli(*args)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.stderr
    assert "hunter2" not in res.stderr + res.stdout, "a password in the URL is masked"
