"""Asset checks, evaluated on what the store published (the files a user downloads), never on
in-memory copies.

Every check is partitioned like its asset (one result per modality, so the Checks tab shows the text
partition's failure beside the satellite partition's success) and every result says in words, naming
its partition, why it passed or failed. A check that cannot judge (a balance comparison over a top level
of a single cluster, a level this modality does not use) is reported as skipped, with its reason, at
warning severity: never passed by default.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, PartitionsDefinition

from curation_assets.core import hierarchical_sampling, normalized_entropy
from curation_assets.core._validation import first_nonfinite_row
from curation_assets.store import Embeddings, Scores, StaleInputError, Subset, Tree

PUBLISHED = "published"


def check_spec(name: str, asset: str, partitions: PartitionsDefinition, description: str) -> AssetCheckSpec:
    """A check partitioned like its asset. Dagster marks partitioned checks as a preview feature; we opt in
    on purpose (per-partition results are the point), so its preview warning is not shown to users."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*partitions_def on an AssetCheckSpec.*")
        return AssetCheckSpec(name, asset=asset, partitions_def=partitions, description=description)


def verdict(name: str, partition: str, passed: bool, why: str, **metadata) -> AssetCheckResult:
    """A check result whose description names its partition and says why."""
    state = "passed" if passed else "FAILED"
    return AssetCheckResult(check_name=name, passed=bool(passed), description=f"[{partition}] {state}: {why}",
                            metadata={"partition": partition, **metadata})


def skipped(name: str, partition: str, why: str) -> AssetCheckResult:
    """A check that cannot judge this partition: not passed, at warning severity, saying why."""
    return AssetCheckResult(check_name=name, passed=False, severity=AssetCheckSeverity.WARN,
                            description=f"[{partition}] skipped: {why}", metadata={"partition": partition,
                                                                                   "skipped": True})


def embeddings_checks(emb: Embeddings) -> list[AssetCheckResult]:
    X = emb.X
    bad = first_nonfinite_row(X)
    expected = emb.record.facts.get("model_dim")
    dim_ok = X.shape[1] > 0 and expected in (None, 0, X.shape[1])
    why = (f"{X.shape[0]} vectors of dimension {X.shape[1]}, all finite" if bad is None and dim_ok else
           f"row {bad} is not finite" if bad is not None else f"dimension {X.shape[1]}, the model says {expected}")
    return [verdict("embeddings_finite_and_expected_dim", emb.layout.modality, bad is None and dim_ok, why,
                    finite=bad is None, dim=int(X.shape[1]), model_dim=expected, rows=int(X.shape[0]))]


def level_checks(t: int):
    def check(tree: Tree) -> list[AssetCheckResult]:
        partition = tree.pool.layout.modality
        if len(tree.levels) != t:
            return [skipped(f"no_empty_cluster_level_{t}", partition, f"level {t} is not used by this partition "
                            "(a pass-through level; its metadata says why)")]
        empty = int((tree.cluster_sizes(t) == 0).sum())
        why = f"every one of the {tree.levels[t - 1].n_clusters} clusters has points" if not empty else \
            f"{empty} clusters hold no pool point"
        return [verdict(f"no_empty_cluster_level_{t}", partition, empty == 0, why, empty_clusters=empty)]

    return check


def subset_checks(subset: Subset) -> list[AssetCheckResult]:
    """The published file holds exactly the sampler's draw (its size, pool ids only, never a removed duplicate,
    and the very rows the sampler draws again from the stored tree), with a top level at least as balanced
    as the pool's."""
    partition = subset.tree.pool.layout.modality
    return [_size_and_ids(subset, partition), *_is_the_draw(subset, partition), *_balance(subset, partition)]


def _size_and_ids(subset: Subset, partition: str) -> AssetCheckResult:
    facts, ids = subset.record.facts, subset.frame["id"]
    try:
        _, not_in_pool = subset.rows, 0
    except StaleInputError:
        not_in_pool = int((~ids.is_in(subset.tree.ids.implode())).sum())
    unique_ok = facts["multiplier"] > 1 or ids.n_unique() == len(ids)
    removed_ids = int(ids.is_in(subset.tree.pool.removed["id"].implode()).sum())
    passed = len(ids) == facts["target"] and unique_ok and not_in_pool == 0 and removed_ids == 0
    why = (f"{len(ids)} rows as targeted, every id a pool row, no removed duplicate" if passed else
           f"{len(ids)} rows (target {facts['target']}), {not_in_pool} ids not in the pool, {removed_ids} removed "
           f"duplicates, ids unique: {ids.n_unique() == len(ids)}")
    return verdict("subset_size_and_ids", partition, passed, why, rows=len(ids), target=facts["target"],
                   unique_ids=ids.n_unique(), ids_not_in_pool=not_in_pool, removed_duplicates_published=removed_ids)


def _is_the_draw(subset: Subset, partition: str) -> list[AssetCheckResult]:
    """The sampler run again on the stored tree with the recorded settings gives exactly the published rows."""
    facts = subset.record.facts
    if not subset.tree.n_levels:
        return [skipped("published_is_the_sampler_draw", partition, "no level was fitted")]
    try:
        published = np.sort(subset.rows)
    except StaleInputError:
        return [verdict("published_is_the_sampler_draw", partition, False, "published ids are not pool rows")]
    s = facts["sampling"]
    again = hierarchical_sampling(subset.tree.hierarchy, facts["target"], strategy=s["strategy"],
                                  multiplier=s["multiplier"], seed=s["seed"], alpha=s["alpha"])
    same = np.array_equal(again, published)
    why = ("the sampler, run again on the stored tree with the recorded settings, draws exactly these rows" if same
           else f"{int((~np.isin(published, again)).sum())} published rows differ from the sampler's draw")
    return [verdict("published_is_the_sampler_draw", partition, same, why)]


def _balance(subset: Subset, partition: str) -> list[AssetCheckResult]:
    tree = subset.tree
    if not tree.n_levels or tree.levels[-1].n_clusters < 2:
        return [skipped("subset_more_balanced_than_pool", partition, "the top level has a single cluster: nothing "
                        "to balance")]
    top = tree.hierarchy.labels(tree.n_levels)
    k = tree.levels[-1].n_clusters
    pool_h = normalized_entropy(np.bincount(top, minlength=k), k)
    sub_h = normalized_entropy(np.bincount(top[subset.rows], minlength=k), k)
    why = f"top-level ({k} clusters) entropy of the subset {sub_h:.3f} vs the pool's {pool_h:.3f}"
    return [verdict("subset_more_balanced_than_pool", partition, sub_h >= pool_h, why,
                    pool_top_cluster_entropy=round(pool_h, 4), subset_top_cluster_entropy=round(sub_h, 4))]


def balance_metric(scores: pl.DataFrame) -> str | None:
    """Label entropy where labels exist, else the top level's cluster entropy."""
    metrics = set(scores.filter(pl.col("method") == PUBLISHED)["metric"])
    if "normalized_entropy" in metrics:
        return "normalized_entropy"
    levels = sorted((m for m in metrics if m.startswith("cluster_entropy_level_")),
                    key=lambda m: int(m.rsplit("_")[-1]))
    return levels[-1] if levels else None


def scores_checks(scores: Scores) -> list[AssetCheckResult]:
    """Every baseline was scored, and the published subset is not less balanced than random samples of its
    size (label entropy where there are labels, else the top level's cluster entropy)."""
    partition = scores.subset.tree.pool.layout.modality
    errors = scores.record.facts.get("errors", [])
    failed = sorted({e["method"] for e in errors})
    out = [verdict("benchmark_complete", partition, not errors,
                   "every method scored" if not errors else f"{len(errors)} run(s) failed: {', '.join(failed)} "
                   f"(first: {errors[0]['error'][:200]})", failed_methods=failed)]
    metric = balance_metric(scores.frame)
    top = scores.subset.tree.levels[-1].n_clusters if scores.subset.tree.n_levels else 0
    if metric is None or (metric.startswith("cluster_entropy") and top < 2):
        return out + [skipped("published_not_less_balanced_than_random", partition, "no labels and a top level of "
                              "a single cluster: nothing to compare")]
    row = {m: scores.frame.filter((pl.col("method") == m) & (pl.col("metric") == metric)).row(0, named=True)
           for m in (PUBLISHED, "random")}
    published, random = row[PUBLISHED]["value"], row["random"]
    passed = published >= random["value"]
    why = (f"{metric} of the published subset {published:.3f} vs random subsets of its size "
           f"{random['value']:.3f} ± {random['std']:.3f} ({random['seeds']} seeds)")
    return out + [verdict("published_not_less_balanced_than_random", partition, passed, why, metric=metric,
                          published=published, random=random["value"], random_std=random["std"])]
