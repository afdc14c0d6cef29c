"""``clustering_level_1 … clustering_level_N``: one asset per hierarchy level (METHOD.md).

Level 1 clusters the pool embeddings, level t > 1 the centroids of level t-1, each with
k-means++ seeded k-means, resampling and optional splits. A modality configured with
fewer levels than N materializes its upper level assets as pass-through (nothing is
computed, the metadata says so) and samples from its own top level.
"""

import numpy as np
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    DataVersion,
    MaterializeResult,
    asset,
)

from curation_assets.assets._common import (
    Timer,
    current_config,
    md,
    modality_context,
    reuse_or_compute,
    to_dagster,
)
from curation_assets.assets.embeddings import pool_embeddings
from curation_assets.config import LevelConfig, ModalityConfig, auto_levels, resolved_sample_size
from curation_assets.core import Level, LevelSpec, cluster_size_stats, fit_level, level_seed
from curation_assets.plots import size_histogram_md
from curation_assets.resources.execution import ExecutionResource
from curation_assets.storage import (
    Layout,
    fingerprint,
    invalidate,
    load_npy,
    read_fingerprint,
    save_npy,
)

CODE_VERSION = "clustering-1"


class LevelOverrides(Config):
    """Launchpad overrides of this level's YAML settings (empty = use the YAML)."""

    n_clusters: int | None = None
    resampling_steps: int | None = None
    sample_size: int | None = None
    seed: int | None = None


def configured_levels(cfg: ModalityConfig, pool_size: int) -> list[LevelConfig]:
    return cfg.levels if cfg.levels else auto_levels(pool_size)


def level_spec(level: LevelConfig, n_inputs: int, overrides: LevelOverrides | None = None) -> LevelSpec:
    """The core's LevelSpec for a YAML level, with the paper's default r and any launchpad overrides."""
    o = overrides or LevelOverrides()
    n_clusters = o.n_clusters or level.n_clusters
    merged = level.model_copy(update={"n_clusters": n_clusters,
                                      "resampling_steps": level.resampling_steps if o.resampling_steps is None
                                      else o.resampling_steps,
                                      "sample_size": o.sample_size or level.sample_size})
    return LevelSpec(n_clusters=n_clusters, resampling_steps=merged.resampling_steps,
                     sample_size=resolved_sample_size(merged, n_inputs),
                     resample_strategy=merged.resample_strategy, n_splits=merged.n_splits, n_iter=merged.n_iter)


def load_level(layout: Layout, t: int) -> Level:
    d = layout.level_dir(t)
    return Level(load_npy(d / "centroids.npy", mmap=False), load_npy(d / "assignment.npy", mmap=False),
                 load_npy(d / "distances.npy", mmap=False))


def _upstream(layout: Layout, t: int) -> str:
    directory = layout.dedup_dir if t == 1 else layout.level_dir(t - 1)
    record = read_fingerprint(directory)
    if record is None:
        raise FileNotFoundError(f"{directory} has not been materialized: run the level below first")
    return record["fingerprint"]


def _fit(t: int, cfg: ModalityConfig, layout: Layout, overrides: LevelOverrides, fp_up: str, task_rows: int):
    X_pool, _ = pool_embeddings(layout)
    levels = configured_levels(cfg, X_pool.shape[0])
    if t > len(levels):
        return fingerprint(CODE_VERSION, fp_up, "pass-through"), None, None
    X_t = X_pool if t == 1 else load_npy(layout.level_dir(t - 1) / "centroids.npy", mmap=False)
    spec = level_spec(levels[t - 1], X_t.shape[0], overrides)
    seed = level_seed(overrides.seed if overrides.seed is not None else cfg.seed, t)
    return (fingerprint(CODE_VERSION, fp_up, spec.__dict__, seed, cfg.metric, task_rows), (X_t, spec, seed),
            len(levels))


def _level_metadata(layout: Layout, t: int, level: Level, spec: LevelSpec, n_levels: int, seconds: float) -> dict:
    below = np.ones(len(level.assignment), dtype=np.int64) if t == 1 else \
        load_npy(layout.level_dir(t - 1) / "sizes.npy", mmap=False)
    sizes = np.bincount(level.assignment, weights=below, minlength=level.n_clusters).astype(np.int64)
    save_npy(layout.level_dir(t) / "sizes.npy", sizes)
    stats = cluster_size_stats(sizes)
    return {
        "used": True, "level": t, "levels_of_modality": n_levels, "inputs": int(len(level.assignment)),
        "n_clusters": level.n_clusters, "dim": int(level.centroids.shape[1]),
        "resampling_steps": spec.resampling_steps, "sample_size": spec.sample_size,
        "resample_strategy": spec.resample_strategy, "n_splits": spec.n_splits, "seconds": seconds,
        **{f"size_{k}": v for k, v in stats.items() if k != "n_clusters"},
        "empty_clusters": int((sizes == 0).sum()),
        "cluster_sizes": md(size_histogram_md(sizes, f"level {t}: pool points per cluster")),
    }


def build_level_asset(t: int, n_assets: int, partitions) -> AssetsDefinition:
    name = f"clustering_level_{t}"

    @asset(
        name=name,
        partitions_def=partitions,
        group_name="cluster",
        kinds={"faiss", "numpy"},
        code_version=CODE_VERSION,
        deps=["deduplicated" if t == 1 else f"clustering_level_{t - 1}"],
        description=f"Level {t} of {n_assets} of the hierarchical k-means with resampling: clusters "
                    + ("the deduplicated pool embeddings" if t == 1 else f"the centroids of level {t - 1}")
                    + ". Writes centroids.npy, assignment.npy (input row → cluster), distances.npy, sizes.npy.",
        check_specs=[AssetCheckSpec(f"no_empty_cluster_level_{t}", asset=name)],
    )
    def clustering_level(context: AssetExecutionContext, config: LevelOverrides,
                         execution: ExecutionResource) -> MaterializeResult:
        modality, cfg, layout = modality_context(context)
        directory = layout.level_dir(t)
        exe = current_config().execution
        with layout.lock():
            fp, work, n_levels = _fit(t, cfg, layout, config, _upstream(layout, t), exe.assign_task_rows)

            def compute() -> dict:
                if work is None:
                    return {"used": False, "level": t, "note": f"{modality} uses fewer levels: pass-through"}
                X_t, spec, seed = work
                backend = execution.get(exe)
                with Timer() as timer:
                    level = fit_level(X_t, spec, seed=seed, metric=cfg.metric, assigner=backend.assign)
                invalidate(directory)
                for fname, arr in (("centroids", level.centroids), ("assignment", level.assignment),
                                   ("distances", level.distances)):
                    save_npy(directory / f"{fname}.npy", arr)
                return {**_level_metadata(layout, t, level, spec, n_levels, timer.seconds),
                        **backend.run_summary()}

            meta = reuse_or_compute(context, directory, fp, compute)
        check = AssetCheckResult(check_name=f"no_empty_cluster_level_{t}",
                                 passed=(not meta["used"]) or meta["empty_clusters"] == 0,
                                 metadata={"empty_clusters": meta.get("empty_clusters", 0)})
        return MaterializeResult(metadata=to_dagster(meta), data_version=DataVersion(fp), check_results=[check])

    return clustering_level


def build_level_assets(n_levels: int, partitions) -> list[AssetsDefinition]:
    return [build_level_asset(t, n_levels, partitions) for t in range(1, n_levels + 1)]
