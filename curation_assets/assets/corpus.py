"""``raw_corpus``: the modality's items as one Parquet table (id, text | image | x,y, label, split)."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from dagster import AssetExecutionContext, DataVersion, MaterializeResult, asset

from curation_assets.assets._common import Timer, md, modality_context, reuse_or_compute, to_dagster
from curation_assets.config import ModalityConfig
from curation_assets.plots import markdown_table, share_bars_md
from curation_assets.storage import Layout, fingerprint, invalidate, save_parquet

CODE_VERSION = "corpus-1"
ROW_GROUP_ROWS = 8192  # bounded row groups: an embedding task reads only the groups holding its rows
CONTENT_COLUMN = {"text": "text", "image": "image", "satellite": "image", "simulated": "xy"}


def reader_kind(modality: str, cfg: ModalityConfig) -> str:
    if cfg.source.kind == "simulated":
        return "simulated"
    if cfg.source.reader:
        return cfg.source.reader
    if cfg.embedder.kind == "sentence_transformer":
        return "text"
    return "satellite" if modality == "satellite" else "image"


def _raw_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))


def resolve_source(modality: str, cfg: ModalityConfig, layout: Layout) -> tuple[str, list]:
    """(kind actually used, its signature for the fingerprint)."""
    kind = cfg.source.kind
    raw = layout.raw_dir(cfg.source.path)
    files = _raw_files(raw)
    if kind == "auto":
        kind = "files" if files else "demo"
    if kind == "files":
        if not files:
            raise FileNotFoundError(f"source kind 'files' but no files under {raw}")
        return kind, [[str(p.relative_to(raw)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    if kind == "demo":
        from curation_assets.demo import demo_data_dir

        return kind, [str(demo_data_dir())]
    return kind, []


def _batches(modality: str, kind: str, reader: str, cfg: ModalityConfig, layout: Layout):
    """Iterator of canonical batches plus a dict of skipped-row counts (filled while iterating)."""
    if kind == "simulated":
        from curation_assets.core.synthetic import paper_2d_mixture

        X, comp = paper_2d_mixture(seed=cfg.seed)
        frame = pl.DataFrame({"id": [f"sim-{i:05d}" for i in range(len(X))], "x": X[:, 0], "y": X[:, 1],
                              "label": [f"component-{c}" for c in comp]})
        return iter([frame]), {}
    if kind == "demo":
        from curation_assets.demo import demo_corpus

        if modality not in ("text", "image", "satellite"):
            raise ValueError(f"modality {modality!r} has no bundled demo corpus; put files in {layout.raw_dir()}")
        kwargs = {"tile_px": cfg.source.tile_px} if modality == "satellite" else {}
        return iter([demo_corpus(modality, cfg.source.max_items, seed=cfg.seed, **kwargs)]), {}
    from curation_assets import readers

    raw = layout.raw_dir(cfg.source.path)
    if reader == "text":
        it = readers.iter_text_corpus(raw)
    elif reader == "satellite":
        it = readers.iter_satellite_corpus(raw, tile_px=cfg.source.tile_px, bands=cfg.source.bands)
    else:
        it = readers.iter_image_corpus(raw)
    return it, it.skipped


def _canonical(frame: pl.DataFrame, reader: str) -> pl.DataFrame:
    if reader == "simulated":
        return frame.select(pl.col("id").cast(pl.Utf8), pl.col("x").cast(pl.Float32), pl.col("y").cast(pl.Float32),
                            pl.col("label").cast(pl.Utf8))
    content = CONTENT_COLUMN[reader]
    label = pl.col("label").cast(pl.Utf8) if "label" in frame.columns else pl.lit(None, pl.Utf8).alias("label")
    return frame.select(pl.col("id").cast(pl.Utf8), pl.col(content).cast(pl.Binary if content == "image" else pl.Utf8),
                        label)


def _write_stream(batches: Iterator[pl.DataFrame], reader: str, tmp: Path, max_items: int | None) -> int:
    """Stream batches into one Parquet file at ``tmp``; returns the row count."""
    tmp.parent.mkdir(parents=True, exist_ok=True)
    writer, n = None, 0
    try:
        for frame in batches:
            if max_items is not None and n + len(frame) > max_items:
                frame = frame.head(max_items - n)
            table = _canonical(frame, reader).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            n += len(frame)
            if max_items is not None and n >= max_items:
                break
    finally:
        if writer is not None:
            writer.close()
    return n


def holdout_split(labels: pl.Series, per_class: int, seed: int) -> np.ndarray:
    """Boolean mask of held-out test rows: ``per_class`` per label (at most half the class), seeded."""
    test = np.zeros(len(labels), dtype=bool)
    if per_class == 0 or labels.null_count() > 0:
        return test
    rng = np.random.default_rng(seed)
    values = labels.to_numpy()
    for label in np.unique(values):
        rows = np.flatnonzero(values == label)
        take = min(per_class, len(rows) // 2)
        if take:
            test[rng.choice(rows, size=take, replace=False)] = True
    return test


def build_corpus_asset(partitions):
    """The raw_corpus asset, partitioned by modality."""

    @asset(
        partitions_def=partitions,
        group_name="ingest",
        kinds={"polars", "parquet"},
        code_version=CODE_VERSION,
        description="The modality's corpus as one Parquet table: id, content, label (benchmarks only), "
                    "split (pool rows are curated; test rows are held out for benchmarks).",
    )
    def raw_corpus(context: AssetExecutionContext) -> MaterializeResult:
        modality, cfg, layout = modality_context(context)
        reader = reader_kind(modality, cfg)
        with layout.lock():
            kind, signature = resolve_source(modality, cfg, layout)
            fp = fingerprint(CODE_VERSION, kind, reader, cfg.source.model_dump(), cfg.seed, signature)

            def compute() -> dict:
                with Timer() as timer:
                    batches, skipped = _batches(modality, kind, reader, cfg, layout)
                    path = layout.corpus_dir / "corpus.parquet"
                    tmp = layout.corpus_dir / ".corpus.parquet.tmp"
                    try:
                        n = _write_stream(batches, reader, tmp, cfg.source.max_items if kind == "files" else None)
                        if n == 0:
                            raise ValueError(f"the {modality} corpus is empty: no rows to curate "
                                             f"(skipped: {dict(skipped) or 'none'})")
                        rows = pl.read_parquet(tmp, columns=["id", "label"])
                        if rows["id"].n_unique() != n:
                            dup = rows.filter(pl.col("id").is_duplicated())["id"][0]
                            raise ValueError(f"duplicate id {dup!r} in the {modality} corpus: ids must be unique")
                    except BaseException:
                        tmp.unlink(missing_ok=True)
                        raise
                    test = holdout_split(rows["label"], cfg.source.test_per_class, cfg.seed)
                    split = rows.with_columns(pl.Series("split", np.where(test, "test", "pool")))
                    invalidate(layout.corpus_dir)
                    tmp.replace(path)
                    save_parquet(layout.corpus_dir / "split.parquet", split)
                metadata = _metadata(split, kind, reader, dict(skipped), timer.seconds,
                                     pl.read_parquet(path, n_rows=5))
                return metadata

            metadata = reuse_or_compute(context, layout.corpus_dir, fp, compute)
        return MaterializeResult(metadata=to_dagster(metadata), data_version=DataVersion(fp))

    return raw_corpus


def _metadata(split: pl.DataFrame, kind: str, reader: str, skipped: dict, seconds: float,
              head: pl.DataFrame) -> dict:
    preview = [{k: (f"<{len(v)} bytes>" if isinstance(v, bytes) else v) for k, v in row.items()}
               for row in head.to_dicts()]
    meta = {
        "source": kind, "reader": reader, "rows": len(split),
        "pool_rows": int((split["split"] == "pool").sum()), "test_rows": int((split["split"] == "test").sum()),
        "skipped_rows": int(sum(skipped.values())), "skipped_by_rule": skipped,
        "seconds": seconds, "preview": md(markdown_table(preview)),
    }
    labels = split["label"]
    if labels.null_count() == 0:
        counts = labels.value_counts(sort=True)
        meta["classes"] = len(counts)
        share = (counts["count"] / counts["count"].sum()).to_list()
        meta["label_distribution"] = md(share_bars_md(counts["label"].to_list(), share, share,
                                                      "label share in the corpus (benchmarks only)",
                                                      subset_label="corpus"))
    return meta
