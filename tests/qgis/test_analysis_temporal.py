"""A TESSERA layer follows QGIS's Temporal Controller: rendered by QGIS's own map renderer with
the slider on a year, one layer shows that year, pixel for pixel what a layer of that year
shows with the same look; without a temporal range it shows its own year."""
from __future__ import annotations

import numpy as np
import pytest
from qgis.core import (Qgis, QgsCoordinateReferenceSystem, QgsDateTimeRange, QgsMapRendererSequentialJob,
                       QgsMapSettings, QgsRectangle)
from qgis.PyQt.QtCore import QDate, QDateTime, QSize, QTime, Qt
from qgis.PyQt.QtGui import QColor

from tessera_qgis.core.pca import PCA
from tessera_qgis.core.store import open_store
from tessera_qgis.layers import make_layer
from tessera_qgis.temporal import year_for, year_range

pytestmark = pytest.mark.usefixtures("provider_active")
RANGES = [(-2.5, 2.5), (-2.5, 2.5), (-2.5, 2.5)]
# around the block of cropland built over in 2025 (utm30), in the layer's CRS
AREA = QgsRectangle(-0.05, 52.2, -0.015, 52.225)


def render(layer, temporal: QgsDateTimeRange | None) -> np.ndarray:
    ms = QgsMapSettings()
    ms.setLayers([layer])
    ms.setDestinationCrs(QgsCoordinateReferenceSystem("EPSG:4326"))
    ms.setExtent(AREA)
    ms.setOutputSize(QSize(160, 120))
    ms.setBackgroundColor(QColor(0, 0, 0, 0))
    if temporal is not None:
        ms.setIsTemporal(True)
        ms.setTemporalRange(temporal)
    job = QgsMapRendererSequentialJob(ms)
    job.start()
    job.waitForFinished()
    img = job.renderedImage().convertToFormat(job.renderedImage().Format.Format_ARGB32)
    ptr = img.constBits()
    ptr.setsize(img.sizeInBytes())
    return np.frombuffer(ptr, dtype=np.uint8).reshape(img.height(), img.bytesPerLine())[:, :img.width() * 4].copy()


def test_the_layer_declares_the_store_years(sample_store):
    layer = make_layer(str(sample_store), 2024, bands=[1, 2, 3], stretch=RANGES)
    caps = layer.dataProvider().temporalCapabilities()
    assert caps.hasTemporalCapabilities()
    assert [r.begin().date().year() for r in caps.allAvailableTemporalRanges()] == [2024, 2025]
    assert caps.availableTemporalRange() == QgsDateTimeRange(year_range(2024).begin(), year_range(2025).end(),
                                                             True, False)
    props = layer.temporalProperties()
    assert props.isActive() and props.mode() == Qgis.RasterTemporalMode.TemporalRangeFromDataProvider


def test_the_slider_picks_the_year(sample_store):
    layer = make_layer(str(sample_store), 2024, bands=[1, 2, 3], stretch=RANGES)
    other = make_layer(str(sample_store), 2025, bands=[1, 2, 3], stretch=RANGES)
    own = render(layer, None)
    at_2024 = render(layer, year_range(2024))
    at_2025 = render(layer, year_range(2025))
    assert own[..., 3].any(), "the layer draws something"
    assert np.array_equal(at_2024, own)
    assert np.array_equal(at_2025, render(other, None)), "the 2025 slider shows the 2025 layer's pixels"
    assert not np.array_equal(at_2025, own), "and those differ from 2024 (the changed block)"
    # a month of 2025 is 2025; a year the store lacks draws nothing
    month = QgsDateTimeRange(QDateTime(QDate(2025, 6, 1), QTime(0, 0), Qt.TimeSpec.UTC),
                             QDateTime(QDate(2025, 7, 1), QTime(0, 0), Qt.TimeSpec.UTC), True, False)
    assert np.array_equal(render(layer, month), at_2025)
    assert not render(layer, year_range(2019))[..., 3].any()
    # dynamic temporal control off: the layer keeps its own year
    layer.temporalProperties().setIsActive(False)
    assert np.array_equal(render(layer, year_range(2025)), own)


def test_pca_colours_stay_those_of_the_layer(sample_store):
    """A PCA layer keeps its own basis and stretch in every year, so colours compare."""
    store = open_store(sample_store)
    pca = PCA.from_stretch(store.stretch(2024))
    ranges = list(zip(pca.lo.tolist(), pca.hi.tolist()))
    layer = make_layer(str(sample_store), 2024, pca="global", stretch=ranges)
    same_basis_2025 = make_layer(str(sample_store), 2025, pca=pca, stretch=ranges)
    assert np.array_equal(render(layer, year_range(2025)), render(same_basis_2025, None))


def test_year_for_ranges():
    years = [2017, 2018, 2024]
    assert year_for(QgsDateTimeRange(QDateTime(), QDateTime()), years, 2018) == 2018  # infinite: no filter
    assert year_for(year_range(2024), years, 2018) == 2024
    two = QgsDateTimeRange(year_range(2019).begin(), year_range(2024).end(), True, False)
    assert year_for(two, years, 2018) == 2024  # starts in a year the store lacks, overlaps 2024
    assert year_for(year_range(2020), years, 2018) is None
