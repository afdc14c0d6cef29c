"""``benchmark_scores``: is the published subset more balanced than random, and does it train better features?

Scores the rows of the published ``subset.parquet`` (method ``published``) against baselines of the same
size drawn from the same pool, over the configured seeds (see :mod:`curation_assets.evaluation`).
"""


import polars as pl
from dagster import AssetExecutionContext, AssetIn, MetadataValue, asset

from curation_assets.config import CurationConfig
from curation_assets.evaluation import PUBLISHED, Curation, Task, benchmark, simulated_kl_rows, study_methods
from curation_assets.graph import checks, metadata
from curation_assets.graph.steps import Step
from curation_assets.plots import method_bars_md, scores_markdown
from curation_assets.store import Scores, Subset, fingerprint

CODE_VERSION = "benchmarks-3"
PLOT_METRICS = ("normalized_entropy", "rare_half_share", "linear_balanced_accuracy", "knn_balanced_accuracy",
                "representation_knn_balanced_accuracy")


def score(step: Step, subset: Subset) -> tuple[dict, dict]:
    """Score the published subset and the baselines; publish ``scores.parquet``."""
    cfg, pool = step.cfg, subset.tree.pool
    bench, sampling = cfg.benchmark, cfg.sampling
    task = Task.of(pool.X, pool.labels(), bench.test_per_class, bench.test_max_share, cfg.seed)
    curation = Curation(cfg.levels, cfg.metric, sampling.strategy, sampling.alpha, sampling.multiplier, sampling.seed)
    methods = study_methods(bench.study)
    step.log(f"{bench.study} study: published vs {', '.join(methods)} over seeds {bench.seeds}")
    rows, errors = benchmark(task, subset.rows, subset.tree.hierarchy, curation, seeds=tuple(bench.seeds),
                             methods=methods, log=step.log)
    if cfg.source.kind == "simulated" and bench.paper_2d_table:
        tree = subset.tree
        rows += simulated_kl_rows(task.X, seeds=tuple(bench.seeds), published=tree.levels[-1].centroids,
                                  refits=bench.study == "full")
    frame = pl.DataFrame(rows, infer_schema_length=None)
    Scores.write(step.layout, frame)
    plotted = [m for m in PLOT_METRICS if m in set(frame["metric"])] or \
        sorted(m for m in set(frame["metric"]) if m.startswith("cluster_entropy"))
    return {"rows": len(frame), "errors": errors}, {
        "dagster/row_count": len(frame), "subset_rows": len(subset), "pool_rows": len(pool), "study": bench.study,
        "methods": [PUBLISHED, *methods], "evaluation_rows": int(task.test.sum()), "seeds": list(bench.seeds),
        "failed_methods": errors or "none",
        "path": metadata.path_of(step.layout, Scores.path_of(step.layout)),
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
           check_specs=[checks.check_spec("published_not_less_balanced_than_random", "benchmark_scores", partitions,
                                          "label entropy (or top-level cluster entropy) of the published subset "
                                          ">= the mean of random subsets of its size"),
                        checks.check_spec("benchmark_complete", "benchmark_scores", partitions,
                                          "every baseline method was scored")])
    def benchmark_scores(context: AssetExecutionContext, subset: Subset):
        step = Step.of(context, curation)
        cfg = step.cfg
        fp = fingerprint(CODE_VERSION, subset.fingerprint, cfg.benchmark.model_dump(),
                         [repr(s) for s in cfg.levels], cfg.metric, cfg.sampling.model_dump(), cfg.seed)
        return step.publish(step.layout.scores_dir, fp, lambda: score(step, subset), lambda: Scores.open(step.layout),
                            checks.scores_checks, input_fp=subset.fingerprint)

    return benchmark_scores
