"""Text corpus reader: ``*.parquet``, ``*.jsonl`` (also ``.jsonl.gz``), ``*.json``, ``*.csv``, ``*.tsv``, ``*.txt``
files -> ``id, text, label`` batches.

Rules (skip = drop the row and count it in ``iterator.skipped``; error = raise :class:`CorpusError`):

- WebDataset shards (``*.tar``): ``key.txt`` with an optional ``key.cls`` / ``key.json`` label, id = shard/key.
- Files are found recursively under the directory (hidden paths ignored, links outside the data root skipped
  and counted, other files counted by extension as ignored) and read in order of relative path.
- parquet/jsonl/json/csv/tsv must have a ``text`` column (jsonl: the first record must have a ``"text"`` key;
  ``.json``: an array of such records) -- error naming the file and the columns it has; a repeated header
  name is an error. ``.txt``: one document per non-empty line (``\n``, ``\r\n`` and a lone ``\r`` all end
  a line; terminators removed, other whitespace kept).
- ``id``: the file's ``id`` column cast to string when present (a null/empty id is an error naming file and
  row: a file's ids are all the user's or none are); otherwise ``"sha1:" + sha1(text, utf-8).hexdigest()[:16]``.
- ``text`` must hold strings: a parquet column of another type, or a jsonl value that is not a string, is an
  error naming the file (and line) and the type, never silently cast.
- ``label`` (optional, benchmarks only) is passed through as a string; empty labels become null.
- skip ``empty_text``: text null, missing, empty or whitespace-only.
- skip ``duplicate_text``: a row *without* an explicit id whose content-derived id was already seen, i.e. an
  exact duplicate text (duplicates are common in scraped text and are not a user error).
- error: an explicit id seen twice anywhere in the corpus (message names the id and both files).
- error: bytes that are not valid UTF-8 in csv/jsonl/txt -- the message names the file, the byte offset and
  the line. We do *not* decode with ``errors="replace"``: silently altered text would change ids and
  embeddings.
- error: a jsonl line that is not a JSON object (names file and line); jsonl records that disagree on having
  an ``id`` (names the first record without one); a string with a lone surrogate (an emoji cut in half,
  ``"\ud83d"``: not encodable as UTF-8; names file and line); a csv/tsv row whose field count differs from
  the header's (names file and line).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import json
import re
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
    check_utf8,
    discover,
    rebatch,
    suffix_reader,
    utf8_error,
)
from .webdataset import WEBDATASET_SUFFIXES, iter_webdataset_frames

TEXT_SUFFIXES = (".parquet", ".jsonl", ".jsonl.gz", ".json", ".csv", ".tsv", ".txt") + WEBDATASET_SUFFIXES
_LINE_END = re.compile(r"\r\n|\r|\n")
_SCHEMA = {"id": pl.String, "text": pl.String, "label": pl.String}


def content_id(text: str) -> str:
    """Stable content-derived id: ``"sha1:" + first 16 hex digits of sha1(text utf-8)``."""
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def iter_text_corpus(directory: Path, batch_rows: int = 50_000, root: Path | None = None,
                     vectors: str | None = None) -> CorpusIterator:
    """Stream the text corpus under ``directory`` as DataFrames ``id: Utf8, text: Utf8, label: Utf8 (null)``.

    Returns a :class:`CorpusIterator`; after iteration ``.skipped`` holds the skip counts. Raises CorpusError
    immediately when no supported file exists, and during iteration for bad files (see module docstring).
    ``root``: the data root links are judged against (default: ``directory``). ``vectors``: a column of
    precomputed vectors the Parquet files carry along (:class:`VectorColumn`).
    """
    directory = Path(directory)
    listing = discover(directory, suffix_reader(TEXT_SUFFIXES), "*.parquet, *.jsonl, *.json, *.csv, *.tsv, *.txt "
                       "or WebDataset *.tar files", root)
    files = listing.files
    rels = [listing.rel(p) for p in files]

    def produce(skipped: SkipCounts) -> Iterator[pl.DataFrame]:
        registry = IdRegistry()
        column = VectorColumn(vectors) if vectors else None

        def frames() -> Iterator[pl.DataFrame]:
            for path, rel in zip(files, rels, strict=True):
                fidx = registry.file_index(rel)
                row0 = 0
                if column is not None and not path.name.lower().endswith(".parquet"):
                    column.require(rel, None)
                for raw, has_id in _read_file(path, rel, batch_rows, skipped, column):
                    yield _finalize(raw, has_id, rel, row0, fidx, registry, skipped, column)
                    row0 += raw.height

        return rebatch(frames(), batch_rows)

    return CorpusIterator(rels, produce, listing)


def _where(df: pl.DataFrame, rel: str, row0: int) -> Callable[[int], str]:
    """Where row k of ``df`` came from: ``file line N`` (jsonl/json: the record's line or position) or
    ``file row N`` (parquet/csv: 0-based data row)."""
    if "_line" in df.columns:
        lines = df["_line"].to_list()
        return lambda k: f"{rel} line {lines[k]}"
    rows = df["_row"].to_list()
    return lambda k: f"{rel} row {rows[k] + row0}"


def _finalize(
    raw: pl.DataFrame, has_id: bool, rel: str, row0: int, fidx: int, registry: IdRegistry, skipped: SkipCounts,
    vectors: VectorColumn | None = None,
) -> pl.DataFrame:
    """raw (text[, id][, label][, _line][, vectors]) -> canonical frame; applies skip rules and the id checks."""
    carried = [vectors.name] if vectors is not None else []
    try:
        df = raw.with_columns(pl.col(c).cast(pl.String) for c in raw.columns if c not in ("_line", *carried))
    except Exception as e:  # e.g. a binary/struct text column
        raise CorpusError(f"{rel}: cannot read columns {raw.columns} as strings: {e}") from None
    if "label" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("label"))
    df = df.with_columns(blank_to_null("label"), pl.int_range(0, pl.len(), dtype=pl.Int64).alias("_row"))
    keep = pl.col("text").str.strip_chars().str.len_bytes() > 0
    n_empty = df.height - df.select(keep.sum()).item()
    if n_empty:
        first = _where(df, rel, row0)(int(df.with_row_index("_k").filter(~keep.fill_null(False))["_k"][0]))
        skipped.add("empty_text", n_empty, example=first)
        df = df.filter(keep)
    where = _where(df, rel, row0)
    if has_id:
        bad = df.with_row_index("_k").filter(pl.col("id").is_null() | (pl.col("id").str.len_bytes() == 0))
        if bad.height:
            raise CorpusError(f"{where(int(bad['_k'][0]))} has an empty id (column 'id' present)")
        registry.check_unique(df["id"].to_list(), fidx, where)
    else:
        ids = [content_id(t) for t in df["text"].to_list()]
        mask = registry.keep_new(ids, fidx)
        df = df.with_columns(pl.Series("id", ids, dtype=pl.String))
        n_dup = len(mask) - sum(mask)
        if n_dup:
            skipped.add("duplicate_text", n_dup, example=where(mask.index(False)))
            df = df.filter(pl.Series(mask))
    if vectors is not None:
        df = vectors.checked(df, _where(df, rel, row0))
    return df.select(*(pl.col(c).cast(t) for c, t in _SCHEMA.items()), *carried)


def _read_file(path: Path, rel: str, batch_rows: int, skipped: SkipCounts,
               vectors: VectorColumn | None = None) -> Iterator[tuple[pl.DataFrame, bool]]:
    name = path.name.lower()
    if name.endswith(".parquet"):
        yield from _read_parquet(path, rel, batch_rows, vectors)
    elif name.endswith((".jsonl", ".jsonl.gz")):
        yield from _read_jsonl(path, rel, batch_rows)
    elif name.endswith(".json"):
        yield from _read_json(path, rel)
    elif name.endswith((".csv", ".tsv")):
        yield from _read_csv(path, rel, "\t" if name.endswith(".tsv") else ",")
    elif name.endswith(WEBDATASET_SUFFIXES):
        for frame in iter_webdataset_frames(path, rel, "text", batch_rows, skipped):
            yield frame, True
    else:
        yield from _read_txt(path, rel, batch_rows)


def _missing_text(rel: str, columns: list[str]) -> CorpusError:
    return CorpusError(f"{rel}: no 'text' column (available columns: {columns})")


def _read_parquet(path: Path, rel: str, batch_rows: int,
                  vectors: VectorColumn | None = None) -> Iterator[tuple[pl.DataFrame, bool]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise CorpusError(f"{rel}: not a readable parquet file: {e}") from None
    names = pf.schema_arrow.names
    _check_header(rel, names)
    text_type = pf.schema_arrow.field("text").type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)
            or pa.types.is_string_view(text_type)):
        raise CorpusError(f"{rel}: column 'text' must hold strings, found type {text_type}")
    cols = [c for c in ("id", "text", "label") if c in names]
    if vectors is not None:
        vectors.require(rel, names)
        cols.append(vectors.name)
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
            yield pl.from_arrow(pa.Table.from_batches([batch])), "id" in cols
    except CorpusError:
        raise
    except Exception as e:
        raise CorpusError(f"{rel}: error while reading parquet: {e}") from None


def _check_header(rel: str, names: list[str]) -> None:
    """A ``text`` column, and no repeated name among the columns the reader uses."""
    if "text" not in names:
        raise _missing_text(rel, names)
    for name in ("id", "text", "label"):
        if names.count(name) > 1:
            raise CorpusError(f"{rel}: column {name!r} appears {names.count(name)} times in the header; "
                              "rename the extra ones")


def _read_lines(path: Path, rel: str, batch_rows: int) -> Iterator[tuple[list[str], int]]:
    """Yield (decoded lines without terminators, 1-based number of the first line) in chunks; strict UTF-8.
    ``\\n``, ``\\r\\n`` and a lone ``\\r`` end a line; ``.gz`` files are decompressed as they stream."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        offset, line_no = 0, 1
        while True:
            data = b"".join(f.readlines(1 << 22))  # ~4 MiB of whole lines
            if not data:
                return
            if line_no == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[3:]
                offset += 3
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise utf8_error(rel, data, e, offset, line_no) from None
            lines = _LINE_END.split(text)
            if lines and lines[-1] == "":
                lines.pop()
            for i in range(0, len(lines), batch_rows):
                yield lines[i : i + batch_rows], line_no + i
            offset += len(data)
            line_no += len(lines)


def _read_txt(path: Path, rel: str, batch_rows: int) -> Iterator[tuple[pl.DataFrame, bool]]:
    for lines, _ in _read_lines(path, rel, batch_rows):
        # blank lines are separators, not documents: drop them silently (not counted as empty_text)
        docs = [s for s in lines if s.strip()]
        if docs:
            yield pl.DataFrame({"text": docs}, schema={"text": pl.String}), False


def _scalar_str(v: object) -> str | None:
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, bool | int | float):
        return json.dumps(v)
    raise TypeError(type(v).__name__)


def _encodable(value: str | None, field: str, where: str) -> str | None:
    """``value`` unless it holds a lone surrogate (``"\\ud83d"``: half an emoji), which UTF-8 cannot store."""
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise CorpusError(f"{where}: {field!r} holds a lone surrogate {value[e.start]!r} at character {e.start} "
                              "(half of a character, e.g. an emoji cut in two): fix or remove it") from None
    return value


def _record(rec: object, where: str) -> tuple[str | None, str | None, str | None, bool]:
    """(text, id, label, has id) of one json record; errors name the file and line (``where``)."""
    if not isinstance(rec, dict):
        raise CorpusError(f"{where} is not a JSON object")
    text = rec.get("text")
    if text is not None and not isinstance(text, str):
        raise CorpusError(f"{where}: 'text' must be a string, got {type(text).__name__} {text!r:.40}")
    try:
        id_, label = _scalar_str(rec.get("id")), _scalar_str(rec.get("label"))
    except TypeError as e:
        raise CorpusError(f"{where}: 'id'/'label' must be a string or scalar, got {e}") from None
    return (_encodable(text, "text", where), _encodable(id_, "id", where), _encodable(label, "label", where),
            "id" in rec)


class _Records:
    """json records of one file gathered into frames; the first record decides whether every record has an id."""

    def __init__(self, rel: str):
        self.rel, self.has_id, self.first = rel, None, ""
        self.columns: dict[str, list] = {"text": [], "id": [], "label": [], "_line": []}

    def add(self, rec: object, line: int, where: str) -> None:
        text, id_, label, rec_has_id = _record(rec, where)
        if self.has_id is None:
            if "text" not in rec:
                raise _missing_text(self.rel, list(rec))
            self.has_id, self.first = rec_has_id, where
        elif rec_has_id != self.has_id:
            without = where if self.has_id else self.first
            raise CorpusError(f"{without} has no 'id' but other records have one: give every record an id, or "
                              "none (content-hash ids)")
        for name, value in zip(self.columns, (text, id_, label, line), strict=True):
            self.columns[name].append(value)

    def frame(self) -> tuple[pl.DataFrame, bool] | None:
        if not self.columns["text"]:
            return None
        data = {k: v for k, v in self.columns.items() if k != "id" or self.has_id}
        schema = {c: (pl.Int64 if c == "_line" else pl.String) for c in data}
        self.columns = {k: [] for k in self.columns}
        return pl.DataFrame(data, schema=schema), bool(self.has_id)


def _read_jsonl(path: Path, rel: str, batch_rows: int) -> Iterator[tuple[pl.DataFrame, bool]]:
    records = _Records(rel)
    for lines, line0 in _read_lines(path, rel, batch_rows):
        for k, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{rel}: line {line0 + k} is not valid JSON: {e}") from None
            records.add(rec, line0 + k, f"{rel}: line {line0 + k}")
        if (frame := records.frame()) is not None:
            yield frame


def _read_json(path: Path, rel: str) -> Iterator[tuple[pl.DataFrame, bool]]:
    """A ``.json`` file holding an array of records (read whole: for files that fit in memory)."""
    check_utf8(path, rel)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise CorpusError(f"{rel}: not valid JSON: {e}") from None
    if not isinstance(data, list):
        raise CorpusError(f"{rel}: a .json corpus must be an array of records like {{\"text\": ...}}, got "
                          f"{type(data).__name__} (one record per line: use .jsonl)")
    records = _Records(rel)
    for k, rec in enumerate(data):
        records.add(rec, k + 1, f"{rel}: record {k + 1}")
    if (frame := records.frame()) is not None:
        yield frame


def _csv_header(path: Path, rel: str, delimiter: str) -> list[str]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        try:
            return next(csv.reader(f, delimiter=delimiter))
        except StopIteration:
            raise _missing_text(rel, []) from None
        except csv.Error as e:
            raise CorpusError(f"{rel}: cannot parse the CSV header: {e}") from None


def _csv_problem(path: Path, rel: str, delimiter: str, fields: int, cause: Exception) -> CorpusError:
    """Name the first line whose field count differs from the header's (pyarrow's message names no line)."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter=delimiter)
        try:
            for row in reader:
                if row and len(row) != fields:
                    return CorpusError(f"{rel}: line {reader.line_num} has {len(row)} fields, the header has "
                                       f"{fields}; quote values that contain {delimiter!r} or fix the row")
        except csv.Error as e:
            return CorpusError(f"{rel}: line {reader.line_num}: {e}")
    return CorpusError(f"{rel}: error while parsing CSV: {cause}")


def _read_csv(path: Path, rel: str, delimiter: str) -> Iterator[tuple[pl.DataFrame, bool]]:
    import pyarrow.csv as pacsv

    check_utf8(path, rel)
    names = _csv_header(path, rel, delimiter)
    _check_header(rel, names)
    cols = [c for c in ("id", "text", "label") if c in names]
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    convert = pacsv.ConvertOptions(include_columns=cols, column_types={c: pa.string() for c in cols},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=8 << 20), parse_options=parse,
                                convert_options=convert)
        for batch in reader:
            yield pl.from_arrow(pa.Table.from_batches([batch])), "id" in cols
    except CorpusError:
        raise
    except pa.ArrowInvalid as e:
        raise _csv_problem(path, rel, delimiter, len(names), e) from None
    except Exception as e:
        raise CorpusError(f"{rel}: error while parsing CSV: {e}") from None
