"""How good a classifier is, from its own labelled points: k-fold cross-validation, once
stratified by class and once spatial (whole 1 km blocks held out together, so that
neighbouring pixels, which look alike, do not sit on both sides of the split), each giving
a confusion matrix, overall accuracy, Cohen's kappa and per-class precision, recall and F1.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import Cancelled

FOLDS = 5


def stratified_folds(codes: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold (0..k-1) of each sample: each class's samples shuffled and dealt round the folds,
    so every fold holds about the same share of every class."""
    rng = np.random.default_rng(seed)
    folds = np.zeros(len(codes), dtype=np.int64)
    start = 0
    for c in np.unique(codes):
        idx = np.nonzero(codes == c)[0]
        rng.shuffle(idx)
        folds[idx] = (start + np.arange(len(idx))) % k
        start += len(idx)  # the next class starts where this one stopped: folds stay even
    return folds


def group_folds(groups: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold of each sample such that all samples of a group (a 1 km block) share one fold:
    groups, largest first (ties in random order), each go to the fold holding fewest samples."""
    rng = np.random.default_rng(seed)
    ids, counts = np.unique(groups, return_counts=True)
    order = np.lexsort((rng.random(len(ids)), -counts))
    load = np.zeros(k, dtype=np.int64)
    fold_of = {}
    for i in order:
        f = int(np.argmin(load))
        fold_of[ids[i]] = f
        load[f] += counts[i]
    return np.array([fold_of[g] for g in groups], dtype=np.int64)


def cross_predict(fit: Callable, x: np.ndarray, codes: np.ndarray, folds: np.ndarray,
                  cancel: Callable[[], bool] | None = None) -> tuple[np.ndarray, int]:
    """Each sample's class predicted by a model fitted on the other folds (0 where the other
    folds are empty), and how many samples were tested against a model that had not seen
    their class. `fit(x_train, codes_train)` returns a model with predict_vectors."""
    pred = np.zeros(len(codes), dtype=np.int64)
    unseen = 0
    for f in np.unique(folds):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        test = folds == f
        if test.all():
            continue
        model = fit(x[~test], codes[~test])
        pred[test] = model.predict_vectors(x[test])[0]
        unseen += int((~np.isin(codes[test], codes[~test])).sum())
    return pred, unseen


def confusion(reference: np.ndarray, predicted: np.ndarray, n: int) -> np.ndarray:
    """Counts (n, n): row = reference class, column = predicted class (codes 1..n; samples
    predicted 0 are left out)."""
    m = np.zeros((n, n), dtype=np.int64)
    ok = (predicted >= 1) & (reference >= 1)
    np.add.at(m, (reference[ok] - 1, predicted[ok] - 1), 1)
    return m


@dataclass
class Scores:
    overall: float
    kappa: float
    precision: np.ndarray  # per class (NaN where nothing was predicted as it)
    recall: np.ndarray  # per class (NaN where it has no reference sample)
    f1: np.ndarray
    support: np.ndarray  # reference samples per class


def scores(m: np.ndarray) -> Scores:
    """Overall accuracy, Cohen's kappa and per-class precision, recall and F1 of a matrix."""
    m = np.asarray(m, dtype=np.float64)
    total = m.sum()
    diag = np.diag(m)
    rows, cols = m.sum(axis=1), m.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = diag.sum() / total if total else float("nan")
        expected = (rows * cols).sum() / total ** 2 if total else float("nan")
        kappa = (overall - expected) / (1 - expected) if total and expected != 1 else float("nan")
        precision = np.where(cols > 0, diag / cols, np.nan)
        recall = np.where(rows > 0, diag / rows, np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan, f1)
    return Scores(float(overall), float(kappa), precision, recall, f1, rows.astype(np.int64))


@dataclass
class Assessment:
    """One cross-validation: its name, folds, the matrix and its scores (or why none)."""

    name: str
    folds: int
    matrix: np.ndarray
    scores: Scores | None
    note: str = ""
    extra: dict = field(default_factory=dict)


def assess(fit: Callable, x: np.ndarray, codes: np.ndarray, n_classes: int, blocks: np.ndarray,
           folds: int = FOLDS, seed: int = 0, cancel: Callable[[], bool] | None = None) -> list[Assessment]:
    """The stratified and the spatial k-fold assessments of a model kind (`fit`)."""
    out = []
    smallest = int(np.bincount(codes)[1:][np.bincount(codes)[1:] > 0].min()) if len(codes) else 0
    k = min(folds, smallest)
    if k >= 2:
        pred, _ = cross_predict(fit, x, codes, stratified_folds(codes, k, seed), cancel)
        m = confusion(codes, pred, n_classes)
        out.append(Assessment(f"stratified {k}-fold", k, m, scores(m)))
    else:
        out.append(Assessment("stratified k-fold", 0, np.zeros((n_classes, n_classes), np.int64), None,
                              "not possible: a class has a single labelled pixel"))
    groups = len(np.unique(blocks))
    k = min(folds, groups)
    if k >= 2:
        pred, unseen = cross_predict(fit, x, codes, group_folds(blocks, k, seed), cancel)
        m = confusion(codes, pred, n_classes)
        note = (f"{unseen} labelled pixels were tested against a model that had seen no pixel of their class: "
                "all of that class's points lie in the blocks held out together. Label it in more places."
                if unseen else "")
        out.append(Assessment(f"spatial {k}-fold (1 km blocks)", k, m, scores(m), note,
                              {"blocks": groups, "unseen": unseen}))
    else:
        out.append(Assessment("spatial k-fold (1 km blocks)", 0, np.zeros((n_classes, n_classes), np.int64),
                              None, "not possible: every labelled pixel lies in one 1 km block"))
    return out
