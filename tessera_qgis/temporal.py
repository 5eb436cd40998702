"""TESSERA layers and QGIS's Temporal Controller: one layer shows the year the time slider
is on.

The provider declares temporal capabilities (each year of the store is the range from 1
January to the next 1 January), so QGIS makes the layer's temporal properties follow the
provider ("Dynamic temporal control", on by default for a new layer). While the Temporal
Controller animates or filters, QGIS hands each render the slider's range; the provider
draws the store year under it: the year holding the range's start, else the first year the
range overlaps, and nothing where the range holds no year of the store. Without a temporal
range (the controller off, or dynamic temporal control unticked) the layer shows its own year.

Other years use the layer's own look: the same bands, the same reference embedding, and the
same PCA basis and stretch (fitted on the layer's year first if needed), so colours compare
across years. Called from render threads: nothing here raises into QGIS (the provider
guards it) and nothing touches widgets.
"""
from __future__ import annotations

import threading

from qgis.core import QgsDateTimeRange, QgsRasterDataProviderTemporalCapabilities
from qgis.PyQt.QtCore import QDate, QDateTime, QTime, Qt

from .core.view import View


def year_range(year: int) -> QgsDateTimeRange:
    """1 January of `year` (included) to 1 January of the next year (excluded), UTC."""
    start = QDateTime(QDate(year, 1, 1), QTime(0, 0), Qt.TimeSpec.UTC)
    end = QDateTime(QDate(year + 1, 1, 1), QTime(0, 0), Qt.TimeSpec.UTC)
    return QgsDateTimeRange(start, end, True, False)


def declare(provider, years: list[int]) -> None:
    """Give a provider the temporal capabilities of `years` (the store's, or the layer's
    year while the store is not open yet)."""
    caps = provider.temporalCapabilities()
    if caps is None or not years:
        return
    years = sorted(set(int(y) for y in years))
    caps.setHasTemporalCapabilities(True)
    start = year_range(years[0]).begin()
    caps.setAvailableTemporalRange(QgsDateTimeRange(start, year_range(years[-1]).end(), True, False))
    caps.setAllAvailableTemporalRanges([year_range(y) for y in years])
    caps.setIntervalHandlingMethod(QgsRasterDataProviderTemporalCapabilities.IntervalHandlingMethod.FindClosestMatchToStartOfRange)


def year_for(requested: QgsDateTimeRange, years: list[int], default: int) -> int | None:
    """The store year a render's temporal range asks for: `default` without a range; the
    year holding the range's start; else the first year the range overlaps; else None."""
    if requested is None or requested.isInfinite() or (not requested.begin().isValid() and
                                                       not requested.end().isValid()):
        return default
    begin = requested.begin()
    if begin.isValid():
        y = begin.toUTC().date().year()
        if y in years:
            return y
    for y in sorted(years):
        if requested.overlaps(year_range(y)):
            return y
    return None


def requested_year(provider, years: list[int], default: int) -> int | None:
    """The year a provider (a render's clone) has been asked to draw."""
    caps = provider.temporalCapabilities()
    if caps is None or not caps.hasTemporalCapabilities():
        return default
    return year_for(caps.requestedTemporalRange(), years, default)


class YearViews:
    """Views of one layer spec in other years, made on first use, sharing the layer's look."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.views: dict[int, View] = {}

    def view(self, base: View, year: int, region: tuple | None, cancel=None) -> View:
        if year == base.spec.year:
            return base
        with self.lock:
            found = self.views.get(year)
        if found is not None:
            return found
        if base.spec.pca is not None and base.needs_fit:
            base.product(region, cancel)  # fit on the layer's own year, so every year shares it
        view = View(base.store, base.spec.with_(year=year))
        if base.pca is not None:
            view.set_pca(base.pca)
        with self.lock:
            return self.views.setdefault(year, view)

    def clear(self) -> None:
        with self.lock:
            self.views.clear()
