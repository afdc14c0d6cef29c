"""``deduplicated``: exact and near-duplicate removal, and the one pool table every later step reads.

Duplicates inflate exactly the dense concepts curation tries to shrink. Exact copies (same text after
normalisation, same image bytes) go first by hash; then pairs with cosine ≥ threshold, found with faiss
(exact search for small pools, k-means-blocked search for large ones) decide, greedily in id order, which
rows stay: a row goes only as a copy of a kept row with a smaller id that it is itself similar to. Every kept
row, labelled or not, is in the pool. When the pool grows, the pairs found last time are reused (by content
key) and only the new rows are searched, against all rows: the same result as a search from scratch.
"""


import time

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, asset

from curation_assets.config import CurationConfig
from curation_assets.core.dedup import EXACT_SEARCH_MAX_ROWS, KnownPairs, deduplicate
from curation_assets.embedders import EMBEDDERS
from curation_assets.graph import metadata
from curation_assets.graph.steps import ProgressLog, Step
from curation_assets.store import Embeddings, Pool, Record, fingerprint

CODE_VERSION = "dedup-3"
EXAMPLES = 6
REMOVED_SCHEMA = {"id": pl.Utf8, "duplicate_of": pl.Utf8, "rule": pl.Utf8, "similarity": pl.Float32}


def threshold_of(step: Step) -> float:
    return step.cfg.dedup.threshold or EMBEDDERS[step.cfg.embedder.kind].dedup_threshold


def known_pairs(step: Step, emb: Embeddings, live_dir) -> KnownPairs | None:
    """The near pairs the published pool found (stored by content key), as rows of ``emb``: valid when it was
    searched with the same threshold and model (the same vector cache) and exactly (pools up to
    ``EXACT_SEARCH_MAX_ROWS`` rows). None otherwise, or when the vectors carry no content key."""
    previous = Record.read(live_dir)
    same = {"threshold": threshold_of(step), "cache": emb.record.facts.get("cache")}
    if previous is None or "key" not in emb.rows.columns or same["cache"] is None or \
            any(previous.facts.get(k) != v for k, v in same.items()) or len(emb.rows) > EXACT_SEARCH_MAX_ROWS:
        return None
    stored = Pool.read_search(live_dir)
    if stored is None:
        return None
    rows = emb.rows.select(pl.col("key"), pl.int_range(pl.len(), dtype=pl.Int64).alias("row"))
    searched = stored[1].join(rows, on="key")["row"].to_numpy()
    pairs = (stored[0].join(rows.rename({"key": "key_a", "row": "i"}), on="key_a")
             .join(rows.rename({"key": "key_b", "row": "j"}), on="key_b"))
    mask = np.zeros(len(rows), dtype=bool)
    mask[searched] = True
    return KnownPairs(mask, pairs["i"].to_numpy(), pairs["j"].to_numpy(), pairs["similarity"].to_numpy())


def find_duplicates(step: Step, emb: Embeddings, known: KnownPairs | None):
    """(pool table of the kept rows, removed rows with the kept id each duplicates, content keys or None, the
    dedup result or None when disabled)."""
    rows = emb.rows.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("embedding_row"))
    ids = rows["id"]
    dd = step.cfg.dedup
    if not dd.enabled:
        return rows, pl.DataFrame(schema=REMOVED_SCHEMA), None, None
    corpus, keys = emb.corpus, None
    if dd.exact and corpus.content_column in ("text", "image"):
        keys = corpus.column(corpus.content_column, rows["corpus_row"].to_numpy()).to_list()
    progress = ProgressLog(step, "near-duplicate search, buckets", 1)
    result = deduplicate(np.asarray(emb.X), ids.to_list(), threshold_of(step), content_keys=keys,
                         seed=step.cfg.seed, progress=progress.of_total, known=known)
    kept = rows[result.keep]
    removed = pl.DataFrame({"id": ids.gather(result.removed), "duplicate_of": ids.gather(result.duplicate_of),
                            "rule": result.rule.tolist(), "similarity": result.similarity}, schema=REMOVED_SCHEMA)
    return kept, removed, keys, result


def save_search(step: Step, emb: Embeddings, result) -> None:
    """The near pairs and the rows searched, by content key, for the next run's :func:`known_pairs`."""
    if result is None or "key" not in emb.rows.columns:
        return
    key = emb.rows["key"]
    i, j, sim = result.pairs
    Pool.write_search(step.layout, pl.DataFrame({"key_a": key.gather(i), "key_b": key.gather(j), "similarity": sim}),
                      pl.DataFrame({"key": key.filter(pl.Series(result.searched))}))


def pool_changes(live_dir, ids: pl.Series) -> dict | str:
    """Rows added to and removed from the pool since the published one (or "first pool")."""
    if Record.read(live_dir) is None:
        return "first pool"
    before = Pool.published_ids(live_dir)
    return {"previous_rows": len(before), "added": int((~ids.is_in(before.implode())).sum()),
            "removed": int((~before.is_in(ids.implode())).sum())}


def deduplicate_pool(step: Step, emb: Embeddings, live_dir) -> tuple[dict, dict]:
    """Publish the pool (searching only rows the published pool's search has not seen); facts and metadata."""
    started = time.perf_counter()
    known = known_pairs(step, emb, live_dir)
    kept, removed, keys, result = find_duplicates(step, emb, known)
    Pool.write(step.layout, kept, removed)
    save_search(step, emb, result)
    by_rule = dict(removed["rule"].value_counts().iter_rows()) if len(removed) else {}
    path = step.layout.pool_dir / "pool.parquet"
    fresh = 0 if result is None else int((result.searched & ~known.searched).sum() if known else result.searched.sum())
    facts = {"rows": len(kept), "threshold": threshold_of(step), "cache": emb.record.facts.get("cache"),
             "changes": pool_changes(live_dir, kept["id"])}
    return facts, {
        "enabled": step.cfg.dedup.enabled, "threshold": threshold_of(step), "embedded_rows": len(emb.rows),
        "removed_rows": len(removed), "removed_by_rule": by_rule, "incremental": known is not None,
        "since_previous_pool": facts["changes"],
        "rows_searched_now": fresh, "search_seconds": round(time.perf_counter() - started, 3),
        **metadata.table_facts(path, len(kept)), "path": metadata.path_of(step.layout, path),
        "examples": metadata.duplicate_examples(removed.head(EXAMPLES), emb.rows, keys),
    }


def build_deduplicated(curation: CurationConfig, partitions):
    """The deduplicated asset: the pool, partitioned by modality."""

    @asset(partitions_def=partitions, group_name="embed", kinds={"faiss", "parquet"}, code_version=CODE_VERSION,
           io_manager_key="store",
           description="The pool: every embedded row that is not a duplicate. Exact content hashes, then "
                       "cosine ≥ threshold (faiss; blocked by k-means buckets for large pools), kept greedily by "
                       "smallest id (a row goes only as a copy of a kept row it is similar to). Writes "
                       "pool.parquet (id, embedding_row, corpus_row: the one row index of every later step) and "
                       "removed.parquet (removed id → kept id, rule, similarity).")
    def deduplicated(context: AssetExecutionContext, embeddings: Embeddings):
        step = Step.of(context, curation)
        fp = fingerprint(CODE_VERSION, embeddings.fingerprint, step.cfg.dedup.model_dump(), threshold_of(step),
                         step.cfg.seed)

        live_dir = step.layout.pool_dir  # the published pool (compute writes to a staging directory)
        return step.publish(step.layout.pool_dir, fp, lambda: deduplicate_pool(step, embeddings, live_dir),
                            lambda: Pool.open(step.layout), input_fp=embeddings.fingerprint)

    return deduplicated
