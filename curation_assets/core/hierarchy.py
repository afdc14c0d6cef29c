"""Hierarchical k-means with resampling (Vo et al. 2024; docs/method.md, section 2).

Level 1 clusters the points of X; level t > 1 clusters the centroids of level t-1 (its
input ``X_t``). Each level runs k-means, then ``resampling_steps`` times draws
``sample_size`` members per cluster (closest to the centroid or at random), re-runs
k-means on that union only and re-assigns all of ``X_t`` to the new centroids. A level
may split each of its clusters into ``n_splits`` sub-clusters with a small k-means.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import numpy as np

from curation_assets.core._validation import as_float32_matrix, check_finite
from curation_assets.core.assignment import Assigner, Metric, gemm_pairs
from curation_assets.core.clustering import assign, fit_centroids
from curation_assets.core.devices import kernels_for
from curation_assets.core.lloyd_tasks import LloydTasks
from curation_assets.core.seeding_tasks import SeedingTasks
from curation_assets.core.splits import SplitSettings, Splitter, split_clusters
from curation_assets.core.workers import label_order

ResampleStrategy = Literal["closest", "random"]
RESAMPLE_STRATEGIES = ("closest", "random")
MIN_CLUSTERS = 2  # fewest clusters of a planned level


@dataclass(frozen=True)
class LevelSpec:
    """One level of the hierarchy (docs/method.md, section 2): k_t, m_t, r_t, the resampling draw and s_t.

    Parameters
    ----------
    n_clusters : int, optional
        k_t, an absolute number of clusters. Give exactly one of ``n_clusters`` and ``per_cluster``.
    per_cluster : float, optional
        k_t relative to the level's input: one cluster per ``per_cluster`` inputs (k = round(n / per_cluster),
        at least 1), so one recipe carries over to pools of any size.
    resampling_steps : int
        m_t, resampling steps after the first k-means (0: none).
    sample_size : int, optional
        r_t, members drawn per cluster at each resampling step; None: the paper's rule of thumb,
        half the mean cluster size of the level. Resampling is skipped when r_t <= 1.
    resample_strategy : {"closest", "random"}
        Which r_t members: the closest to the centroid (the paper's default) or random ones.
    n_splits : int
        s_t: split every cluster into up to s_t sub-clusters with a small k-means inside it.
    n_iter : int
        Maximum Lloyd iterations of every k-means of the level.
    max_points_per_centroid : int, optional
        Train k-means on at most k * this many random inputs (None: all); the assignment covers all.
    seeding_candidates : int, optional
        Greedy k-means++: candidates drawn per seeding step, the one lowering the potential most is kept;
        None: 2 + floor(ln k) (scikit-learn's default); 1: plain D² sampling.

    This dataclass is also the schema of a ``levels:`` entry in ``curation.yaml`` (validated by pydantic).
    """

    n_clusters: int | None = None
    resampling_steps: int = 0
    sample_size: int | None = None
    resample_strategy: ResampleStrategy = "closest"
    n_splits: int = 1
    n_iter: int = 50
    max_points_per_centroid: int | None = 256
    per_cluster: float | None = None
    seeding_candidates: int | None = None

    __pydantic_config__: ClassVar[dict] = {"extra": "forbid"}  # unknown YAML keys are errors

    def __post_init__(self):
        if (self.n_clusters is None) == (self.per_cluster is None):
            raise ValueError("give exactly one of n_clusters (absolute) and per_cluster (relative to the "
                             f"level's input), got n_clusters={self.n_clusters}, per_cluster={self.per_cluster}")
        for name in ("n_clusters", "sample_size", "n_splits", "n_iter", "max_points_per_centroid",
                     "seeding_candidates"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.per_cluster is not None and not self.per_cluster >= 1:
            raise ValueError(f"per_cluster must be >= 1 (inputs per cluster), got {self.per_cluster}")
        if self.resampling_steps < 0:
            raise ValueError(f"resampling_steps must be >= 0, got {self.resampling_steps}")
        if self.resample_strategy not in RESAMPLE_STRATEGIES:
            raise ValueError(f"resample_strategy must be one of {RESAMPLE_STRATEGIES}, "
                             f"got {self.resample_strategy!r}")

    def clusters_for(self, n_inputs: int) -> int:
        """k_t for a level input of ``n_inputs`` rows."""
        if self.n_clusters is not None:
            return self.n_clusters
        return max(1, round(n_inputs / self.per_cluster))

    def resolved(self, n_inputs: int) -> LevelSpec:
        """This level with k_t and r_t made concrete for ``n_inputs`` inputs (absolute, nothing left to derive)."""
        k = self.clusters_for(n_inputs)
        r = self.sample_size if self.sample_size is not None else max(1, round(n_inputs / k / 2))
        return replace(self, n_clusters=k, per_cluster=None, sample_size=r)


def plan_level(spec: LevelSpec, t: int, n_inputs: int) -> tuple[LevelSpec | None, str | None]:
    """The concrete spec of level ``t`` for ``n_inputs`` inputs, or None when the level cannot be fitted.

    A pool too small for the configured hierarchy gets fewer levels, not an error: a level t > 1 asking for
    more clusters than it has inputs, or for fewer than ``MIN_CLUSTERS`` (one cluster groups nothing: sampling
    under it is uniform), is dropped with every level above it; level 1 is shrunk to half its input, or raised
    to ``MIN_CLUSTERS``, instead. Only a pool of fewer than ``2 * MIN_CLUSTERS`` rows is an error. Returns
    (spec or None, a note saying what was changed, or None).
    """
    k = spec.clusters_for(n_inputs)
    if t == 1 and n_inputs < 2 * MIN_CLUSTERS:
        raise ValueError(f"pool too small to curate: {n_inputs} rows, level 1 needs at least {2 * MIN_CLUSTERS} "
                         f"(k >= {MIN_CLUSTERS} clusters of half the pool)")
    if MIN_CLUSTERS <= k <= n_inputs:
        return spec.resolved(n_inputs), None
    if t > 1:
        why = (f"but its input has only {n_inputs} points" if k > n_inputs
               else f"for its {n_inputs} inputs but a level needs at least {MIN_CLUSTERS}")
        return None, f"level {t} asks for k={k} clusters {why}: the hierarchy stops at level {t - 1}"
    planned = n_inputs // 2 if k > n_inputs else MIN_CLUSTERS
    why = f"the pool has only {n_inputs} points" if k > n_inputs else f"a level needs at least {MIN_CLUSTERS}"
    return (replace(spec, n_clusters=planned, per_cluster=None).resolved(n_inputs),
            f"level 1 asks for k={k} clusters but {why}: using k={planned}")


@dataclass(frozen=True)
class Level:
    """A fitted level: centroids (k, d), the cluster of every row of X_t and its squared distance.

    ``distance_pairs`` counts the point–centroid squared distances the level computed by GEMM (all its
    k-means, assignments and splits): the work done, 2·d FLOPs per pair.
    """

    centroids: np.ndarray
    assignment: np.ndarray
    distances: np.ndarray
    distance_pairs: int = 0

    @property
    def n_clusters(self) -> int:
        return int(self.centroids.shape[0])


def per_cluster_sample(labels: np.ndarray, distances: np.ndarray, sample_size: int,
                       strategy: ResampleStrategy, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices of ``sample_size`` members of every cluster (docs/method.md, resampling).

    Members are ranked closest-to-centroid first (or at random); a cluster with fewer than ``sample_size``
    members gives all of them, once. (Repeating a small cluster's members up to ``sample_size`` over-weights
    tiny clusters: step after step they attract more centroids, and on long-tailed concepts the rarest
    concepts end up split into many clusters while large ones share one.)
    """
    key = distances if strategy == "closest" else rng.random(len(labels))
    sizes = np.bincount(labels)
    by_key = np.argsort(key, kind="stable")
    order = by_key[label_order(labels[by_key], len(sizes))]  # by cluster, then key: np.lexsort((key, labels))
    rank = np.arange(len(labels)) - np.repeat(np.cumsum(sizes) - sizes, sizes)  # rank within the cluster
    return np.sort(order[rank < sample_size])


def _compact(centroids: np.ndarray, labels: np.ndarray, dists: np.ndarray, distance_pairs: int) -> Level:
    """Drop clusters no row is assigned to and renumber the rest densely."""
    used = np.unique(labels)
    if len(used) == len(centroids):
        return Level(centroids, labels, dists, distance_pairs)
    remap = np.full(len(centroids), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return Level(np.ascontiguousarray(centroids[used]), remap[labels], dists, distance_pairs)


def _split_clusters(X: np.ndarray, labels: np.ndarray, n_clusters: int, spec: LevelSpec, metric: Metric,
                    rng: np.random.Generator, splitter: Splitter) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Split every cluster into up to ``n_splits`` sub-clusters with a small k-means inside it (docs/method.md, splits;
    :mod:`curation_assets.core.splits`), the clusters' seeds drawn here in cluster order.

    Points keep the sub-cluster they get inside their own cluster (no global re-assignment over all k·s
    centroids, which would cost as much as a flat k·s k-means).
    Returns (centroids, labels, squared distances to the own sub-centroid, GEMM distance pairs).
    """
    order = label_order(labels, n_clusters)  # members of a cluster in increasing row order
    bounds = np.searchsorted(labels[order], np.arange(n_clusters + 1))
    clusters = [(order[bounds[c] : bounds[c + 1]], int(rng.integers(2**31 - 1)))
                for c in range(n_clusters) if bounds[c + 1] > bounds[c]]
    settings = SplitSettings(spec.n_splits, metric, spec.n_iter, spec.max_points_per_centroid,
                             spec.seeding_candidates)
    new_labels, dists = np.empty(len(labels), dtype=np.int64), np.empty(len(labels), dtype=np.float32)
    offset, pairs = 0, 0
    results = splitter(X, clusters, settings)
    for (members, _), (centroids, sub_labels, sub_dists, sub_pairs) in zip(clusters, results, strict=True):
        new_labels[members], dists[members] = offset + sub_labels, sub_dists
        offset += len(centroids)
        pairs += sub_pairs
    return np.concatenate([r[0] for r in results], axis=0), new_labels, dists, pairs


def _kmeans_and_resampling(X_t, spec: LevelSpec, metric: Metric, assigner: Assigner, rng: np.random.Generator,
                           log: Callable[[str], None], device: str, lloyd_tasks: LloydTasks | None,
                           seeding_tasks: SeedingTasks | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A level's k-means and its resampling steps (docs/method.md, section 2); returns (centroids, labels,
    squared distances, GEMM distance pairs)."""
    n, d = X_t.shape
    k = spec.n_clusters
    train = functools.partial(fit_centroids, X_t, k, n_iter=spec.n_iter, metric=metric,
                              max_points_per_centroid=spec.max_points_per_centroid,
                              seeding_candidates=spec.seeding_candidates, device=device, lloyd_tasks=lloyd_tasks,
                              seeding_tasks=seeding_tasks)
    started = time.perf_counter()
    fit = train(np.random.default_rng(int(rng.integers(2**31 - 1))))
    labels, dists = assigner(X_t, fit.centroids, metric)
    centroids, pairs = fit.centroids, fit.distance_pairs + gemm_pairs(n, k, d)
    log(f"k-means k={k} on {n} inputs: {fit.n_iter} Lloyd iterations, {time.perf_counter() - started:.1f} s")
    if spec.sample_size <= 1:
        return centroids, labels, dists, pairs
    for step in range(1, spec.resampling_steps + 1):
        started = time.perf_counter()
        rows = per_cluster_sample(labels, dists, spec.sample_size, spec.resample_strategy, rng)
        if len(rows) < k:
            break
        fit = train(np.random.default_rng(int(rng.integers(2**31 - 1))), rows=rows)
        centroids = fit.centroids
        labels, dists = assigner(X_t, centroids, metric)
        pairs += fit.distance_pairs + gemm_pairs(n, k, d)
        log(f"resampling step {step}/{spec.resampling_steps}: k-means on {len(rows)} drawn inputs and a new "
            f"assignment of all {n}, {time.perf_counter() - started:.1f} s")
    return centroids, labels, dists, pairs


def fit_level(X_t, spec: LevelSpec, *, seed: int = 0, metric: Metric = "l2", assigner: Assigner | None = None,
              splitter: Splitter | None = None, log: Callable[[str], None] | None = None,
              device: str = "cpu", lloyd_tasks: LloydTasks | None = None,
              seeding_tasks: SeedingTasks | None = None) -> Level:
    """Fit one level on its input X_t (points for level 1, previous centroids above).

    Parameters
    ----------
    X_t : (n, d) float32 array or memmap
        The level's input, read in place.
    spec : LevelSpec
        k_t, m_t, r_t, s_t and the k-means settings (``seeding_candidates``: greedy k-means++ tries per step).
    seed : int
    metric : {"l2", "cosine"}
    assigner : Assigner, optional
        Runs the passes over all of X_t (the assignment after k-means and after every resampling step);
        default: in-process :func:`assign` on ``device``. k-means training runs here, on bounded samples.
    splitter : Splitter, optional
        Runs the splits' small k-means (``n_splits`` > 1), one task per group of clusters; default: in-process
        :func:`~curation_assets.core.splits.split_clusters` on ``device``.
    lloyd_tasks : LloydTasks, optional
        Runs Lloyd as tasks when a k-means' training sample has more rows than one task holds (the level's k-means
        and its resampling k-means; :mod:`~curation_assets.core.lloyd_tasks`); default: Lloyd in this process.
    seeding_tasks : SeedingTasks, optional
        Keeps a seeding sample of more rows than one task holds on the backend's workers and does its distance work
        there (:mod:`~curation_assets.core.seeding_tasks`); default: seeding in this process.
    log : callable, optional
        Called with one line after the k-means, after every resampling step and after the splits, each with
        its seconds (progress for a long level).
    device : {"cpu", "cuda", "cuda:N", "torch-cpu", "auto"}
        Where the heavy passes run (``curation_assets.core.devices``); ``"cpu"`` is the faiss path.
        Without an ``assigner``, a torch device keeps X_t in its memory for the whole level when it fits
        (``backend_torch.RESIDENT_SHARE`` of the free GPU memory), and streams it chunk by chunk otherwise.

    Returns
    -------
    Level
    """
    X_t = as_float32_matrix(X_t, "level input")
    check_finite(X_t, "level input")
    n, d = X_t.shape
    spec = spec.resolved(n)
    k = spec.n_clusters
    if k > n:
        raise ValueError(f"level asks for k={k} clusters but its input has only {n} points; "
                         f"lower n_clusters to at most {n}")
    if assigner is None:
        X_t = kernels_for(device, d).resident(X_t)
        assigner = functools.partial(assign, device=device)
    rng = np.random.default_rng(seed)
    log = log or (lambda message: None)
    centroids, labels, dists, pairs = _kmeans_and_resampling(X_t, spec, metric, assigner, rng, log, device,
                                                             lloyd_tasks, seeding_tasks)
    if spec.n_splits > 1:
        started = time.perf_counter()
        splitter = splitter or functools.partial(split_clusters, device=device)
        centroids, labels, dists, split_pairs = _split_clusters(X_t, labels, k, spec, metric, rng, splitter)
        pairs += split_pairs
        log(f"splits: {k} clusters into up to {spec.n_splits} each, {time.perf_counter() - started:.1f} s")
    return _compact(centroids, labels, dists, pairs)


class HierarchicalClustering:
    """The fitted tree: per level centroids and assignments, composed into labels of X's rows.

    ``notes`` says which configured levels were changed or dropped because the input was too small.
    """

    def __init__(self, levels: Sequence[Level], n_points: int | None = None, notes: Sequence[str] = ()):
        if not levels:
            raise ValueError("a hierarchy needs at least one level")
        for t in range(1, len(levels)):
            if len(levels[t].assignment) != levels[t - 1].n_clusters:
                raise ValueError(f"level {t + 1} assigns {len(levels[t].assignment)} rows but level {t} "
                                 f"has {levels[t - 1].n_clusters} clusters")
        if n_points is not None and len(levels[0].assignment) != n_points:
            raise ValueError(f"level 1 assigns {len(levels[0].assignment)} rows, expected {n_points}")
        self.levels = list(levels)
        self.notes = list(notes)
        self._labels: dict[int, np.ndarray] = {1: np.asarray(levels[0].assignment, dtype=np.int64)}

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def n_points(self) -> int:
        return len(self.levels[0].assignment)

    def _level(self, t: int) -> Level:
        if not 1 <= t <= self.n_levels:
            raise IndexError(f"levels are 1-based: got {t}, the hierarchy has {self.n_levels}")
        return self.levels[t - 1]

    def centroids(self, t: int) -> np.ndarray:
        """Centroids of level t, shape (k_t, d)."""
        return self._level(t).centroids

    def parents(self, t: int) -> np.ndarray:
        """Cluster at level t+1 of every level-t cluster."""
        return np.asarray(self._level(t + 1).assignment, dtype=np.int64)

    def labels(self, t: int) -> np.ndarray:
        """Cluster at level t of every row of X (composed assignments)."""
        self._level(t)
        if t not in self._labels:
            self._labels[t] = self.parents(t - 1)[self.labels(t - 1)]
        return self._labels[t]

    def cluster_sizes(self, t: int) -> np.ndarray:
        """Number of original points under every level-t cluster."""
        return np.bincount(self.labels(t), minlength=self._level(t).n_clusters)


def hierarchical_kmeans(X, levels: Sequence[LevelSpec], *, seed: int = 0, metric: Metric = "l2",
                        on_level: Callable[[int, Level], None] | None = None, assigner: Assigner | None = None,
                        splitter: Splitter | None = None, device: str = "cpu",
                        lloyd_tasks: LloydTasks | None = None,
                        seeding_tasks: SeedingTasks | None = None) -> HierarchicalClustering:
    """Fit all levels bottom-up; level t clusters the centroids of level t-1.

    X: (n, d) float32 ndarray or memmap. Deterministic for a given seed. ``on_level(t, level)``
    is called after each level (progress, checkpoints); ``assigner`` runs the full-pool passes, ``splitter``
    the splits, ``lloyd_tasks`` and ``seeding_tasks`` Lloyd and seeding on samples larger than a task;
    ``device`` runs the heavy passes of every level (:func:`fit_level`).
    A level too large for its input is shrunk (level 1) or dropped with the levels above it
    (:func:`plan_level`); the returned tree's ``notes`` say so.
    """
    if not levels:
        raise ValueError("levels must name at least one LevelSpec")
    X = as_float32_matrix(X)
    fitted: list[Level] = []
    notes: list[str] = []
    inp = X
    for t, configured in enumerate(levels, start=1):
        spec, note = plan_level(configured, t, inp.shape[0])
        notes += [note] if note else []
        if spec is None:
            break
        level = fit_level(inp, spec, seed=level_seed(seed, t), metric=metric, assigner=assigner, splitter=splitter,
                          device=device, lloyd_tasks=lloyd_tasks, seeding_tasks=seeding_tasks)
        fitted.append(level)
        if on_level is not None:
            on_level(t, level)
        inp = level.centroids
    return HierarchicalClustering(fitted, n_points=X.shape[0], notes=notes)


def level_seed(seed: int, t: int) -> int:
    """The seed of level t, derived from the run's seed (so one level can be refit alone)."""
    return int(np.random.SeedSequence([seed, t]).generate_state(1)[0])
