"""GeoTIFF export, checked with GDAL (values, CRS, transform, nodata, metadata, COG, cancel,
failures). The PCA itself: test_core_pca.py, which runs without GDAL."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from osgeo import gdal

from tessera_qgis.core.errors import BandError, Cancelled, ExportError, ExtentError, YearNotFound
from support.reference import is_cog, within
from tessera_qgis.core.export import ExportRequest, export

gdal.UseExceptions()
BOX = (-0.02, 52.19, 0.02, 52.21)  # spans utm30 and utm31


def _open(path):
    ds = gdal.Open(str(path))
    assert ds is not None
    return ds


def test_float32_export_native_zone_values_crs_nodata_metadata(store, ref, tmp_path):
    out = tmp_path / "emb.tif"
    box = (0.005, 52.195, 0.015, 52.2)  # inside utm31 only: native grid, no resampling
    paths = export(store, ExportRequest(box, "EPSG:4326", 2025, str(out), bands=[1, 5, 128], block=64))
    assert paths == [out]
    ds = _open(out)
    assert ds.RasterCount == 3 and ds.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert "32631" in ds.GetSpatialRef().GetAuthorityCode(None)
    gt = ds.GetGeoTransform()
    x0, y0 = ref["utm31"].attrs["spatial:transform"][2], ref["utm31"].attrs["spatial:transform"][5]
    col0, row0 = round((gt[0] - x0) / 10), round((y0 - gt[3]) / 10)
    assert gt[1] == 10 and gt[5] == -10 and (gt[0] - x0) % 10 == 0
    h, w = ds.RasterYSize, ds.RasterXSize
    s = ref["utm31"]["scales"][1, row0:row0 + h, col0:col0 + w]
    e = ref["utm31"]["embeddings"][1][[0, 4, 127], row0:row0 + h, col0:col0 + w]
    got = ds.ReadAsArray()
    valid = np.isfinite(s)
    np.testing.assert_array_equal(got[:, valid], e[:, valid].astype(np.float32) * s[valid])
    assert np.isnan(got[:, ~valid]).all()
    assert np.isnan(ds.GetRasterBand(1).GetNoDataValue())
    assert [ds.GetRasterBand(i).GetDescription() for i in (1, 2, 3)] == ["A001", "A005", "A128"]
    md = ds.GetMetadata()
    assert md["TESSERA_YEAR"] == "2025" and md["TESSERA_DATASET"] == "sample"
    assert md["TESSERA_MODEL"].startswith("synthetic") and md["TESSERA_STORE"] == str(store.url)
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("COMPRESSION") == "DEFLATE"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def _transform(ds) -> tuple:
    g = ds.GetGeoTransform()
    return (g[1], g[2], g[0], g[4], g[5], g[3])


def test_pca_export_one_file_per_zone_in_hand_computed_colours(store, zarr_reference, tmp_path):
    """A PCA export, one file per zone, read back with GDAL: each zone's native grid, and each
    pixel the colour of its source pixel by the store's global PCA and stretch, worked out by
    hand (support.reference), within 1; alpha 255 exactly where the pixel has data. (Exports in
    another CRS, pixel by pixel: test_positions.py.)"""
    per_zone = export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "z.tif"), kind="pca",
                                           per_zone=True))
    assert [p.name for p in per_zone] == ["z_utm30.tif", "z_utm31.tif"]
    for path, code, zone in zip(per_zone, ("32630", "32631"), ("utm30", "utm31")):
        ds = _open(path)
        assert ds.GetSpatialRef().GetAuthorityCode(None) == code
        assert ds.RasterCount == 4 and ds.GetRasterBand(4).GetColorInterpretation() == gdal.GCI_AlphaBand
        assert ds.GetMetadata()["TESSERA_PCA"] == "global"
        got = ds.ReadAsArray()
        want = zarr_reference(2024).pca_colours(f"EPSG:{code}", _transform(ds), ds.RasterXSize, ds.RasterYSize,
                                                zone=zone)
        assert want.decided.all() and want.valid.mean() > 0.5 and (~want.valid).any()
        assert (got[3] == np.where(want.valid, 255, 0)).all()
        assert within(got[:3], want.values, 1.0).all(), path.name


def test_quantised_export_writes_int8_and_scales(store, ref, tmp_path):
    box = (-0.015, 52.2, -0.005, 52.205)
    paths = export(store, ExportRequest(box, "EPSG:4326", 2024, str(tmp_path / "q.tif"), kind="int8", cog=True))
    assert [p.name for p in paths] == ["q.tif", "q_scales.tif"]
    q, s = _open(paths[0]), _open(paths[1])
    assert q.RasterCount == 128 and q.GetRasterBand(1).DataType == gdal.GDT_Int8
    assert s.GetRasterBand(1).DataType == gdal.GDT_Float32
    assert is_cog(paths[0]) and is_cog(paths[1]), "COGs (GDAL 3.13 says LAYOUT=COG of any tiled file)"
    gt = q.GetGeoTransform()
    x0, y0 = ref["utm30"].attrs["spatial:transform"][2], ref["utm30"].attrs["spatial:transform"][5]
    col0, row0 = round((gt[0] - x0) / 10), round((y0 - gt[3]) / 10)
    h, w = q.RasterYSize, q.RasterXSize
    np.testing.assert_array_equal(s.ReadAsArray(), ref["utm30"]["scales"][0, row0:row0 + h, col0:col0 + w])
    want = ref["utm30"]["embeddings"][0, :, row0:row0 + h, col0:col0 + w]
    valid = np.isfinite(ref["utm30"]["scales"][0, row0:row0 + h, col0:col0 + w])
    np.testing.assert_array_equal(q.ReadAsArray()[:, valid], want[:, valid])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.tif", "q_scales.tif"], "no temporary left"


def test_cancel_and_failure_leave_nothing_and_keep_the_old_file(store, tmp_path):
    out = tmp_path / "keep.tif"
    out.write_bytes(b"previous export")
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(out), block=32), cancel=cancel)
    assert out.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tif"]
    progress = []
    export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(out), bands=[3], block=128), progress=progress.append)
    assert progress[-1] == 1.0 and progress == sorted(progress)
    assert _open(out).RasterCount == 1


def test_export_input_errors(store, sample_store, tmp_path):
    with pytest.raises(YearNotFound):
        export(store, ExportRequest(BOX, "EPSG:4326", 2020, str(tmp_path / "a.tif")))
    with pytest.raises(BandError):
        export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "a.tif"), bands=[0]))
    with pytest.raises(ExtentError, match="does not intersect"):
        export(store, ExportRequest((10, 45, 10.1, 45.1), "EPSG:4326", 2024, str(tmp_path / "a.tif")))
    with pytest.raises(ExtentError, match="inverted"):
        export(store, ExportRequest((1, 52, 0, 53), "EPSG:4326", 2024, str(tmp_path / "a.tif")))
    with pytest.raises(ExportError, match="does not exist"):
        export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "no" / "a.tif")))
    with pytest.raises(ExportError, match="inside the store"):
        export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(Path(sample_store) / "x.tif")))
    with pytest.raises(ExportError, match="unknown export kind"):
        export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "a.tif"), kind="jpeg"))
    (tmp_path / "dir.tif").mkdir()
    with pytest.raises(ExportError, match="is a folder"):
        export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "dir.tif")))
    assert [p.name for p in tmp_path.iterdir()] == ["dir.tif"]


def test_pca_export_without_a_global_pca_fits_one(store, zarr_reference, tmp_path, monkeypatch):
    monkeypatch.setattr(type(store), "stretch", lambda self, year: None)
    out = export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "p.tif"), kind="pca"))[0]
    ds = _open(out)
    assert ds.GetMetadata()["TESSERA_PCA"] == "fit"
    alpha = ds.GetRasterBand(4).ReadAsArray()
    want = zarr_reference(2024).values("EPSG:" + ds.GetSpatialRef().GetAuthorityCode(None), _transform(ds),
                                       ds.RasterXSize, ds.RasterYSize, [1])
    assert (alpha == np.where(want.valid, 255, 0))[want.decided].all(), "opaque exactly where there is data"


def test_export_leaves_the_shared_memory_cache_alone(store, tmp_path):
    before = store.caches.chunks.bytes
    export(store, ExportRequest(BOX, "EPSG:4326", 2025, str(tmp_path / "x.tif"), bands=[1], block=64))
    assert store.caches.chunks.bytes == before
    ds = _open(tmp_path / "x.tif")
    assert ds.GetRasterBand(1).GetBlockSize() == [64, 64]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 2 MB tmpfs: exports into it run out of space. The tests run as root in a private
    mount namespace (the test environment), where mounting is allowed (tests using it are
    marked `mounts`)."""
    import subprocess

    disk = tmp_path / "tiny"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], check=True)
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.mounts
def test_a_full_disk_fails_clearly_and_leaves_nothing(store, tiny_disk):
    (tiny_disk / "old.tif").write_bytes(b"keep")
    req = ExportRequest((-0.06, 52.17, 0.0, 52.23), "EPSG:4326", 2024, str(tiny_disk / "old.tif"),
                        compress="NONE")
    with pytest.raises(ExportError, match="(?i)no space left|disk|write"):
        export(store, req)
    assert sorted(p.name for p in tiny_disk.iterdir()) == ["old.tif"]
    assert (tiny_disk / "old.tif").read_bytes() == b"keep", "the existing output is kept"


def test_continent_sized_exports_are_refused_before_anything_is_written(store, tmp_path):
    req = ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "big.tif"), max_pixels=1000)
    with pytest.raises(ExtentError, match="more than the limit"):
        export(store, req)
    assert not list(tmp_path.iterdir())


def test_two_exports_to_the_same_path_at_once(store, tmp_path):
    import threading

    out = tmp_path / "same.tif"
    errors = []

    def run(bands):
        try:
            export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(out), bands=bands, block=64))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=([b],)) for b in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ds = gdal.Open(str(out))
    assert ds.RasterCount == 1 and ds.GetRasterBand(1).GetDescription() in ("A001", "A002")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.tif"], "one complete file, no temporaries"


@pytest.mark.mounts
def test_an_unwritable_folder_is_refused_before_anything_is_written(store, tmp_path):
    """Root ignores permission bits, so the folder is a read-only file system (a tmpfs mounted
    read-only in the test environment's private mount namespace)."""
    import subprocess

    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], check=True)
    try:
        for out in ("x.tif", "x.vrt"):
            with pytest.raises(ExportError, match="cannot write to .*ro"):
                export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(ro / out), bands=[1]))
        assert list(ro.iterdir()) == []
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_cog_export_has_nearest_overviews_built_band_by_band(store, tmp_path):
    """The overviews are built in the intermediate file (bounded memory whatever the region's
    size; `make bench`-style figures in the README) and copied into the COG: sampled, never
    blended, so every overview value is a value of the full resolution band."""
    out, = export(store, ExportRequest(BOX, "EPSG:4326", 2024, str(tmp_path / "c.tif"), bands=[1, 2, 3, 4, 5],
                                       cog=True, block=64))
    ds = _open(out)
    assert is_cog(out)
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("INTERLEAVE") == "BAND"
    band = ds.GetRasterBand(2)
    assert band.GetOverviewCount() >= 2
    full = band.ReadAsArray()
    for i in range(band.GetOverviewCount()):
        ovr = band.GetOverview(i).ReadAsArray()
        vals = ovr[np.isfinite(ovr)]
        assert vals.size and np.isin(vals, full[np.isfinite(full)]).all(), f"overview {i} blends values"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tif"]
