"""The models a class raster is made with, and their files.

Every model has `names` (class names; codes 1..n, 0 = no data), `dims` (how many leading
embedding dimensions it reads: its depth) and `predict(q, scales)` for a block (int8
(bands, h, w) and scales (h, w) -> class codes uint8 (h, w) and a confidence float32 (h, w),
NaN where nodata). They are plain numpy objects: small, picklable, sent to Dask workers
without scikit-learn there.

- `KNNClassifier` (core/classify.py): cosine k nearest neighbours.
- `ForestModel`: a random forest trained by scikit-learn (optional), kept as its trees'
  arrays and evaluated in numpy; predicts what scikit-learn's predict_proba would.
- `KMeansModel`: the nearest centroid (Euclidean); confidence is the margin between the
  nearest and the second nearest centroid's distance, relative to the nearest's.

Files are JSON (`save_model` / `load_model`): no pickle, so opening a model file never runs
code, and a model trained here applies anywhere (`tessera:apply_model`).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..classify import KNNClassifier, predict_block
from ..errors import TesseraError

FORMAT = "tessera-qgis model"
VERSION = 1


class ModelError(TesseraError):
    """A model file that cannot be used (not one, damaged, or for other dimensions)."""


@dataclass
class ForestModel:
    """A random forest as flat arrays of its trees' nodes. A node is a leaf where
    `left == -1`; otherwise x[feature] <= threshold goes left. `value` holds each node's
    class shares (n_nodes, n_classes); `roots` the first node of each tree."""

    names: list[str]
    dims: int
    left: np.ndarray  # int32 (n_nodes,), global node indices
    right: np.ndarray
    feature: np.ndarray  # int32
    threshold: np.ndarray  # float64
    value: np.ndarray  # float32 (n_nodes, n_classes)
    roots: np.ndarray  # int32 (n_trees,)
    params: dict = field(default_factory=dict)
    kind = "random_forest"

    @classmethod
    def from_sklearn(cls, forest, names: list[str], dims: int) -> "ForestModel":
        """From a fitted sklearn RandomForestClassifier whose classes_ are 0..n-1 (codes - 1)."""
        lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
        n_classes = len(names)
        present = np.asarray(forest.classes_, dtype=np.int64)  # codes - 1 seen in training
        offset = 0
        for est in forest.estimators_:
            t = est.tree_
            n = t.node_count
            left = t.children_left.astype(np.int64)
            right = t.children_right.astype(np.int64)
            leaf = left < 0
            lefts.append(np.where(leaf, -1, left + offset))
            rights.append(np.where(leaf, -1, right + offset))
            feats.append(np.where(leaf, 0, t.feature))
            thrs.append(np.where(leaf, 0.0, t.threshold))
            v = np.zeros((n, n_classes), dtype=np.float64)
            v[:, present] = t.value[:, 0, :]  # a tree's columns are the forest's classes_
            v /= np.maximum(v.sum(axis=1, keepdims=True), 1e-300)
            vals.append(v)
            roots.append(offset)
            offset += n
        return cls(list(names), int(dims), np.concatenate(lefts).astype(np.int32),
                   np.concatenate(rights).astype(np.int32), np.concatenate(feats).astype(np.int32),
                   np.concatenate(thrs).astype(np.float64), np.concatenate(vals).astype(np.float32),
                   np.asarray(roots, dtype=np.int32), {"trees": len(roots)})

    @property
    def chunk(self) -> int:
        """Pixels predicted at once: every tree walks them together ((trees, pixels) arrays)."""
        return max(1024, 2_000_000 // max(len(self.roots), 1))

    def _walk(self) -> tuple[np.ndarray, int]:
        """The nodes as one record array for the walk, and the deepest leaf's depth. Leaves
        point to themselves (so every pixel can take the same number of steps), and each
        threshold becomes the largest float32 not above it: for float32 values x, x <= t
        then holds exactly where scikit-learn's comparison in float64 holds."""
        cached = self.__dict__.get("_walk_table")
        if cached is not None:
            return cached
        n = len(self.left)
        leaf = self.left < 0
        table = np.empty(n, dtype=[("left", "i4"), ("right", "i4"), ("feature", "i4"), ("threshold", "f4")])
        table["left"] = np.where(leaf, np.arange(n), self.left)
        table["right"] = np.where(leaf, np.arange(n), self.right)
        table["feature"] = np.where(leaf, 0, self.feature)
        t32 = self.threshold.astype(np.float32)
        above = t32.astype(np.float64) > self.threshold
        t32[above] = np.nextafter(t32[above], np.float32(-np.inf))
        table["threshold"] = np.where(leaf, np.float32(np.inf), t32)
        depth, frontier = 0, self.roots[~leaf[self.roots]]
        while len(frontier):
            depth += 1
            kids = np.concatenate([self.left[frontier], self.right[frontier]])
            frontier = kids[~leaf[kids]]
        self.__dict__["_walk_table"] = (table, depth)
        return table, depth

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Class shares (n, n_classes): the mean over trees of each tree's leaf shares. All
        trees walk all pixels together, one level per step ((trees, pixels) arrays)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        n, d = x.shape
        table, depth = self._walk()
        node = np.repeat(self.roots[:, None], n, axis=1)  # (trees, n)
        base = (np.arange(n, dtype=np.int64) * d)[None, :]
        flat = x.ravel()
        for _ in range(depth):
            rec = table[node]
            node = np.where(flat[base + rec["feature"]] <= rec["threshold"], rec["left"], rec["right"])
        return self.value[node].sum(axis=0) / len(self.roots)

    def predict_vectors(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = self.proba(x)
        best = p.argmax(axis=1)
        return (best + 1).astype(np.uint8), p[np.arange(len(p)), best].astype(np.float32)

    def predict(self, q: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return predict_block(self, q, scales)

    def to_json(self) -> dict:
        return {"trees": [self._tree(i) for i in range(len(self.roots))], "params": self.params}

    def _tree(self, i: int) -> dict:
        start = int(self.roots[i])
        end = int(self.roots[i + 1]) if i + 1 < len(self.roots) else len(self.left)
        local = lambda a: np.where(a[start:end] >= 0, a[start:end] - start, -1).tolist()  # noqa: E731
        return {"left": local(self.left), "right": local(self.right),
                "feature": self.feature[start:end].tolist(), "threshold": self.threshold[start:end].tolist(),
                "value": np.round(self.value[start:end].astype(np.float64), 7).tolist()}

    @classmethod
    def from_json(cls, names: list[str], dims: int, body: dict) -> "ForestModel":
        lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
        offset = 0
        for t in body["trees"]:
            n = len(t["left"])
            left, right = np.asarray(t["left"], dtype=np.int64), np.asarray(t["right"], dtype=np.int64)
            if not (len(right) == len(t["feature"]) == len(t["threshold"]) == len(t["value"]) == n):
                raise ModelError("a tree of the model file is damaged (arrays of different lengths)")
            if ((left >= n) | (right >= n)).any() or (np.asarray(t["feature"]) >= dims).any():
                raise ModelError("a tree of the model file is damaged (a node outside the tree)")
            lefts.append(np.where(left >= 0, left + offset, -1))
            rights.append(np.where(right >= 0, right + offset, -1))
            feats.append(np.asarray(t["feature"], dtype=np.int64))
            thrs.append(np.asarray(t["threshold"], dtype=np.float64))
            vals.append(np.asarray(t["value"], dtype=np.float32).reshape(n, len(names)))
            roots.append(offset)
            offset += n
        return cls(names, dims, np.concatenate(lefts).astype(np.int32), np.concatenate(rights).astype(np.int32),
                   np.concatenate(feats).astype(np.int32), np.concatenate(thrs), np.concatenate(vals),
                   np.asarray(roots, dtype=np.int32), dict(body.get("params") or {}))


def fit_forest(vectors: np.ndarray, labels, trees: int = 100, seed: int = 0,
               names: list[str] | None = None) -> ForestModel:
    """A random forest (scikit-learn, optional) on labelled vectors (n, d)."""
    try:  # optional: only random forests need scikit-learn
        from sklearn.ensemble import RandomForestClassifier
    except ImportError:
        raise TesseraError(f"random forests need the optional package scikit-learn: {SKLEARN_HINT}") from None
    x = np.asarray(vectors, dtype=np.float32)
    names = names or sorted({str(v) for v in labels})
    y = np.array([names.index(str(v)) for v in labels], dtype=np.int64)
    forest = RandomForestClassifier(n_estimators=int(trees), random_state=seed, n_jobs=1).fit(x, y)
    model = ForestModel.from_sklearn(forest, names, x.shape[1])
    model.params = {"trees": int(trees), "seed": int(seed)}
    return model


SKLEARN_HINT = "python -m pip install scikit-learn"


def sklearn_available() -> bool:
    try:  # optional dependency: only asked whether it is there
        import sklearn  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class KMeansModel:
    """Nearest centroid (Euclidean on dequantised embeddings): clusters 1..k."""

    centroids: np.ndarray  # float32 (k, dims)
    names: list[str] = field(default_factory=list)
    kind = "kmeans"

    def __post_init__(self) -> None:
        self.centroids = np.asarray(self.centroids, dtype=np.float32)
        if not self.names:
            self.names = [f"cluster {i}" for i in range(1, len(self.centroids) + 1)]

    @property
    def dims(self) -> int:
        return int(self.centroids.shape[1])

    def predict_vectors(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # One centroid at a time, summed along each pixel's own row: the same pixel gives
        # the same numbers in any block shape (local and cluster outputs are equal).
        d = np.stack([np.square(x - c[None, :]).sum(axis=1) for c in self.centroids], axis=1)
        order = np.argsort(d, axis=1, kind="stable")
        rows = np.arange(len(x))
        near = d[rows, order[:, 0]]
        conf = np.ones(len(x), dtype=np.float32)
        if d.shape[1] > 1:
            second = d[rows, order[:, 1]]
            conf = ((np.sqrt(second) - np.sqrt(near)) / np.maximum(np.sqrt(second), 1e-12)).astype(np.float32)
        return (order[:, 0] + 1).astype(np.uint8), conf

    def predict(self, q: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return predict_block(self, q, scales)


# -- files -------------------------------------------------------------------------------------
def model_kind(model) -> str:
    if isinstance(model, KNNClassifier):
        return "knn"
    return model.kind


def save_model(model, path: str | Path, meta: dict | None = None) -> Path:
    """Write a model as JSON (written beside, then renamed into place)."""
    kind = model_kind(model)
    doc = {"format": FORMAT, "version": VERSION, "kind": kind, "classes": list(model.names),
           "dimensions": int(model.dims), "meta": meta or {}}
    if kind == "knn":
        doc["k"] = int(model.k)
        doc["labels"] = model.labels.astype(int).tolist()
        doc["vectors"] = np.round(model.vectors.astype(np.float64), 7).tolist()
    elif kind == "random_forest":
        doc["forest"] = model.to_json()
    elif kind == "kmeans":
        doc["centroids"] = np.round(model.centroids.astype(np.float64), 6).tolist()
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".json.part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, separators=(",", ":"))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_model(path: str | Path) -> tuple[object, dict]:
    """(model, meta) from a model file; ModelError with a message when it is not one."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"no model file at {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path} is not a model file (not readable JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelError(f"{path} is not a TESSERA model file (made by tessera:classify or tessera:cluster)")
    if int(doc.get("version", 0)) > VERSION:
        raise ModelError(f"{path} was written by a newer version of the plugin; update it")
    try:
        names = [str(n) for n in doc["classes"]]
        dims = int(doc["dimensions"])
        kind = doc["kind"]
        if kind == "knn":
            vectors = np.asarray(doc["vectors"], dtype=np.float32).reshape(-1, dims)
            labels = np.asarray(doc["labels"], dtype=np.uint8)
            if len(labels) != len(vectors) or labels.min() < 1 or labels.max() > len(names):
                raise ModelError(f"{path}: the k-NN model's labels do not match its vectors and classes")
            model = KNNClassifier(vectors, labels, names, int(doc["k"]))
        elif kind == "random_forest":
            model = ForestModel.from_json(names, dims, doc["forest"])
        elif kind == "kmeans":
            model = KMeansModel(np.asarray(doc["centroids"], dtype=np.float32).reshape(-1, dims), names)
        else:
            raise ModelError(f"{path}: unknown model kind {kind!r}")
    except ModelError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{path}: the model file is damaged ({type(exc).__name__}: {exc})") from None
    if not 1 <= len(names) <= 255:
        raise ModelError(f"{path}: a model has 1 to 255 classes")
    return model, dict(doc.get("meta") or {})
