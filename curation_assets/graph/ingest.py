"""``raw_corpus``: the modality's items as one Parquet table (id, content, label).

The source is a user's folder under ``raw/<modality>/`` (read by the configured reader), the bundled
demo corpus, or the paper's 2-D simulation. Every row becomes a pool candidate: nothing is held out here
(the benchmark's evaluation split lives in ``benchmark_scores`` only).
"""


from collections.abc import Iterator

import polars as pl
from dagster import AssetExecutionContext, MetadataValue, asset

from curation_assets.config import CurationConfig
from curation_assets.embedders import EMBEDDERS
from curation_assets.graph import metadata
from curation_assets.graph.steps import Step
from curation_assets.readers import GEOREF, READERS, visible_files
from curation_assets.store import Corpus, Record, fingerprint

CODE_VERSION = "corpus-2"
ROW_GROUP_ROWS = 8192  # bounded row groups: an embedding task reads only the groups holding its rows
POINT_COLUMN = "point"
DEMO_COLUMNS = {"text": "text", "image": "image", "satellite": "image"}


def resolve_source(step: Step) -> tuple[str, list]:
    """(the source actually used, its signature for the fingerprint).

    ``auto`` reads ``raw/<modality>/`` whenever that folder exists: a user's folder never silently
    becomes the demo (an existing folder without a readable file is an error from the reader).
    """
    source = step.cfg.source
    raw = step.layout.raw_dir(source.path)
    kind = source.kind
    if kind == "auto":
        kind = "files" if raw.exists() else "demo"
    if kind == "files":
        if not raw.is_dir():
            raise FileNotFoundError(f"source kind 'files' but {raw} does not exist")
        files, _ = visible_files(raw)
        return kind, [[str(p.relative_to(raw)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    if kind == "demo":
        from curation_assets.demo import demo_data_dir

        return kind, [source.demo or step.modality, str(demo_data_dir())]
    return kind, []


def reader_name(step: Step) -> str:
    name = step.cfg.source.reader or EMBEDDERS[step.cfg.embedder.kind].reader
    if name is None:
        raise ValueError(f"{step.modality}: embedder {step.cfg.embedder.kind!r} reads no files; set source.reader")
    return name


def _batches(step: Step, kind: str) -> tuple[Iterator[pl.DataFrame], dict, str, dict]:
    """(batches, skipped-row counts filled while iterating, content column, optional columns and their types)."""
    source = step.cfg.source
    if kind == "simulated":
        from curation_assets.core.synthetic import paper_2d_mixture

        X, component = paper_2d_mixture(seed=step.cfg.seed)
        frame = pl.DataFrame({"id": [f"sim-{i:05d}" for i in range(len(X))],
                              POINT_COLUMN: pl.Series(X, dtype=pl.Array(pl.Float32, 2)),
                              "label": [f"component-{c}" for c in component]})
        return iter([frame]), {}, POINT_COLUMN, {}
    if kind == "demo":
        from curation_assets.demo import demo_corpus

        name = source.demo or step.modality
        if name not in DEMO_COLUMNS:
            raise ValueError(f"no bundled demo corpus {name!r} (known: {sorted(DEMO_COLUMNS)}); "
                             f"put files in {step.layout.raw_dir(source.path)}")
        satellite = name == "satellite"
        corpus = demo_corpus(name, source.max_items, seed=step.cfg.seed, **({"tile_px": source.tile_px}
                                                                            if satellite else {}))
        return iter([corpus]), {}, DEMO_COLUMNS[name], {"georef": GEOREF} if satellite else {}
    reader = READERS[reader_name(step)]
    stream = reader.stream(step.layout.raw_dir(source.path), source)
    return stream, stream.skipped, reader.content_column, reader.extra_columns


def _canonical(frame: pl.DataFrame, content: str, extras: dict) -> pl.DataFrame:
    """id, content, label, then the source's optional columns (null where a batch has none)."""
    def column(name: str, dtype) -> pl.Expr:
        return pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)

    return frame.select(column("id", pl.Utf8), pl.col(content), column("label", pl.Utf8),
                        *(column(name, dtype) for name, dtype in extras.items()))


def write_corpus(step: Step, kind: str) -> tuple[int, str, dict]:
    """Stream the source into the corpus; returns (rows, content column, skipped rows by rule)."""
    batches, skipped, content, extras = _batches(step, kind)
    limit = step.cfg.source.max_items if kind == "files" else None
    try:
        with Corpus.writer(step.layout, ROW_GROUP_ROWS) as corpus:
            for frame in batches:
                corpus.write(_canonical(frame.head(limit - corpus.rows) if limit else frame, content, extras))
                if limit is not None and corpus.rows >= limit:
                    break
    except ValueError as exc:
        raise ValueError(f"{step.modality}: {exc} (skipped rows: {dict(skipped) or 'none'})") from exc
    return corpus.rows, content, dict(skipped)


def build_raw_corpus(curation: CurationConfig, partitions):
    """The raw_corpus asset, partitioned by modality."""

    @asset(partitions_def=partitions, group_name="ingest", kinds={"polars", "parquet"}, code_version=CODE_VERSION,
           io_manager_key="store",
           description="The modality's corpus as one Parquet table: id, content (text | image bytes | point), "
                       "label (benchmarks only). Every row is a pool candidate.")
    def raw_corpus(context: AssetExecutionContext):
        step = Step.of(context, curation)
        kind, signature = resolve_source(step)
        source = step.cfg.source
        reader = reader_name(step) if kind == "files" else kind
        fp = fingerprint(CODE_VERSION, kind, reader, source.model_dump(), step.cfg.seed, signature)

        def compute() -> tuple[dict, dict]:
            rows, content, skipped = write_corpus(step, kind)
            corpus = Corpus(Record(fp, {"content_column": content}), step.layout)
            return {"rows": rows, "content_column": content}, {
                "source": kind, "reader": reader, "skipped_rows": sum(skipped.values()), "skipped_by_rule": skipped,
                **metadata.table_facts(corpus.path, rows), **metadata.label_distribution(corpus.column("label")),
                "preview": metadata.preview(corpus.head()), "path": MetadataValue.path(str(corpus.path))}

        return step.publish(step.layout.corpus_dir, fp, compute, lambda: Corpus.open(step.layout))

    return raw_corpus

