"""``balanced_subset``: hierarchical balanced sampling down the fitted tree (Vo et al. 2024).

The subset is drawn from the tree's own pool rows and published as their ids, so the file a user
downloads is exactly what the sampler chose.
"""


from pathlib import Path

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, AssetIn, MetadataValue, asset

from curation_assets.config import CurationConfig, SamplingConfig
from curation_assets.core import hierarchical_sampling
from curation_assets.graph import checks, metadata
from curation_assets.graph.steps import Step, apply_overrides, overrides_of
from curation_assets.plots import map_md, share_bars_md
from curation_assets.store import Subset, Tree, fingerprint

CODE_VERSION = "subset-3"
MAP_POINTS = 4000
SamplingOverrides = overrides_of(SamplingConfig, "SamplingOverrides")


def changes_since(previous: Path, frame: pl.DataFrame, tree: Tree) -> dict | str:
    """What changed since the previously published subset: the pool's rows added / removed, and the share of the
    previous subset's ids that are still in the pool and in the new subset."""
    before = Subset.published_ids(previous)
    if before is None:
        return "first subset"
    return {"pool": tree.pool.record.facts.get("changes", "unknown"), "previous_subset_rows": len(before),
            "previous_subset_still_in_pool": round(float(before.is_in(tree.ids.implode()).mean()), 4),
            "previous_subset_kept": round(float(before.is_in(frame["id"].implode()).mean()), 4)}


def draw(step: Step, tree: Tree, sampling: SamplingConfig, target: int, previous: Path) -> tuple[dict, dict]:
    """Sample, publish ``subset.parquet``, and describe it: balance of the top level, a map, a preview, and what
    changed since ``previous`` (the subset published before)."""
    rows = hierarchical_sampling(tree.hierarchy, target, strategy=sampling.strategy,
                                 multiplier=sampling.multiplier, seed=sampling.seed, alpha=sampling.alpha)
    frame = Subset.write(step.layout, tree, rows)
    top = tree.n_levels
    pool_sizes = tree.cluster_sizes(top)
    subset_sizes = np.bincount(tree.hierarchy.labels(top)[rows], minlength=len(pool_sizes))
    order = np.argsort(-pool_sizes, kind="stable")
    path = Subset.path_of(step.layout)
    notes = [r.facts.get("note") for r in tree.records if r.facts.get("note")]
    return {"target": target, "multiplier": sampling.multiplier, "tree_level": step.config.max_levels,
            "sampling": sampling.model_dump()}, {
        **metadata.table_facts(path, len(frame)), "pool_rows": len(tree.pool), "target_size": target,
        "levels": top, "strategy": sampling.strategy, "alpha": sampling.alpha, "seed": sampling.seed,
        "level_notes": notes or "none", "since_previous_subset": changes_since(previous, frame, tree),
        "path": metadata.path_of(step.layout, path),
        "balance": MetadataValue.md(share_bars_md(order.tolist(), pool_sizes[order] / pool_sizes.sum(),
                                                  subset_sizes[order] / subset_sizes.sum(),
                                                  f"top level ({top}): share of each cluster, pool vs subset")),
        "map": MetadataValue.md(map_md(tree.pool.X, rows, MAP_POINTS, seed=sampling.seed,
                                       title=f"{step.modality}: pool (grey) and published subset (blue)")),
        "preview": metadata.preview(frame),
    }


def build_balanced_subset(curation: CurationConfig, partitions):
    """The subset asset, downstream of the top clustering level (the whole tree)."""
    top = f"clustering_level_{curation.max_levels}"

    @asset(partitions_def=partitions, group_name="curate", kinds={"polars", "parquet"}, code_version=CODE_VERSION,
           io_manager_key="store", ins={"hierarchy": AssetIn(top)},
           description="The curated subset: hierarchical balanced sampling over the modality's levels, drawn "
                       "from the tree's own pool rows. Writes curated/{modality}/subset.parquet (id + cluster "
                       "at every level).",
           check_specs=[checks.check_spec("subset_size_and_ids", "balanced_subset", partitions,
                                          "the targeted size, pool ids only, no removed duplicate"),
                        checks.check_spec("published_is_the_sampler_draw", "balanced_subset", partitions,
                                          "the sampler run again on the stored tree draws exactly these rows"),
                        checks.check_spec("subset_more_balanced_than_pool", "balanced_subset", partitions,
                                          "top-level cluster entropy of the subset >= the pool's")])
    def balanced_subset(context: AssetExecutionContext, config: SamplingOverrides, hierarchy: Tree):
        step = Step.of(context, curation)
        sampling = apply_overrides(step.cfg.sampling, config)
        target = sampling.resolve_target(len(hierarchy.pool))
        fp = fingerprint(CODE_VERSION, hierarchy.fingerprint, sampling.model_dump(), target)
        previous = Subset.path_of(step.layout)  # the published file (compute writes to a staging directory)
        return step.publish(step.layout.subset_dir, fp, lambda: draw(step, hierarchy, sampling, target, previous),
                            lambda: Subset.open(step.layout), checks.subset_checks, input_fp=hierarchy.fingerprint)

    return balanced_subset
