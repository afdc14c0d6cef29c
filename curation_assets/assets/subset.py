"""``balanced_subset``: hierarchical balanced sampling down the fitted tree (METHOD.md)."""

import numpy as np
import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    Config,
    DataVersion,
    MaterializeResult,
    asset,
)

from curation_assets.assets._common import Timer, md, modality_context, reuse_or_compute, to_dagster
from curation_assets.assets.clustering import configured_levels, load_level
from curation_assets.assets.embeddings import pool_embeddings
from curation_assets.config import ModalityConfig, SamplingConfig
from curation_assets.core import HierarchicalClustering, hierarchical_sampling, normalized_entropy
from curation_assets.plots import markdown_table, scatter_md, share_bars_md
from curation_assets.storage import (
    Layout,
    fingerprint,
    invalidate,
    read_fingerprint,
    save_parquet,
)

CODE_VERSION = "subset-1"


class SamplingOverrides(Config):
    """Launchpad overrides of the YAML ``sampling`` block (empty = use the YAML)."""

    target_size: int | None = None
    fraction: float | None = None
    strategy: str | None = None
    seed: int | None = None


def effective_sampling(cfg: ModalityConfig, o: SamplingOverrides | None) -> SamplingConfig:
    s = cfg.sampling
    if o is None:
        return s
    update = {k: v for k, v in o.model_dump().items() if v is not None}
    if "target_size" in update:
        update["fraction"] = None
    elif "fraction" in update:
        update["target_size"] = None
    return SamplingConfig.model_validate({**s.model_dump(), **update})


def load_hierarchy(layout: Layout, n_levels: int) -> HierarchicalClustering:
    return HierarchicalClustering([load_level(layout, t) for t in range(1, n_levels + 1)])


def subset_frame(h: HierarchicalClustering, idx: np.ndarray, ids: pl.Series) -> pl.DataFrame:
    """id plus the cluster of every selected row at every level."""
    cols = {"id": ids.gather(idx)}
    for t in range(1, h.n_levels + 1):
        cols[f"cluster_level_{t}"] = pl.Series(h.labels(t)[idx], dtype=pl.Int64)
    return pl.DataFrame(cols)


def _top_balance(h: HierarchicalClustering, idx: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    top = h.labels(h.n_levels)
    k = int(top.max()) + 1
    pool = np.bincount(top, minlength=k)
    sub = np.bincount(top[idx], minlength=k)
    return normalized_entropy(pool), normalized_entropy(sub), pool, sub


def build_subset_asset(n_level_assets: int, partitions):
    """The subset asset, downstream of the top clustering level asset."""

    @asset(
        partitions_def=partitions,
        group_name="curate",
        kinds={"polars", "parquet"},
        code_version=CODE_VERSION,
        deps=[f"clustering_level_{n_level_assets}"],
        description="The curated subset: hierarchical balanced sampling over the modality's levels. "
                    "Writes curated/{modality}/subset.parquet (id + cluster at every level).",
        check_specs=[AssetCheckSpec("subset_size_and_ids", asset="balanced_subset"),
                     AssetCheckSpec("subset_more_balanced_than_pool", asset="balanced_subset")],
    )
    def balanced_subset(context: AssetExecutionContext, config: SamplingOverrides) -> MaterializeResult:
        modality, cfg, layout = modality_context(context)
        rows = pl.read_parquet(layout.embeddings_dir / "rows.parquet")
        pool_ids = rows.filter(pl.col("split") == "pool")["id"]
        n_levels = len(configured_levels(cfg, len(pool_ids)))
        sampling = effective_sampling(cfg, config)
        target = sampling.resolve_target(len(pool_ids))
        path = layout.curated_dir / "subset.parquet"
        with layout.lock():
            level_fps = [(read_fingerprint(layout.level_dir(t)) or {}).get("fingerprint")
                         for t in range(1, n_levels + 1)]
            if None in level_fps:
                raise FileNotFoundError(f"{modality}: level {level_fps.index(None) + 1} is not materialized yet")
            fp = fingerprint(CODE_VERSION, level_fps, sampling.model_dump(), target)

            def compute() -> dict:
                h = load_hierarchy(layout, n_levels)
                with Timer() as timer:
                    idx = hierarchical_sampling(h, target, strategy=sampling.strategy, multiplier=sampling.multiplier,
                                                seed=sampling.seed, alpha=sampling.alpha)
                frame = subset_frame(h, idx, pool_ids)
                invalidate(layout.curated_dir)
                save_parquet(path, frame)
                pool_h, sub_h, pool_c, sub_c = _top_balance(h, idx)
                order = np.argsort(-pool_c)
                metadata = {
                    "rows": len(frame), "pool_rows": len(pool_ids), "target_size": target, "levels": n_levels,
                    "strategy": sampling.strategy, "seed": sampling.seed, "seconds": timer.seconds,
                    "pool_top_cluster_entropy": round(pool_h, 4), "subset_top_cluster_entropy": round(sub_h, 4),
                    "path": str(path),
                    "balance": md(share_bars_md(list(range(len(order))), pool_c[order] / pool_c.sum(),
                                                sub_c[order] / sub_c.sum(), f"top-level ({n_levels}) cluster shares")),
                    "preview": md(markdown_table(frame.head(10).to_dicts())),
                }
                X_pool, _ = pool_embeddings(layout)
                if X_pool.shape[1] == 2:  # the simulated modality: show the draw itself
                    metadata["subset_scatter"] = md(scatter_md(np.asarray(X_pool), np.asarray(X_pool)[idx],
                                                               "pool (grey) and subset (blue)"))
                return metadata

            metadata = reuse_or_compute(context, layout.curated_dir, fp, compute)
            checks = _checks(layout, metadata, target, sampling.multiplier)
        return MaterializeResult(metadata=to_dagster(metadata), data_version=DataVersion(fp),
                                 check_results=checks)

    return balanced_subset


def _checks(layout: Layout, meta: dict, target: int, multiplier: int) -> list[AssetCheckResult]:
    subset = pl.read_parquet(layout.curated_dir / "subset.parquet", columns=["id"])["id"]
    corpus_ids = pl.read_parquet(layout.corpus_dir / "split.parquet", columns=["id"])["id"]
    missing = int((~subset.is_in(corpus_ids.implode())).sum())
    unique_ok = multiplier > 1 or subset.n_unique() == len(subset)
    size_ok = len(subset) == target
    return [
        AssetCheckResult(check_name="subset_size_and_ids", passed=bool(size_ok and unique_ok and missing == 0),
                         metadata={"rows": len(subset), "target": target, "unique_ids": subset.n_unique(),
                                   "ids_missing_from_corpus": missing}),
        AssetCheckResult(check_name="subset_more_balanced_than_pool",
                         passed=bool(meta["subset_top_cluster_entropy"] >= meta["pool_top_cluster_entropy"]),
                         metadata={"pool_entropy": meta["pool_top_cluster_entropy"],
                                   "subset_entropy": meta["subset_top_cluster_entropy"]}),
    ]
