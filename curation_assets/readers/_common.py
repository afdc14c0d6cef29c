"""Shared machinery for the corpus readers: errors, skip counters, file discovery, re-batching, id checks."""

from __future__ import annotations

import codecs
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
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


@dataclass
class FolderListing:
    """What a user's folder holds, by the one rule the readers and the raw-files sensor share.

    - ``files``: regular files, recursively, sorted by relative path (posix);
    - ``hidden``: entries with a path part starting with "." (``.cache/a.txt``), left out;
    - ``links_outside``: symbolic links whose target lies outside the data root: never read, counted.
      A link whose target is inside the data root is followed like the file or folder it names
      (a folder link to a folder already walked is not walked twice).
    - ``ignored``: after :meth:`select`, the files no reader of this format reads, counted by extension.
    """

    directory: Path
    files: list[Path] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)
    links_outside: list[str] = field(default_factory=list)
    ignored: dict[str, int] = field(default_factory=dict)

    def rel(self, path: Path) -> str:
        return path.relative_to(self.directory).as_posix()

    def select(self, readable: Callable[[Path], bool], also_read: tuple[str, ...] = ()) -> list[Path]:
        """The files ``readable`` accepts; counts the others in ``ignored`` by extension (names in
        ``also_read`` are read by other means, e.g. ``labels.csv``, and not counted)."""
        chosen, ignored = [], Counter()
        for path in self.files:
            if readable(path):
                chosen.append(path)
            elif self.rel(path) not in also_read:
                ignored["".join(path.suffixes[-2:]).lower() or "(no extension)"] += 1
        self.ignored = dict(sorted(ignored.items()))
        return chosen

    def summary(self) -> dict:
        """Counts for the metadata: ignored files by extension, skipped links (with examples), hidden entries."""
        return {"ignored_files": self.ignored or "none", "links_outside_data_root": len(self.links_outside),
                "links_outside_examples": self.links_outside[:_MAX_EXAMPLES] or "none",
                "hidden_entries": len(self.hidden)}


def list_folder(directory: Path, root: Path | None = None) -> FolderListing:
    """The :class:`FolderListing` of ``directory``; links are judged against ``root`` (the data root; default:
    ``directory`` itself, the strictest)."""
    directory = Path(directory)
    root = Path(root or directory).resolve()
    listing = FolderListing(directory)
    walked = {directory.resolve()}
    found: list[tuple[str, Path]] = []

    def walk(folder: Path) -> None:
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            path = Path(entry.path)
            rel = path.relative_to(directory).as_posix()
            if entry.name.startswith("."):
                listing.hidden.append(rel)
                continue
            if entry.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    listing.links_outside.append(rel)
                    continue
                if target.is_dir() and target not in walked:
                    walked.add(target)
                    walk(path)
                elif target.is_file():
                    found.append((rel, path))
            elif entry.is_dir(follow_symlinks=False):
                walk(path)
            elif entry.is_file(follow_symlinks=False):
                found.append((rel, path))

    walk(directory)
    found.sort(key=lambda t: t[0])
    listing.files = [p for _, p in found]
    listing.hidden.sort()
    return listing


class CorpusIterator(Iterator[pl.DataFrame]):
    """Iterator over canonical batches (``pl.DataFrame``) of a corpus.

    Attributes, complete once iteration has finished:

    - ``skipped``: :class:`SkipCounts` -- rows dropped, by rule;
    - ``files``: the input files (relative posix paths, in reading order) -- known before iteration;
    - ``listing``: the :class:`FolderListing` (ignored files, skipped links, hidden entries);
    - ``rows``: number of rows yielded so far.
    """

    def __init__(self, files: list[str], produce: Callable[[SkipCounts], Iterator[pl.DataFrame]],
                 listing: FolderListing | None = None) -> None:
        self.files = files
        self.listing = listing
        self.skipped = SkipCounts()
        self.rows = 0
        self._it = produce(self.skipped)

    def __iter__(self) -> CorpusIterator:
        return self

    def __next__(self) -> pl.DataFrame:
        df = next(self._it)
        self.rows += df.height
        return df


def discover(directory: Path, readable: Callable[[Path], bool], expected: str, root: Path | None = None,
             also_read: tuple[str, ...] = ()) -> FolderListing:
    """The listing of ``directory`` with ``files`` narrowed to those ``readable`` accepts (sorted by relative
    path). Raises :class:`CorpusError` naming the directory and what it skipped when none is readable."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CorpusError(f"corpus directory {directory} does not exist or is not a directory")
    listing = list_folder(directory, root)
    every = list(listing.files)
    listing.files = listing.select(readable, also_read)
    if not listing.files:
        other = [listing.rel(p) for p in every]
        skipped = (f"hidden: {listing.hidden[:5]}" if listing.hidden else "no hidden entries") + ", " + \
                  (f"unsupported: {other[:5]}" if other else "no other files") + \
                  (f", links outside the data root: {listing.links_outside[:5]}" if listing.links_outside else "")
        raise CorpusError(f"no readable file under {directory} (expected {expected}; skipped {skipped})")
    return listing


def suffix_reader(suffixes: tuple[str, ...]) -> Callable[[Path], bool]:
    """Accepts files whose name ends with one of ``suffixes`` (lower-case, e.g. ``.jsonl.gz``)."""
    return lambda path: path.name.lower().endswith(suffixes)


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


class VectorColumn:
    """A column of precomputed vectors carried through a reader (``embedder.kind: precomputed``): only Parquet
    files can hold it, and every row has one, of one length across the corpus, all finite; an error names the
    file, the row and the id otherwise."""

    def __init__(self, name: str):
        self.name, self.dim = name, None

    def require(self, rel: str, names: list[str] | None) -> None:
        if names is None or self.name not in names:
            where = "it is not a Parquet file" if names is None else f"available columns: {names}"
            raise CorpusError(f"{rel}: no {self.name!r} column of vectors ({where}); embedder kind precomputed "
                              f"reads the vectors from a Parquet column {self.name!r} beside id and the content")

    def checked(self, df: pl.DataFrame, where: Callable[[int], str]) -> pl.DataFrame:
        """``df`` with its vector column as ``List(Float32)``, refused unless every row's vector is valid."""
        try:
            column = df[self.name].cast(pl.List(pl.Float32))
        except Exception as e:
            raise CorpusError(f"{where(0)}: column {self.name!r} must hold lists of numbers: {e}") from None
        lengths = column.list.len().fill_null(-1).to_numpy()
        self.dim = self.dim if self.dim is not None else (int(lengths[0]) if len(lengths) else None)
        bad = np.flatnonzero((lengths != self.dim) | (lengths <= 0))
        if len(bad):
            k = int(bad[0])
            raise CorpusError(f"{where(k)} (id {df['id'][k]!r}): {self.name!r} has "
                              f"{'no vector' if lengths[k] < 0 else f'{lengths[k]} values'}, expected "
                              f"{self.dim} like the first row")
        finite = column.list.eval(pl.element().is_finite().all()).list.first().fill_null(False).to_numpy()
        if not finite.all():
            k = int(np.flatnonzero(~finite)[0])
            raise CorpusError(f"{where(k)} (id {df['id'][k]!r}): {self.name!r} holds NaN or inf")
        return df.with_columns(column)


def blank_to_null(col: str) -> pl.Expr:
    """Strings that are null/empty/whitespace-only become null."""
    c = pl.col(col)
    return pl.when(c.str.strip_chars().str.len_bytes() > 0).then(c).otherwise(None).alias(col)
