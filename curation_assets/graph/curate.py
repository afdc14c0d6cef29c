"""``balanced_subset``: hierarchical balanced sampling down the fitted tree (Vo et al. 2024).

The subset is drawn from the tree's own pool rows and published as their ids, so the file a user
downloads is exactly what the sampler chose.
"""


import numpy as np
from dagster import AssetCheckSpec, AssetExecutionContext, AssetIn, MetadataValue, asset

from curation_assets.config import CurationConfig, SamplingConfig
from curation_assets.core import hierarchical_sampling
from curation_assets.graph import checks, metadata
from curation_assets.graph.steps import Step, apply_overrides, overrides_of
from curation_assets.plots import map_md, share_bars_md
from curation_assets.store import Subset, Tree, fingerprint

CODE_VERSION = "subset-2"
MAP_POINTS = 4000
SamplingOverrides = overrides_of(SamplingConfig, "SamplingOverrides")


def draw(step: Step, tree: Tree, sampling: SamplingConfig, target: int) -> tuple[dict, dict]:
    """Sample, publish ``subset.parquet``, and describe it: balance of the top level, a map, a preview."""
    rows = hierarchical_sampling(tree.hierarchy, target, strategy=sampling.strategy,
                                 multiplier=sampling.multiplier, seed=sampling.seed, alpha=sampling.alpha)
    frame = Subset.write(step.layout, tree, rows)
    top = tree.n_levels
    pool_sizes = tree.cluster_sizes(top)
    subset_sizes = np.bincount(tree.hierarchy.labels(top)[rows], minlength=len(pool_sizes))
    order = np.argsort(-pool_sizes, kind="stable")
    path = Subset.path_of(step.layout)
    notes = [r.facts.get("note") for r in tree.records if r.facts.get("note")]
    return {"target": target, "multiplier": sampling.multiplier, "tree_level": step.config.max_levels}, {
        **metadata.table_facts(path, len(frame)), "pool_rows": len(tree.pool), "target_size": target,
        "levels": top, "strategy": sampling.strategy, "alpha": sampling.alpha, "seed": sampling.seed,
        "level_notes": notes or "none", "path": MetadataValue.path(str(path)),
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
           check_specs=[AssetCheckSpec("subset_size_and_ids", asset="balanced_subset"),
                        AssetCheckSpec("subset_more_balanced_than_pool", asset="balanced_subset")])
    def balanced_subset(context: AssetExecutionContext, config: SamplingOverrides, hierarchy: Tree):
        step = Step.of(context, curation)
        sampling = apply_overrides(step.cfg.sampling, config)
        target = sampling.resolve_target(len(hierarchy.pool))
        fp = fingerprint(CODE_VERSION, hierarchy.fingerprint, sampling.model_dump(), target)
        return step.publish(step.layout.subset_dir, fp, lambda: draw(step, hierarchy, sampling, target),
                            lambda: Subset.open(step.layout), checks.subset_checks, input_fp=hierarchy.fingerprint)

    return balanced_subset
