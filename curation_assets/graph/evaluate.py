"""``benchmark_scores``: is the published subset more balanced than random, and does it train better features?

Scores the rows of the published ``subset.parquet`` (method ``published``) against baselines of the same
size drawn from the same pool, over the configured seeds (see :mod:`curation_assets.evaluation`).
"""


import polars as pl
from dagster import AssetCheckSpec, AssetExecutionContext, AssetIn, MetadataValue, asset

from curation_assets.config import CurationConfig
from curation_assets.evaluation import Curation, Task, benchmark, simulated_kl_rows
from curation_assets.graph import checks
from curation_assets.graph.steps import Step
from curation_assets.plots import method_bars_md, scores_markdown
from curation_assets.store import Scores, Subset, fingerprint

CODE_VERSION = "benchmarks-2"
PLOT_METRICS = ("normalized_entropy", "rare_half_share", "linear_balanced_accuracy", "knn_balanced_accuracy",
                "representation_knn_balanced_accuracy")


def score(step: Step, subset: Subset) -> tuple[dict, dict]:
    """Score the published subset and the baselines; publish ``scores.parquet``."""
    cfg, pool = step.cfg, subset.tree.pool
    bench = cfg.benchmark
    task = Task.of(pool.X, pool.labels(), bench.test_per_class, bench.test_max_share, cfg.seed)
    curation = Curation(cfg.levels, cfg.metric, cfg.sampling.strategy, cfg.sampling.alpha, cfg.sampling.multiplier)
    rows = benchmark(task, subset.rows, subset.tree.hierarchy, curation, seeds=tuple(bench.seeds))
    if cfg.source.kind == "simulated" and bench.paper_2d_table:
        rows += simulated_kl_rows(task.X, seeds=tuple(bench.seeds))
    frame = pl.DataFrame(rows, infer_schema_length=None)
    Scores.write(step.layout, frame)
    plotted = [m for m in PLOT_METRICS if m in set(frame["metric"])] or \
        sorted(m for m in set(frame["metric"]) if m.startswith("cluster_entropy"))
    return {"rows": len(frame)}, {
        "dagster/row_count": len(frame), "subset_rows": len(subset), "pool_rows": len(pool),
        "evaluation_rows": int(task.test.sum()), "seeds": list(bench.seeds),
        "path": MetadataValue.path(str(Scores.path_of(step.layout))),
        "scores": MetadataValue.md(scores_markdown(rows)),
        "chart": MetadataValue.md(method_bars_md(rows, plotted, f"{step.modality}: published subset vs baselines "
                                                 "(mean ± std over seeds)")),
    }


def build_benchmark_scores(curation: CurationConfig, partitions):
    @asset(partitions_def=partitions, group_name="evaluate", kinds={"scikitlearn", "parquet"},
           code_version=CODE_VERSION, io_manager_key="store", ins={"subset": AssetIn("balanced_subset")},
           description="The published subset vs random / 1-level k-means / hierarchical without resampling / the "
                       "configured method recomputed in memory / the full pool, same size, over the configured "
                       "seeds: label balance, linear probe and kNN on a small evaluation split, a representation "
                       "learned on the selection, embedding-space coverage. Writes benchmarks/{modality}/"
                       "scores.parquet (method, metric, value, std, spread, seeds).",
           check_specs=[AssetCheckSpec("published_not_less_balanced_than_random", asset="benchmark_scores"),
                        AssetCheckSpec("published_matches_recomputed_method", asset="benchmark_scores")])
    def benchmark_scores(context: AssetExecutionContext, subset: Subset):
        step = Step.of(context, curation)
        cfg = step.cfg
        fp = fingerprint(CODE_VERSION, subset.fingerprint, cfg.benchmark.model_dump(),
                         [repr(s) for s in cfg.levels], cfg.metric, cfg.sampling.model_dump(), cfg.seed)
        return step.publish(step.layout.scores_dir, fp, lambda: score(step, subset), lambda: Scores.open(step.layout),
                            checks.scores_checks, input_fp=subset.fingerprint)

    return benchmark_scores
