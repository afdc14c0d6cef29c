"""Image corpus reader -> ``id: Utf8, image: Binary (encoded file bytes), label: Utf8 (nullable)`` batches.

Sources (found recursively, hidden paths ignored, links outside the data root skipped and counted, other
files counted by extension as ignored; read in order of relative path):

(a) image files ``*.png``, ``*.jpg``, ``*.jpeg``, ``*.webp``, ``*.gif``, ``*.bmp`` (any case): ``id`` = path
    relative to the directory (posix), ``image`` = the raw file bytes (not decoded here), ``label`` = the parent
    folder relative to the directory (e.g. ``"cats"``; null for images directly in the directory).
(b) ``*.parquet`` files with an ``image`` column of bytes -- or of Hugging Face ``datasets`` image structs
    ``{bytes, path}`` -- and optional ``id`` / ``label`` columns. Without ``id``: ``"<relpath>#<row>"``.
(c) WebDataset shards ``*.tar`` (``.tar.gz`` too): ``key.jpg|jpeg|png|webp`` with an optional ``key.cls`` or
    ``key.json`` label, streamed; ``id`` = ``<shard relpath>/<key>`` (see :mod:`.webdataset`).

``labels.csv`` (columns ``id,label``) directly in the directory overrides the label of every row whose id it
lists; rows it does not list keep the label above. Its ids that match no row are counted in
``skipped["labels_csv_unmatched"]`` (they are not rows, but the count is useful).

The reader does not decode images: corrupt bytes pass through and the embedder reports them as failed.
Skip ``empty_image``: a zero-byte file or a null/empty ``image`` cell. Errors (:class:`CorpusError`): no
supported file, a parquet without an ``image`` column (names the columns it has), an ``image`` column that is
not binary, null/empty explicit ids, a duplicate id anywhere (names the id and both files), a bad labels.csv.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa

from ._common import (
    CorpusError,
    CorpusIterator,
    IdRegistry,
    SkipCounts,
    VectorColumn,
    blank_to_null,
    discover,
    rebatch,
    suffix_reader,
)
from .webdataset import WEBDATASET_SUFFIXES, iter_webdataset_frames

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")
LABELS_CSV = "labels.csv"
_SCHEMA = {"id": pl.String, "image": pl.Binary, "label": pl.String}
GEOREF = pl.Struct({"crs": pl.String, "x_min": pl.Float64, "y_min": pl.Float64, "x_max": pl.Float64,
                    "y_max": pl.Float64})
"""Where a tile lies: its bounds in the raster's coordinate reference system (an EPSG code when known)."""


def iter_image_corpus(directory: Path, batch_rows: int = 2_000, root: Path | None = None,
                      vectors: str | None = None) -> CorpusIterator:
    """Stream the image corpus under ``directory``; see the module docstring for the rules. ``root``: the
    data root links are judged against (default: ``directory``); ``vectors``: a column of precomputed vectors
    the Parquet files carry along (``readers._common.VectorColumn``).

    Returns a :class:`CorpusIterator` (``.skipped`` holds the skip counts after iteration).
    """
    return _iter_corpus(
        Path(directory),
        batch_rows,
        IMAGE_SUFFIXES + (".parquet",) + WEBDATASET_SUFFIXES,
        "*.png/*.jpg/*.jpeg/*.webp/*.gif/*.bmp, *.parquet or WebDataset *.tar files",
        {},
        root,
        vectors,
    )


RasterHandler = Callable[[Path, str, SkipCounts], Iterator[tuple[str, bytes, dict | None]]]
"""``(path, relpath, skipped) -> (tile id, PNG bytes, georeference or None)`` for a raster format."""


def _iter_corpus(
    directory: Path,
    batch_rows: int,
    suffixes: tuple[str, ...],
    expected: str,
    raster_handlers: dict[str, RasterHandler],
    root: Path | None = None,
    vectors: str | None = None,
) -> CorpusIterator:
    """Shared by the image and satellite readers. ``raster_handlers``: suffix -> tiles of one raster file."""
    listing = discover(directory, suffix_reader(suffixes), expected, root, also_read=(LABELS_CSV,))
    files = listing.files
    rels = [listing.rel(p) for p in files]
    labels_csv = LABELS_CSV if LABELS_CSV not in listing.links_outside else None
    column = VectorColumn(vectors) if vectors else None
    folder = _ImageFolder(directory, batch_rows, raster_handlers, labels_csv, column)
    return CorpusIterator(rels, lambda skipped: rebatch(folder.frames(files, rels, skipped), batch_rows), listing)


class _ImageFolder:
    """One pass over an image folder: image files in batches, Parquet files and rasters as they come, ids
    checked for uniqueness across all of them, labels from the folder or ``labels.csv``."""

    def __init__(self, directory: Path, batch_rows: int, raster_handlers: dict[str, RasterHandler],
                 labels_csv: str | None, vectors: VectorColumn | None = None):
        self.batch_rows, self.raster_handlers, self.vectors = batch_rows, raster_handlers, vectors
        self.label_map = _read_labels_csv(directory / labels_csv) if labels_csv else {}
        self.registry = IdRegistry()
        self.used_labels: set[str] = set()

    def frames(self, files: list[Path], rels: list[str], skipped: SkipCounts) -> Iterator[pl.DataFrame]:
        pending: list[tuple[str, Path]] = []  # image files awaiting a batch read
        for path, rel in zip(files, rels, strict=True):
            suffix = path.suffix.lower()
            if self.vectors is not None and suffix != ".parquet":
                self.vectors.require(rel, None)
            if suffix in IMAGE_SUFFIXES:
                pending.append((rel, path))
                if len(pending) >= self.batch_rows:
                    yield from self._image_files(pending, skipped)
                continue
            yield from self._image_files(pending, skipped)
            if suffix == ".parquet":
                for df in _read_parquet(path, rel, self.batch_rows, self.registry, skipped, self.vectors):
                    yield self._relabel(df)
            elif path.name.lower().endswith(WEBDATASET_SUFFIXES):
                yield from self._shard(path, rel, skipped)
            else:
                yield from self._raster(path, rel, skipped)
        yield from self._image_files(pending, skipped)
        if self.label_map:
            skipped.add("labels_csv_unmatched", len(set(self.label_map) - self.used_labels))

    def _image_files(self, pending: list[tuple[str, Path]], skipped: SkipCounts) -> Iterator[pl.DataFrame]:
        """The pending image files as one frame (the id is the path); empties the list."""
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
            self.registry.check_unique([rel], self.registry.file_index(rel), lambda k, rel=rel: rel)
            ids.append(rel)
            labels.append(_folder_label(rel))
            blobs.append(data)
        pending.clear()
        if ids:
            yield self._relabel(_frame(ids, blobs, labels))

    def _shard(self, path: Path, rel: str, skipped: SkipCounts) -> Iterator[pl.DataFrame]:
        """The samples of one WebDataset ``.tar`` shard (id = shard path / key), streamed."""
        fidx = self.registry.file_index(rel)
        for df in iter_webdataset_frames(path, rel, "image", self.batch_rows, skipped):
            self.registry.check_unique(df["id"].to_list(), fidx, lambda k: rel)
            yield self._relabel(df)

    def _raster(self, path: Path, rel: str, skipped: SkipCounts) -> Iterator[pl.DataFrame]:
        """The tiles of one raster file, ``batch_rows`` at a time, labelled by its folder or its own entry."""
        fidx = self.registry.file_index(rel)
        tiles = self.raster_handlers[path.suffix.lower()](path, rel, skipped)
        while batch := list(itertools.islice(tiles, self.batch_rows)):
            ids = [t[0] for t in batch]
            self.registry.check_unique(ids, fidx, lambda k: rel)
            df = _frame(ids, [t[1] for t in batch], [_folder_label(rel)] * len(ids))
            df = df.with_columns(pl.Series("georef", [t[2] for t in batch], dtype=GEOREF))
            yield self._relabel(df, tile_parent=rel)

    def _relabel(self, df: pl.DataFrame, tile_parent: str | None = None) -> pl.DataFrame:
        """Labels from ``labels.csv`` (by id, or by the raster file a tile comes from) override the folder's."""
        if not self.label_map:
            return df
        labels = df["label"].to_list()
        for k, id_ in enumerate(df["id"].to_list()):
            key = id_ if id_ in self.label_map else tile_parent
            if key in self.label_map:
                labels[k] = self.label_map[key]
                self.used_labels.add(key)
        return df.with_columns(pl.Series("label", labels, dtype=pl.String))


def _frame(ids: list[str], blobs: list[bytes], labels: list[str | None]) -> pl.DataFrame:
    return pl.DataFrame({"id": ids, "image": blobs, "label": labels}, schema=_SCHEMA)


def _folder_label(rel: str) -> str | None:
    parent = rel.rpartition("/")[0]
    return parent or None


def _read_labels_csv(path: Path) -> dict[str, str]:
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
    path: Path, rel: str, batch_rows: int, registry: IdRegistry, skipped: SkipCounts,
    vectors: VectorColumn | None = None,
) -> Iterator[pl.DataFrame]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise CorpusError(f"{rel}: not a readable parquet file: {e}") from None
    schema = pf.schema_arrow
    struct = _image_column_is_struct(schema, rel)
    cols = [c for c in ("id", "image", "label") if c in schema.names]
    if vectors is not None:
        vectors.require(rel, schema.names)
        cols.append(vectors.name)
    fidx = registry.file_index(rel)
    row0 = 0
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
            df = _canonical_batch(pl.from_arrow(pa.Table.from_batches([batch])), rel, row0, cols, struct, skipped)
            rows = df["_row"].to_list()
            registry.check_unique(df["id"].to_list(), fidx, lambda k, rows=rows: f"{rel} row {rows[k]}")
            row0 += batch.num_rows
            if vectors is not None:
                df = vectors.checked(df, lambda k, rows=rows: f"{rel} row {rows[k]}")
            yield df.select(*(pl.col(c).cast(t) for c, t in _SCHEMA.items()), *([vectors.name] if vectors else []))
    except CorpusError:
        raise
    except Exception as e:
        raise CorpusError(f"{rel}: error while reading parquet: {e}") from None


def _image_column_is_struct(schema: pa.Schema, rel: str) -> bool:
    """Whether the ``image`` column holds ``{bytes, path}`` structs (else bytes); an error for anything else."""
    if "image" not in schema.names:
        raise CorpusError(f"{rel}: no 'image' column (available columns: {schema.names})")
    itype = schema.field("image").type
    struct = pa.types.is_struct(itype)
    i = itype.get_field_index("bytes") if struct else -1
    if not (_is_binary(itype.field(i).type) if struct and i >= 0 else not struct and _is_binary(itype)):
        raise CorpusError(f"{rel}: column 'image' must hold encoded image bytes, found type {itype}")
    return struct


def _canonical_batch(df: pl.DataFrame, rel: str, row0: int, cols: list[str], struct: bool,
                     skipped: SkipCounts) -> pl.DataFrame:
    """One Parquet batch as id, image bytes, label (and ``_row``): ids checked or made, empty images skipped."""
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
    return df


def _is_binary(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)
