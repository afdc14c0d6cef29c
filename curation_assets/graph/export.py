"""``curated_dataset``: the published subset as a training-ready dataset, loaded in one line.

Rows of ``subset.parquet``, in its order, with their content (text, image bytes, points; georeference where
the corpus has it), label and cluster at every level, streamed from the corpus one row group at a time into
bounded Parquet shards that ``datasets.load_dataset("parquet", data_dir=...)`` reads (images decode as
PIL images), plus a dataset card.
"""

import json
from datetime import datetime, timezone

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, MetadataValue, asset

from curation_assets.config import CurationConfig
from curation_assets.graph import checks, metadata
from curation_assets.graph.steps import Step
from curation_assets.store import Dataset, NotMaterializedError, Scores, Subset, fingerprint

CODE_VERSION = "dataset-2"
CARD_METRICS = ("normalized_entropy", "kl_to_uniform", "coverage", "rare_half_share", "linear_balanced_accuracy",
                "knn_balanced_accuracy")


def published_scores(step: Step, subset: Subset) -> Scores | None:
    """``benchmark_scores`` of this very subset, when it has been materialized."""
    try:
        scores = Scores.open(step.layout)
    except (NotMaterializedError, RuntimeError):
        return None
    return scores if scores.subset.fingerprint == subset.fingerprint else None


def _rows(subset: Subset, corpus_columns: list[str], content: str):
    """The published rows with their content, as Arrow tables, one corpus row group at a time."""
    pool, clusters = subset.tree.pool, subset.frame.drop("id")
    corpus_rows = pool.table["corpus_row"].to_numpy()[subset.rows]
    done = 0
    for batch in pool.corpus.batches(corpus_rows, corpus_columns):
        if content == "image":
            batch = batch.with_columns(pl.struct(pl.col("image").alias("bytes"), pl.col("id").alias("path"))
                                       .alias("image"))
        table = pl.concat([batch, clusters[done : done + len(batch)]], how="horizontal")
        expected = subset.frame["id"][done : done + len(batch)]
        if not table["id"].equals(expected):
            raise RuntimeError("the dataset rows drifted from subset.parquet; nothing was published")
        done += len(batch)
        yield table.to_arrow()


def balance_section(scores: Scores | None) -> str:
    """The published subset's balance against random subsets (mean ± std over seeds), and the checks that failed."""
    if scores is None:
        return "not measured yet (materialize benchmark_scores first)"
    frame = scores.frame
    lines = []
    for m in CARD_METRICS:
        mine, rand = (frame.filter((pl.col("method") == k) & (pl.col("metric") == m)) for k in ("published", "random"))
        if len(mine) and len(rand):
            lines.append(f"| {m} | {mine['value'][0]:.3f} | {rand['value'][0]:.3f} ± {rand['std'][0]:.3f} "
                         f"({rand['seeds'][0]} seeds) |")
    table = ("| metric | this subset | random subsets of the same size (mean ± std) |\n|---|---|---|\n" +
             "\n".join(lines)) if lines else "no labels in this pool: nothing to measure"
    failed = [c for c in checks.scores_checks(scores) if not c.passed]
    verdicts = "\n".join(f"- **check failed**: `{c.check_name}`: {c.description}" for c in failed) or \
        "- every check of benchmark_scores passed"
    return f"{table}\n\n{verdicts}"


def card(step: Step, subset: Subset, scores: Scores | None, rows: int, shards: int, run_id: str) -> str:
    """The dataset card: what the dataset is, where it came from, how it was curated, how balanced it is."""
    cfg, tree = step.cfg, subset.tree
    used = [r for r in tree.records if r.facts.get("used")]
    levels = "\n".join(f"| {t} | {lv.n_clusters} | {r.facts.get('note') or ''} |"
                       for t, (lv, r) in enumerate(zip(tree.levels, used, strict=True), start=1))
    dropped = [r.facts["note"] for r in tree.records if not r.facts.get("used") and r.facts.get("note")]
    licence = cfg.export.license
    folder = step.layout.published(step.layout.dataset_dir).name
    scores_fp = scores.record.fingerprint if scores else "not materialized"
    source = json.dumps(cfg.source.model_dump(exclude_defaults=True) or {"kind": cfg.source.kind})
    return f"""---
{f"license: {licence}" if licence else "license: other  # same as the source: fill in"}
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# Curated {step.modality} subset

{rows} rows in {shards} Parquet shard(s), drawn by hierarchical k-means with resampling and hierarchical
balanced sampling (Vo et al. 2024) from a pool of {len(tree.pool)} deduplicated items, produced by
`curation_assets` on {datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")} (Dagster run `{run_id}`).

```python
import datasets
# the path of this folder; "{folder}" from the folder that holds it
ds = datasets.load_dataset("parquet", data_dir="{folder}")["train"]
```

Columns: `id`, the content (`{tree.pool.corpus.content_column}`), `label` (when the source had one; never used
by curation), `cluster_level_1 … {tree.n_levels}` (the item's cluster at every level of the hierarchy).

## Licence
{licence or "The same as the source data's: fill in before you share this dataset."}

## Source
- modality: `{step.modality}`, source: `{cfg.source.kind}` ({source})
- embedder: `{cfg.embedder.kind}` ({cfg.embedder.model or "default model"}), metric `{cfg.metric}`
- duplicates removed before curation: {len(tree.pool.removed)}

## Curation
- sampling: {json.dumps(cfg.sampling.model_dump(exclude_none=True))}

| level | clusters | note |
|---|---|---|
{levels}
{"".join(f"{chr(10)}- {note}" for note in dropped)}

## Balance of this subset (labels joined back by id)
{balance_section(scores)}

## Lineage (data versions)
- raw_corpus `{tree.pool.corpus.fingerprint}` → embeddings `{tree.pool.embeddings.fingerprint}` → deduplicated
  `{tree.pool.fingerprint}` → levels {json.dumps([r.fingerprint for r in used])}
  → balanced_subset `{subset.fingerprint}` → benchmark_scores `{scores_fp}`
"""


def export(step: Step, subset: Subset, scores: Scores | None, run_id: str) -> tuple[dict, dict]:
    corpus = subset.tree.pool.corpus
    content = corpus.content_column
    columns = ["id", content, "label", *(["georef"] if "georef" in corpus.columns else [])]
    options = step.cfg.export
    writer = Dataset.writer(step.layout, options.shard_rows, int(options.shard_mb * 2**20))
    tars = Dataset.webdataset_writer(step.layout, options.shard_rows, int(options.shard_mb * 2**20)) \
        if "webdataset" in options.formats else None
    try:
        for table in _rows(subset, columns, content):
            writer.write(table)
            if tars is not None:
                tars.write(table)
        text = card(step, subset, scores, writer.rows, len(writer.paths), run_id)
        tar_shards = tars.publish() if tars is not None else []
        shards = writer.publish(text)
    except BaseException:
        writer.abort()
        if tars is not None:
            tars.abort()
        raise
    sizes = np.array([p.stat().st_size for p in shards])
    return {"rows": writer.rows, "shards": len(shards)}, {
        "dagster/row_count": writer.rows, **metadata.table_facts(shards[0], writer.rows), "shards": len(shards),
        "megabytes": round(float(sizes.sum()) / 2**20, 2), "formats": list(options.formats),
        "webdataset_shards": len(tar_shards) or "not written (export.formats)",
        "path": metadata.path_of(step.layout, step.layout.dataset_dir),
        "card": MetadataValue.md(text),
        "load_with": MetadataValue.md(load_snippet(step, bool(tar_shards))),
    }


def load_snippet(step: Step, webdataset: bool) -> str:
    folder = step.layout.published(step.layout.dataset_dir)
    snippet = f'import datasets\nds = datasets.load_dataset("parquet", data_dir="{folder}")["train"]'
    if webdataset:
        snippet += (f'\n\nimport glob, webdataset as wds\nshards = wds.WebDataset(sorted(glob.glob("{folder}/'
                    'webdataset/*.tar")), shardshuffle=False)')
    return f"```python\n{snippet}\n```"


def build_curated_dataset(curation: CurationConfig, partitions):
    @asset(partitions_def=partitions, group_name="curate", kinds={"parquet", "huggingface"},
           code_version=CODE_VERSION, io_manager_key="store", deps=["benchmark_scores"],
           description="The published subset as a training-ready dataset: its rows with content, label and "
                       "cluster ids, as bounded Parquet shards in the layout Hugging Face datasets reads "
                       "(datasets/{modality}/data/train-*.parquet), with a dataset card (README.md) holding the "
                       "curation settings, the balance measured by benchmark_scores and the lineage.")
    def curated_dataset(context: AssetExecutionContext, balanced_subset: Subset):
        step = Step.of(context, curation)
        scores = published_scores(step, balanced_subset)
        fp = fingerprint(CODE_VERSION, balanced_subset.fingerprint, scores.record.fingerprint if scores else None,
                         step.cfg.export.model_dump())
        return step.publish(step.layout.dataset_dir, fp,
                            lambda: export(step, balanced_subset, scores, context.run_id),
                            lambda: Dataset.open(step.layout), input_fp=balanced_subset.fingerprint)

    return curated_dataset
