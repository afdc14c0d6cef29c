"""Lloyd's k-means iterations, exact and filtered (docs/method.md, section 2: "run k-means").

A point x of cluster j can only move to a centroid c_i with ||c_i - c_j|| < 2 ||x - c_j|| (Elkan 2003, Lemma 1).
Every point keeps an upper bound on its distance to its centroid (exact when last computed, plus the centroid's
shift since); a cluster is searched only against the centroids within twice its largest bound, and a point within
half the distance from its centroid to the nearest other one is not searched at all (Hamerly 2010; in dimension
<= 8 only this test, and a k-d tree searches the rest). The labels are exact after every search, so the members
of a cluster whose centroid did not move in the last update can only go to a centroid that moved: they are
searched against those alone, and not at all when none moved near them. The labels are those of plain Lloyd up to
float rounding; converged points cost almost nothing, so ``n_iter`` caps what convergence needs instead of fixing
the cost.
Centroid sums are float64 and updated only for the points that moved: a task of the pool sums a group of columns
(``SUM_COLUMNS`` or more), the same additions in the same order whatever the number of threads or tasks. The label
sort of every iteration (a radix sort) and the moved-point bookkeeping stay on one thread.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from curation_assets.core.assignment import BOUND_SLACK, KD_TREE_MAX_DIM, Metric, NearestCentroid, check_metric
from curation_assets.core.linalg import unit_rows
from curation_assets.core.workers import (
    ASSIGN_BLOCK_ROWS,
    Workers,
    label_order,
    nearest_of,
    pairwise_sq_dists,
    row_blocks,
    shared_workers,
    task_blocks,
)

SUM_COLUMNS = 32  # Lloyd's centroid sums: columns per task (at least)
SUM_TASK_VALUES = 1 << 16  # ... and at least this many values added per task (a column's sum is the same either way)
FILTER_MIN_PAIRS = 1 << 22  # below n·k point-centroid pairs a full Lloyd search is cheaper than filtering
FILTER_MAX_SHARE = 0.5  # filter a Lloyd search only when it computes less than this share of n·k pairs
NEIGHBOUR_BLOCK_FLOATS = 1 << 24  # cap of one block of the k × k centroid distances (64 MB)


class ClusterSums:
    """Point counts and float64 coordinate sums per cluster, updated for the points that move. A task of the
    pool sums a group of columns; every sum adds the same rows in the same order whatever the
    number of threads."""

    def __init__(self, X: np.ndarray, labels: np.ndarray, k: int, workers: Workers):
        self.k, self.workers = k, workers
        self.counts = np.bincount(labels, minlength=k)
        self.sums = np.zeros((k, X.shape[1]))
        self._add(X, None, labels, None)

    def _add(self, X: np.ndarray, rows: np.ndarray | None, to: np.ndarray, away_from: np.ndarray | None) -> None:
        """Add X's rows ``rows`` (None: all) to the sums of clusters ``to`` (and subtract them from ``away_from``):
        per block of ``ASSIGN_BLOCK_ROWS`` rows, the rows grouped by cluster and each group summed in row order."""
        blocks = row_blocks(len(to))
        groups = [grouped_by_cluster(to[s:e], None if away_from is None else away_from[s:e]) for s, e in blocks]

        def columns(first: int, last: int) -> None:
            for (start, stop), (take, subtracted, clusters, starts) in zip(blocks, groups, strict=True):
                part = X[start:stop, first:last] if rows is None else X[rows[start:stop], first:last]
                values = part[take].astype(np.float64)
                values[subtracted] *= -1.0
                self.sums[clusters, first:last] += np.add.reduceat(values, starts, axis=0)

        width = max(SUM_COLUMNS, -(-SUM_TASK_VALUES // max(1, len(to))))  # few rows: fewer, wider tasks
        self.workers.run(columns, *zip(*row_blocks(X.shape[1], width), strict=True))

    def move(self, X: np.ndarray, rows: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Rows ``rows`` of X leave clusters ``old`` for clusters ``new``."""
        self.counts += np.bincount(new, minlength=self.k) - np.bincount(old, minlength=self.k)
        self._add(X, rows, new, old)

    def centroids(self, previous: np.ndarray, rng: np.random.Generator, spherical: bool) -> np.ndarray:
        return cluster_means(self.sums, self.counts, previous, rng, spherical)


def grouped_by_cluster(to: np.ndarray, away_from: np.ndarray | None):
    """How one block's rows add to the sums: (the rows grouped by cluster, which of them are subtracted, each
    group's cluster, each group's start); a row moving from ``away_from`` to ``to`` appears in both groups."""
    rows = np.arange(len(to))
    subtracted = np.zeros(len(to), dtype=bool)
    if away_from is not None:
        to, rows = np.concatenate([to, away_from]), np.concatenate([rows, rows])
        subtracted = np.concatenate([subtracted, ~subtracted])
    order = np.argsort(to, kind="stable")
    cluster = to[order]
    starts = np.flatnonzero(np.concatenate([[True], cluster[1:] != cluster[:-1]]))
    return rows[order], subtracted[order], cluster[starts], starts


def cluster_means(sums: np.ndarray, counts: np.ndarray, previous: np.ndarray, rng: np.random.Generator,
                  spherical: bool) -> np.ndarray:
    """Cluster means (k, d) float32 from float64 ``sums`` and ``counts``; an empty cluster takes a perturbed copy
    of a large cluster's centroid (as faiss does), its donor drawn with ``rng``. Every device's Lloyd ends here."""
    k = len(counts)
    counts = counts.copy()
    nonempty = counts > 0
    C = np.zeros_like(previous)
    C[nonempty] = sums[nonempty] / counts[nonempty, None]
    for c in np.flatnonzero(~nonempty):  # split a big cluster in two
        spare = np.maximum(counts - 1, 0)
        donor = rng.choice(k, p=spare / max(1, spare.sum()))
        eps = (1.0 / 1024) * rng.choice([-1.0, 1.0], size=C.shape[1]).astype(np.float32)
        C[c] = C[donor] * (1 + eps)
        C[donor] = C[donor] * (1 - eps)
        counts[c] = counts[donor] // 2
        counts[donor] -= counts[c]
    return unit_rows(C, inplace=True) if spherical else C


def centroid_neighbours(C: np.ndarray, reach: np.ndarray, workers: Workers):
    """For every centroid j: the other centroids closer than ``reach[j]`` (CSR ``indptr``, ``indices``) and
    half the distance to its nearest other centroid. The k × k distances are computed a block of rows at a time."""
    k = len(C)
    sq_slack = BOUND_SLACK * float(np.einsum("ij,ij->i", C, C).max())  # rounding of the GEMM distances

    def block(start: int, stop: int):
        D = pairwise_sq_dists(C[start:stop], C)
        D[np.arange(stop - start), np.arange(start, stop)] = np.inf
        half_gap = 0.5 * np.sqrt(np.maximum(D.min(axis=1) - sq_slack, 0.0))
        row, col = np.nonzero(D < (reach[start:stop, None] * (1 + BOUND_SLACK)) ** 2 + sq_slack)
        return half_gap, np.bincount(row, minlength=stop - start), col

    blocks = task_blocks(k, max(1, min(ASSIGN_BLOCK_ROWS // 8, NEIGHBOUR_BLOCK_FLOATS // k)), min_rows=64)
    parts = workers.run(block, *zip(*blocks, strict=True))
    half_gap = np.concatenate([p[0] for p in parts])
    indptr = np.concatenate([[0], np.cumsum(np.concatenate([p[1] for p in parts]))])
    return half_gap, indptr, np.concatenate([p[2] for p in parts])


def _filtered_search(X: np.ndarray, C: np.ndarray, labels: np.ndarray, upper: np.ndarray, shifted: np.ndarray,
                     workers: Workers):
    """Exact nearest centroids of the rows of X given their current ``labels`` (exact for the centroids before the
    last update), ``upper`` bounds on the distance to them and which centroids the update ``shifted`` (module
    docstring); a full search when filtering would not save much.

    Returns (labels, upper bounds, pairs computed); the bounds of the rows searched become exact.
    """
    n, k = len(X), len(C)
    order = label_order(labels, k)
    starts = np.searchsorted(labels[order], np.arange(k + 1))
    nonempty = np.flatnonzero(np.diff(starts) > 0)
    reach = np.zeros(k, dtype=np.float32)  # 2 × the largest bound in the cluster (Elkan's Lemma 1)
    reach[nonempty] = 2.0 * np.maximum.reduceat(upper[order], starts[nonempty])
    half_gap, indptr, neighbours = centroid_neighbours(C, reach, workers)
    unsure = upper * (1 + BOUND_SLACK) >= half_gap[labels]  # Hamerly's test: the rest cannot move
    tasks, pairs = [], k * k
    for j in nonempty[np.diff(indptr)[nonempty] > 0]:
        near = neighbours[indptr[j] : indptr[j + 1]]
        if not shifted[j]:  # its centroid stayed: only a centroid that shifted can have come nearer than it
            near = near[shifted[near]]
        members = order[starts[j] : starts[j + 1]]
        rows = members[unsure[members]]
        if len(rows) and len(near):
            candidates = np.sort(np.append(near, j))
            tasks.append((rows, candidates))
            pairs += len(rows) * len(candidates)
    if pairs > FILTER_MAX_SHARE * n * k:
        new_labels, new_upper, full = full_search(X, C, workers)
        return new_labels, new_upper, k * k + full

    def search(group: Sequence[tuple[np.ndarray, np.ndarray]]):
        return [nearest_of(X[rows], C[candidates]) for rows, candidates in group]

    n_groups = 4 * workers.threads
    groups = [tasks[i::n_groups] for i in range(n_groups)]  # the grouping does not change any result
    new_labels, new_upper = labels.copy(), upper.copy()
    for group, results in zip(groups, workers.run(search, groups), strict=True):
        for (rows, candidates), (nearest, sq) in zip(group, results, strict=True):
            new_labels[rows] = candidates[nearest]
            new_upper[rows] = np.sqrt(sq)
    return new_labels, new_upper, pairs


def _low_dim_search(X: np.ndarray, C: np.ndarray, labels: np.ndarray, upper: np.ndarray,
                    workers: Workers) -> tuple[np.ndarray, np.ndarray, int]:
    """Exact nearest centroids in dimension <= 8: a k-d tree search of the points that Hamerly's test cannot
    keep in place (bound at least half the distance from their centroid to its nearest other one)."""
    search = NearestCentroid(C)
    gap = search.search_neighbour_gap()
    rows = np.flatnonzero(upper * (1 + BOUND_SLACK) >= 0.5 * gap[labels])
    new_labels, new_upper = labels.copy(), upper.copy()
    if len(rows):
        new_labels[rows], sq = search.search_blocks(X[rows], workers)
        new_upper[rows] = np.sqrt(sq)
    return new_labels, new_upper, 0


def full_search(X: np.ndarray, C: np.ndarray, workers: Workers) -> tuple[np.ndarray, np.ndarray, int]:
    search = NearestCentroid(C)
    labels, sq = search.search_blocks(X, workers)
    return labels, np.sqrt(sq), len(X) * len(C) if search.uses_gemm else 0


def run_lloyd(X: np.ndarray, C: np.ndarray, n_iter: int, rng: np.random.Generator, spherical: bool,
           workers: Workers) -> tuple[np.ndarray, int, int]:
    """Exact Lloyd from ``C``; returns (centroids, iterations run, GEMM pairs computed)."""
    labels, upper, pairs = full_search(X, C, workers)
    low_dim = X.shape[1] <= KD_TREE_MAX_DIM
    filtering = not low_dim and len(X) * len(C) >= FILTER_MIN_PAIRS
    sums = ClusterSums(X, labels, len(C), workers)
    shifted = np.ones(len(C), dtype=bool)  # centroids changed by the last update
    for it in range(1, n_iter + 1):
        if it > 1:
            if low_dim:
                new_labels, upper, work = _low_dim_search(X, C, labels, upper, workers)
            elif filtering:
                new_labels, upper, work = _filtered_search(X, C, labels, upper, shifted, workers)
            else:
                new_labels, upper, work = full_search(X, C, workers)
            pairs += work
            changed = np.flatnonzero(new_labels != labels)
            if len(changed) == 0:
                return C, it, pairs
            sums.move(X, changed, labels[changed], new_labels[changed])
            labels = new_labels
        new_C = sums.centroids(C, rng, spherical)
        shift = np.sqrt(np.einsum("ij,ij->i", new_C - C, new_C - C))
        upper += shift[labels]
        C, shifted = new_C, shift > 0
    return C, n_iter, pairs


def lloyd(X: np.ndarray, init: np.ndarray, n_iter: int, metric: Metric = "l2",
          rng: np.random.Generator | None = None, *, threads: int | None = None) -> tuple[np.ndarray, int]:
    """At most ``n_iter`` exact Lloyd iterations from ``init``; stops once no point changes cluster.

    Parameters
    ----------
    X : (n, d) contiguous float32 array (unit rows for cosine)
    init : (k, d) float32 initial centroids
    n_iter : int
        Maximum iterations (one assignment + one centroid update each).
    metric : {"l2", "cosine"}
        ``cosine``: spherical k-means, the centroids are re-normalised after every update.
    rng : numpy Generator, optional
        Draws the donor cluster when a cluster empties.
    threads : int, optional
        Threads for the distance work; the result does not depend on it.

    Returns
    -------
    centroids : (k, d) float32, iterations run : int
        The labels of every iteration are those of plain Lloyd up to float rounding; see the module docstring.
    """
    check_metric(metric)
    C, iterations, _ = run_lloyd(X, np.array(init, dtype=np.float32), n_iter, rng or np.random.default_rng(0),
                              metric == "cosine", shared_workers(threads))
    return C, iterations
