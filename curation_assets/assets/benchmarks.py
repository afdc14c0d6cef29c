"""``benchmark_scores``: is the curated subset more balanced, and does it train better features?"""

import numpy as np
import polars as pl
from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, DataVersion, MaterializeResult, asset

from curation_assets.assets._common import Timer, md, modality_context, reuse_or_compute, to_dagster
from curation_assets.assets.clustering import configured_levels, level_spec
from curation_assets.assets.embeddings import open_embeddings, pool_embeddings
from curation_assets.assets.subset import load_hierarchy
from curation_assets.config import ModalityConfig
from curation_assets.evaluation import Task, benchmark, simulated_kl_rows
from curation_assets.plots import markdown_table, method_bars_md
from curation_assets.storage import (
    Layout,
    fingerprint,
    invalidate,
    read_fingerprint,
    save_parquet,
)

CODE_VERSION = "benchmarks-1"
PLOT_METRICS = ("normalized_entropy", "rare_half_share", "linear_balanced_accuracy", "knn_balanced_accuracy",
                "representation_knn_balanced_accuracy")


def build_task(layout: Layout) -> Task:
    X_pool, pool_rows = pool_embeddings(layout)
    rows = pl.read_parquet(layout.embeddings_dir / "rows.parquet")
    labelled = rows["label"].null_count() == 0
    test = np.flatnonzero((rows["split"] == "test").to_numpy())
    X_all = open_embeddings(layout)
    return Task(
        X_pool=np.ascontiguousarray(X_pool, dtype=np.float32),
        y_pool=pool_rows["label"].to_numpy() if labelled else None,
        X_test=np.ascontiguousarray(X_all[test], dtype=np.float32) if labelled and len(test) else None,
        y_test=rows["label"].to_numpy()[test] if labelled and len(test) else None,
    )


def resolved_specs(cfg: ModalityConfig, n_pool: int) -> list:
    specs, n_inputs = [], n_pool
    for level in configured_levels(cfg, n_pool):
        specs.append(level_spec(level, n_inputs))
        n_inputs = level.n_clusters * level.n_splits
    return specs


def _pivot(rows: list[dict], metrics) -> dict[str, dict[str, tuple[float, float]]]:
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for r in rows:
        if r["metric"] in metrics:
            table.setdefault(r["method"], {})[r["metric"]] = (r["value"], r["std"])
    return table


def markdown_scores(rows: list[dict]) -> str:
    """method × metric table, value ± std."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    cell = {(r["method"], r["metric"]): f"{r['value']:.3f} ± {r['std']:.3f}" for r in rows}
    return markdown_table([{"metric": m, **{meth: cell.get((meth, m), "") for meth in methods}} for m in metrics],
                          max_rows=len(metrics), max_chars=40)


def balance_check(rows: list[dict]) -> AssetCheckResult:
    """Fails when hierarchical_resampled is less balanced than random (label entropy, else cluster entropy)."""
    values = {(r["method"], r["metric"]): r["value"] for r in rows}
    metric = "normalized_entropy" if ("random", "normalized_entropy") in values else max(
        (m for (_, m) in values if m.startswith("cluster_entropy_level_")), default=None)
    if metric is None:
        return AssetCheckResult(check_name="curated_not_less_balanced_than_random", passed=True,
                                metadata={"note": "no balance metric for this modality"})
    cur, rnd = values[("hierarchical_resampled", metric)], values[("random", metric)]
    return AssetCheckResult(check_name="curated_not_less_balanced_than_random", passed=bool(cur >= rnd),
                            metadata={"metric": metric, "hierarchical_resampled": cur, "random": rnd})


def build_benchmark_asset(partitions):
    @asset(
        partitions_def=partitions,
        group_name="evaluate",
        kinds={"scikitlearn", "parquet"},
        code_version=CODE_VERSION,
        deps=["balanced_subset"],
        description="Curated vs random / 1-level k-means / hierarchical without resampling / full pool, "
                    "same subset size, averaged over the configured seeds: label balance, linear probe and kNN "
                    "on the held-out test split, a representation learned on the subset, embedding-space coverage. "
                    "Writes benchmarks/{modality}.parquet (method, metric, value, std).",
        check_specs=[AssetCheckSpec("curated_not_less_balanced_than_random", asset="benchmark_scores")],
    )
    def benchmark_scores(context: AssetExecutionContext) -> MaterializeResult:
        modality, cfg, layout = modality_context(context)
        subset_fp = (read_fingerprint(layout.curated_dir) or {}).get("fingerprint")
        if subset_fp is None:
            raise FileNotFoundError(f"{modality}: balanced_subset is not materialized yet")
        seeds = tuple(cfg.benchmark.seeds)
        fp = fingerprint(CODE_VERSION, subset_fp, cfg.benchmark.model_dump())
        directory = layout.benchmark_file.parent / f".{modality}"
        with layout.lock():

            def compute() -> dict:
                task = build_task(layout)
                specs = resolved_specs(cfg, len(task.X_pool))
                target = cfg.sampling.resolve_target(len(task.X_pool))
                with Timer() as timer:
                    rows = benchmark(task, specs, target, seeds=seeds, metric=cfg.metric,
                                     strategy=cfg.sampling.strategy, tree=load_hierarchy(layout, len(specs)),
                                     alpha=cfg.sampling.alpha)
                    if cfg.source.kind == "simulated" and cfg.benchmark.paper_2d_table:
                        rows += simulated_kl_rows(task.X_pool, seeds=seeds)
                frame = pl.DataFrame(rows, infer_schema_length=None)
                invalidate(directory)
                save_parquet(layout.benchmark_file, frame)
                plot_metrics = [m for m in PLOT_METRICS if any(r["metric"] == m for r in rows)] or \
                    sorted({r["metric"] for r in rows if r["metric"].startswith("cluster_entropy")})
                metadata = {"rows": len(frame), "target_size": target, "seeds": list(seeds),
                            "seconds": timer.seconds, "path": str(layout.benchmark_file),
                            "scores": md(markdown_scores(rows)),
                            "chart": md(method_bars_md(_pivot(rows, plot_metrics), f"{modality}: curated vs "
                                                       "baselines (mean ± std over seeds)"))}
                return {**metadata, "check_rows": rows}

            metadata = reuse_or_compute(context, directory, fp, compute)
        check = balance_check(metadata.pop("check_rows"))
        return MaterializeResult(metadata=to_dagster(metadata), data_version=DataVersion(fp), check_results=[check])

    return benchmark_scores
