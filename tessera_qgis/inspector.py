"""The pixel inspector dock: each clicked pixel's 128 values, plotted, kept for comparison,
and copied as CSV or JSON."""
from __future__ import annotations

import json

from qgis.gui import QgsDockWidget
from qgis.PyQt.QtCore import QCoreApplication, QPointF, Qt
from qgis.PyQt.QtGui import QColor, QPainter, QPen, QPolygonF
from qgis.PyQt.QtWidgets import (QApplication, QHBoxLayout, QListWidget, QPushButton, QVBoxLayout, QWidget)

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
MAX_KEPT = 8


def tr(text: str) -> str:
    return QCoreApplication.translate("TesseraInspector", text)


def as_csv(clicks: list[dict]) -> str:
    head = ["lon", "lat", "year", "zone", "row", "col", "valid", "scale"] + [f"A{i:03d}" for i in range(1, 129)]
    lines = [",".join(head)]
    for c in clicks:
        emb = c.get("embedding") or [""] * 128
        row = [f"{c['lon']:.6f}", f"{c['lat']:.6f}", str(c["year"]), str(c.get("zone") or ""),
               str(c.get("row") if c.get("row") is not None else ""),
               str(c.get("col") if c.get("col") is not None else ""), str(bool(c["valid"])).lower(),
               "" if c.get("scale") is None else f"{c['scale']:.8g}"]
        row += [v if v == "" else f"{v:.6g}" for v in emb]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def as_json(clicks: list[dict]) -> str:
    return json.dumps(clicks, indent=1)


class VectorPlot(QWidget):
    """The embeddings as lines over band number (1 to 128); the newest is drawn on top."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.vectors: list[list[float]] = []
        self.setMinimumHeight(160)

    def set_vectors(self, vectors: list[list[float]]) -> None:
        self.vectors = vectors
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.fillRect(self.rect(), QColor("white"))
        w, h, m = self.width(), self.height(), 8
        valid = [v for v in self.vectors if v]
        if not valid:
            p.setPen(QColor("grey"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, tr("Click a pixel with the inspector tool"))
            return
        lo = min(min(v) for v in valid)
        hi = max(max(v) for v in valid)
        span = (hi - lo) or 1.0
        p.setPen(QPen(QColor("#bbbbbb"), 1))
        zero = h - m - (0 - lo) / span * (h - 2 * m)
        if lo < 0 < hi:
            p.drawLine(QPointF(m, zero), QPointF(w - m, zero))
        for i, v in enumerate(self.vectors):
            if not v:
                continue
            poly = QPolygonF([QPointF(m + j / (len(v) - 1) * (w - 2 * m), h - m - (x - lo) / span * (h - 2 * m))
                              for j, x in enumerate(v)])
            p.setPen(QPen(QColor(COLOURS[i % len(COLOURS)]), 2 if i == len(self.vectors) - 1 else 1))
            p.drawPolyline(poly)
        p.end()


class InspectorDock(QgsDockWidget):
    def __init__(self, parent=None) -> None:
        super().__init__(tr("TESSERA pixel inspector"), parent)
        self.setObjectName("TesseraInspectorDock")
        self.clicks: list[dict] = []
        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.plot = VectorPlot(body)
        self.list = QListWidget(body)
        self.list.setMaximumHeight(110)
        buttons = QHBoxLayout()
        self.copy_csv = QPushButton(tr("Copy CSV"), body)
        self.copy_json = QPushButton(tr("Copy JSON"), body)
        self.clear_button = QPushButton(tr("Clear"), body)
        for b in (self.copy_csv, self.copy_json, self.clear_button):
            buttons.addWidget(b)
        layout.addWidget(self.plot)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.setWidget(body)
        self.copy_csv.clicked.connect(lambda: QApplication.clipboard().setText(as_csv(self.clicks)))
        self.copy_json.clicked.connect(lambda: QApplication.clipboard().setText(as_json(self.clicks)))
        self.clear_button.clicked.connect(self.clear)

    def add(self, px: dict) -> None:
        """A looked-up pixel (core `pixel()` result plus lon, lat)."""
        self.clicks.append(px)
        self.clicks = self.clicks[-MAX_KEPT:]
        self.refresh()

    def clear(self) -> None:
        self.clicks = []
        self.refresh()

    def refresh(self) -> None:
        self.list.clear()
        for i, c in enumerate(self.clicks):
            where = f"{c['lon']:.5f}, {c['lat']:.5f}"
            if c.get("valid"):
                text = f"{where}  {c['zone']} row {c['row']} col {c['col']}  {c['year']}"
            else:
                text = f"{where}  {c['year']}  " + tr("no data")
            self.list.addItem(text)
            self.list.item(i).setForeground(QColor(COLOURS[i % len(COLOURS)]))
        self.plot.set_vectors([c.get("embedding") or [] for c in self.clicks])
