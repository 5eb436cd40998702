"""GDAL 3.13 (the environment's, via QGIS's osgeo) reads the sample store's sharded Zarr v3."""
from __future__ import annotations

import subprocess

import numpy as np
import zarr
from osgeo import gdal

gdal.UseExceptions()


def test_gdal_version_reads_sharded_zarr_v3():
    assert tuple(int(p) for p in gdal.__version__.split(".")[:2]) >= (3, 10)


def test_gdalinfo_on_a_zone_embeddings(sample_store):
    name = f'ZARR:"{sample_store}":/utm30/embeddings'
    out = subprocess.run(["gdalinfo", name], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    g = zarr.open_group(str(sample_store), mode="r")["utm30"]
    h, w = g.attrs["spatial:shape"]
    assert f"Size is {w}, {h}" in out.stdout
    assert "Driver: Zarr" in out.stdout


def test_gdal_values_equal_zarr(sample_store):
    ds = gdal.OpenEx(str(sample_store), gdal.OF_MULTIDIM_RASTER)
    arr = ds.GetRootGroup().OpenGroup("utm31").OpenMDArray("embeddings")
    dims = [d.GetName() for d in arr.GetDimensions()]
    assert dims[-2:] == ["y", "x"] and [d.GetSize() for d in arr.GetDimensions()][:2] == [2, 128]
    got = arr.ReadAsArray(array_start_idx=[1, 0, 100, 200], count=[1, 128, 40, 30])
    want = zarr.open_group(str(sample_store), mode="r")["utm31"]["embeddings"][1:2, :, 100:140, 200:230]
    np.testing.assert_array_equal(got, want)
    scl = ds.GetRootGroup().OpenGroup("utm31").OpenMDArray("scales")
    got_s = scl.ReadAsArray(array_start_idx=[0, 100, 200], count=[1, 40, 30])
    want_s = zarr.open_group(str(sample_store), mode="r")["utm31"]["scales"][0:1, 100:140, 200:230]
    np.testing.assert_array_equal(got_s, want_s)
