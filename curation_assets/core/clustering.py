"""k-means for the curation hierarchy: greedy k-means++ seeds, exact filtered Lloyd, a streamed assignment.

The public entry points of the k-means machinery (docs/method.md, sections 2 and 3), each a thin composition of
the modules that do the work, like scikit-learn keeps ``_kmeans_plusplus``, Lloyd and Elkan apart and faiss keeps
its backend behind ``DatasetAssign``:

- ``seeding``: greedy k-means++, exact and batched (rejection sampling of the D² distribution);
- ``lloyd``: exact Lloyd, filtered by Elkan's and Hamerly's bounds;
- ``assignment``: the nearest-centroid search every pass uses, and the :data:`Assigner` shape of a full pass;
- ``backend_faiss`` / ``backend_torch``: the heavy passes on a device, picked by ``devices.kernels_for``;
- ``workers``: the thread pool and the size-only cut of every pass into blocks (bytes independent of threads).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from curation_assets.core import seeding
from curation_assets.core._validation import as_float32_matrix
from curation_assets.core.assignment import ASSIGN_CHUNK_ROWS, Assigner, Metric, check_metric, gemm_pairs
from curation_assets.core.backend_faiss import FaissKernels
from curation_assets.core.devices import kernels_for
from curation_assets.core.linalg import read_rows
from curation_assets.core.lloyd_tasks import LloydTasks, run_lloyd_tasks
from curation_assets.core.seeding_tasks import SeedingTasks, TaskSeeding
from curation_assets.core.workers import Workers, shared_workers


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
        ``"cpu"`` (faiss), ``"cuda"``, ``"torch-cpu"`` or ``"auto"`` (``curation_assets.core.devices``). On a torch
        device X may also be a tensor already there.

    Returns
    -------
    labels : (n,) or (m,) int64, squared L2 distances : float32
        On the CPU each chunk is searched in blocks of ``ASSIGN_BLOCK_ROWS`` rows, one single-threaded search per
        block: a multi-threaded BLAS call rounds differently with the thread count, so this keeps the bytes
        the same on every machine and in every worker (the execution backends rely on it).
    """
    check_metric(metric)
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    kernels = kernels_for(device, centroids.shape[1], shared_workers(threads))
    return kernels.assign(X, centroids, metric, chunk_rows, rows)


def training_sample(n: int, k: int, max_points_per_centroid: int | None,
                    rng: np.random.Generator) -> np.ndarray | None:
    """Sorted row indices of a bounded training sample, or None to train on all rows."""
    if max_points_per_centroid is None or n <= k * max_points_per_centroid:
        return None
    return np.sort(rng.choice(n, size=k * max_points_per_centroid, replace=False))


def fit_centroids(X, k: int, rng: np.random.Generator, *, rows: np.ndarray | None = None, n_iter: int = 50,
                  metric: Metric = "l2", max_points_per_centroid: int | None = 256,
                  seeding_candidates: int | None = None, workers: Workers | None = None,
                  device: str = "cpu", lloyd_tasks: LloydTasks | None = None,
                  seeding_tasks: SeedingTasks | None = None) -> TrainedCentroids:
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
        As in :func:`kmeans`. Seeding runs on at most ``k * seeding.SEEDING_POINTS_PER_CENTROID`` of the training
        rows (a uniform sample), Lloyd on all of them.
    workers : Workers, optional
        The CPU thread pool for the distance work (default :func:`shared_workers`); the result does not depend on it.
    lloyd_tasks : LloydTasks, optional
        When the training sample has more than ``lloyd_tasks.task_rows`` rows, Lloyd runs as those tasks
        (:mod:`~curation_assets.core.lloyd_tasks`, on an execution backend's workers) and this process never
        gathers the training sample; otherwise, and by default, Lloyd runs here on a gathered copy of it.
    seeding_tasks : SeedingTasks, optional
        When the seeding sample has more than ``seeding_tasks.task_rows`` rows, its blocks are kept and its distance
        work done by holders on the backend's workers (:mod:`~curation_assets.core.seeding_tasks`); by default
        seeding runs here. Both task paths run on CPU workers and apply only on the ``"cpu"`` device.

    Returns
    -------
    TrainedCentroids
    """
    kernels = kernels_for(device, X.shape[1], workers)
    n_rows = X.shape[0] if rows is None else len(rows)
    sample = training_sample(n_rows, k, max_points_per_centroid, rng)
    taken = sample if rows is None else (rows if sample is None else rows[sample])
    n_train = n_rows if taken is None else len(taken)
    seeding_rows = training_sample(n_train, k, seeding.SEEDING_POINTS_PER_CENTROID, rng)
    on_cpu = isinstance(kernels, FaissKernels)  # the tasks run on CPU workers: never for a torch device
    n_seeding = n_train if seeding_rows is None else len(seeding_rows)
    lloyd_tasks = lloyd_tasks if on_cpu and lloyd_tasks and n_train > lloyd_tasks.task_rows else None
    seeding_tasks = seeding_tasks if on_cpu and seeding_tasks and n_seeding > seeding_tasks.task_rows else None
    if lloyd_tasks or seeding_tasks:
        return _train_in_tasks(X, k, rng, taken, seeding_rows, kernels, n_iter, metric, seeding_candidates,
                               lloyd_tasks, seeding_tasks)
    train, seeding_set = kernels.training_rows(X, taken, seeding_rows, metric)
    seeds, seeding_pairs = seeding.greedy_seeds(seeding_set, k, seeding_candidates, rng, kernels.seeding(seeding_set))
    centroids, iterations, lloyd_pairs = kernels.lloyd(train, seeding_set[seeds], n_iter, rng, metric == "cosine")
    return TrainedCentroids(centroids, iterations, seeding_pairs + lloyd_pairs)


def _train_in_tasks(X, k: int, rng: np.random.Generator, taken: np.ndarray | None, seeding_rows: np.ndarray | None,
                    kernels: FaissKernels, n_iter: int, metric: Metric, seeding_candidates: int | None,
                    lloyd_tasks: LloydTasks | None, seeding_tasks: SeedingTasks | None) -> TrainedCentroids:
    """:func:`fit_centroids` with seeding or Lloyd (or both) as tasks on X's rows ``taken`` (None: all): this process
    gathers at most the sample the other one needs (the seeding sample for seeding here, the training sample for
    Lloyd here)."""
    train_rows = np.arange(X.shape[0]) if taken is None else taken
    sample_rows = train_rows if seeding_rows is None else train_rows[seeding_rows]
    if seeding_tasks:
        seeds, seeding_pairs = seeding.greedy_seeds(np.empty((len(sample_rows), 0)), k, seeding_candidates, rng,
                                                    functools.partial(TaskSeeding, X, sample_rows, metric,
                                                                      tasks=seeding_tasks))
        init = read_rows(X, sample_rows[seeds], metric == "cosine")
    else:
        seeding_set, _ = kernels.training_rows(X, sample_rows, None, metric)
        seeds, seeding_pairs = seeding.greedy_seeds(seeding_set, k, seeding_candidates, rng,
                                                    kernels.seeding(seeding_set))
        init = seeding_set[seeds]
    if lloyd_tasks:
        centroids, iterations, lloyd_pairs = run_lloyd_tasks(X, train_rows, init, n_iter, rng, metric, lloyd_tasks,
                                                             kernels.workers)
    else:
        train, _ = kernels.training_rows(X, taken, None, metric)
        centroids, iterations, lloyd_pairs = kernels.lloyd(train, init, n_iter, rng, metric == "cosine")
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
        Where the heavy passes run (``curation_assets.core.devices``); ``"cpu"`` is the faiss path.

    Returns
    -------
    KMeansResult
    """
    check_metric(metric)
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
    return KMeansResult(fit.centroids, labels, dists, fit.n_iter, fit.distance_pairs + gemm_pairs(n, k, X.shape[1]))
