"""Greedy k-means++ seeding, exact and batched (docs/method.md, section 3: "Seeding decides everything").

The flattening of the centroid distribution only happens when every k-means places its centroids like converged
k-means does, so every run is seeded with *greedy* k-means++ (Arthur & Vassilvitskii 2007; the greedy variant is
scikit-learn's ``kmeans_plusplus``): at each step, draw ``L = 2 + floor(ln k)`` candidates from the D² distribution
(probability ∝ squared distance to the nearest centroid chosen so far) and keep the one that lowers the potential
(the sum of those squared distances) most. ``L = 1`` is plain D² sampling.

A batch draws proposals i.i.d. from the D² distribution at its start, D²_start, and computes their squared
distances to all points with one GEMM. Step after step, a proposal is accepted with probability
D²_now(x) / D²_start(x) ≤ 1, where D²_now also counts the centroids chosen earlier in the batch: sequential
rejection sampling, so every accepted proposal is an exact draw from the D² distribution of its step. A step's L
accepted candidates are scored from the precomputed distance rows, and the best one updates D². When the
proposals run out, a new batch starts from the current D². In dimension <= 8 the rows stay sparse: a fixed
partition of the points into small buckets finds, per proposal, the few points it is closer to than their
nearest centroid.

Greedy seeding computes L distance rows per centroid where plain D² sampling computes one, so a k-means seeds on
a uniform sample of at most ``k * SEEDING_POINTS_PER_CENTROID`` of its training rows (Lloyd then runs on all of
them): at large k this keeps seeding below the cost of Lloyd, and the balance measured on the long-tailed
benchmark (bench/bench_longtail.py) is the same as seeding on every row.

The seeding loop (:func:`seed_by_rejection`) is shared by every device; a device supplies the *seeding space*
holding D² and the batch's rows (:class:`HostSeeding` here, the torch kernels' own on a torch device), so a seed
gives the same draws everywhere. The step loop and the D² draw per batch stay on one thread (sequential by
nature); a step's gains and D² update run a block of points per task of the pool.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable

import numpy as np

from curation_assets.core.assignment import BOUND_SLACK, KD_TREE_MAX_DIM
from curation_assets.core.workers import Workers, pairwise_sq_dists, row_blocks, shared_workers, task_blocks

SEEDING_BLOCK_FLOATS = 1 << 24  # cap of one seeding batch's proposals × points distance rows (64 MB)
LOW_DIM_BUCKET_ROWS = 16  # d <= 8 seeding: points per bucket of the fixed partition that finds near pairs
SEEDING_POINTS_PER_CENTROID = 64  # greedy seeding runs on at most k × this many training rows
SEEDING_POINT_BLOCK = 32_768  # greedy seeding: points per task of a step's gains and D² update
GAIN_TIE_TOLERANCE = 1e-5  # seeding candidates whose gains agree this closely are tied


def default_seeding_candidates(k: int) -> int:
    """Greedy k-means++ candidates per step for k clusters: 2 + floor(ln k), scikit-learn's default."""
    return 2 + int(math.log(k))


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
        out[:, start:stop] = pairwise_sq_dists(from_rows, X[start:stop])

    workers.run(block, *zip(*task_blocks(len(X)), strict=True))
    return out


class HostSeeding:
    """The state of a greedy seeding whose D² lives on the host: D² of every point, the batch of proposals.

    A seeding space (this, :class:`DenseSeeding`, :class:`LowDimSeeding`, or the torch kernels' one) opens on
    the first seed and answers :func:`seed_by_rejection`: ``current_d2()`` (a host array), ``propose(rows)``
    (start a batch), ``d2_at(i)`` (D² now at the batch's i-th proposal), ``gains(accepted)`` and ``lower(best)``
    (add the batch's proposal ``best`` as a centroid). ``pairs`` counts the GEMM distances computed.
    """

    d2: np.ndarray
    proposals: np.ndarray

    def current_d2(self) -> np.ndarray:
        return self.d2

    def d2_at(self, cursor: int) -> float:
        return self.d2[self.proposals[cursor]]


class DenseSeeding(HostSeeding):
    """d > 8: squared distances from a batch of proposals to all points, one GEMM per block of points."""

    def __init__(self, X: np.ndarray, first: int, workers: Workers):
        self.X, self.workers = X, workers
        self.blocks = row_blocks(len(X), SEEDING_POINT_BLOCK)
        self.d2 = _distance_rows(X, np.array([first]), workers)[0]
        self.d2[first] = 0.0  # exactly: a GEMM leaves rounding noise on a point's distance to itself
        self.pairs = len(X)

    def propose(self, proposals: np.ndarray) -> None:
        self.proposals = proposals
        self.rows = _distance_rows(self.X, proposals, self.workers)
        self.pairs += self.rows.size

    def _each_block(self, fn: Callable[[int, int], object]) -> list:
        """``fn`` on every block of points, on the pool (the blocks never depend on it)."""
        return self.workers.run(fn, *zip(*self.blocks, strict=True))

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
        from scipy.spatial import cKDTree  # only the low-dimensional path pays for importing scipy.spatial

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
    just the points of those buckets are measured; a k-d tree over the batch's proposals finds, for every anchor,
    the proposals in its reach."""

    def __init__(self, buckets: _Buckets, proposals: np.ndarray, d2: np.ndarray):
        from scipy.spatial import cKDTree

        at = buckets.points[proposals]
        reach = (buckets.radius + np.sqrt(buckets.max_per_bucket(d2))) * (1 + BOUND_SLACK)
        radius = np.sqrt(reach**2 + BOUND_SLACK * buckets.anchor_sq.max())
        within = cKDTree(at).query_ball_point(buckets.anchors, radius)
        counts = np.fromiter(map(len, within), dtype=np.int64, count=len(within))  # proposals in reach of each anchor
        owner = np.fromiter(itertools.chain.from_iterable(within), dtype=np.int64, count=counts.sum())
        bucket = np.repeat(np.arange(len(within)), counts)
        by_proposal = np.lexsort((bucket, owner))
        owner, bucket = owner[by_proposal], bucket[by_proposal]
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


class LowDimSeeding(HostSeeding):
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


def host_seeding(X: np.ndarray, workers: Workers) -> Callable[[int], HostSeeding]:
    """Opens the seeding space of X (contiguous float32) on its first seed: sparse near pairs in dimension <= 8,
    GEMM distance rows on ``workers`` above."""
    if X.shape[1] <= KD_TREE_MAX_DIM:
        return functools.partial(LowDimSeeding, X)
    return functools.partial(DenseSeeding, X, workers=workers)


def seed_by_rejection(n: int, k: int, candidates: int, rng: np.random.Generator,
                       open_space: Callable[[int], HostSeeding]) -> tuple[list[int], int]:
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


def greedy_seeds(X, k: int, candidates: int | None, rng: np.random.Generator,
          open_space: Callable[[int], HostSeeding]) -> tuple[np.ndarray, int]:
    """Row indices of k greedy k-means++ seeds among the n rows of X (a seeding space over them opens with
    ``open_space``, see :func:`host_seeding`), and the GEMM pairs computed."""
    n = X.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k-means++ needs 1 <= k <= n, got k={k}, n={n}")
    candidates = default_seeding_candidates(k) if candidates is None else candidates
    if candidates < 1:
        raise ValueError(f"seeding candidates must be >= 1, got {candidates}")
    chosen, pairs = seed_by_rejection(n, k, candidates, rng, open_space)
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
    chosen, _ = greedy_seeds(X, k, candidates, rng, host_seeding(X, shared_workers(threads)))
    return X[chosen].copy()


