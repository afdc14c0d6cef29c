"""``embeddings``: one L2-normalised float32 vector per corpus row, as a ``.npy`` memory map."""

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from dagster import AssetCheckResult, AssetCheckSpec, AssetExecutionContext, DataVersion, MaterializeResult, asset

from curation_assets.assets._common import Timer, md, modality_context, to_dagster
from curation_assets.plots import markdown_table
from curation_assets.resources.embedders import EmbedderResource
from curation_assets.storage import (
    Layout,
    cached,
    fingerprint,
    invalidate,
    load_npy,
    read_fingerprint,
    save_npy,
    save_parquet,
    write_fingerprint,
)

CODE_VERSION = "embeddings-1"
READ_BATCH_ROWS = 4096
LOG_EVERY_BATCHES = 10
EXPECTED_DIM = {("none", None): 2, ("sentence_transformer", None): 384, ("efficientnet_lite0", None): 1280}


def pool_embeddings(layout: Layout) -> tuple[np.ndarray, pl.DataFrame]:
    """The embeddings of the pool rows (test rows excluded) and their row table (id, label)."""
    rows = pl.read_parquet(layout.embeddings_dir / "rows.parquet")
    X = load_npy(layout.embeddings_dir / "embeddings.npy")
    pool = np.flatnonzero((rows["split"] == "pool").to_numpy())
    if len(pool) == len(rows):
        return X, rows
    return np.ascontiguousarray(X[pool]), rows[pool]


def _validate_vectors(X: np.ndarray, split: pl.DataFrame, failed: list) -> None:
    """Refuse NaN/inf vectors, naming the first bad row's id."""
    ok_rows = np.setdiff1d(np.arange(len(split)), [i for i, _ in failed])
    bad = np.flatnonzero(~np.isfinite(X).all(axis=1))
    if len(bad):
        row = int(ok_rows[bad[0]])
        raise ValueError(f"the embedder returned NaN/inf for {len(bad)} rows, first: row {row} "
                         f"(id {split['id'][row]!r}); nothing was written")


def _embed_items(context, embedder, corpus_path, column: str, n_rows: int) -> tuple[np.ndarray, list]:
    """Embed the corpus column batch by batch; returns (vectors of ok rows, failed (row, reason))."""
    vectors, failed, done = [], [], 0
    parquet = pq.ParquetFile(corpus_path)
    for b, batch in enumerate(parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=[column])):
        items = batch.column(0).to_pylist()
        result = embedder.embed(items)
        if vectors and result.vectors.shape[1] != vectors[0].shape[1]:
            raise ValueError(f"embedding dimension changed between batches: {vectors[0].shape[1]} then "
                             f"{result.vectors.shape[1]} at row {done} (did the model change?); nothing was written")
        vectors.append(result.vectors)
        failed += [(done + i, reason) for i, reason in result.failed]
        done += len(items)
        if b % LOG_EVERY_BATCHES == 0 or done == n_rows:
            context.log.info(f"embedded {done}/{n_rows} rows ({len(failed)} failed)")
    return np.concatenate(vectors).astype(np.float32), failed


def build_embeddings_asset(partitions):
    """The embeddings asset, partitioned by modality."""

    @asset(
        partitions_def=partitions,
        group_name="embed",
        kinds={"pytorch", "numpy"},
        code_version=CODE_VERSION,
        deps=["raw_corpus"],
        description="Frozen-model embeddings of every corpus row (sentence-transformers for text, "
                    "EfficientNet-Lite0 for images/tiles, the raw 2-D points for simulated); cached per "
                    "corpus and model.",
        check_specs=[AssetCheckSpec("embeddings_finite_and_expected_dim", asset="embeddings")],
    )
    def embeddings(context: AssetExecutionContext, embedder: EmbedderResource) -> MaterializeResult:
        modality, cfg, layout = modality_context(context)
        corpus_path = layout.corpus_dir / "corpus.parquet"
        with layout.lock():
            corpus_fp = (read_fingerprint(layout.corpus_dir) or {}).get("fingerprint")
            if corpus_fp is None:
                raise FileNotFoundError(f"{corpus_path} has not been materialized: run raw_corpus first")
            fp = fingerprint(CODE_VERSION, corpus_fp, cfg.embedder.model_dump(), embedder.device, embedder.batch_size)
            record = cached(layout.embeddings_dir, fp)
            if record is None:
                split = pl.read_parquet(layout.corpus_dir / "split.parquet")
                with Timer() as timer:
                    if cfg.embedder.kind == "none":
                        xy = pl.read_parquet(corpus_path, columns=["x", "y"])
                        X, failed = xy.to_numpy().astype(np.float32), []
                        model_name = "identity (2-D points)"
                    else:
                        model = embedder.build(cfg.embedder)
                        column = "text" if "text" in pq.read_schema(corpus_path).names else "image"
                        X, failed = _embed_items(context, model, corpus_path, column, len(split))
                        model_name = model.name
                _validate_vectors(X, split, failed)
                keep = np.ones(len(split), dtype=bool)
                keep[[i for i, _ in failed]] = False
                rows = split.filter(pl.Series(keep))
                invalidate(layout.embeddings_dir)
                save_npy(layout.embeddings_dir / "embeddings.npy", X)
                save_parquet(layout.embeddings_dir / "rows.parquet", rows)
                examples = [{"row": i, "id": split["id"][i], "reason": r} for i, r in failed[:10]]
                metadata = {
                    "model": model_name, "rows": int(X.shape[0]), "dim": int(X.shape[1]),
                    "failed_rows": len(failed), "failed_examples": md(markdown_table(examples)) if examples else "none",
                    "seconds": timer.seconds,
                    "items_per_second": round(X.shape[0] / max(timer.seconds, 1e-9), 1),
                    "path": str(layout.embeddings_dir / "embeddings.npy"),
                }
                write_fingerprint(layout.embeddings_dir, fp, metadata)
                record = {"metadata": metadata}
            else:
                context.log.info(f"{modality}: embeddings up to date (fingerprint {fp}), reusing them")
        return MaterializeResult(metadata=to_dagster(record["metadata"]), data_version=DataVersion(fp),
                                 check_results=[_check(layout, cfg)])

    return embeddings



def _check(layout: Layout, cfg) -> AssetCheckResult:
    X = load_npy(layout.embeddings_dir / "embeddings.npy")
    expected = EXPECTED_DIM.get((cfg.embedder.kind, cfg.embedder.model))
    finite = bool(np.all([np.isfinite(X[s:s + 65536]).all() for s in range(0, X.shape[0], 65536)]))
    dim_ok = X.ndim == 2 and (expected is None or X.shape[1] == expected) and X.shape[1] > 0
    return AssetCheckResult(check_name="embeddings_finite_and_expected_dim", passed=finite and dim_ok,
                            metadata={"finite": finite, "dim": int(X.shape[1]), "rows": int(X.shape[0])})
