"""k-means on embeddings (numpy only), with an automatic k (2 to 12) chosen by the mean
silhouette on a subsample.

Starting centroids come from over-clustering (k-means++ seeds, OVER clusters) merged by
Ward's criterion down to k; Lloyd iterations then refine them. On landscapes the widest
class (fields of many crops) otherwise tends to be split in two while two small classes
share a cluster: a lower inertia, but worse clusters. Clusters are numbered by size in the
sample (cluster 1 is the largest), so the same sample gives the same numbers. Distances are
Euclidean on the dequantised embeddings; the centroids are embeddings themselves, so a
fitted model applies to any other year or area (`models.KMeansModel`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import Cancelled

Cancel = Callable[[], bool] | None
AUTO_KS = tuple(range(2, 13))
SELECT_SAMPLES = 12_000  # pixels the candidate k are fitted on
SILHOUETTE_SAMPLES = 3_000  # pixels the silhouette is measured on
OVER = 40  # clusters the starting centroids are merged from


def _check(cancel: Cancel) -> None:
    if cancel is not None and cancel():
        raise Cancelled("cancelled")


def sq_distances(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances (n, k) of rows of x to centroids (the fast form: for
    fitting, where a rounding difference in a near tie does not matter)."""
    xx = np.einsum("ij,ij->i", x, x)[:, None]
    cc = np.einsum("ij,ij->i", centroids, centroids)[None, :]
    return np.maximum(xx - 2.0 * (x @ centroids.T) + cc, 0.0)


def _plusplus(x: np.ndarray, k: int, rng) -> np.ndarray:
    """k-means++ seeds: each next centre drawn with probability proportional to the squared
    distance to the nearest centre so far (the best of a few candidates kept)."""
    n = len(x)
    trials = 2 + int(np.log(k))
    centres = [x[rng.integers(n)]]
    closest = sq_distances(x, np.asarray(centres))[:, 0]
    for _ in range(1, k):
        total = float(closest.sum())
        if total <= 0:
            centres.append(x[rng.integers(n)])
            continue
        cands = np.minimum(np.searchsorted(np.cumsum(closest), rng.random(trials) * total), n - 1)
        dist = np.minimum(closest[None, :], sq_distances(x, x[cands]).T)
        best = int(np.argmin(dist.sum(axis=1)))
        centres.append(x[cands[best]])
        closest = dist[best]
    return np.asarray(centres, dtype=np.float64)


def _sums(x: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(sums (k, d) float64, counts (k,)) of the rows of x per label (one matrix product)."""
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    onehot = np.zeros((k, len(x)), dtype=x.dtype)
    onehot[labels, np.arange(len(x))] = 1
    return (onehot @ x).astype(np.float64), counts


def lloyd(x: np.ndarray, centres: np.ndarray, max_iter: int = 100, tol: float = 1e-4,
          cancel: Cancel = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Lloyd iterations from `centres`: (centroids, labels, inertia). An empty cluster takes
    the points farthest from their centre."""
    centres = np.asarray(centres, dtype=np.float64)
    k = len(centres)
    scale = float(np.mean(np.var(x, axis=0))) or 1.0
    for _ in range(max_iter):
        _check(cancel)
        d = sq_distances(x, centres.astype(x.dtype))
        labels = np.argmin(d, axis=1)
        sums, counts = _sums(x, labels, k)
        new = centres.copy()
        full = counts > 0
        new[full] = sums[full] / counts[full, None]
        if not full.all():
            far = np.argsort(-d[np.arange(len(x)), labels])[: int((~full).sum())]
            new[~full] = x[far]
        shift = float(np.sum((new - centres) ** 2))
        centres = new
        if shift <= tol * scale:
            break
    d = sq_distances(x, centres.astype(x.dtype))
    labels = np.argmin(d, axis=1)
    return centres, labels, float(d[np.arange(len(x)), labels].sum())


def ward_merge(centres: np.ndarray, weights: np.ndarray, ks) -> dict[int, np.ndarray]:
    """Merge weighted centres two at a time, always the pair whose merge raises the
    within-cluster sum of squares least (Ward), down to each k in `ks`: {k: centres (k, d)}."""
    c = [np.asarray(v, dtype=np.float64) for v in centres]
    w = [float(v) for v in weights]
    wanted = set(ks)
    out = {len(c): np.array(c)} if len(c) in wanted else {}
    while len(c) > 1:
        cc, ww = np.array(c), np.array(w)
        cost = ww[:, None] * ww[None, :] / (ww[:, None] + ww[None, :]) * sq_distances(cc, cc)
        cost[np.tril_indices(len(c))] = np.inf
        i, j = np.unravel_index(int(np.argmin(cost)), cost.shape)
        c[i] = (c[i] * w[i] + c[j] * w[j]) / (w[i] + w[j])
        w[i] += w[j]
        del c[j], w[j]
        if len(c) in wanted:
            out[len(c)] = np.array(c)
    return out


def initial_centres(x: np.ndarray, ks, seed: int = 0, cancel: Cancel = None) -> dict[int, np.ndarray]:
    """Starting centroids for each k in `ks`: x over-clustered, merged down to k (Ward)."""
    over = min(max(OVER, 3 * max(ks)), len(x))
    rng = np.random.default_rng(seed)
    _, labels, _ = lloyd(x, _plusplus(x, over, rng), max_iter=30, cancel=cancel)
    sums, counts = _sums(x, labels, over)
    keep = counts > 0
    return ward_merge(sums[keep] / counts[keep, None], counts[keep], ks)


def _by_size(centres: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = len(centres)
    order = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    return centres[order], rank[labels]


def kmeans(x: np.ndarray, k: int, seed: int = 0, max_iter: int = 100, cancel: Cancel = None,
           init: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(centroids (k, d), labels (n,), inertia): Lloyd iterations from `init`, or from
    `initial_centres`; centroids ordered by cluster size, largest first."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) < k:
        raise ValueError(f"too few valid pixels ({len(x)}) for {k} clusters")
    if init is None:
        init = initial_centres(x, [k], seed, cancel)[k]
    centres, labels, inertia = lloyd(x, init, max_iter, cancel=cancel)
    centres, labels = _by_size(centres, labels)
    return centres, labels, inertia


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient (Euclidean): for each point (b - a) / max(a, b), a its mean
    distance to the rest of its cluster, b to the nearest other cluster (0 for a point alone)."""
    x = np.asarray(x, dtype=np.float64)
    labels = np.asarray(labels)
    ks = np.unique(labels)
    if len(ks) < 2:
        return -1.0
    d = np.sqrt(sq_distances(x, x))
    sums = np.stack([d[:, labels == c].sum(axis=1) for c in ks], axis=1)  # (n, clusters)
    sizes = np.array([(labels == c).sum() for c in ks], dtype=np.float64)
    own = np.searchsorted(ks, labels)
    rows = np.arange(len(x))
    a = sums[rows, own] / np.maximum(sizes[own] - 1, 1)
    means = sums / sizes[None, :]
    means[rows, own] = np.inf
    b = means.min(axis=1)
    s = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
    s[sizes[own] == 1] = 0.0
    return float(s.mean())


def fit(x: np.ndarray, k: int = 0, ks=AUTO_KS, seed: int = 0, cancel: Cancel = None,
        progress: Callable[[float], None] | None = None) -> tuple[np.ndarray, dict[int, float]]:
    """Centroids (k, d) for samples x (n, d), largest cluster first. k = 0 chooses k among
    `ks` by the highest mean silhouette: each candidate is fitted on a subsample of
    SELECT_SAMPLES pixels and measured on SILHOUETTE_SAMPLES of them. The chosen (or given)
    k is then fitted on all of x. Returns (centroids, {k: silhouette} of the candidates)."""
    x = np.asarray(x, dtype=np.float32)
    rng = np.random.default_rng(seed)
    sub = x if len(x) <= SELECT_SAMPLES else x[np.sort(rng.choice(len(x), SELECT_SAMPLES, replace=False))]
    scores: dict[int, float] = {}
    if k:
        if len(x) < k:
            raise ValueError(f"too few valid pixels ({len(x)}) for {k} clusters")
        start = initial_centres(sub, [k], seed, cancel)[k]
    else:
        ks = [c for c in ks if c < len(sub)]
        if not ks:
            raise ValueError(f"too few valid pixels ({len(x)}) to choose a number of clusters")
        inits = initial_centres(sub, ks, seed, cancel)
        sil = np.arange(len(sub)) if len(sub) <= SILHOUETTE_SAMPLES else \
            np.sort(rng.choice(len(sub), SILHOUETTE_SAMPLES, replace=False))
        fitted = {}
        for i, c in enumerate(ks):
            fitted[c], labels, _ = lloyd(sub, inits[c], 60, cancel=cancel)
            scores[c] = silhouette(sub[sil], labels[sil])
            if progress is not None:
                progress(0.8 * (i + 1) / len(ks))
        k = max(scores, key=lambda c: (round(scores[c], 6), -c))
        start = fitted[k]
    centres, _, _ = kmeans(x, k, seed, cancel=cancel, init=start)
    if progress is not None:
        progress(1.0)
    return centres.astype(np.float32), scores
