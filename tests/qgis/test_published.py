"""The published layouts in QGIS (#13): the global preview when zoomed out (said in the
legend, the tooltip and once in the message bar; nothing under embeddings or scales read),
depth-4 views, the dialog's depths, invalid scales identified as nodata, and observation counts in
the pixel inspector."""
from __future__ import annotations

import json

import numpy as np
import pytest
import zarr
from osgeo import gdal
from qgis.core import (Qgis, QgsApplication, QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPointXY,
                       QgsProject, QgsRectangle)
from qgis.PyQt.QtWidgets import QApplication

from support.qgis_helpers import render_rgba, wait_for
from support.reference import valid_pixel_lonlat
from support.servers import RangeHTTPServer, arrays_read
from support.stores import invalid_scale_pixels, pixel_where
from tessera_qgis import provider as prov
from tessera_qgis.inspector import InspectorDock
from tessera_qgis.layers import FrameLabels, make_layer
from tessera_qgis.log import notifier
from tessera_qgis.tools import InspectorController


@pytest.fixture(autouse=True)
def fresh_provider_state():
    prov.register()
    prov.forget_stores()
    yield
    QgsProject.instance().removeAllMapLayers()
    prov.forget_stores()
    prov.unregister()


@pytest.fixture
def v2_http(v2_store):
    srv = RangeHTTPServer(v2_store.parent).start()
    srv.store_url = f"{srv.url}/{v2_store.name}"
    yield srv
    srv.stop()


def test_zoomed_out_the_layer_draws_the_global_preview_and_says_so(v2_http, qgis_iface):
    messages = []
    notifier.message.connect(lambda title, text, level: messages.append(text))
    labels = FrameLabels()
    try:
        layer = make_layer(v2_http.store_url, 2025, bands=[1, 2, 3], budget=1000)
        QgsProject.instance().addMapLayer(layer)
        prov.forget_stores()
        v2_http.reset()
        ext = layer.extent()
        img = render_rgba(layer, ext, 300, 300)
        assert (img[..., 3] > 0).mean() > 0.2, "a picture, not a blank map"
        assert arrays_read(v2_http) == {"rgb"}, arrays_read(v2_http)
        QgsApplication.processEvents()
        assert sum("preview (2025)" in m for m in messages) == 1, messages
        assert "preview (2025)" in layer.metadata().abstract()
        assert "preview (2025)" in layer.dataProvider().generateBandName(1)
        # zoomed in (20 x 20 source pixels, under the budget): the embeddings, and the labels go
        c = ext.center()
        render_rgba(layer, QgsRectangle(c.x() - 100, c.y() - 100, c.x() + 100, c.y() + 100), 20, 20)
        QgsApplication.processEvents()
        assert layer.metadata().abstract() == "" and "preview" not in layer.dataProvider().generateBandName(1)
        assert "embeddings_d4" in arrays_read(v2_http), "bands 1-3 come from the depth-4 array"
    finally:
        labels.close()


def test_a_depth_4_pca_layer_reads_only_the_depth_4_array(v2_http):
    layer = make_layer(v2_http.store_url, 2025, pca="view", depth=4)
    assert "d4" in layer.name() and "depth=4" in layer.source()
    prov.forget_stores()
    v2_http.reset()
    img = render_rgba(layer, layer.extent(), 300, 300)
    assert (img[..., 3] > 0).mean() > 0.2
    assert arrays_read(v2_http) <= {"embeddings_d4", "scales"}, arrays_read(v2_http)


def test_identify_says_nodata_where_a_scale_is_out_of_range(v1_store):
    layer = make_layer(str(v1_store), 2025, bands=[1, 2, 3])
    bad = [b for b in invalid_scale_pixels(v1_store) if b["year"] == 2025]
    assert bad
    to_layer = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), layer.crs(), QgsProject.instance())
    for b in bad:
        pt = to_layer.transform(QgsPointXY(b["lon"], b["lat"]))
        res = layer.dataProvider().identify(pt, Qgis.RasterIdentifyFormat.Value).results()
        assert all(v is None for v in res.values()), (b, res)


def test_the_dialog_shows_the_depths_and_offers_them(v2_store, v1_store, qgis_iface):
    from tessera_qgis.core.connections import Connection
    from tessera_qgis.dialog import TesseraSourceWidget
    from tessera_qgis.settings import save_custom_connections

    save_custom_connections([Connection("v2 here", str(v2_store)), Connection("v1 here", str(v1_store))])
    try:
        w = TesseraSourceWidget(iface=qgis_iface)
        for name, depths in (("v2 here", [None, 16, 4]), ("v1 here", [None])):
            w.connections.setCurrentIndex(w.connections.findText(name))
            w.connect_store()
            for _ in range(400):
                QgsApplication.processEvents()
                if w.store is not None and w.task is None or getattr(w.task, "outcome", None):
                    break
                QgsApplication.instance().thread().msleep(25)
            assert w.store is not None
            assert [w.depth.itemData(i) for i in range(w.depth.count())] == depths
            assert w.depth.isEnabled() == (len(depths) > 1)
            assert "Depths" in w.info.toPlainText()
            assert w.colours.isEnabled() and [w.colours.itemData(i) for i in range(3)] == [None, "cdf", "zone"]
        # bands 1-3 equalised by the store's CDF: the layer says so in its source
        w.connections.setCurrentIndex(w.connections.findText("v2 here"))
        w.connect_store()
        wait_for(w.task)
        w.mode.setCurrentIndex(w.mode.findData("rgb"))
        w.colours.setCurrentIndex(w.colours.findData("cdf"))
        w.addButtonClicked()
        wait_for(w.add_task)
        assert "stretch=cdf" in w.last_layer.source() and w.last_layer.isValid()
    finally:
        save_custom_connections([])


def test_the_style_dock_says_a_v2_layer_starts_from_the_stores_range(v2_store, qgis_iface):
    import json

    from tessera_qgis.style_dock import StyleDock

    layer = make_layer(str(v2_store), 2025, bands=[1, 2, 3])
    entry = json.loads((v2_store / "zarr.json").read_text())["attributes"]["geoemb:stretch"]["2025"]
    red = layer.renderer().redContrastEnhancement()
    assert (red.minimumValue(), red.maximumValue()) == pytest.approx((entry["min"][0], entry["max"][0]), rel=1e-6)
    dock = StyleDock(qgis_iface)
    dock.set_layer(layer)
    assert dock.stretch.currentData() == "store"
    assert (dock.lo.value(), dock.hi.value()) == pytest.approx((entry["min"][0], entry["max"][0]), abs=1e-3)
    other = make_layer(str(v2_store), 2025, bands=[5, 6, 7])  # no published range for these
    dock.set_layer(other)
    assert dock.stretch.currentData() == "view"


def test_the_pixel_inspector_shows_the_observation_counts(dclimate_store, qgis_iface, qgis_canvas):
    """v1.1-dclimate: a clicked pixel's observation counts (zarr-python's values) in its row,
    its tooltip and the CSV; a store without them shows none."""
    g = zarr.open_group(str(dclimate_store), mode="r")["utm31"]
    ti, r, c, lon, lat = valid_pixel_lonlat(g, 2024, nth=3)
    counts = [int(g[n][ti, r, c]) for n in ("s1_asc_obs_count", "s1_desc_obs_count", "s2_obs_count")]
    layer = make_layer(str(dclimate_store), 2024, bands=[1, 2, 3])
    QgsProject.instance().addMapLayer(layer)
    qgis_canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    qgis_iface.setActiveLayer(layer)
    dock = InspectorDock()
    ctl = InspectorController(qgis_iface, dock)
    ctl.start(QgsPointXY(lon, lat))
    wait_for(ctl.last_task)
    assert len(dock.clicks) == 1 and (dock.clicks[0]["row"], dock.clicks[0]["col"]) == (r, c)
    want = "S1 asc {}, S1 desc {}, S2 {}".format(*counts)
    assert want in dock.list.item(0).text() and want in dock.list.item(0).toolTip(), dock.list.item(0).text()
    dock.copy_csv.click()
    head, row = (line.split(",") for line in QApplication.clipboard().text().splitlines())
    assert head[-3:] == ["s1_asc_obs_count", "s1_desc_obs_count", "s2_obs_count"]
    assert row[-3:] == [str(n) for n in counts] and len(row) == 9 + 128 + 3
    dock.add(dict(dock.clicks[0], observations=None))  # a store without counts: nothing said
    assert "observed" not in dock.list.item(1).text()


def test_the_pixel_inspector_says_why_a_pixel_is_nodata(v1_store, qgis_iface, qgis_canvas):
    """Clicks on v1 pixels picked by their raw scales (zarr-python): out of range, +inf, NaN;
    each row and tooltip says why there is no embedding, and the vector stays empty."""
    bad = invalid_scale_pixels(v1_store)[0]
    picks = [(bad, "no data: scale out of range"),
             (pixel_where(v1_store, bad["year"], np.isposinf), "no data: not embedded"),
             (pixel_where(v1_store, bad["year"], np.isnan), "no data: water or no source data")]
    layer = make_layer(str(v1_store), bad["year"], bands=[1, 2, 3])
    QgsProject.instance().addMapLayer(layer)
    qgis_canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    qgis_iface.setActiveLayer(layer)
    dock = InspectorDock()
    ctl = InspectorController(qgis_iface, dock)
    for i, (b, text) in enumerate(picks):
        ctl.start(QgsPointXY(b["lon"], b["lat"]))
        wait_for(ctl.last_task)
        c = dock.clicks[i]
        assert (c["row"], c["col"], c["valid"], c["embedding"]) == (b["row"], b["col"], False, None)
        item = dock.list.item(i)
        assert text in item.text() and text in item.toolTip(), (item.text(), item.toolTip())
    dock.copy_csv.click()
    head, *rows = (line.split(",") for line in QApplication.clipboard().text().splitlines())
    col = head.index("nodata")
    assert [r[col] for r in rows] == ["invalid scale", "not embedded", "no data"]
    assert all(r[head.index("A001")] == "" and r[head.index("valid")] == "false" for r in rows)


def test_processing_exports_read_only_the_depth_they_need(processing, v2_http, v2_store, tmp_path):
    """tessera:export over HTTP: bands 1-3 from embeddings_d4 (values against zarr-python on
    the zone grid), a PCA at DEPTH 4 from embeddings_d4 too (request log)."""
    g = zarr.open_group(str(v2_store), mode="r")["utm31"]
    ti = list(g["time"][:]).index(2025)
    x0, y0 = g.attrs["spatial:transform"][2], g.attrs["spatial:transform"][5]
    r0, c0, n = 40, 60, 64  # east of the meridian: only utm31 has data
    extent = f"{x0 + 10 * c0 + 1},{x0 + 10 * (c0 + n) - 1},{y0 - 10 * (r0 + n) + 1},{y0 - 10 * r0 - 1} [EPSG:32631]"
    v2_http.reset()
    res = processing.run("tessera:export", {"STORE": v2_http.store_url, "YEAR": 2025, "EXTENT": extent, "KIND": 0,
                                            "BANDS": "1,2,3", "OUTPUT": str(tmp_path / "b.tif")})
    assert arrays_read(v2_http) - {"time"} == {"embeddings_d4", "scales"}, arrays_read(v2_http)
    got = gdal.Open(res["OUTPUT"]).ReadAsArray()
    s = np.asarray(g["scales"][ti, r0:r0 + n, c0:c0 + n]).astype(np.float32)
    valid = np.isfinite(s) & (s > 0) & (s < 1)
    want = np.asarray(g["embeddings"][ti, :3, r0:r0 + n, c0:c0 + n]).astype(np.float32) * np.where(valid, s, 0)
    assert got.shape == (3, n, n) and valid.sum() > 100
    np.testing.assert_allclose(got[:, valid], want[:, valid], rtol=1e-6)
    assert np.isnan(got[:, ~valid]).all()
    v2_http.reset()
    res = processing.run("tessera:export", {"STORE": v2_http.store_url, "YEAR": 2025, "EXTENT": extent, "KIND": 1,
                                            "DEPTH": 4, "OUTPUT": str(tmp_path / "p.tif")})
    assert arrays_read(v2_http) - {"time"} == {"embeddings_d4", "scales"}, arrays_read(v2_http)
    ds = gdal.Open(res["OUTPUT"])
    basis = json.loads(ds.GetMetadataItem("TESSERA_PCA_BASIS"))
    assert ds.GetMetadataItem("TESSERA_PCA") == "fit" and len(basis["pca_mean"]) == 4
    assert np.array(basis["pca_components"]).shape == (3, 4)
    # the first component of each valid pixel, from zarr's first four dimensions, orders the
    # pixels as the red channel does (the stretch is monotonic)
    v = (np.asarray(g["embeddings"][ti, :4, r0:r0 + n, c0:c0 + n]).astype(np.float64) * s)[:, valid]
    pc1 = np.array(basis["pca_components"])[0] @ (v - np.array(basis["pca_mean"])[:, None])
    red = ds.GetRasterBand(1).ReadAsArray()[valid].astype(np.float64)
    assert (ds.GetRasterBand(4).ReadAsArray()[valid] == 255).all()
    assert np.corrcoef(np.argsort(np.argsort(pc1)), np.argsort(np.argsort(red)))[0, 1] > 0.95
