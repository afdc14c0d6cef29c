"""Hierarchical balanced sampling (docs/method.md, section 4): water-filling budgets down the tree.

At the top level every cluster gets the same budget: the largest cap c with
Σ min(c, size_i) ≤ N, plus one slot each for the leftover to random clusters still
larger than c. Inside a cluster its budget is split the same way among its children,
down to level 1, where points are drawn at random or closest to the centroid first.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from curation_assets.core.hierarchy import HierarchicalClustering

SampleStrategy = Literal["random", "closest"]
SAMPLE_STRATEGIES = ("random", "closest")


def balanced_budget(capacities: np.ndarray, budget: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``budget`` as evenly as possible among clusters of the given capacities (water-filling).

    Parameters
    ----------
    capacities : (c,) int array
        How many points each cluster can give.
    budget : int
    rng : numpy Generator
        Picks which clusters above the cap get the leftover slots.

    Returns
    -------
    (c,) int64 array
        The allocation: ≤ capacity, summing to min(budget, Σ capacity).
    """
    capacities = np.asarray(capacities, dtype=np.int64)
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if budget >= capacities.sum():
        return capacities.copy()
    lo, hi = 0, int(capacities.max())
    while lo < hi:  # largest cap c with Σ min(c, capacity) ≤ budget
        mid = (lo + hi + 1) // 2
        if np.minimum(capacities, mid).sum() <= budget:
            lo = mid
        else:
            hi = mid - 1
    alloc = np.minimum(capacities, lo)
    leftover = budget - int(alloc.sum())
    if leftover:
        larger = np.flatnonzero(capacities > lo)
        alloc[rng.choice(larger, size=leftover, replace=False)] += 1
    return alloc


def tempered_budget(capacities: np.ndarray, budget: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Split ``budget`` ∝ capacity^alpha, capped by capacity (alpha=0: :func:`balanced_budget`, 1: proportional).

    Finds the scale λ with Σ min(capacity, ⌊λ·capacity^alpha⌋) ≤ budget by bisection, then hands the
    leftover slots one each to random clusters that still have room.
    """
    if alpha == 0:
        return balanced_budget(capacities, budget, rng)
    capacities = np.asarray(capacities, dtype=np.int64)
    if budget >= capacities.sum():
        return capacities.copy()
    weights = np.where(capacities > 0, capacities.astype(np.float64) ** alpha, 0.0)
    lo, hi = 0.0, float(capacities.max() / weights[weights > 0].min()) + 1.0
    for _ in range(100):
        mid = (lo + hi) / 2
        if np.minimum(capacities, np.floor(mid * weights)).sum() <= budget:
            lo = mid
        else:
            hi = mid
    alloc = np.minimum(capacities, np.floor(lo * weights)).astype(np.int64)
    leftover = budget - int(alloc.sum())
    if leftover:
        room = np.flatnonzero(alloc < capacities)
        alloc[rng.choice(room, size=leftover, replace=False)] += 1
    return alloc


def _split_among_children(parent_budget: np.ndarray, parent_of: np.ndarray, capacities: np.ndarray,
                          rng: np.random.Generator, alpha: float = 0.0) -> np.ndarray:
    """Budgets of the clusters one level down: each parent's budget water-filled over its children."""
    budget = np.zeros(len(parent_of), dtype=np.int64)
    order = np.argsort(parent_of, kind="stable")
    bounds = np.searchsorted(parent_of[order], np.arange(len(parent_budget) + 1))
    for p in np.flatnonzero(parent_budget):
        children = order[bounds[p] : bounds[p + 1]]
        budget[children] = tempered_budget(capacities[children], int(parent_budget[p]), alpha, rng)
    return budget


def _draw(members: np.ndarray, count: int, strategy: SampleStrategy, dist: np.ndarray,
          rng: np.random.Generator) -> np.ndarray:
    """``count`` rows of one leaf cluster; past its size, whole copies are tiled (multiplier)."""
    copies, rest = divmod(count, len(members))
    if strategy == "closest":
        ranked = members[np.argsort(dist, kind="stable")]
        return np.concatenate([np.tile(ranked, copies), ranked[:rest]])
    return np.concatenate([np.tile(members, copies), rng.choice(members, size=rest, replace=False)])


def leaf_budgets(h: HierarchicalClustering, target_size: int, multiplier: int, rng: np.random.Generator,
                 alpha: float = 0.0) -> np.ndarray:
    """Budget of every level-1 cluster after water-filling from the top level down."""
    capacity = {t: multiplier * h.cluster_sizes(t) for t in range(1, h.n_levels + 1)}
    budget = tempered_budget(capacity[h.n_levels], target_size, alpha, rng)
    for t in range(h.n_levels - 1, 0, -1):
        budget = _split_among_children(budget, h.parents(t), capacity[t], rng, alpha)
    return budget


def hierarchical_sampling(h: HierarchicalClustering, target_size: int, strategy: SampleStrategy = "random",
                          multiplier: int = 1, seed: int = 0, alpha: float = 0.0) -> np.ndarray:
    """Draw ``target_size`` rows of X as evenly as possible down the hierarchy (docs/method.md, section 4).

    Parameters
    ----------
    h : HierarchicalClustering
        The fitted tree over the n rows of X.
    target_size : int
        N, the number of rows to draw (at most n × ``multiplier``).
    strategy : {"random", "closest"}
        How a level-1 cluster gives its budget: random members (the paper's best), or closest to the
        centroid first.
    multiplier : int
        A cluster may contribute up to this many copies of each of its points (1: no repeats).
    seed : int
        Seeds the leftover slots of the water-filling and the random draws.
    alpha : float in [0, 1]
        Tempers every budget split: ∝ size^alpha (0: balanced, the paper; 1: proportional to size).

    Returns
    -------
    (N,) int64 array
        Sorted row indices into X; with ``multiplier`` > 1 an index can repeat.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if strategy not in SAMPLE_STRATEGIES:
        raise ValueError(f"strategy must be one of {SAMPLE_STRATEGIES}, got {strategy!r}")
    if multiplier < 1:
        raise ValueError(f"multiplier must be >= 1, got {multiplier}")
    if target_size < 1:
        raise ValueError(f"target_size must be >= 1, got {target_size}")
    pool = h.n_points * multiplier
    if target_size > pool:
        hint = "" if multiplier > 1 else "; raise the multiplier to allow repeats"
        raise ValueError(f"target_size={target_size} exceeds the pool of {h.n_points} points "
                         f"× multiplier {multiplier} = {pool}{hint}")
    rng = np.random.default_rng(seed)
    budget = leaf_budgets(h, target_size, multiplier, rng, alpha)
    labels = h.labels(1)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(len(budget) + 1))
    dist = h.levels[0].distances
    picks = []
    for c in np.flatnonzero(budget):
        members = order[bounds[c] : bounds[c + 1]]
        picks.append(_draw(members, int(budget[c]), strategy, dist[members], rng))
    return np.sort(np.concatenate(picks)).astype(np.int64)
