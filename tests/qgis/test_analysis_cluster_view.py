"""*Cluster this view*: k-means over what the map shows, in a task; the clusters (styled by
their palette) join the project and match the land cover; cancel leaves nothing."""
from __future__ import annotations

import numpy as np
from osgeo import gdal
from qgis.core import (QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsPalettedRasterRenderer, QgsPointXY,
                       QgsProject, QgsRectangle)

from support.analysis import ari, truth, valid_truth
from support.qgis_helpers import wait_for
from tessera_qgis.cluster_view import cluster_this_view
from tessera_qgis.layers import make_layer

import pytest

pytestmark = pytest.mark.usefixtures("provider_active")


def show(canvas, layer, lon, lat, width=5000.0) -> None:
    """The map (Web Mercator) centred on lon, lat, `width` map units wide, in the canvas's shape."""
    QgsProject.instance().addMapLayer(layer)
    canvas.setLayers([layer])
    canvas.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), canvas.mapSettings().destinationCrs(),
                                QgsProject.instance())
    c = tr.transform(QgsPointXY(lon, lat))
    size = canvas.mapSettings().outputSize()
    height = width * size.height() / max(size.width(), 1)
    canvas.setExtent(QgsRectangle(c.x() - width / 2, c.y() - height / 2, c.x() + width / 2, c.y() + height / 2))


def test_cluster_this_view(sample_store, qgis_canvas, qgis_iface, tmp_path):
    layer = make_layer(str(sample_store), 2024, pca="global", zone="utm31")
    show(qgis_canvas, layer, 0.028, 52.2)  # utm31 only (0 to 0.06 degrees east)
    task = cluster_this_view(qgis_iface, layer, folder=tmp_path)
    wait_for(task, 240)
    assert task.outcome == "done"
    added = [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("Clusters 2024")]
    assert len(added) == 1
    clusters = added[0]
    assert isinstance(clusters.renderer(), QgsPalettedRasterRenderer), "the style beside the file was loaded"
    path = clusters.source()
    got = gdal.Open(path).ReadAsArray()
    valid = valid_truth(sample_store, path, zone="utm31")
    assert ari(got[valid], truth(sample_store, path, zone="utm31")[valid]) >= 0.8
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len([n for n in names if n.endswith("_centroids.json")]) == 1
    # the region is what the map shows, on the zone's grid (10 m pixels)
    ext = qgis_canvas.extent()
    to_utm = QgsCoordinateTransform(qgis_canvas.mapSettings().destinationCrs(), QgsCoordinateReferenceSystem("EPSG:32631"),
                                    QgsProject.instance())
    box = to_utm.transformBoundingBox(ext)
    assert abs(got.shape[1] - box.width() / 10) <= 2 and abs(got.shape[0] - box.height() / 10) <= 2
    assert np.isin(np.unique(got), np.arange(0, 13)).all()


def test_cancel_and_bad_layers(sample_store, qgis_canvas, qgis_iface, tmp_path):
    layer = make_layer(str(sample_store), 2024, bands=[1, 2, 3])
    show(qgis_canvas, layer, 0.028, 52.2)
    task = cluster_this_view(qgis_iface, layer, folder=tmp_path)
    task.cancel()
    wait_for(task, 120)
    assert task.outcome == "cancelled" and list(tmp_path.iterdir()) == []
    assert not [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("Clusters")]
    show(qgis_canvas, layer, 10.0, 45.0)  # far from the store
    assert cluster_this_view(qgis_iface, layer, folder=tmp_path) is None
    assert cluster_this_view(qgis_iface, None, folder=tmp_path) is None


def test_the_style_dock_clusters_the_view(sample_store, qgis_canvas, qgis_iface, monkeypatch):
    """The dock's *Cluster this view* (PCA and bands modes, not similarity) starts the task
    for the selected layer; the clusters join the project."""
    from tessera_qgis import cluster_view, style_dock

    calls = []
    real = cluster_view.cluster_this_view

    def spy(iface, layer, **kw):
        calls.append(layer)
        return real(iface, layer, **kw)

    monkeypatch.setattr(style_dock, "cluster_this_view", spy)
    layer = make_layer(str(sample_store), 2024, pca="global", zone="utm31")
    show(qgis_canvas, layer, 0.028, 52.2)
    dock = style_dock.StyleDock(qgis_iface)
    dock.set_layer(layer)
    assert "cluster" in dock.visible_rows()
    dock.cluster_button.click()
    assert calls == [layer]
    wait_for(dock.cluster_task, 240)
    assert dock.cluster_task.outcome == "done"
    assert [lyr for lyr in QgsProject.instance().mapLayers().values() if lyr.name().startswith("Clusters 2024")]
    sim = make_layer(str(sample_store), 2024, similarity=np.ones(128), zone="utm31")
    dock.set_layer(sim)
    assert "cluster" not in dock.visible_rows()
