"""Text corpus reader: ``*.parquet``, ``*.jsonl``, ``*.csv``, ``*.txt`` files -> ``id, text, label`` batches.

Rules (skip = drop the row and count it in ``iterator.skipped``; error = raise :class:`CorpusError`):

- Files are found recursively under the directory (hidden paths ignored) and read in order of relative path.
- parquet/jsonl/csv must have a ``text`` column (jsonl: the first record must have a ``"text"`` key) -- error
  naming the file and the columns it has. ``.txt``: one document per non-empty line (line terminators removed,
  other whitespace kept).
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
  an ``id`` (names the first record without one).
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa

from ._common import (
    CorpusError,
    CorpusIterator,
    IdRegistry,
    SkipCounts,
    blank_to_null,
    check_utf8,
    discover,
    rebatch,
    utf8_error,
)

TEXT_SUFFIXES = (".parquet", ".jsonl", ".csv", ".txt")
_SCHEMA = {"id": pl.String, "text": pl.String, "label": pl.String}


def content_id(text: str) -> str:
    """Stable content-derived id: ``"sha1:" + first 16 hex digits of sha1(text utf-8)``."""
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def iter_text_corpus(directory: Path, batch_rows: int = 50_000) -> CorpusIterator:
    """Stream the text corpus under ``directory`` as DataFrames ``id: Utf8, text: Utf8, label: Utf8 (null)``.

    Returns a :class:`CorpusIterator`; after iteration ``.skipped`` holds the skip counts. Raises CorpusError
    immediately when no supported file exists, and during iteration for bad files (see module docstring).
    """
    directory = Path(directory)
    files = discover(directory, TEXT_SUFFIXES, "*.parquet, *.jsonl, *.csv or *.txt files")
    rels = [p.relative_to(directory).as_posix() for p in files]

    def produce(skipped: SkipCounts) -> Iterator[pl.DataFrame]:
        registry = IdRegistry()

        def frames() -> Iterator[pl.DataFrame]:
            for path, rel in zip(files, rels, strict=True):
                fidx = registry.file_index(rel)
                row0 = 0
                for raw, has_id in _read_file(path, rel, batch_rows):
                    yield _finalize(raw, has_id, rel, row0, fidx, registry, skipped)
                    row0 += raw.height

        return rebatch(frames(), batch_rows)

    return CorpusIterator(rels, produce)


def _finalize(
    raw: pl.DataFrame, has_id: bool, rel: str, row0: int, fidx: int, registry: IdRegistry, skipped: SkipCounts
) -> pl.DataFrame:
    """raw (text[, id][, label]) -> canonical frame; applies skip rules and the id checks."""
    try:
        df = raw.with_columns(pl.col(c).cast(pl.String) for c in raw.columns)
    except Exception as e:  # e.g. a binary/struct text column
        raise CorpusError(f"{rel}: cannot read columns {raw.columns} as strings: {e}") from None
    if "label" not in df.columns:
        df = df.with_columns(pl.lit(None, dtype=pl.String).alias("label"))
    df = df.with_columns(blank_to_null("label"), pl.int_range(0, pl.len(), dtype=pl.Int64).alias("_row"))
    keep = pl.col("text").str.strip_chars().str.len_bytes() > 0
    n_empty = df.height - df.select(keep.sum()).item()
    if n_empty:
        first = df.filter(~keep.fill_null(False))["_row"][0] + row0
        skipped.add("empty_text", n_empty, example=f"{rel} row {first}")
        df = df.filter(keep)
    if has_id:
        bad = df.filter(pl.col("id").is_null() | (pl.col("id").str.len_bytes() == 0))
        if bad.height:
            raise CorpusError(f"{rel}: row {bad['_row'][0] + row0} has an empty id (column 'id' present)")
        rows = df["_row"].to_list()
        registry.check_unique(df["id"].to_list(), fidx, lambda k: f"{rel} row {rows[k] + row0}")
    else:
        ids = [content_id(t) for t in df["text"].to_list()]
        mask = registry.keep_new(ids, fidx)
        df = df.with_columns(pl.Series("id", ids, dtype=pl.String))
        n_dup = len(mask) - sum(mask)
        if n_dup:
            first = df["_row"][mask.index(False)] + row0
            skipped.add("duplicate_text", n_dup, example=f"{rel} row {first}")
            df = df.filter(pl.Series(mask))
    return df.select(pl.col(c).cast(t) for c, t in _SCHEMA.items())


def _read_file(path: Path, rel: str, batch_rows: int) -> Iterator[tuple[pl.DataFrame, bool]]:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        yield from _read_parquet(path, rel, batch_rows)
    elif suffix == ".jsonl":
        yield from _read_jsonl(path, rel, batch_rows)
    elif suffix == ".csv":
        yield from _read_csv(path, rel)
    else:
        yield from _read_txt(path, rel, batch_rows)


def _missing_text(rel: str, columns: list[str]) -> CorpusError:
    return CorpusError(f"{rel}: no 'text' column (available columns: {columns})")


def _read_parquet(path: Path, rel: str, batch_rows: int) -> Iterator[tuple[pl.DataFrame, bool]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise CorpusError(f"{rel}: not a readable parquet file: {e}") from None
    names = pf.schema_arrow.names
    if "text" not in names:
        raise _missing_text(rel, names)
    text_type = pf.schema_arrow.field("text").type
    if not (pa.types.is_string(text_type) or pa.types.is_large_string(text_type)
            or pa.types.is_string_view(text_type)):
        raise CorpusError(f"{rel}: column 'text' must hold strings, found type {text_type}")
    cols = [c for c in ("id", "text", "label") if c in names]
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
            yield pl.from_arrow(pa.Table.from_batches([batch])), "id" in cols
    except CorpusError:
        raise
    except Exception as e:
        raise CorpusError(f"{rel}: error while reading parquet: {e}") from None


def _read_lines(path: Path, rel: str, batch_rows: int) -> Iterator[tuple[list[str], int]]:
    """Yield (decoded lines without terminators, 1-based number of the first line) in chunks; strict UTF-8."""
    with open(path, "rb") as f:
        offset = 0
        line_no = 1
        while True:
            chunk_lines = f.readlines(1 << 22)  # ~4 MiB of whole lines
            if not chunk_lines:
                return
            data = b"".join(chunk_lines)
            if line_no == 1 and data.startswith(codecs.BOM_UTF8):
                data = data[3:]
                offset += 3
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise utf8_error(rel, data, e, offset, line_no) from None
            lines = text.split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            lines = [s[:-1] if s.endswith("\r") else s for s in lines]
            for i in range(0, len(lines), batch_rows):
                yield lines[i : i + batch_rows], line_no + i
            offset += len(data)
            line_no += data.count(b"\n")


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


def _record(rec: object, rel: str, line: int) -> tuple[str | None, str | None, str | None, bool]:
    """(text, id, label, has id) of one jsonl record; errors name the file and line."""
    if not isinstance(rec, dict):
        raise CorpusError(f"{rel}: line {line} is not a JSON object")
    text = rec.get("text")
    if text is not None and not isinstance(text, str):
        raise CorpusError(f"{rel}: line {line}: 'text' must be a string, got {type(text).__name__} {text!r:.40}")
    try:
        return text, _scalar_str(rec.get("id")), _scalar_str(rec.get("label")), "id" in rec
    except TypeError as e:
        raise CorpusError(f"{rel}: line {line}: 'id'/'label' must be a string or scalar, got {e}") from None


def _read_jsonl(path: Path, rel: str, batch_rows: int) -> Iterator[tuple[pl.DataFrame, bool]]:
    has_id: bool | None = None
    first_line = 0
    for lines, line0 in _read_lines(path, rel, batch_rows):
        ids: list[str | None] = []
        texts: list[str | None] = []
        labels: list[str | None] = []
        for k, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise CorpusError(f"{rel}: line {line0 + k} is not valid JSON: {e}") from None
            text, id_, label, rec_has_id = _record(rec, rel, line0 + k)
            if has_id is None:  # the first record decides: the user's ids for every record, or none
                if "text" not in rec:
                    raise _missing_text(rel, list(rec))
                has_id, first_line = rec_has_id, line0 + k
            elif rec_has_id != has_id:
                without = line0 + k if has_id else first_line
                raise CorpusError(f"{rel}: line {without} has no 'id' but other records have one: give every "
                                  "record an id, or none (content-hash ids)")
            texts.append(text)
            ids.append(id_)
            labels.append(label)
        if not texts:
            continue
        data: dict[str, list[str | None]] = {"text": texts, "label": labels}
        if has_id:
            data["id"] = ids
        yield pl.DataFrame(data, schema={c: pl.String for c in data}), bool(has_id)


def _read_csv(path: Path, rel: str) -> Iterator[tuple[pl.DataFrame, bool]]:
    import pyarrow.csv as pacsv

    check_utf8(path, rel)
    if path.stat().st_size == 0:
        raise _missing_text(rel, [])
    try:
        probe = pacsv.open_csv(path, parse_options=pacsv.ParseOptions(newlines_in_values=True))
        names = probe.schema.names
        probe.close()
    except Exception as e:
        raise CorpusError(f"{rel}: cannot parse CSV header: {e}") from None
    if "text" not in names:
        raise _missing_text(rel, names)
    cols = [c for c in ("id", "text", "label") if c in names]
    convert = pacsv.ConvertOptions(
        include_columns=cols,
        column_types={c: pa.string() for c in cols},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=8 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=convert,
        )
        for batch in reader:
            yield pl.from_arrow(pa.Table.from_batches([batch])), "id" in cols
    except CorpusError:
        raise
    except Exception as e:
        raise CorpusError(f"{rel}: error while parsing CSV: {e}") from None
