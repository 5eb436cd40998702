"""Which years a store has completely (every zone group has them) and which only in some zones."""
from __future__ import annotations

import json
import subprocess
import sys

from support.stores import REPO
from tessera_qgis.core.store import describe_years, open_store, year_coverage


def test_year_coverage_rule():
    got = year_coverage({"utm30": [2017, 2024], "utm31": [2024], "utm32": [2024, 2017]})
    assert got == {"complete_years": [2024], "partial_years": {2017: ["utm30", "utm32"]}}
    assert year_coverage({"utm30": [2025, 2024]}) == {"complete_years": [2024, 2025], "partial_years": {}}


def test_info_names_the_partial_year_and_its_zones(partial_year_store, sample_store):
    info = open_store(partial_year_store).info()
    assert info["zones"]["utm30"]["years"] == [2024, 2025] and info["zones"]["utm31"]["years"] == [2024]
    assert info["years"] == [2024, 2025]
    assert info["complete_years"] == [2024]
    assert info["partial_years"] == {2025: ["utm30"]}
    assert describe_years(info) == "2024, 2025 (partial: 1 of 2 zones: utm30)"
    full = open_store(sample_store).info()
    assert full["complete_years"] == [2024, 2025] and full["partial_years"] == {}
    assert describe_years(full) == "2024, 2025"


def test_cli_info_shows_partial_years(partial_year_store):
    def run(*args):
        out = subprocess.run([sys.executable, "-m", "tessera_qgis", "info", str(partial_year_store), *args],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout

    assert "years: 2024, 2025 (partial: 1 of 2 zones: utm30);" in run()
    data = json.loads(run("--json"))
    assert data["complete_years"] == [2024] and data["partial_years"] == {"2025": ["utm30"]}
