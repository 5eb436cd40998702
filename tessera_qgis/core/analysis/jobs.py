"""The analysis jobs end to end, as the Processing algorithms (and scripts) run them: learn
(a sample, labelled points), assess, write the rasters through the export (streamed, local
or on Dask), then the reports and model files.

Each job is all or nothing: a cancel or an error at any step removes every file the job
has written so far (rasters, their styles and tiles, reports, models), and nothing
appears until the learning step has finished.
"""
from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..classify import KNNClassifier
from ..errors import Cancelled, ExportError
from ..export import ExportRequest, export
from ..export.request import trajectory_years
from ..store import TesseraStore
from ..storeref import public_url
from . import accuracy, kmeans, report, tables
from .models import KMeansModel, fit_forest, save_model
from .sampling import MAX_SAMPLES, labelled_pixels, sample_pixels

Progress = Callable[[float], None] | None
Cancel = Callable[[], bool] | None
METHODS = ("knn", "random_forest")


class Outputs:
    """Files a job has written, removed together when it does not finish."""

    def __init__(self) -> None:
        self.paths: list[Path] = []

    def add(self, *paths) -> None:
        self.paths.extend(Path(p) for p in paths)

    def remove(self) -> None:
        for p in self.paths:
            for side in (p, p.with_name(p.name + ".aux.xml"), p.with_suffix(".qml")):
                if side.is_file():
                    side.unlink()
            if p.suffix.lower() == ".vrt":
                shutil.rmtree(p.with_name(p.stem + ".tiles"), ignore_errors=True)

    def __enter__(self) -> "Outputs":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.remove()


def _part(progress: Progress, start: float, share: float) -> Progress:
    if progress is None:
        return None
    return lambda f: progress(start + share * min(max(f, 0.0), 1.0))


def _check(cancel: Cancel) -> None:
    if cancel is not None and cancel():
        raise Cancelled("cancelled")


def _sidecar(out: str | Path, suffix: str) -> Path:
    out = Path(out)
    return out.with_name(f"{out.stem}{suffix}")


# -- clusters ------------------------------------------------------------------------------------
@dataclass
class ClusterResult:
    paths: list[Path]
    model: KMeansModel
    scores: dict[int, float]  # silhouette of each candidate k (automatic k only)
    samples: int
    centroids: Path | None = None


def cluster(store: TesseraStore, req: ExportRequest, k: int = 0, centroids: str | Path | None = None,
            max_samples: int = MAX_SAMPLES, seed: int = 0, progress: Progress = None,
            cancel: Cancel = None) -> ClusterResult:
    """k-means (k = 0: automatic) on at most `max_samples` valid pixels of the request's
    region and year, then every pixel assigned (the export, kind "cluster"); the centroids
    saved as a model file when `centroids` is given."""
    x = sample_pixels(store, req.bounds, req.crs, req.year, max_samples, req.depth, seed, cancel)
    _check(cancel)
    centres, scores = kmeans.fit(x, k, seed=seed, cancel=cancel, progress=_part(progress, 0.0, 0.3))
    model = KMeansModel(centres)
    with Outputs() as written:
        paths = export(store, dataclasses.replace(req, kind="cluster", classifier=model),
                       progress=_part(progress, 0.3, 0.7), cancel=cancel)
        written.add(*paths)
        _check(cancel)
        saved = None
        if centroids:
            saved = save_model(model, centroids, {
                "store": public_url(store.url), "year": req.year, "bounds": list(req.bounds), "crs": req.crs,
                "samples": int(len(x)), "silhouette": {str(c): round(v, 6) for c, v in scores.items()}})
            written.add(saved)
    if progress is not None:
        progress(1.0)
    return ClusterResult(paths, model, scores, len(x), saved)


# -- classification ------------------------------------------------------------------------------
def fitter(method: str, names: list[str], k: int = 5, trees: int = 100, seed: int = 0) -> Callable:
    """fit(vectors, codes) -> model, for one method with fixed class names."""
    if method == "knn":
        return lambda x, codes: KNNClassifier.fit(x, [names[c - 1] for c in codes], k=k, names=names)
    if method == "random_forest":
        return lambda x, codes: fit_forest(x, [names[c - 1] for c in codes], trees=trees, seed=seed, names=names)
    raise ExportError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")


@dataclass
class ClassifyResult:
    paths: list[Path]  # class and confidence rasters of the first year, then of the other years
    by_year: dict[int, list[Path]]
    model: object
    assessments: list[accuracy.Assessment]
    names: list[str]
    used: int  # labelled pixels learnt from
    skipped: int  # points without an embedding or a label
    report: list[Path] = field(default_factory=list)  # HTML, CSV
    model_path: Path | None = None
    transitions: list[tuple] = field(default_factory=list)


def classify(store: TesseraStore, req: ExportRequest, points: Sequence[tuple[float, float, object]],
             points_crs: str, method: str = "knn", k: int = 5, trees: int = 100, other_years: Sequence[int] = (),
             folds: int = accuracy.FOLDS, report_path: str | Path | None = None,
             model_path: str | Path | None = None, seed: int = 0, progress: Progress = None,
             cancel: Cancel = None, log: Callable[[str], None] | None = None) -> ClassifyResult:
    """Train on the labelled points' pixels of `req.year`, assess (stratified and spatial
    k-fold), classify the region in `req.year` and each of `other_years` (one class and one
    confidence raster each, `<out>_<year>.tif` for the others), the transitions from each year
    to the next, and the report (HTML + CSV) and model file when paths are given."""
    say = log or (lambda _m: None)
    years = [req.year] + [int(y) for y in other_years if int(y) != req.year]
    for y in years:
        store.check_year(y)
    lab = labelled_pixels(store, req.year, points, points_crs, req.depth, cancel, _part(progress, 0.0, 0.1))
    names = sorted(set(lab.labels))
    if len(names) < 2:
        raise ExportError("need labelled points of at least two classes on valid pixels "
                          f"({len(lab.labels)} usable, {lab.skipped} on nodata or without a label)")
    if len(names) > 255:
        raise ExportError("at most 255 classes")
    say(f"{len(lab.labels)} labelled pixels in {len(names)} classes ({lab.skipped} points skipped: nodata, "
        "outside the store, no label or a pixel already labelled)")
    codes = np.array([names.index(v) + 1 for v in lab.labels], dtype=np.int64)
    fit = fitter(method, names, k, trees, seed)
    assessments = accuracy.assess(fit, lab.vectors, codes, len(names), lab.blocks, folds, seed, cancel)
    say(report.summary_line(assessments))
    for a in assessments:
        if a.scores is not None:
            say(f"{a.name}: overall accuracy {100 * a.scores.overall:.1f} %, kappa {a.scores.kappa:.3f}")
    _check(cancel)
    model = fit(lab.vectors, codes)
    by_year: dict[int, list[Path]] = {}
    share = 0.8 / len(years)
    with Outputs() as written:
        for i, year in enumerate(years):
            out = req.out if i == 0 else str(_sidecar(req.out, f"_{year}{Path(req.out).suffix or '.tif'}"))
            paths = export(store, dataclasses.replace(req, kind="classify", classifier=model, year=year, out=out),
                           progress=_part(progress, 0.1 + share * i, share), cancel=cancel)
            written.add(*paths)
            by_year[year] = paths
        transitions = []
        for a, b in zip(years, years[1:]):
            px, ha = tables.transitions(by_year[a][0], by_year[b][0], len(names), cancel)
            transitions.append((a, b, px, ha))
        _check(cancel)
        result = ClassifyResult([p for y in years for p in by_year[y]], by_year, model, assessments, names,
                                len(lab.labels), lab.skipped, transitions=transitions)
        if model_path:
            result.model_path = save_model(model, model_path, {
                "store": public_url(store.url), "year": req.year, "method": method, "depth": int(model.dims),
                "labelled_pixels": len(lab.labels),
                "accuracy": {a.name: round(a.scores.overall, 6) for a in assessments if a.scores}})
            written.add(result.model_path)
        if report_path:
            info = {"store": public_url(store.url), "year": req.year, "classified years": ", ".join(map(str, years)),
                    "method": "k nearest neighbours (cosine), k = %d" % model.k if method == "knn"
                    else f"random forest, {trees} trees",
                    "embedding dimensions": model.dims, "labelled pixels": len(lab.labels),
                    "points skipped": lab.skipped, "classes": ", ".join(names)}
            csv_path = Path(report_path).with_suffix(".csv")
            result.report = report.accuracy_report(report_path, csv_path, assessments, names, info, transitions)
            written.add(*result.report)
    if progress is not None:
        progress(1.0)
    return result


# -- applying a saved model ----------------------------------------------------------------------
def apply_model(store: TesseraStore, req: ExportRequest, model, progress: Progress = None,
                cancel: Cancel = None) -> list[Path]:
    """A saved model (classifier: classes and confidence; k-means: clusters) on a region and
    year. The model's depth becomes the request's."""
    kind = "cluster" if isinstance(model, KMeansModel) else "classify"
    depth = None if model.dims == store.bands else int(model.dims)
    return export(store, dataclasses.replace(req, kind=kind, classifier=model, depth=depth),
                  progress=progress, cancel=cancel)


# -- trajectories --------------------------------------------------------------------------------
def year_style(years: Sequence[int]) -> str:
    """A QGIS style (.qml) for the year of the largest change: one colour per year, from
    yellow (early) to dark red (late); 0 (no change) transparent."""
    ramp = ["#fee391", "#fec44f", "#fe9929", "#ec7014", "#cc4c02", "#993404", "#662506"]
    n = len(years)
    entries = "\n".join(
        f'        <paletteEntry value="{y}" label="{y}" color="{ramp[round(i * (len(ramp) - 1) / max(n - 1, 1))]}" '
        'alpha="255"/>' for i, y in enumerate(years))
    return ("<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"
            '<qgis version="3.44" styleCategories="Symbology">\n  <pipe>\n'
            '    <rasterrenderer type="paletted" band="1" opacity="1" alphaBand="-1" nodataColor="">\n'
            f"      <colorPalette>\n{entries}\n      </colorPalette>\n"
            "    </rasterrenderer>\n  </pipe>\n</qgis>\n")



@dataclass
class TrajectoryResult:
    paths: list[Path]  # distances, year of the largest change
    table: tables.ChangeTable
    report: list[Path] = field(default_factory=list)


def trajectory(store: TesseraStore, req: ExportRequest, years: Sequence[int] | None = None,
               baseline: int | None = None, threshold: float = 0.25, classes: str | None = None,
               report_path: str | Path | None = None, progress: Progress = None,
               cancel: Cancel = None) -> TrajectoryResult:
    """The trajectory rasters of `years` (default: all the store's) against `baseline` (None:
    the mean of the years before), then the change report (per class of the raster `classes`)."""
    years = sorted(set(int(y) for y in (years or store.years)))
    first = min(years + ([baseline] if baseline is not None else []))
    req = dataclasses.replace(req, kind="trajectory", years=years, baseline=baseline, threshold=threshold,
                              year=first)
    with Outputs() as written:
        paths = export(store, req, progress=_part(progress, 0.0, 0.85), cancel=cancel)
        written.add(*paths)
        compared = trajectory_years(req)
        paths[1].with_suffix(".qml").write_text(year_style(compared), encoding="utf-8")
        table = tables.change_table(paths[0], paths[1], compared, threshold, classes, cancel=cancel)
        _check(cancel)
        result = TrajectoryResult(paths, table)
        if report_path:
            info = {"store": public_url(store.url), "years compared": ", ".join(map(str, compared)),
                    "baseline": baseline if baseline is not None else "the mean of the years before",
                    "changed where the cosine distance is at least": threshold,
                    "classes from": classes or "–"}
            result.report = report.change_report(report_path, Path(report_path).with_suffix(".csv"), table, info)
            written.add(*result.report)
    if progress is not None:
        progress(1.0)
    return result
