"""Image corpus reader -> ``id: Utf8, image: Binary (encoded file bytes), label: Utf8 (nullable)`` batches.

Sources (found recursively, hidden paths ignored, read in order of relative path):

(a) image files ``*.png``, ``*.jpg``, ``*.jpeg`` (any case): ``id`` = path relative to the directory (posix),
    ``image`` = the raw file bytes (not decoded here), ``label`` = the parent folder relative to the directory
    (e.g. ``"cats"``; null for images directly in the directory).
(b) ``*.parquet`` files with an ``image`` column of bytes -- or of Hugging Face ``datasets`` image structs
    ``{bytes, path}`` -- and optional ``id`` / ``label`` columns. Without ``id``: ``"<relpath>#<row>"``.

``labels.csv`` (columns ``id,label``) directly in the directory overrides the label of every row whose id it
lists; rows it does not list keep the label above. Its ids that match no row are counted in
``skipped["labels_csv_unmatched"]`` (they are not rows, but the count is useful).

The reader does not decode images: corrupt bytes pass through and the embedder reports them as failed.
Skip ``empty_image``: a zero-byte file or a null/empty ``image`` cell. Errors (:class:`CorpusError`): no
supported file, a parquet without an ``image`` column (names the columns it has), an ``image`` column that is
not binary, null/empty explicit ids, a duplicate id anywhere (names the id and both files), a bad labels.csv.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa

from ._common import CorpusError, CorpusIterator, IdRegistry, SkipCounts, blank_to_null, discover, rebatch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_SCHEMA = {"id": pl.String, "image": pl.Binary, "label": pl.String}


def iter_image_corpus(directory: Path, batch_rows: int = 2_000) -> CorpusIterator:
    """Stream the image corpus under ``directory``; see the module docstring for the rules.

    Returns a :class:`CorpusIterator` (``.skipped`` holds the skip counts after iteration).
    """
    return _iter_corpus(
        Path(directory),
        batch_rows,
        IMAGE_SUFFIXES + (".parquet",),
        "*.png/*.jpg/*.jpeg or *.parquet files",
        {},
    )


RasterHandler = Callable[[Path, str, str | None, SkipCounts], Iterator[tuple[str, bytes]]]


def _iter_corpus(
    directory: Path,
    batch_rows: int,
    suffixes: tuple[str, ...],
    expected: str,
    raster_handlers: dict[str, RasterHandler],
) -> CorpusIterator:
    """Shared by the image and satellite readers. ``raster_handlers``: suffix -> fn yielding (id, png)."""
    files = discover(directory, suffixes, expected)
    rels = [p.relative_to(directory).as_posix() for p in files]
    label_map = _read_labels_csv(directory)

    def produce(skipped: SkipCounts) -> Iterator[pl.DataFrame]:
        registry = IdRegistry()
        used_labels: set[str] = set()

        def relabel(df: pl.DataFrame, tile_parent: dict[str, str] | None = None) -> pl.DataFrame:
            if not label_map:
                return df
            ids = df["id"].to_list()
            labels = df["label"].to_list()
            for k, id_ in enumerate(ids):
                key = id_ if id_ in label_map else (tile_parent or {}).get(id_)
                if key is not None and key in label_map:
                    labels[k] = label_map[key]
                    used_labels.add(key)
            return df.with_columns(pl.Series("label", labels, dtype=pl.String))

        def frames() -> Iterator[pl.DataFrame]:
            pending: list[tuple[str, Path]] = []  # image files awaiting a batch read

            def flush() -> pl.DataFrame | None:
                if not pending:
                    return None
                ids, labels, blobs = [], [], []
                for rel, path in pending:
                    try:
                        data = path.read_bytes()
                    except OSError as e:
                        raise CorpusError(f"{rel}: cannot read file: {e}") from None
                    if not data:
                        skipped.add("empty_image", example=rel)
                        continue
                    # the id is the path: unique among files, but it may collide with a parquet id
                    registry.check_unique([rel], registry.file_index(rel), lambda k, rel=rel: rel)
                    ids.append(rel)
                    labels.append(_folder_label(rel))
                    blobs.append(data)
                pending.clear()
                return _frame(ids, blobs, labels)

            for path, rel in zip(files, rels, strict=True):
                suffix = path.suffix.lower()
                if suffix in IMAGE_SUFFIXES:
                    pending.append((rel, path))
                    if len(pending) >= batch_rows:
                        df = flush()
                        if df is not None:
                            yield relabel(df)
                    continue
                df = flush()
                if df is not None:
                    yield relabel(df)
                if suffix == ".parquet":
                    for df in _read_parquet(path, rel, batch_rows, registry, skipped):
                        yield relabel(df)
                else:
                    fidx = registry.file_index(rel)
                    ids, blobs = [], []
                    for id_, png in raster_handlers[suffix](path, rel, _folder_label(rel), skipped):
                        ids.append(id_)
                        blobs.append(png)
                        if len(ids) >= batch_rows:
                            yield _raster_frame(ids, blobs, rel, fidx, registry, relabel)
                            ids, blobs = [], []
                    if ids:
                        yield _raster_frame(ids, blobs, rel, fidx, registry, relabel)
            df = flush()
            if df is not None:
                yield relabel(df)
            if label_map:
                skipped.add("labels_csv_unmatched", len(set(label_map) - used_labels))

        return rebatch(frames(), batch_rows)

    return CorpusIterator(rels, produce)


def _raster_frame(ids, blobs, rel, fidx, registry: IdRegistry, relabel) -> pl.DataFrame:
    registry.check_unique(ids, fidx, lambda k: rel)
    label = _folder_label(rel)
    df = _frame(ids, blobs, [label] * len(ids))
    return relabel(df, {i: rel for i in ids})


def _frame(ids: list[str], blobs: list[bytes], labels: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({"id": ids, "image": blobs, "label": labels}, schema=_SCHEMA)


def _folder_label(rel: str) -> str | None:
    parent = rel.rpartition("/")[0]
    return parent or None


def _read_labels_csv(directory: Path) -> dict[str, str]:
    path = directory / "labels.csv"
    if not path.is_file():
        return {}
    try:
        df = pl.read_csv(path, schema_overrides={"id": pl.String, "label": pl.String}, encoding="utf8")
    except Exception as e:
        raise CorpusError(f"{path}: cannot read labels.csv: {e}") from None
    if not {"id", "label"} <= set(df.columns):
        raise CorpusError(f"{path}: labels.csv needs columns 'id' and 'label' (available: {df.columns})")
    dup = df.filter(pl.col("id").is_duplicated())
    if dup.height:
        raise CorpusError(f"{path}: id {dup['id'][0]!r} is listed more than once")
    df = df.filter(pl.col("id").is_not_null()).with_columns(blank_to_null("label"))
    return dict(zip(df["id"].to_list(), df["label"].to_list(), strict=True))


def _read_parquet(
    path: Path, rel: str, batch_rows: int, registry: IdRegistry, skipped: SkipCounts
) -> Iterator[pl.DataFrame]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise CorpusError(f"{rel}: not a readable parquet file: {e}") from None
    schema = pf.schema_arrow
    if "image" not in schema.names:
        raise CorpusError(f"{rel}: no 'image' column (available columns: {schema.names})")
    itype = schema.field("image").type
    struct = pa.types.is_struct(itype)
    if struct:
        i = itype.get_field_index("bytes")
        ok = i >= 0 and _is_binary(itype.field(i).type)
    else:
        ok = _is_binary(itype)
    if not ok:
        raise CorpusError(f"{rel}: column 'image' must hold encoded image bytes, found type {itype}")
    cols = [c for c in ("id", "image", "label") if c in schema.names]
    fidx = registry.file_index(rel)
    row0 = 0
    try:
        batches = pf.iter_batches(batch_size=batch_rows, columns=cols)
        for batch in batches:
            df = pl.from_arrow(pa.Table.from_batches([batch]))
            n = df.height
            if struct:
                df = df.with_columns(pl.col("image").struct.field("bytes").alias("image"))
            df = df.with_columns(pl.col("image").cast(pl.Binary), pl.int_range(row0, row0 + n).alias("_row"))
            if "id" in cols:
                df = df.with_columns(pl.col("id").cast(pl.String))
                bad = df.filter(pl.col("id").is_null() | (pl.col("id").str.len_bytes() == 0))
                if bad.height:
                    raise CorpusError(f"{rel}: row {bad['_row'][0]} has an empty id (column 'id' present)")
            else:
                df = df.with_columns((pl.lit(rel + "#") + pl.col("_row").cast(pl.String)).alias("id"))
            if "label" in cols:
                df = df.with_columns(pl.col("label").cast(pl.String)).with_columns(blank_to_null("label"))
            else:
                df = df.with_columns(pl.lit(None, dtype=pl.String).alias("label"))
            keep = pl.col("image").is_not_null() & (pl.col("image").bin.size() > 0)
            empty = df.filter(~keep)
            if empty.height:
                skipped.add("empty_image", empty.height, example=f"{rel} row {empty['_row'][0]}")
                df = df.filter(keep)
            rows = df["_row"].to_list()
            registry.check_unique(df["id"].to_list(), fidx, lambda k, rows=rows: f"{rel} row {rows[k]}")
            row0 += n
            yield df.select(pl.col(c).cast(t) for c, t in _SCHEMA.items())
    except CorpusError:
        raise
    except Exception as e:
        raise CorpusError(f"{rel}: error while reading parquet: {e}") from None


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
