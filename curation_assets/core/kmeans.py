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

Threads: every GEMM here (seeding rows, Lloyd searches, the assignment) is a single-threaded faiss call on
a block of rows, and the blocks run on a thread pool (:class:`Workers`). The blocks are a function of the
work's size only, never of the thread count: a multi-threaded BLAS call, or a different cut, rounds
differently, so the bytes of every result are the same whatever the number of threads. A pass over few
rows (a resampling k-means trains on r·k of them) is cut into ``TASKS_PER_PASS`` blocks so that many
threads share it. The bookkeeping between GEMMs runs on the pool as well: an assignment task reads,
normalises and searches its own block, training copies are gathered a block per task, Lloyd's centroid
sums a group of ``SUM_COLUMNS`` columns per task (the same additions in the same order), a seeding step's
gains and D² update a block of points per task. What stays on one thread is sequential by nature or
small: the seeding's step loop (an acceptance test per proposal, the best of L gains), its D² draw per
batch (a cumulative sum over the seeding rows), Lloyd's per-iteration label sort (a radix sort) and
moved-point bookkeeping, the resampling draw (two sorts of the level's labels), and the argument checks.

Devices: every function taking ``device`` runs its heavy passes (seeding distance rows, Lloyd searches
and centroid sums, assignments, training-row gathers) on the kernels :func:`kernels_for` picks: ``"cpu"``
(the default) is the faiss / numpy path above; ``"cuda"`` (or ``"cuda:N"``) and ``"torch-cpu"`` run the
same algorithms through torch (``curation_assets.core.torch_kernels``, imported only then), the latter on
the CPU so that tests without a GPU run the very code a GPU runs; ``"auto"`` is ``"cuda"`` when torch is
installed and sees a GPU, else ``"cpu"``. The seeding loop, the random draws and the empty-cluster rule
are shared, so a seed gives the same draws on every device, and the same seeds, labels and centroids as
long as no decision falls within float rounding: a D² acceptance test, a greedy candidate's gain, or a
near tie, a point whose squared distances to two centroids differ by less than the float32 rounding of
||x||² + ||c||² - 2 x·c (about 1e-7 of ||x||² + ||c||², so frequent when the rows are far from the origin
compared to their spread). The two paths round the GEMM distances differently, and after such a tie they
follow different, equally valid k-means runs: the balance of the subset is the same (bench/bench_longtail.py
``--device``), not its bytes. In dimension <= 8 every device takes the k-d tree path on the CPU (exact, and
not GEMM work).
"""

from __future__ import annotations

import functools
import importlib.util
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
DEVICES = ("auto", "cpu", "cuda", "torch-cpu")  # and "cuda:N"
ASSIGN_CHUNK_ROWS = 65_536  # rows of a memory-mapped X read (and, for cosine, normalised) at a time
ASSIGN_BLOCK_ROWS = 8_192  # rows per single-threaded search or distance block
TASKS_PER_PASS = 64  # a training pass over few rows is cut into this many blocks (down to MIN_BLOCK_ROWS rows)
MIN_BLOCK_ROWS = 512  # fewest rows of a block (GEMM efficiency)
KD_TREE_MAX_DIM = 8  # exact k-d tree search beats brute-force GEMM in very low dimension
SEEDING_BLOCK_FLOATS = 1 << 24  # cap of one seeding batch's proposals × points distance rows (64 MB)
LOW_DIM_BUCKET_ROWS = 16  # d <= 8 seeding: points per bucket of the fixed partition that finds near pairs
SEEDING_POINTS_PER_CENTROID = 64  # greedy seeding runs on at most k × this many training rows
SEEDING_POINT_BLOCK = 32_768  # greedy seeding: points per task of a step's gains and D² update
SUM_COLUMNS = 32  # Lloyd's centroid sums: columns per task
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


def _task_blocks(n: int, max_rows: int = ASSIGN_BLOCK_ROWS, min_rows: int = MIN_BLOCK_ROWS) -> list[tuple[int, int]]:
    """The blocks of a pass over n rows: ``TASKS_PER_PASS`` of them (enough for many threads) unless that makes
    them smaller than ``min_rows`` or larger than ``max_rows`` rows. A function of n only: a block's GEMM rounds
    the same whatever the number of threads."""
    return _row_blocks(n, min(max_rows, max(min_rows, -(-n // TASKS_PER_PASS))))


def label_order(labels: np.ndarray, k: int) -> np.ndarray:
    """``np.argsort(labels, kind="stable")`` for labels in [0, k): a radix sort of 16-bit labels when k allows
    (about 6× faster than sorting int64, the same order)."""
    return np.argsort(labels.astype(np.int16) if k <= 1 << 15 else labels, kind="stable")


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
        """:meth:`search` with the same bytes for any pool size: single-threaded searches of the blocks of
        :func:`_task_blocks`, spread over the pool's threads (k-d tree queries as well)."""
        results = workers.run(self.search, [block[s:e] for s, e in _task_blocks(len(block))])
        return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def assign(X: np.ndarray, centroids: np.ndarray, metric: Metric = "l2", chunk_rows: int = ASSIGN_CHUNK_ROWS,
           threads: int | None = None, rows: np.ndarray | None = None,
           device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
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
    device : str
        ``"cpu"`` (faiss), ``"cuda"``, ``"torch-cpu"`` or ``"auto"`` (module docstring). On a torch device X may
        also be a tensor already there.

    Returns
    -------
    labels : (n,) or (m,) int64, squared L2 distances : float32
        On the CPU each chunk is searched in blocks of ``ASSIGN_BLOCK_ROWS`` rows, one single-threaded search per
        block: a multi-threaded BLAS call rounds differently with the thread count, so this keeps the bytes
        the same on every machine and in every worker (the execution backends rely on it).
    """
    _check_metric(metric)
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    kernels = kernels_for(device, centroids.shape[1], shared_workers(threads))
    return kernels.assign(X, centroids, metric, chunk_rows, rows)


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

    workers.run(block, *zip(*_task_blocks(len(X)), strict=True))
    return out


class _HostSeeding:
    """The state of a greedy seeding whose D² lives on the host: D² of every point, the batch of proposals.

    A seeding space (this, :class:`_DenseSeeding`, :class:`_LowDimSeeding`, or the torch kernels' one) opens on
    the first seed and answers :func:`_seed_by_rejection`: ``current_d2()`` (a host array), ``propose(rows)``
    (start a batch), ``d2_at(i)`` (D² now at the batch's i-th proposal), ``gains(accepted)`` and ``lower(best)``
    (add the batch's proposal ``best`` as a centroid). ``pairs`` counts the GEMM distances computed.
    """

    d2: np.ndarray
    proposals: np.ndarray

    def current_d2(self) -> np.ndarray:
        return self.d2

    def d2_at(self, cursor: int) -> float:
        return self.d2[self.proposals[cursor]]


class _DenseSeeding(_HostSeeding):
    """d > 8: squared distances from a batch of proposals to all points, one GEMM per block of points."""

    def __init__(self, X: np.ndarray, first: int, workers: Workers):
        self.X, self.workers = X, workers
        self.blocks = _row_blocks(len(X), SEEDING_POINT_BLOCK)
        self.d2 = _distance_rows(X, np.array([first]), workers)[0]
        self.d2[first] = 0.0  # exactly: a GEMM leaves rounding noise on a point's distance to itself
        self.pairs = len(X)

    def propose(self, proposals: np.ndarray) -> None:
        self.proposals = proposals
        self.rows = _distance_rows(self.X, proposals, self.workers)
        self.pairs += self.rows.size

    def _each_block(self, fn: Callable[[int, int], object]) -> list:
        """``fn`` on every block of points, on the pool when there are several (the blocks never depend on it)."""
        return [fn(*self.blocks[0])] if len(self.blocks) == 1 else self.workers.run(fn, *zip(*self.blocks, strict=True))

    def gains(self, accepted: list[int]) -> np.ndarray:
        """How much each accepted proposal would lower the potential (the sum of D²), summed block by block."""
        def part(start: int, stop: int) -> np.ndarray:
            drop = self.d2[start:stop] - self.rows[accepted, start:stop]
            return np.maximum(drop, 0.0, out=drop).sum(axis=1, dtype=np.float64)

        return np.sum(self._each_block(part), axis=0)

    def lower(self, best: int) -> None:
        def part(start: int, stop: int) -> None:
            np.minimum(self.d2[start:stop], self.rows[best, start:stop], out=self.d2[start:stop])

        self._each_block(part)
        self.d2[self.proposals[best]] = 0.0


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


class _LowDimSeeding(_HostSeeding):
    """d <= 8: D² in float64 and, per batch, only the near (proposal, point) pairs (:class:`_NearRows`)."""

    def __init__(self, X: np.ndarray, first: int):
        self.buckets = _Buckets(X.astype(np.float64))
        self.d2 = ((self.buckets.points - self.buckets.points[first]) ** 2).sum(axis=1)
        self.pairs = 0  # not GEMM work

    def propose(self, proposals: np.ndarray) -> None:
        self.proposals = proposals
        self.rows = _NearRows(self.buckets, proposals, self.d2)

    def gains(self, accepted: list[int]) -> np.ndarray:
        return self.rows.gains(accepted, self.d2)

    def lower(self, best: int) -> None:
        self.rows.lower(self.d2, best)
        self.d2[self.proposals[best]] = 0.0


def _seed_by_rejection(n: int, k: int, candidates: int, rng: np.random.Generator,
                       open_space: Callable[[int], _HostSeeding]) -> tuple[list[int], int]:
    """Greedy k-means++ by batched rejection sampling (module docstring) over the seeding space that
    ``open_space(first seed)`` returns; returns (row indices, GEMM pairs)."""
    chosen = [int(rng.integers(n))]
    space = open_space(chosen[0])
    while len(chosen) < k:
        d2 = space.current_d2()
        if not d2.sum(dtype=np.float64) > 0:  # every point coincides with a centroid
            return _fill_with_unused(n, chosen, k, rng), space.pairs
        steps = min(k - len(chosen), len(chosen))  # at most double the centroids per batch
        n_proposals = max(2 * candidates, min(SEEDING_BLOCK_FLOATS // n, math.ceil(1.25 * steps * candidates)))
        proposals = _draw_d2(d2, n_proposals, rng)
        threshold = rng.random(n_proposals) * d2[proposals]  # accept while u · D²_start < D²_now
        space.propose(proposals)
        cursor = 0
        while len(chosen) < k:
            accepted: list[int] = []
            while len(accepted) < candidates and cursor < n_proposals:
                if threshold[cursor] < space.d2_at(cursor):
                    accepted.append(cursor)
                cursor += 1
            if len(accepted) < candidates:  # proposals used up mid-step: redraw the step from the current D²
                break
            best = accepted[0] if candidates == 1 else accepted[_best_candidate(space.gains(accepted))]
            chosen.append(int(proposals[best]))
            space.lower(best)
    return chosen, space.pairs


def _fill_with_unused(n: int, chosen: list[int], k: int, rng: np.random.Generator) -> list[int]:
    """Complete ``chosen`` with distinct unused rows (all points already coincide with a centroid)."""
    unused = np.setdiff1d(np.arange(n), chosen)
    return chosen + rng.choice(unused, k - len(chosen), replace=False).tolist()


def _seed(X, k: int, candidates: int | None, rng: np.random.Generator,
          open_space: Callable[[int], _HostSeeding]) -> tuple[np.ndarray, int]:
    """Row indices of k greedy k-means++ seeds among the n rows of X (a seeding space over them opens with
    ``open_space``, see :meth:`FaissKernels.seeding`), and the GEMM pairs computed."""
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means++ needs 1 <= k <= n, got k={k}, n={n}")
    candidates = default_seeding_candidates(k) if candidates is None else candidates
    if candidates < 1:
        raise ValueError(f"seeding candidates must be >= 1, got {candidates}")
    chosen, pairs = _seed_by_rejection(n, k, candidates, rng, open_space)
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
    chosen, _ = _seed(X, k, candidates, rng, FaissKernels(shared_workers(threads)).seeding(X))
    return X[chosen].copy()


# ---------------------------------------------------------------- Lloyd: exact, filtered


class _ClusterSums:
    """Point counts and float64 coordinate sums per cluster, updated for the points that move. A task of the
    pool sums a group of ``SUM_COLUMNS`` columns; every sum adds the same rows in the same order whatever the
    number of threads."""

    def __init__(self, X: np.ndarray, labels: np.ndarray, k: int, workers: Workers):
        self.k, self.workers = k, workers
        self.counts = np.bincount(labels, minlength=k)
        self.sums = np.zeros((k, X.shape[1]))
        self._add(X, None, labels, None)

    def _scatter(self, to: np.ndarray, away_from: np.ndarray | None) -> sparse.csr_matrix:
        """(k, m) matrix adding m rows to the clusters ``to`` (and subtracting them from ``away_from``)."""
        m = len(to)
        cluster, column, sign = to, np.arange(m), np.ones(m)
        if away_from is not None:
            cluster, column, sign = np.r_[to, away_from], np.r_[column, column], np.r_[sign, -sign]
        return sparse.csr_matrix((sign, (cluster, column)), shape=(self.k, m))

    def _add(self, X: np.ndarray, rows: np.ndarray | None, to: np.ndarray, away_from: np.ndarray | None) -> None:
        """Add X's rows ``rows`` (None: all) to the sums of clusters ``to`` (and subtract them from ``away_from``),
        one sparse product per block of ``ASSIGN_BLOCK_ROWS`` rows."""
        blocks = _row_blocks(len(to))
        scatters = [self._scatter(to[s:e], None if away_from is None else away_from[s:e]) for s, e in blocks]

        def columns(first: int, last: int) -> None:
            for (start, stop), scatter in zip(blocks, scatters, strict=True):
                part = X[start:stop, first:last] if rows is None else X[rows[start:stop], first:last]
                self.sums[:, first:last] += scatter @ part.astype(np.float64)

        self.workers.run(columns, *zip(*_row_blocks(X.shape[1], SUM_COLUMNS), strict=True))

    def move(self, X: np.ndarray, rows: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Rows ``rows`` of X leave clusters ``old`` for clusters ``new``."""
        self.counts += np.bincount(new, minlength=self.k) - np.bincount(old, minlength=self.k)
        self._add(X, rows, new, old)

    def centroids(self, previous: np.ndarray, rng: np.random.Generator, spherical: bool) -> np.ndarray:
        return cluster_means(self.sums, self.counts, previous, rng, spherical)


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

    blocks = _task_blocks(k, max(1, min(ASSIGN_BLOCK_ROWS // 8, SEEDING_BLOCK_FLOATS // k)), min_rows=64)
    parts = workers.run(block, *zip(*blocks, strict=True))
    half_gap = np.concatenate([p[0] for p in parts])
    indptr = np.concatenate([[0], np.cumsum(np.concatenate([p[1] for p in parts]))])
    return half_gap, indptr, np.concatenate([p[2] for p in parts])


def _filtered_search(X: np.ndarray, C: np.ndarray, labels: np.ndarray, upper: np.ndarray, workers: Workers):
    """Exact nearest centroids of the rows of X given their current ``labels`` and ``upper`` bounds on the
    distance to them (module docstring); a full search when filtering would not save much.

    Returns (labels, upper bounds, pairs computed); the bounds of the rows searched become exact.
    """
    n, k = len(X), len(C)
    order = label_order(labels, k)
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
    sums = _ClusterSums(X, labels, len(C), workers)
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


# ---------------------------------------------------------------- devices


def resolve_device(device: str) -> str:
    """The device a run uses: ``"auto"`` is ``"cuda"`` when torch is installed and sees a GPU, else ``"cpu"``
    (torch is imported only to answer that); the other names of ``DEVICES`` and ``"cuda:N"`` stay as they are."""
    if device == "auto":
        if importlib.util.find_spec("torch") is None:
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device in DEVICES or device.startswith("cuda:"):
        return device
    raise ValueError(f"device must be one of {DEVICES} or 'cuda:N', got {device!r}")


class FaissKernels:
    """The ``"cpu"`` device: faiss GEMMs and numpy / scipy bookkeeping on a :class:`Workers` pool.

    The kernels of a device answer the same calls (the torch kernels mirror them): ``assign``,
    ``training_rows`` (the rows a k-means trains and seeds on), ``seeding`` (opens a seeding space for
    :func:`_seed_by_rejection`) and ``lloyd``.
    """

    def __init__(self, workers: Workers):
        self.workers = workers

    @staticmethod
    def resident(X):
        """X itself: the CPU reads it in place (a torch device copies it into its memory when it fits)."""
        return X

    def assign(self, X, centroids: np.ndarray, metric: Metric, chunk_rows: int,
               rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """:func:`assign` on this device: every block is read (a view of X, or a gathered copy; normalised for
        cosine) and searched by one task of the pool, so reading, normalising and searching all run in parallel
        and at most one block per thread is copied at a time."""
        search = NearestCentroid(centroids, metric)
        n = X.shape[0] if rows is None else len(rows)
        labels = np.empty(n, dtype=np.int64)
        dists = np.empty(n, dtype=np.float32)

        def block(start: int, stop: int) -> None:
            if rows is None:  # a slice: a view of X, copied only to normalise it
                part = X[start:stop]
                part = unit_rows(part) if metric == "cosine" else np.ascontiguousarray(part, np.float32)
            else:  # a gathered copy, normalised in place
                part = np.ascontiguousarray(X[rows[start:stop]], np.float32)
                if metric == "cosine":
                    unit_rows(part, inplace=True)
            labels[start:stop], dists[start:stop] = search.search(part)

        blocks = [(start + a, start + b) for start in range(0, n, chunk_rows)
                  for a, b in _row_blocks(min(chunk_rows, n - start))]
        self.workers.run(block, *zip(*blocks, strict=True))
        return labels, dists

    def training_rows(self, X, taken: np.ndarray | None, seeding_rows: np.ndarray | None,
                      metric: Metric) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, seeding rows): X's rows ``taken`` (None: all) and the ``seeding_rows`` among them
        (None: all), unit rows for cosine. All of X is read in place, copied only to normalise (and the
        seeding sample gathered); otherwise one copy, the seeding sample's rows first (seeding reads a view).
        Copies are made a block of rows per task of the pool."""
        if taken is None:
            train = self._copy(X, None, metric) if metric == "cosine" else np.ascontiguousarray(X, dtype=np.float32)
            return train, (train if seeding_rows is None else train[seeding_rows])
        if seeding_rows is not None:
            taken = np.concatenate([taken[seeding_rows], np.delete(taken, seeding_rows)])
        train = self._copy(X, taken, metric)
        return train, (train if seeding_rows is None else train[: len(seeding_rows)])

    def _copy(self, X, rows: np.ndarray | None, metric: Metric) -> np.ndarray:
        """A float32 copy of X's rows ``rows`` (None: all), unit rows for cosine."""
        out = np.empty((X.shape[0] if rows is None else len(rows), X.shape[1]), dtype=np.float32)

        def block(start: int, stop: int) -> None:
            out[start:stop] = X[start:stop] if rows is None else X[rows[start:stop]]
            if metric == "cosine":
                unit_rows(out[start:stop], inplace=True)

        self.workers.run(block, *zip(*_row_blocks(len(out)), strict=True))
        return out

    def seeding(self, X: np.ndarray) -> Callable[[int], _HostSeeding]:
        """Opens the seeding space of X (contiguous float32) on its first seed."""
        if X.shape[1] <= KD_TREE_MAX_DIM:
            return functools.partial(_LowDimSeeding, X)
        return functools.partial(_DenseSeeding, X, workers=self.workers)

    def lloyd(self, X: np.ndarray, init: np.ndarray, n_iter: int, rng: np.random.Generator,
              spherical: bool) -> tuple[np.ndarray, int, int]:
        """Exact filtered Lloyd (:func:`lloyd`); returns (centroids, iterations run, GEMM pairs computed)."""
        return _lloyd(X, init, n_iter, rng, spherical, self.workers)


def kernels_for(device: str, d: int, workers: Workers | None = None):
    """The kernels running the heavy passes for ``device`` in dimension ``d``: :class:`FaissKernels` (on
    ``workers``, default :func:`shared_workers`) for ``"cpu"`` and whenever d <= 8, the torch kernels of
    ``curation_assets.core.torch_kernels`` otherwise (torch is imported here, never at import time)."""
    device = resolve_device(device)
    if device == "cpu" or d <= KD_TREE_MAX_DIM:
        return FaissKernels(workers or shared_workers())
    from curation_assets.core.torch_kernels import torch_kernels

    return torch_kernels(device)


# ---------------------------------------------------------------- k-means


def training_sample(n: int, k: int, max_points_per_centroid: int | None,
                    rng: np.random.Generator) -> np.ndarray | None:
    """Sorted row indices of a bounded training sample, or None to train on all rows."""
    if max_points_per_centroid is None or n <= k * max_points_per_centroid:
        return None
    return np.sort(rng.choice(n, size=k * max_points_per_centroid, replace=False))


def fit_centroids(X, k: int, rng: np.random.Generator, *, rows: np.ndarray | None = None, n_iter: int = 50,
                  metric: Metric = "l2", max_points_per_centroid: int | None = 256,
                  seeding_candidates: int | None = None, workers: Workers | None = None,
                  device: str = "cpu") -> TrainedCentroids:
    """k-means training only: greedy k-means++ seeds, then exact Lloyd, on a bounded sample of X's rows.

    Parameters
    ----------
    X : (n, d) float32 array or memmap (or, on a torch device, a tensor there)
    k : int
    rng : numpy Generator
        Draws the training sample, the seeding sample and the seeds.
    rows : (m,) int array, optional
        Train on these rows of X only (default: all rows); repeated rows weigh more.
    n_iter, metric, max_points_per_centroid, seeding_candidates, device
        As in :func:`kmeans`. Seeding runs on at most ``k * SEEDING_POINTS_PER_CENTROID`` of the training
        rows (a uniform sample), Lloyd on all of them.
    workers : Workers, optional
        The CPU thread pool for the distance work (default :func:`shared_workers`); the result does not depend on it.

    Returns
    -------
    TrainedCentroids
    """
    kernels = kernels_for(device, X.shape[1], workers)
    n_rows = X.shape[0] if rows is None else len(rows)
    sample = training_sample(n_rows, k, max_points_per_centroid, rng)
    taken = sample if rows is None else (rows if sample is None else rows[sample])
    seeding_rows = training_sample(n_rows if taken is None else len(taken), k, SEEDING_POINTS_PER_CENTROID, rng)
    train, seeding_set = kernels.training_rows(X, taken, seeding_rows, metric)
    seeds, seeding_pairs = _seed(seeding_set, k, seeding_candidates, rng, kernels.seeding(seeding_set))
    centroids, iterations, lloyd_pairs = kernels.lloyd(train, seeding_set[seeds], n_iter, rng, metric == "cosine")
    return TrainedCentroids(centroids, iterations, seeding_pairs + lloyd_pairs)


def kmeans(X, k: int, *, n_iter: int = 50, seed: int = 0, metric: Metric = "l2",
           max_points_per_centroid: int | None = 256, assigner: Assigner | None = None,
           seeding_candidates: int | None = None, threads: int | None = None, device: str = "cpu") -> KMeansResult:
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
    device : {"cpu", "cuda", "cuda:N", "torch-cpu", "auto"}
        Where the heavy passes run (module docstring); ``"cpu"`` is the faiss path.

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
                        workers=shared_workers(threads), device=device)
    labels, dists = (assigner or functools.partial(assign, device=device))(X, fit.centroids, metric)
    final_pairs = n * k if X.shape[1] > KD_TREE_MAX_DIM else 0
    return KMeansResult(fit.centroids, labels, dists, fit.n_iter, fit.distance_pairs + final_pairs)
