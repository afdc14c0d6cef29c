"""Shared machinery for the corpus readers: errors, skip counters, file discovery, re-batching, id checks."""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import polars as pl

_MAX_EXAMPLES = 5


class CorpusError(ValueError):
    """A user's corpus cannot be read. The message always names the offending file (and row/field/offset)."""


class SkipCounts(dict):
    """``{rule: rows skipped by that rule}``, plus up to 5 example locations per rule in ``.examples``.

    A plain ``dict`` subclass, so ``dict(counts)`` is JSON-serialisable and can go straight into metadata.
    """

    def __init__(self) -> None:
        super().__init__()
        self.examples: dict[str, list[str]] = {}

    def add(self, rule: str, n: int = 1, example: str | None = None) -> None:
        if n <= 0:
            return
        self[rule] = self.get(rule, 0) + n
        if example is not None:
            ex = self.examples.setdefault(rule, [])
            if len(ex) < _MAX_EXAMPLES:
                ex.append(example)


class CorpusIterator(Iterator[pl.DataFrame]):
    """Iterator over canonical batches (``pl.DataFrame``) of a corpus.

    Attributes, complete once iteration has finished:

    - ``skipped``: :class:`SkipCounts` -- rows dropped, by rule;
    - ``files``: the input files (relative posix paths, in reading order) -- known before iteration;
    - ``rows``: number of rows yielded so far.
    """

    def __init__(self, files: list[str], produce: Callable[[SkipCounts], Iterator[pl.DataFrame]]) -> None:
        self.files = files
        self.skipped = SkipCounts()
        self.rows = 0
        self._it = produce(self.skipped)

    def __iter__(self) -> CorpusIterator:
        return self

    def __next__(self) -> pl.DataFrame:
        df = next(self._it)
        self.rows += df.height
        return df


def visible_files(directory: Path) -> tuple[list[Path], list[str]]:
    """(files under ``directory``, recursive, sorted by relative path; the hidden entries left out).

    Hidden = any part of the relative path starts with "." (``.docs.jsonl``, ``.cache/a.txt``). The one
    rule for what a user's folder holds, shared by the readers and the raw-files sensor.
    """
    files, hidden = [], []
    for p in directory.rglob("*"):
        rel = p.relative_to(directory)
        if any(part.startswith(".") for part in rel.parts):
            hidden.append(rel.as_posix())
        elif p.is_file():
            files.append((rel.as_posix(), p))
    files.sort(key=lambda t: t[0])
    return [p for _, p in files], sorted(hidden)


def discover(directory: Path, suffixes: Iterable[str], expected: str) -> list[Path]:
    """Visible files under ``directory`` with a lower-case suffix in ``suffixes``, sorted by relative path.

    Raises :class:`CorpusError` naming the directory and what it skipped when none is readable.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CorpusError(f"corpus directory {directory} does not exist or is not a directory")
    suffixes = {s.lower() for s in suffixes}
    files, hidden = visible_files(directory)
    found = [p for p in files if p.suffix.lower() in suffixes]
    if not found:
        other = [p.relative_to(directory).as_posix() for p in files]
        skipped = (f"hidden: {hidden[:5]}" if hidden else "no hidden entries") + ", " + \
                  (f"unsupported: {other[:5]}" if other else "no other files")
        raise CorpusError(f"no readable file under {directory} (expected {expected}; skipped {skipped})")
    return found


def rebatch(frames: Iterable[pl.DataFrame], batch_rows: int) -> Iterator[pl.DataFrame]:
    """Re-chunk a stream of frames into frames of exactly ``batch_rows`` rows (the last may be shorter); a column
    only some frames have (a raster's ``georef``) is null in the others."""
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    buf: list[pl.DataFrame] = []
    n = 0
    for df in frames:
        if df.height == 0:
            continue
        buf.append(df)
        n += df.height
        while n >= batch_rows:
            all_ = pl.concat(buf, how="diagonal_relaxed") if len(buf) > 1 else buf[0]
            yield all_.slice(0, batch_rows)
            rest = all_.slice(batch_rows)
            buf = [rest] if rest.height else []
            n = rest.height
    if n:
        yield pl.concat(buf, how="diagonal_relaxed") if len(buf) > 1 else buf[0]


class IdRegistry:
    """Remembers every id seen so far (id -> index of the file it came from) to reject duplicates."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}
        self._files: list[str] = []

    def file_index(self, relpath: str) -> int:
        self._files.append(relpath)
        return len(self._files) - 1

    def check_unique(self, ids: list[str], file_idx: int, where: Callable[[int], str]) -> None:
        """Register ``ids``; raise CorpusError naming the id and both files on a duplicate."""
        seen = self._seen
        for k, id_ in enumerate(ids):
            prev = seen.get(id_)
            if prev is not None:
                raise CorpusError(f"duplicate id {id_!r}: in {self._files[prev]} and again in {where(k)}")
            seen[id_] = file_idx

    def keep_new(self, ids: list[str], file_idx: int) -> list[bool]:
        """Register unseen ``ids``; return a mask, False for ids already seen (to be skipped)."""
        seen = self._seen
        mask = []
        for id_ in ids:
            if id_ in seen:
                mask.append(False)
            else:
                seen[id_] = file_idx
                mask.append(True)
        return mask


def utf8_error(
    path: Path | str, data: bytes, exc: UnicodeDecodeError, start_offset: int, start_line: int
) -> CorpusError:
    """CorpusError for invalid UTF-8 in ``data`` (starting at byte ``start_offset``, line ``start_line``)."""
    line = start_line + data.count(b"\n", 0, exc.start)
    return CorpusError(
        f"{path}: invalid UTF-8 at byte offset {start_offset + exc.start} (line {line}): {exc.reason}; "
        "re-encode the file as UTF-8"
    )


def check_utf8(path: Path, display: str, chunk_bytes: int = 16 << 20) -> None:
    """Stream ``path`` through a strict UTF-8 decoder; CorpusError with byte offset and line on failure."""
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    offset = 0
    line = 1
    with open(path, "rb") as f:
        while True:
            chunk = f.read(chunk_bytes)
            final = not chunk
            try:
                dec.decode(chunk, final)
            except UnicodeDecodeError as e:
                # an error straddling chunk boundaries is reported at the chunk start at worst
                raise utf8_error(display, chunk, e, offset, line) from None
            if final:
                return
            offset += len(chunk)
            line += chunk.count(b"\n")


def blank_to_null(col: str) -> pl.Expr:
    """Strings that are null/empty/whitespace-only become null."""
    c = pl.col(col)
    return pl.when(c.str.strip_chars().str.len_bytes() > 0).then(c).otherwise(None).alias(col)
