"""The export's memory bound (README): a region whose float32 output is many times one block's
budget is written with the peak memory of the process (VmHWM) growing by no more than the
export's own buffers, not by the size of the output. Measured in a fresh process."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gdal
REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
from osgeo import gdal
from tessera_qgis.core.export import ExportRequest, export
from tessera_qgis.core.store import open_store


def hwm_mb():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024


store = open_store(sys.argv[1])
before = hwm_mb()
# all of the sample at 7 m (twice its pixels, nearest neighbour): about 600 MB of float32
out, = export(store, ExportRequest((-0.06, 52.17, 0.06, 52.23), "EPSG:4326", 2024, sys.argv[2], block=256,
                                   resolution=7.0, compress="NONE"))
ds = gdal.Open(str(out))
print(json.dumps({"before": before, "after": hwm_mb(), "width": ds.RasterXSize, "height": ds.RasterYSize,
                  "bands": ds.RasterCount}))
"""


def test_a_large_export_stays_within_its_buffers(sample_store, tmp_path):
    from tessera_qgis.core.export import EXPORT_CHUNK_CACHE

    res = subprocess.run([sys.executable, "-c", SCRIPT, str(sample_store), str(tmp_path / "big.tif")],
                         capture_output=True, text=True, cwd=REPO, timeout=300)
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout.strip().splitlines()[-1])
    output_mb = m["width"] * m["height"] * m["bands"] * 4 / 2**20
    block_mb = 256 * 256 * 128 * 5 / 2**20  # int8 + float32 of one 256 px block, all bands: 40 MB
    # What the export may hold at once: its private cache of decoded chunks (96 MB), a block,
    # and GDAL's block cache while writing (64 MB); not the output (about 600 MB).
    budget = EXPORT_CHUNK_CACHE / 2**20 + block_mb + 64
    assert m["bands"] == 128 and output_mb > 2.5 * budget, "the region is much more than the export's buffers"
    grown = m["after"] - m["before"]
    assert grown < budget, f"peak memory grew by {grown:.0f} MB for a {output_mb:.0f} MB output (budget {budget:.0f})"
