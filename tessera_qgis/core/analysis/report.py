"""Reports as files: HTML (one self-contained page, the matrices and charts drawn with plain
HTML, CSS and inline SVG, no script) and CSV in a long format (one figure per row) that a
spreadsheet can pivot. Each file is written beside its target and renamed into place.
"""
from __future__ import annotations

import csv
import html
import io
import math
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from .accuracy import Assessment
from .tables import ChangeTable

PALETTE = ["#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#ffff33", "#a65628", "#f781bf", "#999999",
           "#66c2a5", "#fc8d62", "#8da0cb", "#e78ac3", "#a6d854", "#ffd92f", "#e5c494"]
STYLE = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:70em}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:right}th{background:#f3f3f3}
td.name,th.name{text-align:left}.note{color:#666}.big{font-size:1.2em}
.matrix td{min-width:3em}.axis{font-size:.85em;color:#555}"""


def _write(path: Path, text: str) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix + ".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _pct(v: float) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{100 * v:.1f} %"


def _num(v: float, digits: int = 3) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.{digits}f}"


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def _info(info: dict) -> str:
    rows = "".join(f"<tr><th class=\"name\">{html.escape(str(k))}</th><td class=\"name\">{html.escape(str(v))}</td></tr>"
                   for k, v in info.items())
    return f"<table>{rows}</table>"


def matrix_table(m: np.ndarray, names: Sequence[str], row_title: str, col_title: str, fmt=str,
                 shade_rows: bool = True) -> str:
    """A matrix as an HTML table, each cell shaded by its share of its row (green on the
    diagonal, red elsewhere), with row and column totals."""
    m = np.asarray(m)
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    out = [f"<table class=\"matrix\"><tr><th class=\"name\">{html.escape(row_title)} \\ "
           f"{html.escape(col_title)}</th>{head}<th>total</th></tr>"]
    for i, name in enumerate(names):
        total = m[i].sum()
        cells = []
        for j in range(len(names)):
            share = m[i, j] / total if total else 0.0
            colour = (26, 152, 80) if i == j else (215, 48, 39)
            bg = f"rgba({colour[0]},{colour[1]},{colour[2]},{0.08 + 0.8 * share:.2f})" if m[i, j] else "#fff"
            cells.append(f"<td style=\"background:{bg}\" title=\"{100 * share:.1f} % of the row\">{fmt(m[i, j])}</td>")
        out.append(f"<tr><th class=\"name\">{html.escape(name)}</th>{''.join(cells)}<th>{fmt(total)}</th></tr>")
    cols = "".join(f"<th>{fmt(v)}</th>" for v in m.sum(axis=0))
    out.append(f"<tr><th class=\"name\">total</th>{cols}<th>{fmt(m.sum())}</th></tr></table>")
    return "".join(out)


def summary_line(assessments: Sequence[Assessment]) -> str:
    """'overall accuracy 97.0 % (stratified 5-fold), 95.0 % (spatial 5-fold (1 km blocks))'."""
    parts = [f"{_pct(a.scores.overall)} ({a.name})" if a.scores else f"– ({a.name}: {a.note})" for a in assessments]
    return "overall accuracy " + ", ".join(parts)


def accuracy_report(html_path: str | Path, csv_path: str | Path, assessments: Sequence[Assessment],
                    names: Sequence[str], info: dict, transitions: Sequence[tuple] = ()) -> list[Path]:
    """The accuracy report of a classification (and its transition matrices: (year from,
    year to, pixels, hectares) each (n + 1, n + 1) with 0 = no data) as HTML and CSV."""
    body = [_info(info)]
    head = "".join(f"<th>{html.escape(a.name)}</th>" for a in assessments)
    rows = []
    for label, get in (("overall accuracy", lambda s: _pct(s.overall)), ("Cohen's kappa", lambda s: _num(s.kappa)),
                       ("labelled pixels assessed", lambda s: str(int(s.support.sum())))):
        cells = "".join(f"<td class=\"big\">{get(a.scores) if a.scores else '–'}</td>" for a in assessments)
        rows.append(f"<tr><th class=\"name\">{label}</th>{cells}</tr>")
    body.append(f"<h2>Accuracy</h2><table><tr><th></th>{head}</tr>{''.join(rows)}</table>")
    body.append("<p class=\"note\">Each labelled pixel is predicted by a model trained without its fold. The spatial "
                "split keeps whole 1 km blocks together, so a pixel is never tested against its own neighbours: "
                "expect it to be lower, and closer to what a new area will see.</p>")
    for a in assessments:
        body.append(f"<h2>{html.escape(a.name)}</h2>")
        if a.scores is None:
            body.append(f"<p class=\"note\">{html.escape(a.note)}</p>")
            continue
        if a.note:
            body.append(f"<p class=\"note\">{html.escape(a.note)}</p>")
        body.append("<p class=\"axis\">Rows: the labelled class; columns: the predicted class.</p>")
        body.append(matrix_table(a.matrix, names, "labelled", "predicted"))
        s = a.scores
        per = "".join(f"<tr><th class=\"name\">{html.escape(n)}</th><td>{_num(s.precision[i])}</td>"
                      f"<td>{_num(s.recall[i])}</td><td>{_num(s.f1[i])}</td><td>{int(s.support[i])}</td></tr>"
                      for i, n in enumerate(names))
        body.append("<table><tr><th class=\"name\">class</th><th>precision</th><th>recall</th><th>F1</th>"
                    f"<th>labelled pixels</th></tr>{per}</table>")
    for y0, y1, _, ha in transitions:
        body.append(f"<h2>Transitions {y0} → {y1} (hectares)</h2>")
        body.append("<p class=\"axis\">Rows: the class in {}; columns: the class in {}.</p>".format(y0, y1))
        body.append(matrix_table(np.asarray(ha)[1:, 1:], names, str(y0), str(y1), fmt=lambda v: f"{v:,.2f}"))
    _write(Path(html_path), _page("Classification accuracy", "\n".join(body)))
    return [Path(html_path), _write(Path(csv_path), accuracy_csv(assessments, names, transitions))]


def accuracy_csv(assessments: Sequence[Assessment], names: Sequence[str], transitions: Sequence[tuple] = ()) -> str:
    """Long format: assessment, measure, reference, predicted, value."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["assessment", "measure", "reference", "predicted", "value"])
    for a in assessments:
        if a.note:
            w.writerow([a.name, "note", "", "", a.note])
        if a.scores is None:
            continue
        s = a.scores
        w.writerow([a.name, "folds", "", "", a.folds])
        w.writerow([a.name, "overall_accuracy", "", "", f"{s.overall:.6f}"])
        w.writerow([a.name, "kappa", "", "", f"{s.kappa:.6f}"])
        for i, n in enumerate(names):
            for measure, v in (("precision", s.precision[i]), ("recall", s.recall[i]), ("f1", s.f1[i])):
                w.writerow([a.name, measure, n, "", "" if not math.isfinite(v) else f"{v:.6f}"])
            w.writerow([a.name, "support", n, "", int(s.support[i])])
        for i, n in enumerate(names):
            for j, m in enumerate(names):
                w.writerow([a.name, "count", n, m, int(a.matrix[i, j])])
    everything = ["no data", *names]
    for y0, y1, px, ha in transitions:
        for i, n in enumerate(everything):
            for j, m in enumerate(everything):
                if px[i][j]:
                    w.writerow([f"transition {y0}-{y1}", "pixels", n, m, int(px[i][j])])
                    w.writerow([f"transition {y0}-{y1}", "hectares", n, m, f"{ha[i][j]:.4f}"])
    return buf.getvalue()


def bar_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], unit: str,
              width: int = 640, height: int = 300) -> str:
    """A stacked bar chart as inline SVG: one bar per label, one colour per series."""
    left, bottom, top, right = 70, 40, 20, 160
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = np.sum([np.asarray(v, dtype=float) for _, v in series], axis=0) if series else np.zeros(len(labels))
    peak = float(np.max(totals)) if len(totals) and np.max(totals) > 0 else 1.0
    step = 10 ** math.floor(math.log10(peak))
    for m in (1, 2, 5, 10):
        if peak / (step * m) <= 5:
            step *= m
            break
    ymax = step * math.ceil(peak / step)
    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" "
           f"font-family=\"sans-serif\" font-size=\"12\" role=\"img\">"]
    v = 0.0
    while v <= ymax + 1e-9:
        y = top + plot_h * (1 - v / ymax)
        out.append(f"<line x1=\"{left}\" x2=\"{left + plot_w}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" stroke=\"#ddd\"/>"
                   f"<text x=\"{left - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">{v:g}</text>")
        v += step
    out.append(f"<text x=\"14\" y=\"{top + plot_h / 2:.0f}\" transform=\"rotate(-90 14 {top + plot_h / 2:.0f})\" "
               f"text-anchor=\"middle\">{html.escape(unit)}</text>")
    slot = plot_w / max(len(labels), 1)
    bar = min(60.0, slot * 0.6)
    for i, label in enumerate(labels):
        x = left + slot * i + (slot - bar) / 2
        base = 0.0
        for k, (name, values) in enumerate(series):
            val = float(values[i])
            if val <= 0:
                continue
            y0 = top + plot_h * (1 - (base + val) / ymax)
            h = plot_h * val / ymax
            out.append(f"<rect x=\"{x:.1f}\" y=\"{y0:.1f}\" width=\"{bar:.1f}\" height=\"{h:.1f}\" "
                       f"fill=\"{PALETTE[k % len(PALETTE)]}\"><title>{html.escape(name)}: {val:,.2f} "
                       f"{html.escape(unit)}</title></rect>")
            base += val
        out.append(f"<text x=\"{x + bar / 2:.1f}\" y=\"{top + plot_h + 18}\" text-anchor=\"middle\">"
                   f"{html.escape(str(label))}</text>")
    out.append(f"<line x1=\"{left}\" x2=\"{left + plot_w}\" y1=\"{top + plot_h}\" y2=\"{top + plot_h}\" "
               "stroke=\"#333\"/>")
    for k, (name, _) in enumerate(series):
        y = top + 14 * k
        out.append(f"<rect x=\"{left + plot_w + 14}\" y=\"{y}\" width=\"10\" height=\"10\" "
                   f"fill=\"{PALETTE[k % len(PALETTE)]}\"/><text x=\"{left + plot_w + 28}\" y=\"{y + 9}\">"
                   f"{html.escape(name)}</text>")
    out.append("</svg>")
    return "".join(out)


def change_report(html_path: str | Path, csv_path: str | Path, table: ChangeTable, info: dict) -> list[Path]:
    """The change report of a trajectory as HTML (a chart of the area changed per year, per
    class when a class raster was given, and tables) and CSV."""
    labels = [str(y) for y in table.years]
    if table.classes:
        series = [(n, table.changed_ha[:, i + 1]) for i, n in enumerate(table.classes)]
        rest = table.changed_ha[:, 0] - table.changed_ha[:, 1:].sum(axis=1)
        if (rest > 1e-9).any():
            series.append(("no class", np.maximum(rest, 0)))
    else:
        series = [("changed", table.changed_ha[:, 0])]
    body = [_info(info), "<h2>Area changed per year</h2>", bar_chart(labels, series, "hectares")]
    rows = "".join(f"<tr><th>{y}</th><td>{table.changed_ha[i, 0]:,.2f}</td><td>{table.valid_ha[i, 0]:,.2f}</td>"
                   f"<td>{_pct(table.changed_ha[i, 0] / table.valid_ha[i, 0] if table.valid_ha[i, 0] else float('nan'))}"
                   f"</td><td>{table.largest_ha[i, 0]:,.2f}</td></tr>" for i, y in enumerate(table.years))
    body.append("<table><tr><th>year</th><th>changed (ha)</th><th>with data (ha)</th><th>changed share</th>"
                f"<th>largest change in this year (ha)</th></tr>{rows}</table>")
    if table.classes:
        body.append("<h2>Area changed per class (hectares)</h2>")
        head = "".join(f"<th>{html.escape(n)}</th>" for n in table.classes)
        rows = "".join(f"<tr><th>{y}</th>" + "".join(f"<td>{table.changed_ha[i, j + 1]:,.2f}</td>"
                                                      for j in range(len(table.classes))) + "</tr>"
                       for i, y in enumerate(table.years))
        body.append(f"<table><tr><th>year</th>{head}</tr>{rows}</table>")
        shares = "".join(f"<tr><th>{y}</th>" + "".join(
            f"<td>{_pct(table.changed_ha[i, j + 1] / table.valid_ha[i, j + 1] if table.valid_ha[i, j + 1] else float('nan'))}</td>"
            for j in range(len(table.classes))) + "</tr>" for i, y in enumerate(table.years))
        body.append(f"<h2>Share of each class that changed</h2><table><tr><th>year</th>{head}</tr>{shares}</table>")
    _write(Path(html_path), _page("Change report", "\n".join(body)))
    return [Path(html_path), _write(Path(csv_path), change_csv(table))]


def change_csv(table: ChangeTable) -> str:
    """year, class ("all" or a class name), valid and changed pixels and hectares, changed share,
    hectares whose largest change fell in that year."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["year", "class", "valid_pixels", "changed_pixels", "valid_ha", "changed_ha", "changed_share",
                "largest_change_ha"])
    for i, y in enumerate(table.years):
        for j, name in enumerate(["all", *table.classes]):
            share = table.changed_ha[i, j] / table.valid_ha[i, j] if table.valid_ha[i, j] else float("nan")
            w.writerow([y, name, int(table.valid_px[i, j]), int(table.changed_px[i, j]),
                        f"{table.valid_ha[i, j]:.4f}", f"{table.changed_ha[i, j]:.4f}",
                        "" if not math.isfinite(share) else f"{share:.6f}", f"{table.largest_ha[i, j]:.4f}"])
    return buf.getvalue()
