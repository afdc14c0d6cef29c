"""k-means for the curation hierarchy: greedy k-means++ seeding, exact filtered Lloyd, streamed assignment.

docs/method.md, section 3 ("Seeding decides everything"): the flattening of the centroid distribution only
happens when every k-means places its centroids like converged k-means does, so every run here is
seeded with *greedy* k-means++ (Arthur & Vassilvitskii 2007; the greedy variant is scikit-learn's
``kmeans_plusplus``): at each step, draw ``L = 2 + floor(ln k)`` candidates from the D² distribution
(probability ∝ squared distance to the nearest centroid chosen so far) and keep the one that lowers
the potential (the sum of those squared distances) most. ``L = 1`` is plain D² sampling.

Seeding, exact and batched: a batch draws proposals i.i.d. from the D² distribution at its
start, D²_start, and computes their squared distances to all points with one GEMM. Step after step,
a proposal is accepted with probability D²_now(x) / D²_start(x) ≤ 1, where D²_now also counts the
centroids chosen earlier in the batch: sequential rejection sampling, so every accepted proposal is an
exact draw from the D² distribution of its step. A step's L accepted candidates are scored from the
precomputed distance rows, and the best one updates D². When the proposals run out, a new batch starts
from the current D². In dimension <= 8 the rows stay sparse: a fixed partition of the points into small
buckets finds, per proposal, the few points it is closer to than their nearest centroid.
Greedy seeding computes L distance rows per centroid where plain D² sampling computes one, so it runs on
a uniform sample of at most ``k * SEEDING_POINTS_PER_CENTROID`` training rows (Lloyd then runs on all of
them): at large k this keeps seeding below the cost of Lloyd, and the balance measured on the long-tailed
benchmark (bench/bench_longtail.py) is the same as seeding on every row.

Lloyd, exact and filtered: a point x of cluster j can only move to a centroid c_i with
||c_i - c_j|| < 2 ||x - c_j|| (Elkan 2003, Lemma 1). Every point keeps an upper bound on its distance to
its centroid (exact when last computed, plus the centroid's shift since); a cluster is searched only
against the centroids within twice its largest bound, and a point within half the distance from its
centroid to the nearest other one is not searched at all (Hamerly 2010; in dimension <= 8 only this
test, and a k-d tree searches the rest). The labels are those of plain Lloyd up to float rounding;
converged points cost almost nothing, so ``n_iter`` caps what convergence needs instead of fixing the cost.
Centroid sums are float64 and updated only for the points that moved.

Thread-count independence: every GEMM here (seeding rows, Lloyd searches, the assignment) is a
single-threaded faiss call on a fixed block of rows, and the blocks run on a thread pool, so the bytes of
every result are the same whatever the number of threads (a multi-threaded BLAS call rounds
differently with the thread count). The distance kernels are the small functions under "Distance
kernels" below: the only places a different backend has to replace.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import faiss
import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

from curation_assets.core._validation import as_float32_matrix
from curation_assets.core.linalg import unit_rows

Metric = Literal["l2", "cosine"]
METRICS = ("l2", "cosine")
ASSIGN_CHUNK_ROWS = 65_536  # rows of a memory-mapped X read (and, for cosine, normalised) at a time
ASSIGN_BLOCK_ROWS = 8_192  # rows per single-threaded search or distance block
KD_TREE_MAX_DIM = 8  # exact k-d tree search beats brute-force GEMM in very low dimension
SEEDING_BLOCK_FLOATS = 1 << 24  # cap of one seeding batch's proposals × points distance rows (64 MB)
LOW_DIM_BUCKET_ROWS = 16  # d <= 8 seeding: points per bucket of the fixed partition that finds near pairs
SEEDING_POINTS_PER_CENTROID = 64  # greedy seeding runs on at most k × this many training rows
FILTER_MIN_PAIRS = 1 << 22  # below n·k point-centroid pairs a full Lloyd search is cheaper than filtering
FILTER_MAX_SHARE = 0.5  # filter a Lloyd search only when it computes less than this share of n·k pairs
GAIN_TIE_TOLERANCE = 1e-5  # seeding candidates whose gains agree this closely are tied
BOUND_SLACK = 1e-5  # relative slack on the triangle-inequality tests, for float rounding of the distances


@dataclass(frozen=True)
class KMeansResult:
    """Centroids (k, d), the cluster of every input row, its squared distance, Lloyd iterations run.

    ``distance_pairs`` counts the point–centroid squared distances computed by GEMM (seeding, Lloyd,
    final assignment): the work done, for FLOP accounting (2·d FLOPs per pair).
    """

    centroids: np.ndarray
    labels: np.ndarray
    distances: np.ndarray
    n_iter: int = 0
    distance_pairs: int = 0

    @property
    def inertia(self) -> float:
        return float(self.distances.sum(dtype=np.float64))


@dataclass(frozen=True)
class TrainedCentroids:
    """Centroids (k, d) trained by :func:`fit_centroids`, Lloyd iterations run, distance pairs computed."""

    centroids: np.ndarray
    n_iter: int
    distance_pairs: int


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def default_seeding_candidates(k: int) -> int:
    """Greedy k-means++ candidates per step for k clusters: 2 + floor(ln k), scikit-learn's default."""
    return 2 + int(math.log(k))


# ---------------------------------------------------------------- distance kernels


def _pairwise_sq_dists(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared L2 distances (len(A), len(B)) by one GEMM on this thread (call it on a :class:`Workers` thread)."""
    return np.maximum(faiss.pairwise_distances(A, B), 0.0)


def _nearest_of(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index into B (int64) of the nearest row of B to every row of A, and its squared L2 distance."""
    D, Ind = faiss.knn(A, B, 1)
    return Ind[:, 0], np.maximum(D[:, 0], 0.0)


def _one_thread(fn: Callable, *args):
    faiss.omp_set_num_threads(1)  # this thread only: one BLAS thread per call, whatever the pool size
    return fn(*args)


class Workers(ThreadPoolExecutor):
    """A thread pool whose tasks run their faiss / BLAS calls single-threaded.

    Results are bytes-identical for any pool size as long as the task boundaries do not depend on it.
    """

    def __init__(self, threads: int):
        super().__init__(threads)
        self.threads = threads

    def run(self, fn: Callable, *iterables) -> list:
        """``[fn(*args) for args in zip(*iterables)]``, each call single-threaded on the pool."""
        return list(self.map(functools.partial(_one_thread, fn), *iterables))


_SHARED_WORKERS: dict[int, Workers] = {}
os.register_at_fork(after_in_child=_SHARED_WORKERS.clear)  # a forked child has none of the parent's threads


def shared_workers(threads: int | None = None) -> Workers:
    """The process-wide pool of ``threads`` threads (default :func:`assign_threads`), started once.

    Tasks on it must not wait for other tasks on it (no nesting).
    """
    threads = threads or assign_threads()
    if threads not in _SHARED_WORKERS:
        _SHARED_WORKERS[threads] = Workers(threads)
    return _SHARED_WORKERS[threads]


def assign_threads() -> int:
    """Threads for the distance work: ``OMP_NUM_THREADS`` when set (Ray sets it to a task's CPUs), else all cores."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, int(env)) if env.isdigit() else max(1, os.cpu_count() or 1)


def _row_blocks(n: int, block_rows: int = ASSIGN_BLOCK_ROWS) -> list[tuple[int, int]]:
    return [(s, min(s + block_rows, n)) for s in range(0, n, block_rows)]


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
            self._index = faiss.IndexFlatIP(d) if metric == "cosine" else faiss.IndexFlatL2(d)
            self._index.add(self.centroids)

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
        D, Ind = self._index.search(block, 1)
        sq = 2.0 - 2.0 * D[:, 0] if self.metric == "cosine" else D[:, 0]
        return Ind[:, 0].astype(np.int64), np.maximum(sq, 0.0).astype(np.float32)

    def search_blocks(self, block: np.ndarray, workers: Workers) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with the same bytes for any pool size: single-threaded searches of
        ``ASSIGN_BLOCK_ROWS`` rows each, spread over the pool's threads (k-d tree queries as well)."""
        results = workers.run(self.search, [block[s:e] for s, e in _row_blocks(len(block))])
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def assign(X: np.ndarray, centroids: np.ndarray, metric: Metric = "l2", chunk_rows: int = ASSIGN_CHUNK_ROWS,
           threads: int | None = None, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row of X, streamed in chunks (X may be a memmap, read in place).

    Parameters
    ----------
    X : (n, d) float32 array or memmap
    centroids : (k, d) float32 array
    metric : {"l2", "cosine"}
        For ``cosine`` the rows are unit-normalised chunk by chunk and the distance is ``2 - 2 cos``.
    chunk_rows : int
        Rows of X held in memory at a time (a copy only when normalising or gathering ``rows``).
    threads : int, optional
        Threads of the pool running the searches (default :func:`assign_threads`); the bytes do not depend on it.
    rows : (m,) int array, optional
        Assign only these rows of X, in this order (default: all rows).

    Returns
    -------
    labels : (n,) or (m,) int64, squared L2 distances : float32
        Each chunk is searched in blocks of ``ASSIGN_BLOCK_ROWS`` rows, one single-threaded search per
        block: a multi-threaded BLAS call rounds differently with the thread count, so this keeps the bytes
        the same on every machine and in every worker (the execution backends rely on it).
    """
    search = NearestCentroid(centroids, metric)
    n = X.shape[0] if rows is None else len(rows)
    labels = np.empty(n, dtype=np.int64)
    dists = np.empty(n, dtype=np.float32)
    workers = shared_workers(threads)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        if rows is None:  # a slice: a view of X, copied only to normalise it
            block = X[start:stop]
            block = unit_rows(block) if metric == "cosine" else np.ascontiguousarray(block, np.float32)
        else:  # a gathered copy, normalised in place
            block = np.ascontiguousarray(X[rows[start:stop]], np.float32)
            if metric == "cosine":
                unit_rows(block, inplace=True)
        labels[start:stop], dists[start:stop] = search.search_blocks(block, workers)
        del block  # one chunk in memory at a time, not two while the next one is read
    return labels, dists


Assigner = Callable[[np.ndarray, np.ndarray, Metric], tuple[np.ndarray, np.ndarray]]
"""``(X, centroids, metric) -> (labels, distances)`` over every row of X, like :func:`assign`: the
full-pool pass an execution backend may spread over workers (``curation_assets.execution``)."""


# ---------------------------------------------------------------- seeding: greedy k-means++


def _draw_d2(d2: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` row indices drawn i.i.d. with probability ∝ ``d2`` (rows with d2 = 0 are never drawn)."""
    cdf = np.cumsum(d2, dtype=np.float64)
    last_positive = int(np.searchsorted(cdf, cdf[-1], side="left"))
    return np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right"), last_positive)


def _distance_rows(X: np.ndarray, sources: np.ndarray, workers: Workers) -> np.ndarray:
    """Squared distances (len(sources), n) from the rows ``sources`` of X to every row of X, one GEMM per block."""
    from_rows = X[sources]
    out = np.empty((len(sources), len(X)), dtype=np.float32)

    def block(start: int, stop: int) -> None:
        out[:, start:stop] = _pairwise_sq_dists(from_rows, X[start:stop])

    workers.run(block, *zip(*_row_blocks(len(X)), strict=True))
    return out


class _DenseRows:
    """Squared distances from a batch of proposals to all points (d > 8): one GEMM per block of points."""

    def __init__(self, X: np.ndarray, proposals: np.ndarray, workers: Workers):
        self.rows = _distance_rows(X, proposals, workers)
        self.pairs = self.rows.size

    def gains(self, accepted: list[int], d2: np.ndarray) -> np.ndarray:
        """How much each accepted proposal would lower the potential (the sum of D²)."""
        return np.maximum(d2 - self.rows[accepted], 0.0).sum(axis=1, dtype=np.float64)

    def lower(self, d2: np.ndarray, best: int) -> None:
        np.minimum(d2, self.rows[best], out=d2)


class _Buckets:
    """A fixed partition of the points (d <= 8) into buckets of about ``LOW_DIM_BUCKET_ROWS`` points: each point
    goes to its nearest anchor, every ``LOW_DIM_BUCKET_ROWS``-th point; ``radius`` bounds a bucket's points'
    distance to its anchor."""

    def __init__(self, points: np.ndarray):
        self.points = points
        self.anchors = points[::LOW_DIM_BUCKET_ROWS]
        self.anchor_sq = (self.anchors * self.anchors).sum(axis=1)
        self.coordinates = np.ascontiguousarray(points.T)
        dist, bucket = cKDTree(self.anchors).query(points)
        self.order = np.argsort(bucket, kind="stable")
        self.starts = np.searchsorted(bucket[self.order], np.arange(len(self.anchors) + 1))
        self.sizes = np.diff(self.starts)
        self.nonempty = np.flatnonzero(self.sizes)
        self.radius = np.zeros(len(self.anchors))
        self.radius[self.nonempty] = np.maximum.reduceat(dist[self.order], self.starts[self.nonempty])

    def max_per_bucket(self, values: np.ndarray) -> np.ndarray:
        out = np.zeros(len(self.anchors))
        out[self.nonempty] = np.maximum.reduceat(values[self.order], self.starts[self.nonempty])
        return out


class _NearRows:
    """The same for d <= 8, kept sparse: only the (proposal, point) pairs where the proposal is closer to the
    point than the point's nearest centroid at the batch start, the only pairs that can ever lower D². A
    proposal p reaches a point x of bucket b only if ||p - anchor_b|| < radius_b + sqrt(max D² in b), so
    just the points of those buckets are measured."""

    def __init__(self, buckets: _Buckets, proposals: np.ndarray, d2: np.ndarray):
        at = buckets.points[proposals]
        reach = (buckets.radius + np.sqrt(buckets.max_per_bucket(d2))) * (1 + BOUND_SLACK)
        anchor_sq = (at * at).sum(axis=1)[:, None] - 2.0 * (at @ buckets.anchors.T) + buckets.anchor_sq[None, :]
        owner, bucket = np.nonzero(anchor_sq < reach**2 + BOUND_SLACK * buckets.anchor_sq.max())  # by proposal
        sizes = buckets.sizes[bucket]
        offsets = np.repeat(buckets.starts[bucket] - np.cumsum(sizes) + sizes, sizes)
        point = buckets.order[offsets + np.arange(sizes.sum())]
        owner = np.repeat(owner, sizes)
        sq = np.zeros(len(point))
        for coordinate, of_proposal in zip(buckets.coordinates, at.T, strict=True):  # d <= 8 one-dimensional passes
            sq += (coordinate[point] - of_proposal[owner]) ** 2
        closer = sq < d2[point]
        self.point, self.sq = point[closer], sq[closer]
        self.bounds = np.searchsorted(owner[closer], np.arange(len(proposals) + 1))
        self.pairs = 0  # not GEMM work

    def gains(self, accepted: list[int], d2: np.ndarray) -> np.ndarray:
        """How much each accepted proposal would lower the potential (the sum of D²)."""
        starts, lengths = self.bounds[accepted], np.diff(self.bounds)[accepted]
        spans = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        drop = np.maximum(d2[self.point[spans]] - self.sq[spans], 0.0)
        return np.bincount(np.repeat(np.arange(len(accepted)), lengths), drop, minlength=len(accepted))

    def lower(self, d2: np.ndarray, best: int) -> None:
        span = slice(self.bounds[best], self.bounds[best + 1])
        point = self.point[span]
        d2[point] = np.minimum(d2[point], self.sq[span])


def _best_candidate(gains: np.ndarray) -> int:
    """The candidate lowering the potential most; among candidates within float rounding of the best
    (``GAIN_TIE_TOLERANCE``, e.g. two points that only capture each other), the first drawn, as in the
    sequential algorithm."""
    return int(np.flatnonzero(gains >= gains.max() * (1 - GAIN_TIE_TOLERANCE))[0])


def _seed_by_rejection(X: np.ndarray, k: int, candidates: int, rng: np.random.Generator,
                       workers: Workers) -> tuple[list[int], int]:
    """Greedy k-means++ by batched rejection sampling (module docstring); returns (row indices, GEMM pairs)."""
    n = len(X)
    low_dim = X.shape[1] <= KD_TREE_MAX_DIM
    buckets = _Buckets(X.astype(np.float64)) if low_dim else None
    chosen = [int(rng.integers(n))]
    if low_dim:
        d2 = ((buckets.points - buckets.points[chosen[0]]) ** 2).sum(axis=1)
    else:
        d2 = _distance_rows(X, np.array(chosen), workers)[0]
    d2[chosen[0]] = 0.0  # exactly: a GEMM leaves rounding noise on a point's distance to itself
    pairs = 0 if low_dim else n
    while len(chosen) < k:
        if not d2.sum(dtype=np.float64) > 0:  # every point coincides with a centroid
            return _fill_with_unused(n, chosen, k, rng), pairs
        steps = min(k - len(chosen), len(chosen))  # at most double the centroids per batch
        n_proposals = max(2 * candidates, min(SEEDING_BLOCK_FLOATS // n, math.ceil(1.25 * steps * candidates)))
        proposals = _draw_d2(d2, n_proposals, rng)
        rows = _NearRows(buckets, proposals, d2) if low_dim else _DenseRows(X, proposals, workers)
        pairs += rows.pairs
        threshold = rng.random(n_proposals) * d2[proposals]  # accept while u · D²_start < D²_now
        cursor = 0
        while len(chosen) < k:
            accepted: list[int] = []
            while len(accepted) < candidates and cursor < n_proposals:
                if threshold[cursor] < d2[proposals[cursor]]:
                    accepted.append(cursor)
                cursor += 1
            if len(accepted) < candidates:  # proposals used up mid-step: redraw the step from the current D²
                break
            best = accepted[0] if candidates == 1 else accepted[_best_candidate(rows.gains(accepted, d2))]
            chosen.append(int(proposals[best]))
            rows.lower(d2, best)
            d2[chosen[-1]] = 0.0
    return chosen, pairs


def _fill_with_unused(n: int, chosen: list[int], k: int, rng: np.random.Generator) -> list[int]:
    """Complete ``chosen`` with distinct unused rows (all points already coincide with a centroid)."""
    unused = np.setdiff1d(np.arange(n), chosen)
    return chosen + rng.choice(unused, k - len(chosen), replace=False).tolist()


def _seed(X: np.ndarray, k: int, candidates: int | None, rng: np.random.Generator,
          workers: Workers) -> tuple[np.ndarray, int]:
    """Row indices of k greedy k-means++ seeds in X (contiguous float32), and the GEMM pairs computed."""
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means++ needs 1 <= k <= n, got k={k}, n={n}")
    candidates = default_seeding_candidates(k) if candidates is None else candidates
    if candidates < 1:
        raise ValueError(f"seeding candidates must be >= 1, got {candidates}")
    chosen, pairs = _seed_by_rejection(X, k, candidates, rng, workers)
    return np.asarray(chosen), pairs


def kmeans_plusplus(X: np.ndarray, k: int, rng: np.random.Generator, *, candidates: int | None = None,
                    threads: int | None = None) -> np.ndarray:
    """Greedy k-means++ seeding (D² sampling, best of ``candidates`` per step) of k centroids from the rows of X.

    Parameters
    ----------
    X : (n, d) float32 array
    k : int
        Number of seeds, 1 <= k <= n.
    rng : numpy Generator
    candidates : int, optional
        L, candidates drawn from the D² distribution per step; the one lowering the potential most is kept.
        None: 2 + floor(ln k) (scikit-learn's default); 1: plain D² sampling.
    threads : int, optional
        Threads for the distance work (default :func:`assign_threads`); the seeds do not depend on it.

    Returns
    -------
    (k, d) float32 array of rows of X, distinct rows unless X has fewer than k distinct rows.
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    chosen, _ = _seed(X, k, candidates, rng, shared_workers(threads))
    return X[chosen].copy()


# ---------------------------------------------------------------- Lloyd: exact, filtered


class _ClusterSums:
    """Point counts and float64 coordinate sums per cluster, updated for the points that move."""

    def __init__(self, X: np.ndarray, labels: np.ndarray, k: int):
        self.k = k
        self.counts = np.bincount(labels, minlength=k)
        self.sums = np.zeros((k, X.shape[1]))
        for start, stop in _row_blocks(len(X)):
            self._add(labels[start:stop], None, X[start:stop])

    def _add(self, to: np.ndarray, away_from: np.ndarray | None, rows: np.ndarray) -> None:
        """Add ``rows`` to the sums of clusters ``to`` (and subtract them from ``away_from``)."""
        m = len(to)
        cluster, column, sign = to, np.arange(m), np.ones(m)
        if away_from is not None:
            cluster, column, sign = np.r_[to, away_from], np.r_[column, column], np.r_[sign, -sign]
        scatter = sparse.csr_matrix((sign, (cluster, column)), shape=(self.k, m))
        self.sums += scatter @ rows.astype(np.float64)

    def move(self, X: np.ndarray, rows: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Rows ``rows`` of X leave clusters ``old`` for clusters ``new``."""
        self.counts += np.bincount(new, minlength=self.k) - np.bincount(old, minlength=self.k)
        for start, stop in _row_blocks(len(rows)):
            self._add(new[start:stop], old[start:stop], X[rows[start:stop]])

    def centroids(self, previous: np.ndarray, rng: np.random.Generator, spherical: bool) -> np.ndarray:
        """Cluster means; an empty cluster takes a perturbed copy of a large cluster's centroid (as faiss does)."""
        counts = self.counts.copy()
        nonempty = counts > 0
        C = np.zeros_like(previous)
        C[nonempty] = self.sums[nonempty] / counts[nonempty, None]
        for c in np.flatnonzero(~nonempty):  # split a big cluster in two
            spare = np.maximum(counts - 1, 0)
            donor = rng.choice(self.k, p=spare / max(1, spare.sum()))
            eps = (1.0 / 1024) * rng.choice([-1.0, 1.0], size=C.shape[1]).astype(np.float32)
            C[c] = C[donor] * (1 + eps)
            C[donor] = C[donor] * (1 - eps)
            counts[c] = counts[donor] // 2
            counts[donor] -= counts[c]
        return unit_rows(C, inplace=True) if spherical else C


def _centroid_neighbours(C: np.ndarray, reach: np.ndarray, workers: Workers):
    """For every centroid j: the other centroids closer than ``reach[j]`` (CSR ``indptr``, ``indices``) and
    half the distance to its nearest other centroid. The k × k distances are computed a block of rows at a time."""
    k = len(C)
    sq_slack = BOUND_SLACK * float(np.einsum("ij,ij->i", C, C).max())  # rounding of the GEMM distances

    def block(start: int, stop: int):
        D = _pairwise_sq_dists(C[start:stop], C)
        D[np.arange(stop - start), np.arange(start, stop)] = np.inf
        half_gap = 0.5 * np.sqrt(np.maximum(D.min(axis=1) - sq_slack, 0.0))
        row, col = np.nonzero(D < (reach[start:stop, None] * (1 + BOUND_SLACK)) ** 2 + sq_slack)
        return half_gap, np.bincount(row, minlength=stop - start), col

    parts = workers.run(block, *zip(*_row_blocks(k, max(1, min(ASSIGN_BLOCK_ROWS // 8, SEEDING_BLOCK_FLOATS // k))),
                                    strict=True))
    half_gap = np.concatenate([p[0] for p in parts])
    indptr = np.concatenate([[0], np.cumsum(np.concatenate([p[1] for p in parts]))])
    return half_gap, indptr, np.concatenate([p[2] for p in parts])


def _filtered_search(X: np.ndarray, C: np.ndarray, labels: np.ndarray, upper: np.ndarray, workers: Workers):
    """Exact nearest centroids of the rows of X given their current ``labels`` and ``upper`` bounds on the
    distance to them (module docstring); a full search when filtering would not save much.

    Returns (labels, upper bounds, pairs computed); the bounds of the rows searched become exact.
    """
    n, k = len(X), len(C)
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(k + 1))
    nonempty = np.flatnonzero(np.diff(starts) > 0)
    reach = np.zeros(k, dtype=np.float32)  # 2 × the largest bound in the cluster (Elkan's Lemma 1)
    reach[nonempty] = 2.0 * np.maximum.reduceat(upper[order], starts[nonempty])
    half_gap, indptr, neighbours = _centroid_neighbours(C, reach, workers)
    unsure = upper * (1 + BOUND_SLACK) >= half_gap[labels]  # Hamerly's test: the rest cannot move
    tasks, pairs = [], k * k
    for j in nonempty[np.diff(indptr)[nonempty] > 0]:
        members = order[starts[j] : starts[j + 1]]
        rows = members[unsure[members]]
        if len(rows):
            candidates = np.sort(np.append(neighbours[indptr[j] : indptr[j + 1]], j))
            tasks.append((rows, candidates))
            pairs += len(rows) * len(candidates)
    if pairs > FILTER_MAX_SHARE * n * k:
        new_labels, new_upper, full = _full_search(X, C, workers)
        return new_labels, new_upper, k * k + full

    def search(group: Sequence[tuple[np.ndarray, np.ndarray]]):
        return [_nearest_of(X[rows], C[candidates]) for rows, candidates in group]

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


def _full_search(X: np.ndarray, C: np.ndarray, workers: Workers) -> tuple[np.ndarray, np.ndarray, int]:
    search = NearestCentroid(C)
    labels, sq = search.search_blocks(X, workers)
    return labels, np.sqrt(sq), len(X) * len(C) if search.uses_gemm else 0


def _lloyd(X: np.ndarray, C: np.ndarray, n_iter: int, rng: np.random.Generator, spherical: bool,
           workers: Workers) -> tuple[np.ndarray, int, int]:
    """Exact Lloyd from ``C``; returns (centroids, iterations run, GEMM pairs computed)."""
    labels, upper, pairs = _full_search(X, C, workers)
    low_dim = X.shape[1] <= KD_TREE_MAX_DIM
    filtering = not low_dim and len(X) * len(C) >= FILTER_MIN_PAIRS
    sums = _ClusterSums(X, labels, len(C))
    for it in range(1, n_iter + 1):
        if it > 1:
            if low_dim:
                new_labels, upper, work = _low_dim_search(X, C, labels, upper, workers)
            elif filtering:
                new_labels, upper, work = _filtered_search(X, C, labels, upper, workers)
            else:
                new_labels, upper, work = _full_search(X, C, workers)
            pairs += work
            moved = np.flatnonzero(new_labels != labels)
            if len(moved) == 0:
                return C, it, pairs
            sums.move(X, moved, labels[moved], new_labels[moved])
            labels = new_labels
        new_C = sums.centroids(C, rng, spherical)
        upper += np.sqrt(np.einsum("ij,ij->i", new_C - C, new_C - C))[labels]  # each centroid's shift
        C = new_C
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
    _check_metric(metric)
    C, iterations, _ = _lloyd(X, np.array(init, dtype=np.float32), n_iter, rng or np.random.default_rng(0),
                              metric == "cosine", shared_workers(threads))
    return C, iterations


# ---------------------------------------------------------------- k-means


def training_sample(n: int, k: int, max_points_per_centroid: int | None,
                    rng: np.random.Generator) -> np.ndarray | None:
    """Sorted row indices of a bounded training sample, or None to train on all rows."""
    if max_points_per_centroid is None or n <= k * max_points_per_centroid:
        return None
    return np.sort(rng.choice(n, size=k * max_points_per_centroid, replace=False))


def fit_centroids(X, k: int, rng: np.random.Generator, *, rows: np.ndarray | None = None, n_iter: int = 50,
                  metric: Metric = "l2", max_points_per_centroid: int | None = 256,
                  seeding_candidates: int | None = None, workers: Workers | None = None) -> TrainedCentroids:
    """k-means training only: greedy k-means++ seeds, then exact Lloyd, on a bounded sample of X's rows.

    Parameters
    ----------
    X : (n, d) float32 array or memmap
    k : int
    rng : numpy Generator
        Draws the training sample, the seeding sample and the seeds.
    rows : (m,) int array, optional
        Train on these rows of X only (default: all rows); repeated rows weigh more.
    n_iter, metric, max_points_per_centroid, seeding_candidates
        As in :func:`kmeans`. Seeding runs on at most ``k * SEEDING_POINTS_PER_CENTROID`` of the training
        rows (a uniform sample), Lloyd on all of them.
    workers : Workers, optional
        The thread pool for the distance work (default :func:`shared_workers`); the result does not depend on it.

    Returns
    -------
    TrainedCentroids
    """
    workers = workers or shared_workers()
    n_rows = X.shape[0] if rows is None else len(rows)
    sample = training_sample(n_rows, k, max_points_per_centroid, rng)
    taken = sample if rows is None else (rows if sample is None else rows[sample])
    seeding_rows = training_sample(n_rows if taken is None else len(taken), k, SEEDING_POINTS_PER_CENTROID, rng)
    if taken is None:  # all of X: read in place, copied only to normalise (and the seeding sample gathered)
        train = unit_rows(X) if metric == "cosine" else np.ascontiguousarray(X, dtype=np.float32)
        seeding_set = train if seeding_rows is None else train[seeding_rows]
    else:  # one copy, the seeding sample's rows first: seeding reads a view of it
        if seeding_rows is not None:
            taken = np.concatenate([taken[seeding_rows], np.delete(taken, seeding_rows)])
        train = np.ascontiguousarray(X[taken], dtype=np.float32)
        if metric == "cosine":
            unit_rows(train, inplace=True)
        seeding_set = train if seeding_rows is None else train[: len(seeding_rows)]
    seeds, seeding_pairs = _seed(seeding_set, k, seeding_candidates, rng, workers)
    centroids, iterations, lloyd_pairs = _lloyd(train, seeding_set[seeds], n_iter, rng, metric == "cosine", workers)
    return TrainedCentroids(centroids, iterations, seeding_pairs + lloyd_pairs)


def kmeans(X, k: int, *, n_iter: int = 50, seed: int = 0, metric: Metric = "l2",
           max_points_per_centroid: int | None = 256, assigner: Assigner | None = None,
           seeding_candidates: int | None = None, threads: int | None = None) -> KMeansResult:
    """k-means: greedy k-means++ seeds, exact filtered Lloyd, then a full assignment; deterministic for a seed.

    Parameters
    ----------
    X : (n, d) float32 array or memmap
    k : int
        Number of clusters, 1 <= k <= n.
    n_iter : int
        Maximum Lloyd iterations; Lloyd stops earlier once no training point changes cluster.
    seed : int
    metric : {"l2", "cosine"}
        ``cosine`` runs spherical k-means on unit-normalised rows (centroids are unit norm).
    max_points_per_centroid : int, optional
        Training (seeding + Lloyd) uses at most ``k * max_points_per_centroid`` rows drawn at random
        (None: all rows); the final assignment always covers every row.
    assigner : Assigner, optional
        Runs the final assignment over all rows (default :func:`assign`).
    seeding_candidates : int, optional
        Greedy k-means++ candidates per step (None: 2 + floor(ln k); 1: plain D² sampling).
    threads : int, optional
        Threads for the training's distance work (default :func:`assign_threads`); the result does not depend on it.

    Returns
    -------
    KMeansResult
    """
    _check_metric(metric)
    X = as_float32_matrix(X)
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"cannot make k={k} clusters from {n} points (need 1 <= k <= n)")
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    fit = fit_centroids(X, k, np.random.default_rng(seed), n_iter=n_iter, metric=metric,
                        max_points_per_centroid=max_points_per_centroid, seeding_candidates=seeding_candidates,
                        workers=shared_workers(threads))
    labels, dists = (assigner or assign)(X, fit.centroids, metric)
    final_pairs = n * k if X.shape[1] > KD_TREE_MAX_DIM else 0
    return KMeansResult(fit.centroids, labels, dists, fit.n_iter, fit.distance_pairs + final_pairs)
