"""The models behind class rasters: k-means (automatic k, silhouette), k-NN, random forests
kept as numpy trees (checked against scikit-learn itself), model files, and block prediction
in bounded chunks."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from support.analysis import ari
from tessera_qgis.core.analysis import kmeans, models
from tessera_qgis.core.analysis.models import ForestModel, KMeansModel, ModelError, load_model, save_model
from tessera_qgis.core.classify import KNNClassifier


def blobs(k=4, per=300, d=16, spread=0.6, seed=0, sizes=None):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, size=(k, d))
    sizes = sizes or [per] * k
    x = np.vstack([centres[i] + rng.normal(0, spread, size=(n, d)) for i, n in enumerate(sizes)])
    return x.astype(np.float32), np.repeat(np.arange(k), sizes), centres


def test_silhouette_against_its_definition():
    x, y, _ = blobs(3, 15, 4, 1.5, seed=4)
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(-1))
    s = []
    for i in range(len(x)):
        own = (y == y[i]) & (np.arange(len(x)) != i)
        a = d[i, own].mean()
        b = min(d[i, y == c].mean() for c in set(y.tolist()) if c != y[i])
        s.append((b - a) / max(a, b))
    assert kmeans.silhouette(x, y) == pytest.approx(np.mean(s), abs=1e-6)


def test_automatic_k_finds_the_blobs():
    x, y, centres = blobs(5, sizes=[900, 400, 300, 200, 120], seed=1)
    c, scores = kmeans.fit(x, 0, seed=0)
    assert len(c) == 5 and max(scores, key=scores.get) == 5 and set(scores) == set(range(2, 13))
    labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    assert ari(labels, y) > 0.99
    # cluster 1 is the largest
    assert np.bincount(labels).tolist() == sorted(np.bincount(labels).tolist(), reverse=True)
    # each centroid is one blob's mean
    for i in range(5):
        assert np.abs(c[i] - x[labels == i].mean(0)).max() < 1e-3


def test_a_wide_class_is_not_split_while_small_ones_merge():
    """One wide class spread along a few directions (fields of many crops) beside four
    compact ones: the Ward-merged starts keep the wide class whole at k = 5 (the best of
    three k-means++ starts by inertia splits it and merges two small classes: ARI 0.63)."""
    rng = np.random.default_rng(3)
    d = 32
    protos = rng.normal(0, 1.0, size=(5, d))
    wide_dirs = rng.normal(0, 0.5, size=(3, d))
    sizes = [3000, 1000, 800, 400, 150]
    parts = [protos[0] + rng.uniform(-1, 1, size=(sizes[0], 3)) @ wide_dirs + rng.normal(0, 0.3, (sizes[0], d))]
    parts += [protos[i] + rng.normal(0, 0.3, (n, d)) for i, n in enumerate(sizes) if i]
    x = np.vstack(parts).astype(np.float32)
    y = np.repeat(np.arange(5), sizes)
    for k in (5, 0):
        c, _ = kmeans.fit(x, k)
        labels = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        assert len(c) == 5 and ari(labels, y) > 0.99


def test_kmeans_model_predicts_the_nearest_centroid_in_any_block_shape():
    rng = np.random.default_rng(5)
    cent = rng.normal(0, 1, (4, 8)).astype(np.float32)
    model = KMeansModel(cent)
    q = rng.integers(-127, 128, size=(8, 40, 30)).astype(np.int8)
    s = rng.uniform(0.001, 0.02, size=(40, 30)).astype(np.float32)
    s[0, :5] = np.nan
    s[1, :3] = np.inf
    s[2, :2] = 1.5  # finite but not a valid scale
    cls, conf = model.predict(q, s)
    v = q.astype(np.float64) * s.astype(np.float64)
    want = np.argmin(((v[None] - cent[:, :, None, None]) ** 2).sum(1), axis=0) + 1
    valid = (s > 0) & (s < 1)
    assert (cls[~valid] == 0).all() and np.isnan(conf[~valid]).all()
    assert (cls[valid] == want[valid]).all()
    assert ((conf[valid] >= 0) & (conf[valid] <= 1)).all()
    # the same pixels in other block shapes give the same numbers
    a, b = model.predict(q[:, :17, :11], s[:17, :11])
    assert np.array_equal(a, cls[:17, :11]) and np.array_equal(b, conf[:17, :11], equal_nan=True)


def test_knn_predicts_the_majority_of_its_cosine_neighbours():
    rng = np.random.default_rng(6)
    train = rng.normal(0, 1, (30, 12)).astype(np.float32)
    labels = [("a", "b", "c")[i % 3] for i in range(30)]
    model = KNNClassifier.fit(train, labels, k=5)
    x = rng.normal(0, 1, (50, 12)).astype(np.float32)
    codes, conf = model.predict_vectors(x)
    t = train / np.linalg.norm(train, axis=1, keepdims=True)
    for i in range(50):
        sims = t @ (x[i] / np.linalg.norm(x[i]))
        nearest = np.argsort(-sims)[:5]
        votes = np.bincount([("a", "b", "c").index(labels[j]) for j in nearest], minlength=3)
        assert codes[i] == votes.argmax() + 1 and conf[i] == pytest.approx(votes.max() / 5)


def test_block_prediction_in_small_chunks_equals_one_go(monkeypatch):
    rng = np.random.default_rng(8)
    q = rng.integers(-127, 128, size=(6, 33, 21)).astype(np.int8)
    s = rng.uniform(0.001, 0.02, size=(33, 21)).astype(np.float32)
    s[5:9, 3:7] = np.nan
    model = KMeansModel(rng.normal(0, 1, (3, 6)))
    whole = model.predict(q, s)
    from tessera_qgis.core import classify

    monkeypatch.setattr(classify, "CHUNK", 50)
    parts = model.predict(q, s)
    assert np.array_equal(whole[0], parts[0]) and np.array_equal(whole[1], parts[1], equal_nan=True)
    knn = KNNClassifier.fit(rng.normal(0, 1, (40, 6)), [str(i % 4) for i in range(40)], k=3)
    whole = knn.predict(q, s)
    monkeypatch.setattr(classify, "CHUNK_VALUES", 10)  # 1024 pixels a chunk: several chunks here
    small = rng.integers(-127, 128, size=(6, 64, 40)).astype(np.int8)
    ss = rng.uniform(0.001, 0.02, size=(64, 40)).astype(np.float32)
    a = knn.predict(small, ss)
    monkeypatch.setattr(classify, "CHUNK_VALUES", 16_000_000)
    b = knn.predict(small, ss)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert whole[0].shape == (33, 21)


@pytest.mark.sklearn
def test_random_forest_as_numpy_trees_equals_scikit_learn():
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(9)
    x = rng.normal(0, 1, (300, 20)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 3] > 0).astype(int) + (x[:, 7] > 1).astype(int)  # 3 classes, deep trees
    names = ["n0", "n1", "n2"]
    model = models.fit_forest(x, [names[v] for v in y], trees=25, seed=2, names=names)
    ref = RandomForestClassifier(n_estimators=25, random_state=2, n_jobs=1).fit(x, y)
    test = rng.normal(0, 1, (2000, 20)).astype(np.float32)
    test[:50] = x[:50]  # values equal to training values sit exactly on a threshold's side
    # values a hair from each threshold: the float32 nearest to it, and the next ones both sides
    inner = np.nonzero(model.left >= 0)[0][:300]
    t32 = model.threshold[inner].astype(np.float32)
    for k, v in enumerate((t32, np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf)))):
        rows = slice(50 + 300 * k, 50 + 300 * k + len(inner))
        test[rows, model.feature[inner]] = v
    assert np.abs(model.proba(test) - ref.predict_proba(test)).max() < 1e-6
    codes, conf = model.predict_vectors(test)
    assert np.array_equal(codes - 1, ref.predict(test))
    assert conf == pytest.approx(ref.predict_proba(test).max(axis=1), abs=1e-6)
    # a fold that lacks a class: its column stays 0 and the codes keep their meaning
    model2 = models.fit_forest(x[y != 1], [names[v] for v in y[y != 1]], trees=5, names=names)
    assert (model2.proba(test)[:, 1] == 0).all()
    assert set(np.unique(model2.predict_vectors(test)[0]).tolist()) <= {1, 3}


@pytest.mark.parametrize("kind", ["knn", "kmeans", pytest.param("random_forest", marks=pytest.mark.sklearn)])
def test_model_files_round_trip(tmp_path, kind):
    rng = np.random.default_rng(10)
    x = rng.normal(0, 1, (60, 16)).astype(np.float32)
    labels = [("crop", "town", "wood")[i % 3] for i in range(60)]
    if kind == "knn":
        model = KNNClassifier.fit(x, labels, k=3)
    elif kind == "kmeans":
        model = KMeansModel(rng.normal(0, 1, (4, 16)))
    else:
        model = models.fit_forest(x, labels, trees=7)
    path = save_model(model, tmp_path / "m.json", {"year": 2024})
    doc = json.loads(path.read_text())
    assert doc["format"] == "tessera-qgis model" and doc["kind"] == kind and doc["dimensions"] == 16
    back, meta = load_model(path)
    assert meta == {"year": 2024} and back.names == model.names and back.dims == 16
    q = rng.integers(-127, 128, size=(16, 20, 20)).astype(np.int8)
    s = rng.uniform(0.001, 0.05, size=(20, 20)).astype(np.float32)
    a, b = model.predict(q, s), back.predict(q, s)
    assert np.array_equal(a[0], b[0]) and np.allclose(a[1], b[1], atol=1e-5)
    assert pickle.loads(pickle.dumps(back)).names == model.names  # sent to Dask workers
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_bad_model_files_say_what_is_wrong(tmp_path):
    with pytest.raises(ModelError, match="no model file"):
        load_model(tmp_path / "none.json")
    (tmp_path / "a.json").write_text("{not json")
    with pytest.raises(ModelError, match="not readable JSON"):
        load_model(tmp_path / "a.json")
    (tmp_path / "b.json").write_text(json.dumps({"type": "FeatureCollection"}))
    with pytest.raises(ModelError, match="not a TESSERA model file"):
        load_model(tmp_path / "b.json")
    good = save_model(KMeansModel(np.ones((2, 4))), tmp_path / "c.json")
    doc = json.loads(good.read_text())
    doc["version"] = 99
    (tmp_path / "d.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="newer version"):
        load_model(tmp_path / "d.json")
    doc["version"] = 1
    doc["centroids"] = [[1, 2, 3]]
    (tmp_path / "e.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="damaged"):
        load_model(tmp_path / "e.json")
    tree = {"left": [1, 5, -1], "right": [2, -1, -1], "feature": [0, 0, 0], "threshold": [0, 0, 0],
            "value": [[1, 0], [1, 0], [0, 1]]}
    doc = {"format": "tessera-qgis model", "version": 1, "kind": "random_forest", "classes": ["a", "b"],
           "dimensions": 4, "forest": {"trees": [tree]}}
    (tmp_path / "f.json").write_text(json.dumps(doc))
    with pytest.raises(ModelError, match="node outside the tree"):
        load_model(tmp_path / "f.json")


def test_forest_from_json_walks_like_its_definition():
    """A hand-made tree: x0 <= 0.5 -> class a; else x1 <= -1 -> a, else b."""
    tree = {"left": [1, -1, 3, -1, -1], "right": [2, -1, 4, -1, -1], "feature": [0, 0, 1, 0, 0],
            "threshold": [0.5, 0, -1.0, 0, 0], "value": [[0.5, 0.5], [1, 0], [0.3, 0.7], [1, 0], [0, 1]]}
    model = ForestModel.from_json(["a", "b"], 2, {"trees": [tree, tree]})
    x = np.array([[0.5, 9], [0.6, -1], [0.6, -0.99], [np.float32(0.5000001), 0]], dtype=np.float32)
    codes, conf = model.predict_vectors(x)
    assert codes.tolist() == [1, 1, 2, 2] and conf.tolist() == [1, 1, 1, 1]
    # thresholds are float64 (as scikit-learn's): float32(0.1) is above 0.1, so it goes right
    tree["threshold"][0] = 0.1
    model = ForestModel.from_json(["a", "b"], 2, {"trees": [tree]})
    x = np.array([[0.1, 9], [np.nextafter(np.float32(0.1), np.float32(0)), 9]], dtype=np.float32)
    assert np.float64(x[0, 0]) > 0.1
    assert model.predict_vectors(x)[0].tolist() == [2, 1]
