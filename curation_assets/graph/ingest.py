"""``raw_corpus``: the modality's items as one Parquet table (id, content, label).

The source is a user's folder under ``raw/<modality>/`` (read by the configured reader), the bundled
demo corpus, or the paper's 2-D simulation. Every row becomes a pool candidate: nothing is held out here
(the benchmark's evaluation split lives in ``benchmark_scores`` only). Nothing a user gave is dropped
silently: skipped rows, ignored files, links that leave the data root and a ``max_items`` cap are counted
in the metadata and the log.
"""

import hashlib
from collections.abc import Iterator

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, asset

from curation_assets.config import CurationConfig
from curation_assets.embedders import EMBEDDERS, build_embedder
from curation_assets.graph import metadata
from curation_assets.graph.steps import Step
from curation_assets.readers import GEOREF, READERS, list_folder
from curation_assets.store import Corpus, Record, fingerprint

CODE_VERSION = "corpus-3"
ROW_GROUP_ROWS = 8192  # bounded row groups: an embedding task reads only the groups holding its rows
POINT_COLUMN = "point"
DEMO_COLUMNS = {"text": "text", "image": "image", "satellite": "image"}


class SourceSwitchError(RuntimeError):
    """``auto`` would replace a user's published files by the bundled demo."""


def resolve_source(step: Step) -> tuple[str, list]:
    """(the source actually used, its signature for the fingerprint).

    ``auto`` reads ``raw/<modality>/`` whenever that folder exists: a user's folder never silently
    becomes the demo (an existing folder without a readable file is an error from the reader), and once
    the partition has published a user's files, a missing folder is an error too (:func:`refuse_switch`).
    """
    source = step.cfg.source
    raw = step.layout.raw_dir(source.path)
    kind = source.kind
    if kind == "auto":
        kind = "files" if raw.exists() else "demo"
        if kind == "demo":
            refuse_switch(step, raw)
    if kind == "files":
        if not raw.is_dir():
            raise FileNotFoundError(f"source kind 'files' but {raw} does not exist")
        files = list_folder(raw, step.layout.root).files
        return kind, [[str(p.relative_to(raw)), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    if kind == "demo":
        from curation_assets.demo import demo_data_dir

        return kind, [source.demo or step.modality, str(demo_data_dir())]
    return kind, []


def refuse_switch(step: Step, raw) -> None:
    """Refuse ``auto`` → demo when the partition's published corpus came from the user's files."""
    previous = Record.read(step.layout.corpus_dir)
    if previous is not None and previous.facts.get("source") == "files":
        raise SourceSwitchError(
            f"{step.modality}: {raw} is gone, but this partition published your files last time; refusing to "
            "replace them (and the published subset and dataset) with the bundled demo. Put the folder back, or "
            f"set modalities.{step.modality}.source.kind: demo in curation.yaml to curate the demo on purpose.")


def reader_name(step: Step) -> str:
    name = step.cfg.source.reader or EMBEDDERS[step.cfg.embedder.kind].reader
    if name is None:
        raise ValueError(f"{step.modality}: embedder {step.cfg.embedder.kind!r} reads no files; set source.reader")
    return name


def _batches(step: Step, kind: str) -> tuple[Iterator[pl.DataFrame], object, str, dict]:
    """(batches, the reader's iterator or None (skip counts and folder listing filled while iterating),
    content column, optional columns and their types)."""
    source = step.cfg.source
    if kind == "simulated":
        from curation_assets.core.synthetic import paper_2d_mixture

        X, component = paper_2d_mixture(seed=step.cfg.seed)
        frame = pl.DataFrame({"id": [f"sim-{i:05d}" for i in range(len(X))],
                              POINT_COLUMN: pl.Series(X, dtype=pl.Array(pl.Float32, 2)),
                              "label": [f"component-{c}" for c in component]})
        return iter([frame]), None, POINT_COLUMN, {}
    if kind == "demo":
        from curation_assets.demo import demo_corpus

        name = source.demo or step.modality
        if name not in DEMO_COLUMNS:
            raise ValueError(f"no bundled demo corpus {name!r} (known: {sorted(DEMO_COLUMNS)}); "
                             f"put files in {step.layout.raw_dir(source.path)}")
        satellite = name == "satellite"
        corpus = demo_corpus(name, source.demo_items, seed=step.cfg.seed, **({"tile_px": source.tile_px}
                                                                              if satellite else {}))
        return iter([corpus]), None, DEMO_COLUMNS[name], {"georef": GEOREF} if satellite else {}
    reader = READERS[reader_name(step)]
    vectors = getattr(build_embedder(step.cfg.embedder), "input_column", None)  # precomputed vectors, carried along
    stream = reader.stream(step.layout.raw_dir(source.path), source, step.layout.root, vectors=vectors)
    extras = {**reader.extra_columns, **({vectors: pl.List(pl.Float32)} if vectors else {})}
    return stream, stream, reader.content_column, extras


def _canonical(frame: pl.DataFrame, content: str, extras: dict) -> pl.DataFrame:
    """id, content, label, then the source's optional columns (null where a batch has none)."""
    def column(name: str, dtype) -> pl.Expr:
        return pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype).alias(name)

    return frame.select(column("id", pl.Utf8), pl.col(content), column("label", pl.Utf8),
                        *(column(name, dtype) for name, dtype in extras.items()))


def capped_rows(ids: list[str], cap: int, seed: int) -> np.ndarray:
    """Sorted row numbers of a seeded uniform sample of ``cap`` rows: the ``cap`` smallest hashes of
    (seed, id). Every row is equally likely whatever the file order, and rows added later never evict an
    earlier pick unless their hash is smaller (a growing folder keeps most of its sample)."""
    keys = np.array([int.from_bytes(hashlib.blake2b(f"{seed}\0{i}".encode(), digest_size=8).digest(), "big")
                     for i in ids], dtype=np.uint64)
    return np.sort(np.argsort(keys, kind="stable")[:cap])


def apply_cap(step: Step, rows: int) -> tuple[int, dict]:
    """Cut the written corpus to ``source.max_items`` rows (when set and exceeded); returns (rows, what it did)."""
    cap = step.cfg.source.max_items
    if cap is None or rows <= cap:
        return rows, {"max_items": cap or "none", "rows_dropped_by_max_items": 0}
    corpus = Corpus(Record("", {}), step.layout)
    keep = capped_rows(corpus.column("id").to_list(), cap, step.cfg.seed)
    mask = np.zeros(rows, dtype=bool)
    mask[keep] = True
    corpus.keep_rows(mask, ROW_GROUP_ROWS)
    step.context.log.warning(f"{step.modality}: source.max_items = {cap}: kept a seeded uniform sample of {cap} "
                             f"of {rows} rows, dropped {rows - cap} (remove max_items to curate every row)")
    return cap, {"max_items": cap, "rows_dropped_by_max_items": rows - cap}


def write_corpus(step: Step, kind: str) -> tuple[int, str, dict, dict]:
    """Stream the source into the corpus; returns (rows, content column, skipped rows by rule, what the
    folder held besides: ignored files, links, hidden entries, the cap)."""
    batches, stream, content, extras = _batches(step, kind)
    try:
        with Corpus.writer(step.layout, ROW_GROUP_ROWS) as corpus:
            for frame in batches:
                corpus.write(_canonical(frame, content, extras))
    except ValueError as exc:
        skipped = dict(stream.skipped) if stream is not None else {}
        raise ValueError(f"{step.modality}: {exc} (skipped rows: {skipped or 'none'})") from exc
    skipped = dict(stream.skipped) if stream is not None else {}
    folder = stream.listing.summary() if stream is not None and stream.listing is not None else {}
    if folder and (folder["ignored_files"] != "none" or folder["links_outside_data_root"]):
        step.context.log.warning(f"{step.modality}: not read: ignored files by extension {folder['ignored_files']}, "
                                 f"{folder['links_outside_data_root']} link(s) leading outside the data root "
                                 f"{folder['links_outside_examples']}")
    rows, cap = apply_cap(step, corpus.rows)
    return rows, content, skipped, {**folder, **cap}


def describe_source(step: Step, kind: str, reader: str) -> str:
    source = step.cfg.source
    if kind == "files":
        return f"your files under {step.layout.raw_dir(source.path)} (reader {reader})"
    if kind == "demo":
        size = f"{source.demo_items} rows of it" if source.demo_items else "all of it"
        return f"the bundled demo corpus {source.demo or step.modality!r} ({size})"
    return "the paper's 2-D simulation"


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
        step.log(f"source: {describe_source(step, kind, reader)}")
        fp = fingerprint(CODE_VERSION, kind, reader, source.model_dump(), step.cfg.seed, signature)

        def compute() -> tuple[dict, dict]:
            rows, content, skipped, folder = write_corpus(step, kind)
            corpus = Corpus(Record(fp, {"content_column": content}), step.layout)
            return {"rows": rows, "content_column": content, "source": kind}, {
                "source": kind, "source_description": describe_source(step, kind, reader), "reader": reader,
                "skipped_rows": sum(skipped.values()), "skipped_by_rule": skipped, **folder,
                **metadata.table_facts(corpus.path, rows), **metadata.label_distribution(corpus.column("label")),
                "preview": metadata.preview(corpus.head()), "path": metadata.path_of(step.layout, corpus.path)}

        return step.publish(step.layout.corpus_dir, fp, compute, lambda: Corpus.open(step.layout))

    return raw_corpus
