"""The splits of a level (docs/method.md, splits): every cluster cut into up to s_t sub-clusters by a small k-means
inside it.

The clusters are independent, so the splits are tasks an execution backend may spread over workers, one task per
group of parent clusters (:func:`split_groups`); a task reads only its clusters' rows (a bounded training sample,
then the members chunk by chunk). Each cluster's k-means draws from its own seed, drawn by the level in cluster
order before any task runs, and its result never depends on the thread count: the same level comes out whichever
backend ran the tasks and however they were grouped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from curation_assets.core.assignment import Metric, gemm_pairs
from curation_assets.core.clustering import assign, fit_centroids

ClusterToSplit = tuple[np.ndarray, int]
"""``(members, seed)``: the rows of X in one parent cluster (increasing) and the seed of its small k-means."""

SplitResult = tuple[np.ndarray, np.ndarray, np.ndarray, int]
"""``(centroids, sub-cluster of every member, squared distance to it, GEMM distance pairs)`` of one cluster."""


@dataclass(frozen=True)
class SplitSettings:
    """What every small k-means of a level's splits shares (the level's :class:`LevelSpec` settings)."""

    n_splits: int
    metric: Metric = "l2"
    n_iter: int = 50
    max_points_per_centroid: int | None = 256
    seeding_candidates: int | None = None


Splitter = Callable[[np.ndarray, Sequence[ClusterToSplit], SplitSettings], list[SplitResult]]
"""``(X, clusters, settings) -> results``, one per cluster in order, like :func:`split_clusters`: the pass an
execution backend may spread over workers (``curation_assets.execution``)."""


def split_clusters(X, clusters: Sequence[ClusterToSplit], settings: SplitSettings,
                   device: str = "cpu") -> list[SplitResult]:
    """Split each cluster into up to ``settings.n_splits`` sub-clusters: greedy k-means++ and Lloyd on a bounded
    sample of its members, then every member to its nearest sub-centroid (never to another cluster's)."""
    results = []
    for members, seed in clusters:
        s = min(settings.n_splits, len(members))
        fit = fit_centroids(X, s, np.random.default_rng(seed), rows=members, n_iter=settings.n_iter,
                            metric=settings.metric, max_points_per_centroid=settings.max_points_per_centroid,
                            seeding_candidates=settings.seeding_candidates, device=device)
        sub_labels, dists = assign(X, fit.centroids, settings.metric, rows=members, device=device)
        results.append((fit.centroids, sub_labels, dists,
                        fit.distance_pairs + gemm_pairs(len(members), s, X.shape[1])))
    return results


def split_groups(clusters: Sequence[ClusterToSplit], group_rows: int) -> list[list[ClusterToSplit]]:
    """The clusters, in order, cut into consecutive groups of about ``group_rows`` member rows (one task each)."""
    groups: list[list[ClusterToSplit]] = [[]]
    rows = 0
    for cluster in clusters:
        if groups[-1] and rows + len(cluster[0]) > group_rows:
            groups.append([])
            rows = 0
        groups[-1].append(cluster)
        rows += len(cluster[0])
    return groups if groups[0] else []
