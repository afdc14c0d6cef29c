"""The assignment interface: the exact nearest centroid of every row (docs/method.md, section 2, "assign all of X_t").

:class:`NearestCentroid` is the one search every CPU pass uses (the final assignment of a k-means, the
re-assignments after resampling, the splits, Lloyd's full searches): a k-d tree in dimension <= 8, faiss
GEMMs and an argmin above. A device's kernels (``backend_faiss``, ``backend_torch``) answer ``assign`` with it or
with their own GEMM; :data:`Assigner` is the shape of that pass when an execution backend spreads it over
workers (``curation_assets.execution``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from curation_assets.core.linalg import unit_rows
from curation_assets.core.workers import Workers, nearest_of, task_blocks

Metric = Literal["l2", "cosine"]
METRICS = ("l2", "cosine")
ASSIGN_CHUNK_ROWS = 65_536  # rows of a memory-mapped X read (and, for cosine, normalised) at a time
KD_TREE_MAX_DIM = 8  # exact k-d tree search beats brute-force GEMM in very low dimension
BOUND_SLACK = 1e-5  # relative slack on the triangle-inequality tests, for float rounding of the distances

Assigner = Callable[[np.ndarray, np.ndarray, Metric], tuple[np.ndarray, np.ndarray]]
"""``(X, centroids, metric) -> (labels, distances)`` over every row of X, like :func:`clustering.assign`: the
full-pool pass an execution backend may spread over workers (``curation_assets.execution``)."""


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def gemm_pairs(n: int, k: int, d: int) -> int:
    """Point–centroid pairs of a full search of n rows against k centroids computed by GEMM (none by a k-d tree)."""
    return n * k if d > KD_TREE_MAX_DIM else 0


class NearestCentroid:
    """Exact nearest-centroid search: a k-d tree in low dimension, faiss GEMMs above (:func:`workers.nearest_of`)."""

    def __init__(self, centroids: np.ndarray, metric: Metric = "l2"):
        check_metric(metric)
        self.metric = metric
        self.centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        if metric == "cosine":  # the nearest by cosine: unit centroids too, and 2 - 2 cos is a squared L2 distance
            self.centroids = unit_rows(self.centroids)
        d = self.centroids.shape[1]
        self._tree = None
        if d <= KD_TREE_MAX_DIM:
            from scipy.spatial import cKDTree  # only the low-dimensional path pays for importing scipy.spatial

            self._tree = cKDTree(self.centroids.astype(np.float64))

    @property
    def uses_gemm(self) -> bool:
        return self._tree is None

    def search_neighbour_gap(self) -> np.ndarray:
        """Distance from every centroid to its nearest other centroid (k-d tree only; inf when k = 1)."""
        k = len(self.centroids)
        if k == 1:
            return np.full(1, np.inf)
        dist, _ = self._tree.query(self._tree.data, k=2)
        return dist[:, 1]

    def search(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels int64, squared L2 distances float32) of the rows of ``block`` (unit rows for cosine)."""
        if self._tree is not None:
            dist, lab = self._tree.query(block.astype(np.float64), k=1)
            return lab.astype(np.int64), (dist**2).astype(np.float32)
        return nearest_of(block, self.centroids)

    def search_blocks(self, block: np.ndarray, workers: Workers) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with the same bytes for any pool size: single-threaded searches of the blocks of
        :func:`workers.task_blocks`, spread over the pool's threads (k-d tree queries as well)."""
        results = workers.run(self.search, [block[s:e] for s, e in task_blocks(len(block))])
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])
