"""``deduplicated``: exact and near-duplicate removal between embeddings and the first clustering level.

Duplicates inflate exactly the dense concepts curation tries to shrink. Exact copies (same text after
normalisation, same image bytes) go first by hash; then pairs with cosine ≥ threshold, found with faiss
(exact search for small pools, k-means-blocked search for large ones), are merged into groups that keep
one deterministic representative (the smallest id). Only the pool is deduplicated (the held-out test
split is left alone); downstream assets read the kept rows only.
"""

import base64
import io

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, DataVersion, MaterializeResult, asset

from curation_assets.assets._common import Timer, md, modality_context, reuse_or_compute, to_dagster
from curation_assets.assets.embeddings import pool_embeddings
from curation_assets.core.dedup import deduplicate
from curation_assets.plots import markdown_table
from curation_assets.storage import (
    Layout,
    fingerprint,
    invalidate,
    read_fingerprint,
    save_parquet,
)

CODE_VERSION = "dedup-1"
EXAMPLES = 6


def _content_keys(layout: Layout, ids: pl.Series) -> list | None:
    """Text or image bytes of the given ids, in that order (None for 2-D simulated points)."""
    corpus = layout.corpus_dir / "corpus.parquet"
    column = next((c for c in ("text", "image") if c in pq.read_schema(corpus).names), None)
    if column is None:
        return None
    table = pl.read_parquet(corpus, columns=["id", column])
    return ids.to_frame().join(table, on="id", how="left")[column].to_list()


def _preview(value) -> str:
    if isinstance(value, bytes):
        return f'<img src="data:image/png;base64,{base64.b64encode(_thumbnail(value)).decode()}" width="48"/>'
    return str(value)[:80]


def _thumbnail(blob: bytes) -> bytes:
    try:
        from PIL import Image

        img = Image.open(io.BytesIO(blob))
        img.thumbnail((48, 48))
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="PNG")
        return buf.getvalue()
    except Exception:  # a preview must never fail the asset
        return b""


def build_dedup_asset(partitions):
    """The deduplicated asset, partitioned by modality."""

    @asset(
        partitions_def=partitions,
        name="deduplicated",
        group_name="embed",
        kinds={"faiss", "parquet"},
        code_version=CODE_VERSION,
        deps=["embeddings"],
        description="Near-duplicate removal before clustering: exact content hashes, then cosine ≥ threshold "
                    "(faiss; blocked by k-means buckets for large pools), one representative per group "
                    "(smallest id). Writes deduplicated/{modality}/kept.parquet and removed.parquet "
                    "(removed id → kept id, rule, similarity).",
    )
    def deduplicated(context: AssetExecutionContext) -> MaterializeResult:
        modality, cfg, layout = modality_context(context)
        with layout.lock():
            upstream = (read_fingerprint(layout.embeddings_dir) or {}).get("fingerprint")
            if upstream is None:
                raise FileNotFoundError(f"{modality}: embeddings are not materialized yet")
            dd = cfg.dedup
            threshold = dd.resolved_threshold(cfg.embedder.kind)
            fp = fingerprint(CODE_VERSION, upstream, dd.model_dump(), threshold, cfg.seed)

            def compute() -> dict:
                X, rows = pool_embeddings(layout, deduplicated=False)
                ids = rows["id"]
                with Timer() as timer:
                    if dd.enabled:
                        keys = _content_keys(layout, ids) if dd.exact else None
                        result = deduplicate(np.asarray(X), ids.to_list(), threshold, content_keys=keys, seed=cfg.seed)
                        kept_idx, removed = result.keep, result
                    else:
                        kept_idx, removed, keys = np.arange(len(ids)), None, None
                removed_frame = pl.DataFrame({
                    "id": ids.gather(removed.removed) if removed is not None else pl.Series([], dtype=pl.Utf8),
                    "duplicate_of": ids.gather(removed.duplicate_of) if removed is not None else
                    pl.Series([], dtype=pl.Utf8),
                    "rule": removed.rule.tolist() if removed is not None else pl.Series([], dtype=pl.Utf8),
                    "similarity": removed.similarity if removed is not None else pl.Series([], dtype=pl.Float32),
                })
                invalidate(layout.dedup_dir)
                save_parquet(layout.dedup_dir / "kept.parquet", pl.DataFrame({"id": ids.gather(kept_idx)}))
                save_parquet(layout.dedup_dir / "removed.parquet", removed_frame)
                by_rule = removed_frame["rule"].value_counts().to_dicts() if len(removed_frame) else []
                examples = []
                if keys is not None and removed is not None:
                    for r, k in list(zip(removed.removed, removed.duplicate_of, strict=True))[:EXAMPLES]:
                        examples.append({"removed": _preview(keys[r]), "kept": _preview(keys[k]),
                                         "removed_id": ids[int(r)], "kept_id": ids[int(k)]})
                metadata = {
                    "enabled": dd.enabled, "threshold": threshold, "pool_rows": len(ids),
                    "kept_rows": int(len(kept_idx)), "removed_rows": len(removed_frame),
                    "removed_by_rule": {d["rule"]: d["count"] for d in by_rule}, "seconds": timer.seconds,
                    "examples": md(markdown_table(examples, max_chars=4000)) if examples else "none",
                }
                return metadata

            metadata = reuse_or_compute(context, layout.dedup_dir, fp, compute)
        return MaterializeResult(metadata=to_dagster(metadata), data_version=DataVersion(fp))

    return deduplicated
