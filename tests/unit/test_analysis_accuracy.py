"""Accuracy figures of a classifier: folds, confusion matrix and scores against numbers worked
out by hand, and the report files (HTML with the matrix drawn, CSV)."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from tessera_qgis.core.analysis import accuracy, report
from tessera_qgis.core.classify import KNNClassifier

# A matrix worked by hand: rows reference, columns predicted.
M = np.array([[5, 1, 0],
              [2, 6, 1],
              [0, 1, 4]])


def test_scores_of_a_matrix_worked_by_hand():
    s = accuracy.scores(M)
    # 15 of 20 on the diagonal
    assert s.overall == pytest.approx(0.75)
    # chance agreement: rows (6, 9, 5) x columns (7, 8, 5) = (42 + 72 + 25) / 400 = 0.3475
    assert s.kappa == pytest.approx((0.75 - 0.3475) / (1 - 0.3475))
    assert s.precision == pytest.approx([5 / 7, 6 / 8, 4 / 5])
    assert s.recall == pytest.approx([5 / 6, 6 / 9, 4 / 5])
    assert s.f1 == pytest.approx([10 / 13, 2 * 0.75 * (2 / 3) / (0.75 + 2 / 3), 0.8])
    assert s.support.tolist() == [6, 9, 5]


def test_a_class_never_predicted_has_no_precision():
    s = accuracy.scores(np.array([[3, 0], [2, 0]]))
    assert s.overall == pytest.approx(0.6) and s.kappa == pytest.approx(0.0)
    assert s.precision[0] == pytest.approx(0.6) and np.isnan(s.precision[1])
    assert s.recall[1] == 0.0 and np.isnan(s.f1[1])


def test_confusion_counts_pairs_and_leaves_out_unpredicted():
    ref = np.array([1, 1, 2, 2, 3, 3, 3])
    pred = np.array([1, 2, 2, 0, 3, 1, 3])
    m = accuracy.confusion(ref, pred, 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_stratified_folds_share_every_class():
    codes = np.repeat([1, 2, 3], [20, 20, 10])
    folds = accuracy.stratified_folds(codes, 5, seed=3)
    for f in range(5):
        counts = np.bincount(codes[folds == f], minlength=4)[1:]
        assert counts.tolist() == [4, 4, 2]


def test_group_folds_keep_each_block_whole_and_balance_the_folds():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 23, size=300)
    folds = accuracy.group_folds(groups, 5, seed=1)
    for g in np.unique(groups):
        assert len(set(folds[groups == g].tolist())) == 1
    sizes = np.bincount(folds, minlength=5)
    assert sizes.min() > 0 and sizes.max() - sizes.min() <= np.bincount(groups).max()


def test_spatial_split_holds_neighbours_out_together():
    """Two classes, each labelled in its own 1 km block only: the spatial split then trains
    without the class it tests, so it must score 0 and say why; the stratified one is perfect."""
    rng = np.random.default_rng(2)
    x = np.vstack([rng.normal(0, 0.1, (20, 8)) + np.eye(8)[0], rng.normal(0, 0.1, (20, 8)) + np.eye(8)[1]])
    codes = np.repeat([1, 2], 20)
    blocks = np.repeat([0, 1], 20)
    fit = lambda xs, cs: KNNClassifier.fit(xs, [str(c) for c in cs], k=3, names=["1", "2"])  # noqa: E731
    strat, spatial = accuracy.assess(fit, x, codes, 2, blocks, folds=5)
    assert strat.name == "stratified 5-fold" and strat.scores.overall == 1.0
    assert spatial.name == "spatial 2-fold (1 km blocks)" and spatial.scores.overall == 0.0
    assert spatial.extra["unseen"] == 40 and "had seen no pixel of their class" in spatial.note


def test_report_files(tmp_path):
    names = ["crop", "forest", "town"]
    s = accuracy.scores(M)
    a = accuracy.Assessment("stratified 5-fold", 5, M, s)
    b = accuracy.Assessment("spatial 3-fold (1 km blocks)", 3, M.T, accuracy.scores(M.T))
    ha = np.zeros((4, 4))
    ha[1, 3] = 1.5
    ha[1, 1] = 10.25
    px = (ha * 100).astype(int)
    paths = report.accuracy_report(tmp_path / "r.html", tmp_path / "r.csv", [a, b], names,
                                   {"store": "x"}, [(2024, 2025, px, ha)])
    assert [p.name for p in paths] == ["r.html", "r.csv"]
    text = (tmp_path / "r.html").read_text()
    assert "75.0 %" in text and "stratified 5-fold" in text and "spatial 3-fold (1 km blocks)" in text
    assert text.count("<table class=\"matrix\">") == 3  # two confusion matrices, one transition matrix
    assert "<script" not in text
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    count = {(r["reference"], r["predicted"]): int(r["value"]) for r in rows
             if r["assessment"] == "stratified 5-fold" and r["measure"] == "count"}
    assert count[("forest", "crop")] == 2 and count[("town", "town")] == 4
    oa = [float(r["value"]) for r in rows if r["assessment"] == "stratified 5-fold" and r["measure"] == "overall_accuracy"]
    assert oa == [pytest.approx(0.75)]
    trans = {(r["reference"], r["predicted"]): r["value"] for r in rows
             if r["assessment"] == "transition 2024-2025" and r["measure"] == "hectares"}
    assert trans == {("crop", "crop"): "10.2500", ("crop", "town"): "1.5000"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
