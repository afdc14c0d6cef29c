"""Lloyd's iterations as tasks, for a training sample larger than one worker should hold (docs/method.md, section 2).

The training rows are cut into equal tasks of at most ``task_rows`` rows, a cut that depends on the sample's size
only. Each iteration, every task reads from X only the rows Hamerly's test cannot keep in place (a row whose
distance to its centroid is below half the distance from that centroid to its nearest other one stays), searches
them among the centroids near enough to their own (Elkan's Lemma 1, as :func:`~curation_assets.core.lloyd.run_lloyd`
filters), and returns the float64 coordinate sums and counts its moved rows add to and take from their clusters
(only the clusters they touch). The driver adds the tasks' sums in task order and takes the means
(:func:`~curation_assets.core.lloyd.cluster_means`, as every Lloyd does). Each task's rows, labels and bounds travel
between iterations as its state (:data:`LloydState`), which a backend may keep where the task ran. The same tasks
and the same reduction run on every backend, so the centroids are byte-identical whichever backend and however many
workers ran them; the labels are those of plain Lloyd up to float rounding, as in
:func:`~curation_assets.core.lloyd.lloyd`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from curation_assets.core.assignment import BOUND_SLACK, Metric, NearestCentroid, gemm_pairs
from curation_assets.core.linalg import read_rows
from curation_assets.core.lloyd import FILTER_MAX_SHARE, centroid_neighbours, cluster_means, grouped_by_cluster
from curation_assets.core.workers import ASSIGN_BLOCK_ROWS, Workers, label_order, nearest_of, row_blocks

SUM_BLOCK_ROWS = ASSIGN_BLOCK_ROWS  # rows converted to float64 at a time for the sums

LloydState = tuple[np.ndarray, np.ndarray | None, np.ndarray | None]
"""One task's ``(rows of X, their clusters, upper bounds on their distance to them)``; no labels before the first
iteration."""


@dataclass(frozen=True)
class LloydRound:
    """What every task of an iteration shares: the centroids (unit rows for cosine), the metric and, after the
    first iteration, how far each centroid moved in the last update (``shift``), half the distance from each to its
    nearest other one (``half_gap``, with float slack) and, per centroid j, the centroids within twice the largest
    bound of j's rows (CSR ``indptr``, ``neighbours``): the only ones its rows can move to (Elkan's Lemma 1)."""

    centroids: np.ndarray
    metric: Metric
    shift: np.ndarray | None = None
    half_gap: np.ndarray | None = None
    indptr: np.ndarray | None = None
    neighbours: np.ndarray | None = None


@dataclass(frozen=True)
class LloydSums:
    """A task's contribution to an iteration: the clusters its moved rows touch, their float64 coordinate sums and
    counts (rows arriving minus rows leaving); the clusters its rows are in and the largest bound in each; rows
    moved; GEMM distance pairs computed."""

    clusters: np.ndarray
    sums: np.ndarray
    counts: np.ndarray
    bound_clusters: np.ndarray
    bound_max: np.ndarray
    moved: int
    pairs: int


LloydPass = Callable[[object, Sequence[LloydState], LloydRound], tuple[list, list[LloydSums]]]
"""``(X, states, round) -> (new states, sums)``, one per task in order, like running :func:`lloyd_task` on each:
the pass an execution backend may spread over workers (its states may stay opaque handles there)."""


@dataclass(frozen=True)
class LloydTasks:
    """Lloyd as tasks of ``task_rows`` training rows, run by ``run``; used for training samples of more rows."""

    run: LloydPass
    task_rows: int


def _filtered(labels: np.ndarray, unsure: np.ndarray, rnd: LloydRound) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(rows, candidate centroids)`` per cluster of the ``unsure`` rows: its neighbours and itself, or only the
    neighbours that moved when its own centroid did not (its rows were exact, only a moved centroid can come
    nearer); a cluster without candidates keeps its rows."""
    k = len(rnd.centroids)
    order = unsure[label_order(labels[unsure], k)]
    starts = np.searchsorted(labels[order], np.arange(k + 1))
    moved = rnd.shift > 0
    searches = []
    for j in np.flatnonzero(np.diff(starts)):
        near = rnd.neighbours[rnd.indptr[j] : rnd.indptr[j + 1]]
        near = near if moved[j] else near[moved[near]]
        if len(near):
            searches.append((order[starts[j] : starts[j + 1]], np.sort(np.append(near, j))))
    return searches


def lloyd_task(X, state: LloydState, rnd: LloydRound) -> tuple[LloydState, LloydSums]:
    """One task of one iteration (module docstring), on this thread; reads only the rows it must search."""
    rows, labels, upper = state
    k, d = rnd.centroids.shape
    if labels is None:  # the first iteration: every row searched against every centroid
        part = read_rows(X, rows, rnd.metric == "cosine")
        labels, sq = NearestCentroid(rnd.centroids).search(part)
        upper = np.sqrt(sq)
        clusters, sums, counts = _moved_sums(part, np.arange(len(rows)), labels, None)
        return (rows, labels, upper), _task_sums(clusters, sums, counts, labels, upper, k, len(rows),
                                                gemm_pairs(len(rows), k, d))
    upper = upper + rnd.shift[labels]
    unsure = np.flatnonzero(upper * (1 + BOUND_SLACK) >= rnd.half_gap[labels])  # Hamerly: the rest stay
    searches = _filtered(labels, unsure, rnd)
    pairs = sum(len(members) * len(candidates) for members, candidates in searches)
    if pairs > FILTER_MAX_SHARE * len(rows) * k:  # filtering would not save much: search the unsure rows fully
        searches, pairs = [(unsure, np.arange(k))], len(unsure) * k
    searched = np.concatenate([members for members, _ in searches]) if searches else np.zeros(0, dtype=np.int64)
    need = np.sort(searched)
    part = read_rows(X, rows[need], rnd.metric == "cosine")  # the task's training rows are increasing
    where = np.searchsorted(need, searched)  # each searched row's place in ``part``
    nearest, sq, at = np.empty(len(searched), dtype=np.int64), np.empty(len(searched), dtype=np.float32), 0
    for members, candidates in searches:
        block = where[at : at + len(members)]
        found, sq[at : at + len(members)] = nearest_of(part[block], rnd.centroids[candidates])
        nearest[at : at + len(members)] = candidates[found]
        at += len(members)
    moved = np.flatnonzero(nearest != labels[searched])
    away = labels[searched[moved]]
    labels, upper = labels.copy(), upper.copy()
    labels[searched], upper[searched] = nearest, np.sqrt(sq)
    clusters, sums, counts = _moved_sums(part, where[moved], nearest[moved], away)
    return (rows, labels, upper), _task_sums(clusters, sums, counts, labels, upper, k, len(moved), pairs)


def _task_sums(clusters, sums, counts, labels: np.ndarray, upper: np.ndarray, k: int, moved: int,
               pairs: int) -> LloydSums:
    """The task's :class:`LloydSums`, with the largest bound of every cluster its rows are in."""
    order = label_order(labels, k)
    starts = np.flatnonzero(np.concatenate([[True], labels[order][1:] != labels[order][:-1]]))
    return LloydSums(clusters, sums, counts, labels[order][starts], np.maximum.reduceat(upper[order], starts),
                     moved, pairs)


def _moved_sums(values: np.ndarray, index: np.ndarray, to: np.ndarray, away: np.ndarray | None):
    """(clusters touched, float64 sums, counts) of rows ``values[index]`` arriving in ``to`` and leaving ``away``;
    every cluster's rows are added in the order given, converted to float64 ``SUM_BLOCK_ROWS`` rows at a time."""
    if not len(to):
        return np.zeros(0, dtype=np.int64), np.zeros((0, values.shape[1])), np.zeros(0, dtype=np.int64)
    take, subtracted, clusters, starts = grouped_by_cluster(to, away)
    group = np.repeat(np.arange(len(clusters)), np.diff(np.append(starts, len(take))))
    sums = np.zeros((len(clusters), values.shape[1]))
    for start, stop in row_blocks(len(take), SUM_BLOCK_ROWS):
        block = values[index[take[start:stop]]].astype(np.float64)
        block[subtracted[start:stop]] *= -1.0
        firsts = np.flatnonzero(np.diff(group[start:stop], prepend=-1))
        sums[group[start:stop][firsts]] += np.add.reduceat(block, firsts, axis=0)
    return clusters, sums, np.add.reduceat(np.where(subtracted, -1, 1), starts)


def even_blocks(n: int, max_rows: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the fewest blocks of at most ``max_rows`` rows covering n rows, of equal sizes to a row
    (the tasks of an iteration finish together)."""
    parts = -(-n // max_rows)
    bounds = [i * n // parts for i in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def run_lloyd_tasks(X, rows: np.ndarray, init: np.ndarray, n_iter: int, rng: np.random.Generator, metric: Metric,
                    tasks: LloydTasks, workers: Workers) -> tuple[np.ndarray, int, int]:
    """Exact Lloyd from ``init`` on X's rows ``rows`` as tasks; returns (centroids, iterations run, GEMM pairs).

    Stops once no row changes cluster, like :func:`~curation_assets.core.lloyd.run_lloyd`; the driver holds the
    centroids, their sums, counts and largest bounds, never the training rows.
    """
    C = np.array(init, dtype=np.float32)
    k, d = C.shape
    states: list = [(rows[start:stop], None, None) for start, stop in even_blocks(len(rows), tasks.task_rows)]
    sums, counts = np.zeros((k, d)), np.zeros(k, dtype=np.int64)
    rnd, pairs = LloydRound(C, metric), 0
    for it in range(1, n_iter + 1):
        states, parts = tasks.run(X, states, rnd)
        largest = np.zeros(k, dtype=np.float32)
        for part in parts:  # in task order: the same float64 additions on every backend
            sums[part.clusters] += part.sums
            counts[part.clusters] += part.counts
            largest[part.bound_clusters] = np.maximum(largest[part.bound_clusters], part.bound_max)
        pairs += sum(part.pairs for part in parts)
        if it > 1 and not any(part.moved for part in parts):
            return C, it, pairs
        new_C = cluster_means(sums, counts, C, rng, metric == "cosine")
        shift = np.sqrt(np.einsum("ij,ij->i", new_C - C, new_C - C)).astype(np.float32)
        C = new_C
        half_gap, indptr, neighbours = centroid_neighbours(C, 2.0 * (largest + shift), workers)
        rnd = LloydRound(C, metric, shift, half_gap.astype(np.float32), indptr, neighbours)
        pairs += k * k
    return C, n_iter, pairs


def run_in_process(X, states: Sequence[LloydState], rnd: LloydRound,
                   workers: Workers) -> tuple[list[LloydState], list[LloydSums]]:
    """A :data:`LloydPass` on this process's pool, one single-threaded task per state."""
    results = workers.run(lambda state: lloyd_task(X, state, rnd), states)
    return [state for state, _ in results], [sums for _, sums in results]
