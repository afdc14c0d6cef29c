"""``deduplicated``: exact and near-duplicate removal, and the one pool table every later step reads.

Duplicates inflate exactly the dense concepts curation tries to shrink. Exact copies (same text after
normalisation, same image bytes) go first by hash; then pairs with cosine ≥ threshold, found with faiss
(exact search for small pools, k-means-blocked search for large ones), are merged into groups that keep
one deterministic representative (the smallest id). Every kept row, labelled or not, is in the pool.
"""


import numpy as np
import polars as pl
from dagster import AssetExecutionContext, MetadataValue, asset

from curation_assets.config import CurationConfig
from curation_assets.core.dedup import deduplicate
from curation_assets.embedders import EMBEDDERS
from curation_assets.graph import metadata
from curation_assets.graph.steps import ProgressLog, Step
from curation_assets.store import Embeddings, Pool, fingerprint

CODE_VERSION = "dedup-2"
EXAMPLES = 6
REMOVED_SCHEMA = {"id": pl.Utf8, "duplicate_of": pl.Utf8, "rule": pl.Utf8, "similarity": pl.Float32}


def threshold_of(step: Step) -> float:
    return step.cfg.dedup.threshold or EMBEDDERS[step.cfg.embedder.kind].dedup_threshold


def find_duplicates(step: Step, emb: Embeddings) -> tuple[pl.DataFrame, pl.DataFrame, list | None]:
    """(pool table of the kept rows, removed rows with the kept id each duplicates, content keys or None)."""
    rows = emb.rows.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("embedding_row"))
    ids = rows["id"]
    dd = step.cfg.dedup
    if not dd.enabled:
        return rows, pl.DataFrame(schema=REMOVED_SCHEMA), None
    corpus, keys = emb.corpus, None
    if dd.exact and corpus.content_column in ("text", "image"):
        keys = corpus.column(corpus.content_column, rows["corpus_row"].to_numpy()).to_list()
    progress = ProgressLog(step, "near-duplicate search, buckets", 1)
    result = deduplicate(np.asarray(emb.X), ids.to_list(), threshold_of(step), content_keys=keys,
                         seed=step.cfg.seed, progress=progress.of_total)
    kept = rows[result.keep]
    removed = pl.DataFrame({"id": ids.gather(result.removed), "duplicate_of": ids.gather(result.duplicate_of),
                            "rule": result.rule.tolist(), "similarity": result.similarity}, schema=REMOVED_SCHEMA)
    return kept, removed, keys


def build_deduplicated(curation: CurationConfig, partitions):
    """The deduplicated asset: the pool, partitioned by modality."""

    @asset(partitions_def=partitions, group_name="embed", kinds={"faiss", "parquet"}, code_version=CODE_VERSION,
           io_manager_key="store",
           description="The pool: every embedded row that is not a duplicate. Exact content hashes, then "
                       "cosine ≥ threshold (faiss; blocked by k-means buckets for large pools), one "
                       "representative per group (smallest id). Writes pool.parquet (id, embedding_row, "
                       "corpus_row: the one row index of every later step) and removed.parquet (removed id → "
                       "kept id, rule, similarity).")
    def deduplicated(context: AssetExecutionContext, embeddings: Embeddings):
        step = Step.of(context, curation)
        fp = fingerprint(CODE_VERSION, embeddings.fingerprint, step.cfg.dedup.model_dump(), threshold_of(step),
                         step.cfg.seed)

        def compute() -> tuple[dict, dict]:
            kept, removed, keys = find_duplicates(step, embeddings)
            Pool.write(step.layout, kept, removed)
            by_rule = dict(removed["rule"].value_counts().iter_rows()) if len(removed) else {}
            path = step.layout.pool_dir / "pool.parquet"
            return {"rows": len(kept)}, {
                "enabled": step.cfg.dedup.enabled, "threshold": threshold_of(step),
                "embedded_rows": len(embeddings.rows), "removed_rows": len(removed), "removed_by_rule": by_rule,
                **metadata.table_facts(path, len(kept)), "path": MetadataValue.path(str(path)),
                "examples": metadata.duplicate_examples(removed.head(EXAMPLES), embeddings.rows, keys),
            }

        return step.publish(step.layout.pool_dir, fp, compute, lambda: Pool.open(step.layout),
                            input_fp=embeddings.fingerprint)

    return deduplicated
