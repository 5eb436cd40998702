"""The pixel inspector dock: each clicked pixel's 128 values, kept for comparison.

A plot (band numbers on x, values on y, a zero line, a legend per pixel, the values under
the mouse in a tooltip), a per-band table to select and copy from, one short row per pixel
(with its observation counts where the store has them: v1.1-dclimate), and the whole as CSV
or JSON.
"""
from __future__ import annotations

import json
import math

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QCoreApplication, QPointF, QRectF, Qt
from qgis.PyQt.QtGui import QColor, QFontMetrics, QKeySequence, QPainter, QPen, QPolygonF
from qgis.PyQt.QtWidgets import (QAbstractItemView, QApplication, QHBoxLayout, QListWidget, QPushButton,
                                 QTableWidget, QTableWidgetItem, QTabWidget, QToolTip, QVBoxLayout, QWidget)

from .core.quant import INVALID, NO_DATA, NOT_EMBEDDED, OUTSIDE

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
MAX_KEPT = 8
X_TICKS = (1, 16, 32, 48, 64, 80, 96, 112, 128)


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraInspector", text)


# Per-pixel observation counts (v1.1-dclimate) by their short names in the dock.
OBSERVATION_NAMES = {"s1_asc_obs_count": "S1 asc", "s1_desc_obs_count": "S1 desc", "s2_obs_count": "S2"}


def observed(c: dict) -> str:
    """A pixel's observation counts, "S1 asc 35, S1 desc 30, S2 11" ("" where the store has
    none; "-" for a count outside its array)."""
    obs = c.get("observations") or {}
    return ", ".join(f"{OBSERVATION_NAMES.get(k, k)} {'-' if n is None else n}" for k, n in obs.items())


def as_csv(clicks: list[dict]) -> str:
    """The clicks as CSV: one row each; `nodata` says why a pixel has no embedding, as the
    JSON does ("not embedded", "no data", "invalid scale", "outside"; empty where valid)."""
    counts = list(dict.fromkeys(k for c in clicks for k in (c.get("observations") or {})))
    head = ["lon", "lat", "year", "zone", "row", "col", "valid", "nodata", "scale"] + \
        [f"A{i:03d}" for i in range(1, 129)]
    lines = [",".join(head + counts)]
    for c in clicks:
        emb = c.get("embedding") or [""] * 128
        row = [f"{c['lon']:.6f}", f"{c['lat']:.6f}", str(c["year"]), str(c.get("zone") or ""),
               str(c.get("row") if c.get("row") is not None else ""),
               str(c.get("col") if c.get("col") is not None else ""), str(bool(c["valid"])).lower(),
               "" if c["valid"] else str(c.get("nodata") or ""),
               "" if c.get("scale") is None else f"{c['scale']:.8g}"]
        row += [v if v == "" else f"{v:.6g}" for v in emb]
        obs = c.get("observations") or {}
        row += ["" if obs.get(k) is None else str(obs[k]) for k in counts]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def as_json(clicks: list[dict]) -> str:
    return json.dumps(clicks, indent=1)


def axis(lo: float, hi: float, count: int = 6) -> tuple[float, float, float]:
    """An axis over lo..hi: (start, end, step), round numbers (the step 1, 2 or 5 times a
    power of ten, about `count` ticks), start <= lo and end >= hi."""
    span = hi - lo if hi - lo > 0 and math.isfinite(hi - lo) else 1.0
    raw = span / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    return math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step, step


def ticks(start: float, end: float, step: float) -> list[float]:
    return [round(start + i * step, 10) for i in range(int(round((end - start) / step)) + 1)]


def pixel_label(i: int, c: dict) -> str:
    """A pixel's short name, as in the legend, the table and the list: "#1 2024"."""
    return f"#{i + 1} {c['year']}"


class VectorPlot(QWidget):
    """The embeddings as lines over band number (1 to 128); the newest is drawn on top."""

    LEFT, RIGHT, TOP, BOTTOM = 46, 16, 8, 40

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.vectors: list[list[float]] = []
        self.labels: list[str] = []
        self.last_tooltip = ""
        self.setMinimumHeight(200)
        self.setMouseTracking(True)

    def set_vectors(self, vectors: list[list[float]], labels: list[str] | None = None) -> None:
        self.vectors = vectors
        self.labels = labels or [f"#{i + 1}" for i in range(len(vectors))]
        self.update()

    # -- geometry ------------------------------------------------------------------------------
    def value_range(self) -> tuple[float, float]:
        """The y axis: every value and zero, widened to round ticks."""
        start, end, _step = self.y_axis()
        return start, end

    def y_axis(self) -> tuple[float, float, float]:
        valid = [x for v in self.vectors if v for x in v if x is not None and math.isfinite(x)]
        lo, hi = min(valid + [0.0]), max(valid + [0.0])
        if hi - lo < 1e-12:
            lo, hi = lo - 1.0, hi + 1.0
        return axis(lo, hi)

    def legend_height(self) -> int:
        return (QFontMetrics(self.font()).height() + 4) * self._legend_lines()

    def _legend_entries(self) -> list[tuple[int, str, float]]:
        """(pixel, text, width) of each legend entry."""
        fm = QFontMetrics(self.font())
        return [(i, text, 22 + fm.horizontalAdvance(text) + 12) for i, text in enumerate(self.labels)
                if i < len(self.vectors) and self.vectors[i]]

    def _legend_lines(self) -> int:
        lines, x = 1, self.LEFT
        for _i, _text, w in self._legend_entries():
            if x + w > self.width() - self.RIGHT and x > self.LEFT:
                lines, x = lines + 1, self.LEFT
            x += w
        return lines if self._legend_entries() else 0

    def plot_rect(self) -> QRectF:
        top = self.TOP + self.legend_height()
        return QRectF(self.LEFT, top, max(1, self.width() - self.LEFT - self.RIGHT),
                      max(1, self.height() - top - self.BOTTOM))

    def x_of(self, band: float) -> float:
        r = self.plot_rect()
        return r.left() + (band - 1) / 127.0 * r.width()

    def y_of(self, value: float) -> float:
        r = self.plot_rect()
        lo, hi = self.value_range()
        return r.bottom() - (value - lo) / (hi - lo) * r.height()

    def band_at(self, x: float) -> int | None:
        r = self.plot_rect()
        if not (r.left() - 4 <= x <= r.right() + 4):
            return None
        return int(min(128, max(1, round(1 + (x - r.left()) / r.width() * 127))))

    def tooltip_at(self, pos: QPointF) -> str:
        """"band 37 (A037)" and each pixel's value there; empty outside the plot."""
        band = self.band_at(pos.x())
        if band is None or not any(self.vectors):
            return ""
        lines = [tr("band {} (A{:03d})").format(band, band)]
        for label, v in zip(self.labels, self.vectors):
            if v:
                lines.append(f"{label}: {v[band - 1]:.4f}")
        return "\n".join(lines)

    # -- events --------------------------------------------------------------------------------
    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position() if hasattr(event, "position") else QPointF(event.pos())
        self.last_tooltip = self.tooltip_at(pos)
        if self.last_tooltip:
            QToolTip.showText(event.globalPos() if hasattr(event, "globalPos") else
                              event.globalPosition().toPoint(), self.last_tooltip, self)
        else:
            QToolTip.hideText()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        if not any(self.vectors):
            p.setPen(QColor("grey"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, tr("Click a pixel with the inspector tool"))
            p.end()
            return
        self._draw_axes(p)
        r = self.plot_rect()
        p.setClipRect(r.adjusted(-1, -1, 1, 1))
        for i, v in enumerate(self.vectors):
            if not v:
                continue
            poly = QPolygonF([QPointF(self.x_of(j + 1), self.y_of(x)) for j, x in enumerate(v)])
            p.setPen(QPen(QColor(COLOURS[i % len(COLOURS)]), 2 if i == len(self.vectors) - 1 else 1))
            p.drawPolyline(poly)
        p.setClipping(False)
        self._draw_legend(p)
        p.end()

    def _draw_axes(self, p: QPainter) -> None:
        r = self.plot_rect()
        fm = QFontMetrics(self.font())
        for value in ticks(*self.y_axis()):
            y = self.y_of(value)
            p.setPen(QPen(QColor("#e6e6e6"), 1))
            p.drawLine(QPointF(r.left(), y), QPointF(r.right(), y))
            p.setPen(QColor("#444444"))
            text = f"{value:g}"
            p.drawText(QRectF(0, y - fm.height() / 2, self.LEFT - 6, fm.height()),
                       int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter), text)
        p.setPen(QPen(QColor("#555555"), 1, Qt.PenStyle.DashLine))  # the zero line
        p.drawLine(QPointF(r.left(), self.y_of(0.0)), QPointF(r.right(), self.y_of(0.0)))
        p.setPen(QPen(QColor("#444444"), 1))
        p.drawLine(QPointF(r.left(), r.bottom()), QPointF(r.right(), r.bottom()))
        p.drawLine(QPointF(r.left(), r.top()), QPointF(r.left(), r.bottom()))
        for band in X_TICKS:
            x = self.x_of(band)
            p.drawLine(QPointF(x, r.bottom()), QPointF(x, r.bottom() + 4))
            p.drawText(QRectF(x - 20, r.bottom() + 4, 40, fm.height()), int(Qt.AlignmentFlag.AlignHCenter), str(band))
        p.drawText(QRectF(r.left(), r.bottom() + 4 + fm.height(), r.width(), fm.height()),
                   int(Qt.AlignmentFlag.AlignHCenter), tr("band"))

    def _draw_legend(self, p: QPainter) -> None:
        fm = QFontMetrics(self.font())
        line = fm.height() + 4
        x, y = float(self.LEFT), float(self.TOP)
        for i, text, w in self._legend_entries():
            if x + w > self.width() - self.RIGHT and x > self.LEFT:
                x, y = float(self.LEFT), y + line
            p.setPen(QPen(QColor(COLOURS[i % len(COLOURS)]), 3))
            p.drawLine(QPointF(x, y + line / 2), QPointF(x + 16, y + line / 2))
            p.setPen(QColor("#222222"))
            p.drawText(QRectF(x + 22, y, w - 22, line), int(Qt.AlignmentFlag.AlignVCenter), text)
            x += w


class BandTable(QTableWidget):
    """One row per band, one column per pixel; select cells and copy (Ctrl+C) as tab-separated
    text with the band and pixel names."""

    def __init__(self, parent=None) -> None:
        super().__init__(128, 0, parent)
        self.setVerticalHeaderLabels([f"A{b:03d}" for b in range(1, 129)])
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)

    def set_pixels(self, labels: list[str], vectors: list[list[float]]) -> None:
        self.setColumnCount(len(labels))
        self.setHorizontalHeaderLabels(labels)
        for col, (label, v) in enumerate(zip(labels, vectors)):
            self.horizontalHeaderItem(col).setForeground(QColor(COLOURS[col % len(COLOURS)]))
            for band in range(128):
                item = QTableWidgetItem(f"{v[band]:.6g}" if v else "")
                item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
                self.setItem(band, col, item)

    def selection_text(self) -> str:
        """The selected cells (all of them when none is selected) as TSV with headers."""
        cells = self.selectedIndexes() or [self.model().index(r, c) for r in range(self.rowCount())
                                           for c in range(self.columnCount())]
        rows = sorted({i.row() for i in cells})
        cols = sorted({i.column() for i in cells})
        lines = ["band\t" + "\t".join(self.horizontalHeaderItem(c).text() for c in cols)]
        for r in rows:
            values = [self.item(r, c).text() if self.item(r, c) else "" for c in cols]
            lines.append(self.verticalHeaderItem(r).text() + "\t" + "\t".join(values))
        return "\n".join(lines) + "\n"

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.matches(QKeySequence.StandardKey.Copy):
            QApplication.clipboard().setText(self.selection_text())
            return
        super().keyPressEvent(event)


class InspectorDock(QgsDockWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(tr("TESSERA pixel inspector"), parent)
        self.setObjectName("TesseraInspectorDock")
        self.clicks: list[dict] = []
        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.tabs = QTabWidget(body)
        self.plot = VectorPlot(self.tabs)
        self.table = BandTable(self.tabs)
        self.tabs.addTab(self.plot, tr("Plot"))
        self.tabs.addTab(self.table, tr("Table"))
        self.list = QListWidget(body)
        self.list.setMaximumHeight(110)
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        buttons = QHBoxLayout()
        self.copy_csv = QPushButton(tr("Copy CSV"), body)
        self.copy_json = QPushButton(tr("Copy JSON"), body)
        self.copy_table = QPushButton(tr("Copy table"), body)
        self.clear_button = QPushButton(tr("Clear"), body)
        for b in (self.copy_csv, self.copy_json, self.copy_table, self.clear_button):
            buttons.addWidget(b)
        layout.addWidget(self.tabs, 1)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.setWidget(body)
        self.copy_csv.clicked.connect(lambda: QApplication.clipboard().setText(as_csv(self.clicks)))
        self.copy_json.clicked.connect(lambda: QApplication.clipboard().setText(as_json(self.clicks)))
        self.copy_table.clicked.connect(lambda: QApplication.clipboard().setText(self.table.selection_text()))
        self.clear_button.clicked.connect(self.clear)

    def add(self, px: dict) -> None:
        """A looked-up pixel (core `pixel()` result plus lon, lat)."""
        self.clicks.append(px)
        self.clicks = self.clicks[-MAX_KEPT:]
        self.refresh()

    def clear(self) -> None:
        self.clicks = []
        self.refresh()

    @staticmethod
    def nodata_text(c: dict) -> str:
        """"no data", with why when the lookup said (core.quant.nodata_reason)."""
        why = {NOT_EMBEDDED: tr("no data: not embedded"), NO_DATA: tr("no data: water or no source data"),
               INVALID: tr("no data: scale out of range"), OUTSIDE: tr("no data: outside the store")}
        return why.get(c.get("nodata"), tr("no data"))

    @staticmethod
    def row_text(i: int, c: dict) -> str:
        """A short row, the pixel's name first: "#1 2024  -0.0300, 52.2000  utm30" (the rest
        in its tooltip)."""
        where = c["zone"] if c.get("valid") else InspectorDock.nodata_text(c)
        text = f"{pixel_label(i, c)}  {c['lon']:.4f}, {c['lat']:.4f}  {where}"
        counts = observed(c)
        return text + "  " + tr("observed: {}").format(counts) if counts else text

    @staticmethod
    def row_tooltip(c: dict) -> str:
        where = tr("{} row {} col {}").format(c["zone"], c["row"], c["col"]) if c.get("valid") else \
            InspectorDock.nodata_text(c)
        text = f"{c['lon']:.6f}, {c['lat']:.6f}  {c['year']}  {where}"
        counts = observed(c)
        if counts:
            text += "\n" + tr("Observations that fed this embedding: {}").format(counts)
        return text

    def refresh(self) -> None:
        self.list.clear()
        labels = [pixel_label(i, c) for i, c in enumerate(self.clicks)]
        vectors = [c.get("embedding") or [] for c in self.clicks]
        for i, c in enumerate(self.clicks):
            self.list.addItem(self.row_text(i, c))
            item = self.list.item(i)
            item.setForeground(QColor(COLOURS[i % len(COLOURS)]))
            item.setToolTip(self.row_tooltip(c))
        self.plot.set_vectors(vectors, labels)
        self.table.set_pixels(labels, vectors)
