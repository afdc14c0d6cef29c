"""WebDataset ``.tar`` shards -> ``id: Utf8, image: Binary | text: Utf8, label: Utf8 (nullable)`` batches.

A shard holds samples as consecutive members sharing a key: ``<key>.<extension>``, the key being the member's
path up to the first ``.`` of its file name (the WebDataset rule). A sample's content is ``<key>.jpg``,
``.jpeg``, ``.png`` or ``.webp`` (images, bytes passed on undecoded) or ``<key>.txt`` (text, UTF-8); its label is
``<key>.cls`` (the text of it) or else the ``"label"`` field of ``<key>.json``; other members are ignored.
``id`` = ``<shard's relative path>/<key>``.

The shard is streamed (``tarfile``'s ``r|*`` mode: one pass, nothing extracted to disk, compressed shards too),
holding only the current sample and one batch in memory. Skips: ``webdataset_missing_content`` (a sample
without the content member), ``empty_image`` / ``empty_text``. Errors (:class:`CorpusError`, naming the shard):
an unreadable or truncated tar, a key seen twice in the shard, text that is not UTF-8, a ``.json`` that is not
a JSON object.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import polars as pl

from ._common import CorpusError, SkipCounts

WEBDATASET_SUFFIXES = (".tar", ".tar.gz", ".tgz")
CONTENT_EXTENSIONS = {"image": ("jpg", "jpeg", "png", "webp"), "text": ("txt",)}
_LABEL_EXTENSIONS = ("cls", "json")
_DTYPES = {"image": pl.Binary, "text": pl.String}


def iter_webdataset_frames(
    path: Path, rel: str, content: Literal["image", "text"], batch_rows: int, skipped: SkipCounts
) -> Iterator[pl.DataFrame]:
    """Frames of at most ``batch_rows`` rows (``id``, ``content``, ``label``) of the shard at ``path``, whose
    path relative to the corpus folder is ``rel``; see the module docstring for the rules."""
    if content not in CONTENT_EXTENSIONS:
        raise ValueError(f"content must be 'image' or 'text', got {content!r}")
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    rows: dict[str, list] = {"id": [], content: [], "label": []}
    for key, members in _samples(path, rel, content):
        row = _row(rel, key, members, content, skipped)
        if row is None:
            continue
        for column, value in zip(rows, row, strict=True):
            rows[column].append(value)
        if len(rows["id"]) >= batch_rows:
            yield _frame(rows, content)
            rows = {column: [] for column in rows}
    if rows["id"]:
        yield _frame(rows, content)


def _samples(path: Path, rel: str, content: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) per sample, in shard order; only the members the reader uses are read."""
    wanted = CONTENT_EXTENSIONS[content] + _LABEL_EXTENSIONS
    seen: set[str] = set()
    key, members = None, {}
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                name = member.name
                basename = name.rpartition("/")[2]
                _, dot, extension = basename.partition(".")
                if not dot or basename.startswith("."):
                    continue  # no extension, or a hidden file: not part of a sample
                member_key = name[: len(name) - len(extension) - 1]
                if member_key != key:
                    if key is not None:
                        yield key, members
                    if member_key in seen:
                        raise CorpusError(f"{rel}: sample key {member_key!r} appears twice in the shard")
                    seen.add(member_key)
                    key, members = member_key, {}
                if extension.lower() in wanted:
                    members[extension.lower()] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
        raise CorpusError(f"{rel}: not a readable WebDataset tar shard: {type(e).__name__}: {e}") from None
    if key is not None:
        yield key, members


def _row(rel: str, key: str, members: dict[str, bytes], content: str, skipped: SkipCounts) -> tuple | None:
    """(id, content, label) of one sample, or None when a skip rule drops it."""
    sample_id = f"{rel}/{key}"
    data = next((members[e] for e in CONTENT_EXTENSIONS[content] if e in members), None)
    if data is None:
        skipped.add("webdataset_missing_content", example=sample_id)
        return None
    if content == "text":
        data = _utf8(data, rel, f"{key}.txt")
        if not data.strip():
            skipped.add("empty_text", example=sample_id)
            return None
    elif not data:
        skipped.add("empty_image", example=sample_id)
        return None
    return sample_id, data, _label(rel, key, members)


def _label(rel: str, key: str, members: dict[str, bytes]) -> str | None:
    if "cls" in members:
        label = _utf8(members["cls"], rel, f"{key}.cls").strip()
        return label or None
    if "json" not in members:
        return None
    try:
        meta = json.loads(members["json"])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorpusError(f"{rel}: {key}.json is not valid JSON: {e}") from None
    if not isinstance(meta, dict):
        raise CorpusError(f"{rel}: {key}.json must hold a JSON object, found {type(meta).__name__}")
    label = meta.get("label")
    return None if label is None or str(label).strip() == "" else str(label)


def _utf8(data: bytes, rel: str, member: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{rel}: {member}: invalid UTF-8 at byte offset {e.start}; re-encode it as UTF-8") from None


def _frame(rows: dict[str, list], content: str) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"id": pl.String, content: _DTYPES[content], "label": pl.String})
