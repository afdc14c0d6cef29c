"""``clustering_level_1 … clustering_level_N``: one asset per hierarchy level (hierarchical k-means with
resampling, Vo et al. 2024). Level 1 clusters the pool, level t > 1 the centroids of level t-1; each level's
output is the tree fitted up to it, on exactly the pool's rows.

A modality configured with fewer levels than N, or whose pool is too small for a level (``plan_level``),
materializes the upper level assets as pass-through (nothing computed, the metadata says why).
"""


from dataclasses import asdict

import numpy as np
from dagster import AssetExecutionContext, AssetIn, AssetsDefinition, MetadataValue, asset

from curation_assets.config import CurationConfig
from curation_assets.core import LevelSpec, cluster_size_stats, fit_level, level_seed, plan_level
from curation_assets.core.linalg import unit_rows
from curation_assets.graph import checks, metadata
from curation_assets.graph.resources import ExecutionResource
from curation_assets.graph.steps import ProgressLog, Step, apply_overrides, overrides_of
from curation_assets.plots import size_histogram_md
from curation_assets.store import Pool, Tree, fingerprint

CODE_VERSION = "clustering-2"
GALLERY_CLUSTERS = 3  # the largest and the smallest clusters of a level shown in its gallery
GALLERY_MEMBERS = 8  # members shown per cluster, closest to its centroid first
LevelOverrides = overrides_of(LevelSpec, "LevelOverrides", {"seed": int})


def planned_spec(step: Step, t: int, below: Tree, overrides) -> tuple[LevelSpec | None, str | None]:
    """Level t's concrete spec for its actual input (YAML + launchpad overrides), or None and why not."""
    if t > len(step.cfg.levels):
        return None, f"{step.modality} is configured with {len(step.cfg.levels)} levels: pass-through"
    if below.n_levels < t - 1:
        return None, f"the hierarchy of {step.modality} stops below level {t}: pass-through"
    configured = apply_overrides(step.cfg.levels[t - 1], overrides, skip=("seed",))
    return plan_level(configured, t, len(below.next_input()))


def closest_members(X, labels: np.ndarray, centroids: np.ndarray, clusters: np.ndarray, per_cluster: int,
                    cosine: bool) -> list[np.ndarray]:
    """For each cluster, the pool rows under it closest to its centroid (at most ``per_cluster``)."""
    out = []
    for c in clusters:
        members = np.flatnonzero(labels == c)
        vectors = np.asarray(X[members], dtype=np.float32)
        if cosine:
            vectors = unit_rows(vectors, inplace=True)
        order = np.argsort(((vectors - centroids[c]) ** 2).sum(axis=1), kind="stable")
        out.append(members[order[:per_cluster]])
    return out


def cluster_gallery(step: Step, t: int, pool_labels: np.ndarray, tree: Tree, level, sizes: np.ndarray):
    """The largest and the smallest clusters of level t, each shown by its members closest to the centroid."""
    order = np.argsort(-sizes, kind="stable")
    shown = np.unique(np.concatenate([order[:GALLERY_CLUSTERS], order[-GALLERY_CLUSTERS:]]))
    shown = shown[np.argsort(-sizes[shown], kind="stable")]
    corpus = tree.pool.corpus
    members = closest_members(tree.pool.X, pool_labels, level.centroids, shown, GALLERY_MEMBERS,
                              step.cfg.metric == "cosine")
    corpus_rows = tree.pool.table["corpus_row"].to_numpy()
    content = corpus.take(corpus_rows[np.concatenate(members)], [corpus.content_column])[corpus.content_column]
    items, start = [], 0
    for c, rows in zip(shown, members, strict=True):
        items.append((int(c), int(sizes[c]), content[start : start + len(rows)].to_list()))
        start += len(rows)
    return metadata.gallery(f"level {t}: the {GALLERY_CLUSTERS} largest and smallest clusters, members closest "
                            "to the centroid", items)


def fit(step: Step, t: int, below: Tree, spec: LevelSpec, base_seed: int, execution: ExecutionResource, device: str):
    """Fit level t on the tree below (heavy passes on ``device``) and publish its files; returns its metadata."""
    backend = execution.get(step.config.execution)
    progress = ProgressLog(step, f"level {t}", total=1, every_s=3.0)
    seed = level_seed(base_seed, t)
    level = fit_level(below.next_input(), spec, seed=seed, metric=step.cfg.metric, assigner=backend.assign,
                      splitter=backend.split, lloyd_tasks=backend.lloyd_tasks, seeding_tasks=backend.seeding_tasks,
                      log=progress.line, device=device)
    inputs = np.ones(len(level.assignment), dtype=np.int64) if t == 1 else below.cluster_sizes(t - 1)
    sizes = np.bincount(level.assignment, weights=inputs, minlength=level.n_clusters).astype(np.int64)
    Tree.write_level(step.layout, t, level, sizes)
    pool_labels = level.assignment if t == 1 else level.assignment[below.hierarchy.labels(t - 1)]
    stats = cluster_size_stats(sizes)
    return {
        "level": t, "inputs": len(level.assignment), "n_clusters": level.n_clusters,
        "dim": int(level.centroids.shape[1]), "spec": asdict(spec), "seed": seed,
        "seed_derivation": f"level_seed({base_seed}, {t}): the run's seed {base_seed} (the YAML's, or the launchpad's) "
                           "and the level number through numpy's SeedSequence([seed, t]): each level its own stream",
        **{f"size_{k}": v for k, v in stats.items() if k != "n_clusters"},
        "empty_clusters": int((sizes == 0).sum()),
        "cluster_sizes": MetadataValue.md(size_histogram_md(sizes, f"level {t}: pool points per cluster")),
        "gallery": cluster_gallery(step, t, pool_labels, below, level, sizes),
        **backend.run_summary(),
    }


def build_level_asset(t: int, n_assets: int, curation: CurationConfig, partitions) -> AssetsDefinition:
    name = f"clustering_level_{t}"
    upstream = "deduplicated" if t == 1 else f"clustering_level_{t - 1}"

    @asset(name=name, partitions_def=partitions, group_name="cluster", kinds={"faiss", "numpy"},
           code_version=CODE_VERSION, io_manager_key="store", ins={"below": AssetIn(upstream)},
           description=f"Level {t} of {n_assets} of the hierarchical k-means with resampling: clusters "
                       + ("the pool" if t == 1 else f"the centroids of level {t - 1}")
                       + ". Writes centroids.npy, assignment.npy (input row → cluster), distances.npy, sizes.npy "
                         "(pool points per cluster).",
           check_specs=[checks.check_spec(f"no_empty_cluster_level_{t}", name, partitions,
                                         f"every cluster of level {t} holds pool points")])
    def clustering_level(context: AssetExecutionContext, config: LevelOverrides, below,
                         execution: ExecutionResource):
        step = Step.of(context, curation)
        tree = Tree.of_pool(below) if isinstance(below, Pool) else below
        spec, note = planned_spec(step, t, tree, config)
        base_seed = config.seed if config.seed is not None else step.cfg.seed
        seed = level_seed(base_seed, t)
        settings = ["pass-through", note] if spec is None else [asdict(spec), seed, step.cfg.metric,
                                                               step.config.execution.assign_task_rows,
                                                               step.config.execution.lloyd_task_rows,
                                                               step.config.execution.seeding_task_rows]
        device = execution.compute_device(step.config.execution)  # a GPU rounds differently: its own fingerprint
        fp = fingerprint(CODE_VERSION, tree.fingerprint, settings + ([device] if device != "cpu" else []))

        def compute() -> tuple[dict, dict]:
            if spec is None:
                Tree.write_level(step.layout, t, None)
                return {"used": False, "note": None if t > len(step.cfg.levels) else note}, \
                    {"used": False, "level": t, "note": note}
            meta = fit(step, t, tree, spec, base_seed, execution, device)
            return {"used": True, "note": note}, {"used": True, **meta, "note": note or "none"}

        return step.publish(step.layout.level_dir(t), fp, compute,
                            lambda: Tree.open(step.layout, t, pool=tree.pool), checks.level_checks(t),
                            input_fp=tree.fingerprint)

    return clustering_level


def build_level_assets(curation: CurationConfig, partitions) -> list[AssetsDefinition]:
    n = curation.max_levels
    return [build_level_asset(t, n, curation, partitions) for t in range(1, n + 1)]
