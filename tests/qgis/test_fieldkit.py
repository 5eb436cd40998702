"""The field kit in QGIS: the tessera:pack Processing algorithm (real QGIS, the sample over
local HTTP), and opening a pack from a folder as a connection."""
from __future__ import annotations

import numpy as np
import pytest
import zarr
from qgis.core import (QgsCoordinateReferenceSystem, QgsFeature, QgsGeometry, QgsProcessingException,
                       QgsProcessingFeedback, QgsRectangle, QgsVectorLayer)

from support.qgis_helpers import render_rgba
from tessera_qgis.fieldkit import describe_folder, folder_connection, pack_parameters
from tessera_qgis.layers import make_layer
from tessera_qgis.processing.pack import PackAlgorithm
from tessera_qgis.settings import custom_connections

pytestmark = pytest.mark.usefixtures("provider_active")
EXTENT = "-0.036,0.037,52.178,52.222 [EPSG:4326]"  # xmin,xmax,ymin,ymax: about 5 x 5 km, both zones


@pytest.fixture(scope="module")
def processing(qgis_processing):
    from qgis import processing as qgis_processing_module

    return qgis_processing_module


def test_the_algorithm_packs_an_extent_over_http(processing, sample_store, sample_http, tmp_path):
    out = tmp_path / "area.zarr"
    res = processing.run(PackAlgorithm(), {"STORE": sample_http.store_url, "EXTENT": EXTENT, "YEARS": "2025",
                                           "DEPTH": 0, "OUTPUT": str(out)})
    assert res["OUTPUT"] == str(out) and res["BYTES"] > 1e6
    src = zarr.open_group(str(sample_store), mode="r")
    got = zarr.open_group(str(out), mode="r")
    assert list(got["utm31"]["time"][...]) == [2025]
    np.testing.assert_array_equal(np.asarray(got["utm31"]["embeddings"][0, :, 100:180, 0:60]),
                                  np.asarray(src["utm31"]["embeddings"][1, :, 100:180, 0:60]))
    assert "a pack of utm30, utm31, years 2025" in describe_folder(out)


def test_depth_is_a_number_of_dimensions_and_the_plugin_draws_a_depth_16_pack(processing, v2_store, tmp_path):
    """DEPTH=16 (as in the analysis algorithms and --depth) keeps only embeddings_d16 and the
    scales; the plugin opens that pack and draws bands 1-3 exactly as from the source."""
    out = tmp_path / "d16.zarr"
    area = "-0.015,0.015,52.192,52.203 [EPSG:4326]"
    processing.run(PackAlgorithm(), {"STORE": str(v2_store), "EXTENT": area, "YEARS": "2025", "DEPTH": 16,
                                     "OUTPUT": str(out)})
    got = zarr.open_group(str(out), mode="r")
    assert got.attrs["geoemb:depths"] == [{"dimensions": 16, "array": "embeddings_d16"}]
    assert "embeddings_d16" in got["utm30"] and "embeddings" not in got["utm30"] and "embeddings_d4" not in got["utm30"]
    ranges = [(-2.5, 2.5)] * 3
    packed = make_layer(str(out), 2025, bands=[1, 2, 3], stretch=ranges)
    source = make_layer(str(v2_store), 2025, bands=[1, 2, 3], stretch=ranges)
    assert packed.isValid(), packed.error().summary()
    assert packed.crs().authid() == source.crs().authid() == "EPSG:32630"
    rect = QgsRectangle(704400, 5786800, 705600, 5787600)  # inside the area, on the 10 m grid
    a, b = render_rgba(packed, rect, 120, 80), render_rgba(source, rect, 120, 80)
    assert (a[..., 3] > 0).mean() > 0.5, "the pack draws"
    assert np.array_equal(a, b)


def test_estimate_only_writes_nothing(processing, sample_http, tmp_path):
    out = tmp_path / "est.zarr"
    res = processing.run(PackAlgorithm(), {"STORE": sample_http.store_url, "EXTENT": EXTENT, "YEARS": "2024,2025",
                                           "ESTIMATE_ONLY": True, "OUTPUT": str(out)})
    assert res["BYTES"] > 1e6 and res["SECONDS"] >= 0
    assert list(tmp_path.iterdir()) == []


def test_polygons_pack_the_area_around_each(processing, sample_store, tmp_path):
    polys = QgsVectorLayer("Polygon?crs=EPSG:4326", "polys", "memory")
    for wkt in ("POLYGON((-0.05 52.18,-0.045 52.18,-0.045 52.184,-0.05 52.18))",
                "POLYGON((0.04 52.21,0.045 52.21,0.045 52.214,0.04 52.214,0.04 52.21))"):
        f = QgsFeature()
        f.setGeometry(QgsGeometry.fromWkt(wkt))
        polys.dataProvider().addFeature(f)
    out = tmp_path / "two.zarr"
    processing.run(PackAlgorithm(), {"STORE": str(sample_store), "POLYGONS": polys, "YEARS": "2024",
                                     "OUTPUT": str(out)})
    got = zarr.open_group(str(out), mode="r")
    assert len(got.attrs["tessera:pack"]["areas"]) == 2
    scales = np.asarray(got["utm30"]["scales"][0])
    assert np.isfinite(scales).any(), "the western polygon's pixels are there"
    assert not np.isfinite(scales[:, 256:]).any(), "nothing between the two areas"


def test_bad_input_and_cancel_say_what_to_do(processing, sample_store, tmp_path):
    with pytest.raises(QgsProcessingException, match="single depth"):
        processing.run(PackAlgorithm(), {"STORE": str(sample_store), "EXTENT": EXTENT, "YEARS": "2024", "DEPTH": 4,
                                         "OUTPUT": str(tmp_path / "d.zarr")})
    with pytest.raises(QgsProcessingException, match="Years must be numbers"):
        processing.run(PackAlgorithm(), {"STORE": str(sample_store), "EXTENT": EXTENT, "YEARS": "last year",
                                         "OUTPUT": str(tmp_path / "y.zarr")})
    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run(PackAlgorithm(), {"STORE": str(sample_store), "EXTENT": EXTENT, "YEARS": "2024",
                                         "OUTPUT": str(tmp_path / "c.zarr")}, feedback=feedback)
    assert not (tmp_path / "c.zarr").exists()


def test_region_tool_parameters_and_a_folder_connection(sample_store, tmp_path, no_saved_connections):
    layer = make_layer(str(sample_store), 2025, bands=[1, 2, 3])
    params = pack_parameters(layer, QgsRectangle(-0.03, 52.19, 0.03, 52.21), QgsCoordinateReferenceSystem("EPSG:4326"))
    assert params == {"STORE": str(sample_store), "YEARS": "2025",
                      "EXTENT": "-0.03,0.03,52.19,52.21 [EPSG:4326]"}
    conn = folder_connection(sample_store)
    assert conn.url == str(sample_store) and conn in custom_connections()
    assert folder_connection(sample_store) == conn, "the same folder is not saved twice"
    assert describe_folder(sample_store) == "a folder store"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a Zarr store"):
        describe_folder(tmp_path / "empty")
