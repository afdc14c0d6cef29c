"""``embeddings``: one L2-normalised float32 vector per corpus row, as a ``.npy`` memory map."""

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, DataVersion, MaterializeResult, asset

from curation_assets.assets._common import (
    Timer,
    current_config,
    md,
    modality_context,
    reuse_or_compute,
    to_dagster,
)
from curation_assets.plots import markdown_table
from curation_assets.resources.embedders import EmbedderResource
from curation_assets.resources.execution import ExecutionResource
from curation_assets.storage import (
    Layout,
    ShardedArray,
    ShardWriter,
    fingerprint,
    invalidate,
    read_fingerprint,
    save_parquet,
)

CODE_VERSION = "embeddings-2"
LOG_EVERY_ROWS = 40_000
EXPECTED_DIM = {("none", None): 2, ("sentence_transformer", None): 384, ("efficientnet_lite0", None): 1280}


def open_embeddings(layout: Layout) -> ShardedArray:
    """All embedded rows (pool and test), as a memory-mapped sharded array."""
    return ShardedArray.open(layout.embeddings_dir)


def pool_embeddings(layout: Layout, deduplicated: bool = True) -> tuple[ShardedArray, pl.DataFrame]:
    """The embeddings of the pool rows (test rows and removed duplicates excluded, nothing copied)."""
    rows = pl.read_parquet(layout.embeddings_dir / "rows.parquet")
    X = open_embeddings(layout)
    mask = rows["split"] == "pool"
    kept = layout.dedup_dir / "kept.parquet"
    if deduplicated and kept.is_file():
        mask = mask & rows["id"].is_in(pl.read_parquet(kept)["id"].implode())
    pool = np.flatnonzero(mask.to_numpy())
    if len(pool) == len(rows):
        return X, rows
    return X.subset(pool), rows[pool]


def _check_finite(vectors: np.ndarray, positions: np.ndarray, split: pl.DataFrame) -> None:
    """Refuse NaN/inf vectors, naming the first bad row's id."""
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        row = int(positions[bad[0]])
        raise ValueError(f"the embedder returned NaN/inf for {len(bad)} rows of a batch, first: row {row} "
                         f"(id {split['id'][row]!r}); nothing was written")


def _embed_items(context, backend, factory, corpus_path, column: str, split: pl.DataFrame,
                 writer: ShardWriter) -> list:
    """Embed the corpus column task by task (in row order) into the shard writer; returns failed (row, reason)."""
    failed, n_rows, last_logged = [], len(split), 0
    for start, stop, result in backend.embed(factory, corpus_path, column, n_rows):
        _check_finite(result.vectors, start + result.ok_positions(stop - start), split)
        writer.append(result.vectors)
        failed += [(start + i, reason) for i, reason in result.failed]
        if stop - last_logged >= LOG_EVERY_ROWS or stop == n_rows:
            context.log.info(f"embedded {stop}/{n_rows} rows ({len(failed)} failed) on {backend.name}")
            last_logged = stop
    return failed


def build_embeddings_asset(partitions):
    """The embeddings asset, partitioned by modality."""

    @asset(
        partitions_def=partitions,
        group_name="embed",
        kinds={"pytorch", "numpy"},
        code_version=CODE_VERSION,
        deps=["raw_corpus"],
        description="Frozen-model embeddings of every corpus row, as sharded .npy memory maps "
                    "(sentence-transformers for text, EfficientNet-Lite0 for images/tiles, the raw 2-D points "
                    "for simulated); cached per corpus and model.",
        check_specs=[AssetCheckSpec("embeddings_finite_and_expected_dim", asset="embeddings")],
    )
    def embeddings(context: AssetExecutionContext, embedder: EmbedderResource,
                   execution: ExecutionResource) -> MaterializeResult:
        modality, cfg, layout = modality_context(context)
        exe = current_config().execution
        corpus_path = layout.corpus_dir / "corpus.parquet"
        with layout.lock():
            corpus_fp = (read_fingerprint(layout.corpus_dir) or {}).get("fingerprint")
            if corpus_fp is None:
                raise FileNotFoundError(f"{corpus_path} has not been materialized: run raw_corpus first")
            fp = fingerprint(CODE_VERSION, corpus_fp, cfg.embedder.model_dump(), embedder.device, embedder.batch_size,
                             exe.embed_task_rows)

            def compute() -> dict:
                split = pl.read_parquet(layout.corpus_dir / "split.parquet")
                writer = ShardWriter(layout.embeddings_dir, dtype=cfg.embedder.storage_dtype)
                try:
                    with Timer() as timer:
                        if cfg.embedder.kind == "none":
                            xy = pl.read_parquet(corpus_path, columns=["x", "y"]).to_numpy()
                            writer.append(xy.astype(np.float32))
                            failed, model_name, execution_summary = [], "identity (2-D points)", {}
                        else:
                            backend = execution.get(exe)
                            factory = embedder.factory(cfg.embedder)
                            column = "text" if "text" in pq.read_schema(corpus_path).names else "image"
                            failed = _embed_items(context, backend, factory, corpus_path, column, split, writer)
                            model_name, execution_summary = factory().name, backend.run_summary()
                    keep = np.ones(len(split), dtype=bool)
                    keep[[i for i, _ in failed]] = False
                    rows = split.filter(pl.Series(keep))
                    invalidate(layout.embeddings_dir)
                    shards = writer.publish()
                except BaseException:
                    writer.abort()
                    raise
                save_parquet(layout.embeddings_dir / "rows.parquet", rows)
                examples = [{"row": i, "id": split["id"][i], "reason": r} for i, r in failed[:10]]
                metadata = {
                    "model": model_name, "rows": writer.rows, "dim": int(writer.dim or 0),
                    "storage_dtype": cfg.embedder.storage_dtype, "shards": len(writer.paths),
                    "failed_rows": len(failed), "failed_examples": md(markdown_table(examples)) if examples else "none",
                    "seconds": timer.seconds,
                    "items_per_second": round(writer.rows / max(timer.seconds, 1e-9), 1),
                    "path": str(shards),
                    **execution_summary,
                }
                return metadata

            metadata = reuse_or_compute(context, layout.embeddings_dir, fp, compute)
        return MaterializeResult(metadata=to_dagster(metadata), data_version=DataVersion(fp),
                                 check_results=[_check(layout, cfg)])

    return embeddings


def _check(layout: Layout, cfg) -> AssetCheckResult:
    X = open_embeddings(layout)
    expected = EXPECTED_DIM.get((cfg.embedder.kind, cfg.embedder.model))
    finite = bool(np.all([np.isfinite(X[s:s + 65536]).all() for s in range(0, X.shape[0], 65536)]))
    dim_ok = (expected is None or X.shape[1] == expected) and X.shape[1] > 0
    return AssetCheckResult(check_name="embeddings_finite_and_expected_dim", passed=finite and dim_ok,
                            metadata={"finite": finite, "dim": int(X.shape[1]), "rows": int(X.shape[0])})
