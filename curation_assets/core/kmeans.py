"""k-means: Lloyd iterations with faiss doing the distance work, seeded by an exact, batched k-means++.

METHOD.md, "Initialisation decides everything": the flattening of the centroid
distribution only happens when every k-means places its centroids like converged
k-means does, so every run here is seeded with k-means++ (D² sampling), never with
faiss's default random-points init.

k-means++ is made fast by *batched rejection sampling*: each round draws B candidates
i.i.d. from the current D² distribution, then accepts them one after another with
probability D²_new(x)/D²_cur(x), where D²_new also counts the candidates accepted earlier
in the round. Every accepted candidate is an exact draw from the D² distribution given
all centroids chosen before it (rejection sampling with proposal D²_cur ≥ D²_new), so
the seeding has k-means++'s distribution, while the expensive update of D² over all
points becomes one GEMM per round instead of one GEMV per centroid.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from curation_assets.core._validation import as_float32_matrix

Metric = Literal["l2", "cosine"]
METRICS = ("l2", "cosine")
ASSIGN_CHUNK_ROWS = 65_536
ASSIGN_BLOCK_ROWS = 8_192  # rows per single-threaded search inside a chunk
KD_TREE_MAX_DIM = 8  # exact k-d tree search beats brute-force GEMM in very low dimension
KD_TREE_MIN_CENTROIDS = 32  # ... once there are enough centroids to search among


@dataclass(frozen=True)
class KMeansResult:
    """Centroids (k, d), the cluster of every input row, its squared distance, Lloyd iterations run."""

    centroids: np.ndarray
    labels: np.ndarray
    distances: np.ndarray
    n_iter: int = 0

    @property
    def inertia(self) -> float:
        return float(self.distances.sum(dtype=np.float64))


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def normalize_rows(X: np.ndarray) -> np.ndarray:
    """Unit-norm copy of X (rows of norm 0 stay 0), for cosine / spherical k-means."""
    X = np.array(X, dtype=np.float32, copy=True)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    np.divide(X, norms, out=X, where=norms > 0)
    return X


def _sq_dists_to(X: np.ndarray, x_sq: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Squared L2 distances (n, m) between rows of X and rows of C, via one GEMM."""
    d = x_sq[:, None] - 2.0 * (X @ C.T) + np.einsum("ij,ij->i", C, C)[None, :]
    return np.maximum(d, 0.0, out=d)


def _min_sq_dist(X: np.ndarray, x_sq: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Squared L2 distance of every row of X to its nearest row of C (k-d tree in low dimension)."""
    if X.shape[1] <= KD_TREE_MAX_DIM and len(C) > KD_TREE_MIN_CENTROIDS:
        dist, _ = cKDTree(C.astype(np.float64)).query(X, k=1, workers=-1)
        return dist**2
    return _sq_dists_to(X, x_sq, C).min(axis=1)


def kmeans_plusplus(X: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Exact k-means++ (D²) seeding of k centroids from the rows of X (n, d) float32.

    Batched by rejection sampling (see the module docstring); returns (k, d) float32.
    """
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means++ needs 1 <= k <= n, got k={k}, n={n}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    x_sq = np.einsum("ij,ij->i", X, X)
    chosen = [int(rng.integers(n))]
    d2 = _min_sq_dist(X, x_sq, X[chosen]).astype(np.float64)
    while len(chosen) < k:
        total = d2.sum()
        if not total > 0:  # every point coincides with a centroid: fill with unused rows
            unused = np.setdiff1d(np.arange(n), chosen)
            chosen.extend(rng.choice(unused, k - len(chosen), replace=False).tolist())
            break
        batch = min(k - len(chosen), len(chosen))
        cand = rng.choice(n, size=batch, p=d2 / total)
        pair = _sq_dists_to(X[cand], x_sq[cand], X[cand]).astype(np.float64)
        u = rng.random(batch)
        accepted: list[int] = []
        for j in range(batch):
            cur = d2[cand[j]]
            new = min(cur, pair[j, accepted].min()) if accepted else cur
            if cur > 0 and u[j] * cur < new:
                accepted.append(j)
        if accepted:
            new_c = cand[accepted]
            chosen.extend(new_c.tolist())
            np.minimum(d2, _min_sq_dist(X, x_sq, X[new_c]), out=d2)
    return X[np.asarray(chosen[:k])].copy()


def _flat_index(d: int, metric: Metric) -> faiss.Index:
    return faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)


class NearestCentroid:
    """Exact nearest-centroid search: a k-d tree in low dimension, faiss's flat (GEMM) index above."""

    def __init__(self, centroids: np.ndarray, metric: Metric = "l2"):
        _check_metric(metric)
        self.metric = metric
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        d = self.centroids.shape[1]
        if d <= KD_TREE_MAX_DIM:
            self._tree = cKDTree(self.centroids.astype(np.float64))
        else:
            self._tree = None
            self._index = _flat_index(d, metric)
            self._index.add(self.centroids)

    def search(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels int64, squared L2 distances float32) of the rows of ``block`` (unit rows for cosine)."""
        if self._tree is not None:
            dist, lab = self._tree.query(block.astype(np.float64), k=1, workers=-1)
            return lab.astype(np.int64), (dist**2).astype(np.float32)
        D, Ind = self._index.search(block, 1)
        sq = 2.0 - 2.0 * D[:, 0] if self.metric == "cosine" else D[:, 0]
        return Ind[:, 0].astype(np.int64), np.maximum(sq, 0.0).astype(np.float32)

    def _search_single_threaded(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        faiss.omp_set_num_threads(1)  # this thread only: one BLAS thread per block, whatever the pool size
        return self.search(block)

    def search_blocks(self, block: np.ndarray, pool: ThreadPoolExecutor) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with the same bytes for any pool size: single-threaded searches of
        ``ASSIGN_BLOCK_ROWS`` rows each, spread over ``pool``'s threads."""
        if self._tree is not None:  # the k-d tree answers each row on its own: nothing to align
            return self.search(block)
        parts = [block[s : s + ASSIGN_BLOCK_ROWS] for s in range(0, len(block), ASSIGN_BLOCK_ROWS)]
        results = list(pool.map(self._search_single_threaded, parts))
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def assign_threads() -> int:
    """Threads for :func:`assign`: ``OMP_NUM_THREADS`` when set (Ray sets it to a task's CPUs), else all cores."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, int(env)) if env.isdigit() else max(1, os.cpu_count() or 1)


def assign(X: np.ndarray, centroids: np.ndarray, metric: Metric = "l2",
           chunk_rows: int = ASSIGN_CHUNK_ROWS, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row of X, streamed in chunks (X may be a memmap).

    Returns (labels int64, squared L2 distances float32); for ``cosine`` the distance is
    ``2 - 2 cos`` (squared L2 between unit vectors). Each chunk is searched in blocks of
    ``ASSIGN_BLOCK_ROWS`` rows, one single-threaded search per block, on ``threads`` threads:
    a multi-threaded BLAS call rounds differently with the thread count, so this keeps the bytes
    the same on every machine and in every worker (the execution backends rely on it).
    """
    search = NearestCentroid(centroids, metric)
    n = X.shape[0]
    labels = np.empty(n, dtype=np.int64)
    dists = np.empty(n, dtype=np.float32)
    with ThreadPoolExecutor(threads or assign_threads()) as pool:
        for start in range(0, n, chunk_rows):
            block = np.ascontiguousarray(X[start : start + chunk_rows], dtype=np.float32)
            if metric == "cosine":
                block = normalize_rows(block)
            labels[start : start + len(block)], dists[start : start + len(block)] = search.search_blocks(block, pool)
    return labels, dists


Assigner = Callable[[np.ndarray, np.ndarray, Metric], tuple[np.ndarray, np.ndarray]]
"""``(X, centroids, metric) -> (labels, distances)`` over every row of X, like :func:`assign`: the
full-pool pass an execution backend may spread over workers (``curation_assets.execution``)."""


def _centroid_update(X: np.ndarray, labels: np.ndarray, old: np.ndarray, rng: np.random.Generator,
                     spherical: bool) -> np.ndarray:
    """Means of the clusters; an empty cluster takes a perturbed copy of a large cluster's centroid."""
    k, n = old.shape[0], X.shape[0]
    counts = np.bincount(labels, minlength=k)
    onehot = sparse.csr_matrix((np.ones(n, dtype=np.float32), (labels, np.arange(n))), shape=(k, n))
    C = np.asarray(onehot @ X, dtype=np.float32)
    nonempty = counts > 0
    C[nonempty] /= counts[nonempty, None]
    for c in np.flatnonzero(~nonempty):  # split a big cluster in two, as faiss does
        donor = rng.choice(k, p=np.maximum(counts - 1, 0) / max(1, (np.maximum(counts - 1, 0)).sum()))
        eps = (1.0 / 1024) * rng.choice([-1.0, 1.0], size=C.shape[1]).astype(np.float32)
        C[c] = C[donor] * (1 + eps)
        C[donor] = C[donor] * (1 - eps)
        counts[c] = counts[donor] // 2
        counts[donor] -= counts[c]
    if spherical:
        C = normalize_rows(C)
    return C


def lloyd(X: np.ndarray, init: np.ndarray, n_iter: int, metric: Metric,
          rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """At most ``n_iter`` Lloyd iterations from ``init``; stops early once no point changes cluster.

    X must be contiguous float32 (unit rows for cosine). Returns (centroids, iterations run).
    """
    C = init
    labels = None
    for it in range(1, n_iter + 1):
        new_labels, _ = NearestCentroid(C, metric).search(X)
        if labels is not None and np.array_equal(new_labels, labels):
            return C, it
        labels = new_labels
        C = _centroid_update(X, labels, C, rng, spherical=metric == "cosine")
    return C, n_iter


def training_sample(n: int, k: int, max_points_per_centroid: int | None,
                    rng: np.random.Generator) -> np.ndarray | None:
    """Sorted row indices of a bounded training sample, or None to train on all rows."""
    if max_points_per_centroid is None or n <= k * max_points_per_centroid:
        return None
    return np.sort(rng.choice(n, size=k * max_points_per_centroid, replace=False))


def kmeans(X, k: int, *, n_iter: int = 50, seed: int = 0, metric: Metric = "l2",
           max_points_per_centroid: int | None = 256, assigner: Assigner | None = None) -> KMeansResult:
    """Lloyd k-means (faiss) from k-means++ seeds; deterministic for a given seed.

    X: (n, d) float32 array or memmap. Training (seeding + Lloyd) uses at most
    ``k * max_points_per_centroid`` rows drawn at random (None: all rows); the final
    assignment always covers every row, by ``assigner`` (default :func:`assign`).
    ``metric="cosine"`` runs spherical k-means on unit-normalised rows (centroids are unit norm).
    """
    _check_metric(metric)
    X = as_float32_matrix(X)
    n, d = X.shape
    if not 1 <= k <= n:
        raise ValueError(f"cannot make k={k} clusters from {n} points (need 1 <= k <= n)")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    rng = np.random.default_rng(seed)
    sample = training_sample(n, k, max_points_per_centroid, rng)
    train = np.ascontiguousarray(X if sample is None else X[sample], dtype=np.float32)
    if metric == "cosine":
        train = normalize_rows(train)
    init = kmeans_plusplus(train, k, rng)
    centroids, iterations = lloyd(train, init, n_iter, metric, rng)
    labels, dists = (assigner or assign)(X, centroids, metric)
    return KMeansResult(centroids=centroids, labels=labels, distances=dists, n_iter=iterations)
