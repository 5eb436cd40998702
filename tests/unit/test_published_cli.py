"""The published layouts (#13) through the command line, as a user runs it: `info --json`
on each flavour, `render` reading the shallowest array, the preview for a large area, a depth
refused where the dimensions are not ordered, and `pixel --json`'s observation counts.
Expected values come from the stores' own attributes and zarr-python; which arrays were read
comes from the HTTP server's request log."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import zarr

from support.reference import valid_pixel_lonlat
from support.servers import arrays_read

REPO = Path(__file__).resolve().parents[2]
AREA = "-0.015,52.192,0.015,52.203"  # inside the published-layout fixtures (both zones)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "tessera_qgis", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO),
                                         "PROJ_DATA": "/usr/share/proj"})


def served(range_server, path):
    srv = range_server(path.parent)
    return srv, f"{srv.url}/{path.name}"


# what a fresh process reads to open the store (the zones' `time`), left out of arrays_read
COORDINATES = {"time", "x", "y", "band", "band_d4", "band_d16"}


def root_attrs(store: Path) -> dict:
    return json.loads((store / "zarr.json").read_text())["attributes"]


def test_info_json_says_depths_and_stretch_of_each_flavour(v2_store, v1_store, dclimate_store):
    for store in (v2_store, v1_store, dclimate_store):
        res = cli("info", store, "--json")
        assert res.returncode == 0, res.stderr
        info = json.loads(res.stdout)
        attrs = root_attrs(store)
        declared = sorted(d["dimensions"] for d in attrs.get("geoemb:depths") or []) or [128]
        assert info["depths"] == declared, (store.name, info["depths"])
        published = attrs.get("geoemb:stretch") or {}
        modes = {y: e["mode"] for y, e in published.items()}
        assert info["stretch"] == modes, (store.name, info["stretch"])
        assert info["global_pca_years"] == sorted(int(y) for y, m in modes.items() if m == "pca")
    assert json.loads(cli("info", v2_store, "--json").stdout)["depths"] == [4, 16, 128]
    assert set(json.loads(cli("info", v1_store, "--json").stdout)["stretch"].values()) == {"pca"}


@pytest.mark.gdal
@pytest.mark.parametrize("bands,array", [("1,2,3", "embeddings_d4"), ("5,9,12", "embeddings_d16"),
                                         ("1,2,20", "embeddings")])
def test_render_reads_the_shallowest_array_holding_the_bands(range_server, v2_store, tmp_path, bands, array):
    srv, url = served(range_server, v2_store)
    res = cli("render", url, "--bbox", AREA, "--year", 2025, "--bands", bands, "--width", 200,
              "--out", tmp_path / "b.png")
    assert res.returncode == 0, res.stderr
    assert f"bands {bands}" in res.stdout and "preview" not in res.stdout, res.stdout
    assert arrays_read(srv, COORDINATES) == {array, "scales"}, arrays_read(srv, COORDINATES)


@pytest.mark.gdal
def test_render_of_a_large_area_draws_the_preview_from_global_rgb_only(range_server, v2_store, tmp_path):
    srv, url = served(range_server, v2_store)
    year = zarr.open_group(str(v2_store), mode="r")["global_rgb"].attrs["year"]
    res = cli("render", url, "--bbox", AREA, "--year", 2025, "--bands", "1,2,3", "--budget", 1000, "--width", 200,
              "--out", tmp_path / "p.png")
    assert res.returncode == 0, res.stderr
    assert f"preview ({year})" in res.stdout and "coarse" not in res.stdout, res.stdout
    assert arrays_read(srv, COORDINATES) == {"rgb"}, arrays_read(srv, COORDINATES)
    # bands the preview does not show: a coarse preview, from a sample of chunks, no global_rgb
    srv.reset()
    res = cli("render", url, "--bbox", AREA, "--year", 2025, "--bands", "5,9,12", "--budget", 1000, "--width", 200,
              "--out", tmp_path / "c.png")
    assert res.returncode == 0, res.stderr
    assert "coarse preview" in res.stdout, res.stdout
    assert arrays_read(srv, COORDINATES) == {"embeddings_d16", "scales"}, arrays_read(srv, COORDINATES)


@pytest.mark.gdal
def test_a_depth_reads_its_array_and_is_refused_where_dimensions_are_not_ordered(range_server, v2_store, v1_store,
                                                                               tmp_path):
    srv, url = served(range_server, v2_store)
    res = cli("render", url, "--bbox", AREA, "--year", 2025, "--pca", "--depth", 4, "--width", 200,
              "--out", tmp_path / "d4.png")
    assert res.returncode == 0, res.stderr
    assert "depth 4" in res.stdout, res.stdout
    assert arrays_read(srv, COORDINATES) == {"embeddings_d4", "scales"}, arrays_read(srv, COORDINATES)
    res = cli("render", v1_store, "--bbox", AREA, "--year", 2025, "--pca", "--depth", 4, "--out", tmp_path / "x.png")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and "not ordered by importance" in lines[0], res.stderr
    assert not (tmp_path / "x.png").exists()


def test_pixel_json_gives_the_observation_counts_where_the_zone_has_them(dclimate_store, v2_store):
    g = zarr.open_group(str(dclimate_store), mode="r")["utm31"]
    ti, r, c, lon, lat = valid_pixel_lonlat(g, 2024)
    res = cli("pixel", dclimate_store, "--lon", lon, "--lat", lat, "--year", 2024, "--json")
    assert res.returncode == 0, res.stderr
    px = json.loads(res.stdout)
    assert (px["zone"], px["row"], px["col"], px["valid"]) == ("utm31", r, c, True)
    names = ("s1_asc_obs_count", "s1_desc_obs_count", "s2_obs_count")
    assert px["observations"] == {n: int(g[n][ti, r, c]) for n in names}
    text = cli("pixel", dclimate_store, "--lon", lon, "--lat", lat, "--year", 2024).stdout
    assert "observations: " + ", ".join(f"{n} {int(g[n][ti, r, c])}" for n in names) in text, text
    res = cli("pixel", v2_store, "--lon", lon, "--lat", lat, "--year", 2025, "--json")
    assert res.returncode == 0 and "observations" not in json.loads(res.stdout)
