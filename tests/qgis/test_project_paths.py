"""Projects that travel: a project and its folder store (a pack) moved together to another
place open with the layer valid and drawing what it drew before."""
from __future__ import annotations

import re
import shutil
import zipfile

import numpy as np
import pytest
from qgis.core import (Qgis, QgsCoordinateReferenceSystem, QgsMapRendererParallelJob, QgsMapSettings,
                       QgsPathResolver, QgsProject, QgsProviderRegistry, QgsReadWriteContext)
from qgis.PyQt.QtCore import QSize
from qgis.PyQt.QtGui import QColor, QImage

from tessera_qgis import provider as prov
from tessera_qgis.core.layerspec import LayerSpec
from tessera_qgis.core.pack import pack
from tessera_qgis.layers import make_layer

AREA = (-0.036, 52.178, 0.037, 52.222)


@pytest.fixture(autouse=True)
def fresh_provider_state():
    prov.register()
    prov.forget_stores()
    yield
    QgsProject.instance().clear()
    prov.forget_stores()
    prov.unregister()


def render(layer, size=(160, 120)) -> np.ndarray:
    ms = QgsMapSettings()
    ms.setLayers([layer])
    ms.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:3857"))
    ms.setOutputSize(QSize(*size))
    ms.setExtent(layer_extent_3857(layer))
    ms.setBackgroundColor(QColor(0, 0, 0, 0))
    job = QgsMapRendererParallelJob(ms)
    job.start()
    job.waitForFinished()
    assert not list(job.errors())
    img = job.renderedImage().convertToFormat(QImage.Format.Format_RGBA8888)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    return np.frombuffer(ptr, np.uint8).reshape(img.height(), img.bytesPerLine() // 4, 4)[:, :img.width()].copy()


def layer_extent_3857(layer):
    from qgis.core import QgsCoordinateTransform, QgsRectangle

    tr = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), QgsCoordinateReferenceSystem("EPSG:3857"),
                                QgsProject.instance())
    return tr.transformBoundingBox(QgsRectangle(AREA[0], AREA[1], AREA[2], AREA[3]))


def saved_sources(project_file) -> list[str]:
    with zipfile.ZipFile(project_file) as z:
        xml = z.read(next(n for n in z.namelist() if n.endswith(".qgs"))).decode()
    return re.findall(r"<datasource>([^<]*url=[^<]*)</datasource>", xml)


@pytest.fixture(scope="module")
def field_pack(sample_store, tmp_path_factory):
    """A pack of the sample's 5 x 5 km area (2024), made once."""
    out = tmp_path_factory.mktemp("fieldpack") / "area.zarr"
    pack(sample_store, AREA, [2024], out)
    return out


def test_a_project_and_its_pack_moved_together_open_and_draw_the_same(field_pack, tmp_path):
    kit = tmp_path / "kit"
    (kit / "data").mkdir(parents=True)
    shutil.copytree(field_pack, kit / "data" / "area.zarr")
    project = QgsProject.instance()
    project.clear()
    layer = make_layer(str(kit / "data" / "area.zarr"), 2024, pca="global", name="field pack")
    project.addMapLayer(layer)
    before = render(layer)
    drawn = before[..., 3] > 0
    assert drawn.mean() > 0.3, "the pack draws"
    assert project.write(str(kit / "field.qgz"))
    assert saved_sources(kit / "field.qgz") and all("url=./data/area.zarr&" in s
                                                     for s in saved_sources(kit / "field.qgz"))

    project.clear()
    prov.forget_stores()
    moved = tmp_path / "elsewhere" / "laptop-07"
    moved.parent.mkdir()
    shutil.move(str(kit), str(moved))
    assert project.read(str(moved / "field.qgz"))
    layers = project.mapLayersByName("field pack")
    assert len(layers) == 1 and layers[0].isValid()
    assert LayerSpec.from_uri(layers[0].source()).url == str(moved / "data" / "area.zarr")
    after = render(layers[0])
    assert np.array_equal(after[..., 3] > 0, drawn)
    assert np.array_equal(after[drawn], before[drawn])


def test_absolute_paths_stay_absolute_when_the_project_asks_for_them(field_pack, tmp_path):
    project = QgsProject.instance()
    project.clear()
    project.setFilePathStorage(Qgis.FilePathType.Absolute)
    try:
        project.addMapLayer(make_layer(str(field_pack), 2024, bands=[1, 2, 3], name="abs"))
        assert project.write(str(tmp_path / "abs.qgz"))
        assert all(f"url={field_pack}&" in s for s in saved_sources(tmp_path / "abs.qgz"))
    finally:
        project.setFilePathStorage(Qgis.FilePathType.Relative)


def test_remote_stores_and_other_items_are_left_as_they_are():
    meta = QgsProviderRegistry.instance().providerMetadata("tessera")
    ctx = QgsReadWriteContext()
    ctx.setPathResolver(QgsPathResolver("/home/me/kits/field.qgz"))
    remote = "url=http://127.0.0.1:9/tessera/v2-2B-L~beta1&year=2024&pca=global&crs=EPSG:32630"  # never fetched
    assert meta.absoluteToRelativeUri(remote, ctx) == remote
    assert meta.relativeToAbsoluteUri(remote, ctx) == remote
    local = "url=/home/me/kits/data/a.zarr&year=2024&pca=b64:eJx-_A==&crs=EPSG:32630&cache=/tmp/c"
    rel = meta.absoluteToRelativeUri(local, ctx)
    assert rel == "url=./data/a.zarr&year=2024&pca=b64:eJx-_A%3D%3D&crs=EPSG:32630&cache=/tmp/c"
    assert LayerSpec.from_uri(meta.relativeToAbsoluteUri(rel, ctx)) == LayerSpec.from_uri(local)
    assert meta.decodeUri(local)["path"] == "/home/me/kits/data/a.zarr"
    repointed = meta.encodeUri({**meta.decodeUri(local), "path": "/mnt/usb/a.zarr"})
    assert LayerSpec.from_uri(repointed).url == "/mnt/usb/a.zarr"
