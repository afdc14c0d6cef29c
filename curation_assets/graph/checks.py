"""Asset checks, evaluated on what the store published (the files a user downloads), never on
in-memory copies."""

from __future__ import annotations

import numpy as np
import polars as pl
from dagster import AssetCheckResult

from curation_assets.core import normalized_entropy
from curation_assets.core._validation import first_nonfinite_row
from curation_assets.store import Embeddings, Scores, StaleInputError, Subset, Tree

PUBLISHED = "published"
IN_MEMORY = "hierarchical_resampled"


def embeddings_checks(emb: Embeddings) -> list[AssetCheckResult]:
    X = emb.X
    finite = first_nonfinite_row(X) is None
    expected = emb.record.facts.get("model_dim")
    dim_ok = X.shape[1] > 0 and expected in (None, 0, X.shape[1])
    return [AssetCheckResult(check_name="embeddings_finite_and_expected_dim", passed=bool(finite and dim_ok),
                             metadata={"finite": bool(finite), "dim": int(X.shape[1]), "model_dim": expected,
                                       "rows": int(X.shape[0])})]


def level_checks(t: int):
    def check(tree: Tree) -> list[AssetCheckResult]:
        used = len(tree.levels) == t
        empty = int((tree.cluster_sizes(t) == 0).sum()) if used else 0
        return [AssetCheckResult(check_name=f"no_empty_cluster_level_{t}", passed=empty == 0,
                                 metadata={"empty_clusters": empty, "used": used})]

    return check


def subset_checks(subset: Subset) -> list[AssetCheckResult]:
    """The published file holds exactly the sampler's draw: its size, pool ids only (never a removed
    duplicate), and a top level at least as balanced as the pool's."""
    facts, ids = subset.record.facts, subset.frame["id"]
    removed = subset.tree.pool.removed["id"]
    try:
        rows, not_in_pool = subset.rows, 0
    except StaleInputError:
        rows, not_in_pool = None, int((~ids.is_in(subset.tree.ids.implode())).sum())
    unique_ok = facts["multiplier"] > 1 or ids.n_unique() == len(ids)
    removed_ids = int(ids.is_in(removed.implode()).sum())
    top = subset.tree.hierarchy.labels(subset.tree.n_levels) if subset.tree.n_levels else None
    pool_h = normalized_entropy(np.bincount(top)) if top is not None else 1.0
    sub_h = normalized_entropy(np.bincount(top[rows], minlength=top.max() + 1)) if rows is not None else 0.0
    return [
        AssetCheckResult(check_name="subset_size_and_ids",
                         passed=bool(len(ids) == facts["target"] and unique_ok and not_in_pool == 0
                                     and removed_ids == 0),
                         metadata={"rows": len(ids), "target": facts["target"], "unique_ids": ids.n_unique(),
                                   "ids_not_in_pool": not_in_pool, "removed_duplicates_published": removed_ids}),
        AssetCheckResult(check_name="subset_more_balanced_than_pool", passed=bool(sub_h >= pool_h),
                         metadata={"pool_top_cluster_entropy": round(pool_h, 4),
                                   "subset_top_cluster_entropy": round(sub_h, 4)}),
    ]


def balance_metric(scores: pl.DataFrame) -> str | None:
    """Label entropy where labels exist, else the top level's cluster entropy."""
    metrics = set(scores.filter(pl.col("method") == PUBLISHED)["metric"])
    if "normalized_entropy" in metrics:
        return "normalized_entropy"
    levels = sorted((m for m in metrics if m.startswith("cluster_entropy_level_")),
                    key=lambda m: int(m.rsplit("_")[-1]))
    return levels[-1] if levels else None


def scores_checks(scores: Scores) -> list[AssetCheckResult]:
    """The published subset is not less balanced than random samples of its size, and agrees with the
    same method recomputed in memory within the seed spread."""
    metric = balance_metric(scores.frame)
    if metric is None:
        note = {"note": "no balance metric for this modality"}
        return [AssetCheckResult(check_name="published_not_less_balanced_than_random", passed=True, metadata=note),
                AssetCheckResult(check_name="published_matches_recomputed_method", passed=True, metadata=note)]
    row = {m: scores.frame.filter((pl.col("method") == m) & (pl.col("metric") == metric)).row(0, named=True)
           for m in (PUBLISHED, "random", IN_MEMORY)}
    published, random, recomputed = row[PUBLISHED]["value"], row["random"]["value"], row[IN_MEMORY]
    spread = recomputed["spread"]
    return [
        AssetCheckResult(check_name="published_not_less_balanced_than_random", passed=bool(published >= random),
                         metadata={"metric": metric, PUBLISHED: published, "random": random}),
        AssetCheckResult(check_name="published_matches_recomputed_method",
                         passed=bool(abs(published - recomputed["value"]) <= spread + 1e-9),
                         metadata={"metric": metric, PUBLISHED: published, IN_MEMORY: recomputed["value"],
                                   "seed_spread": spread}),
    ]
