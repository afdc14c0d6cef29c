"""The curated dataset as WebDataset ``.tar`` shards (``webdataset.WebDataset(urls)`` and any tar reader read them).

Layout of ``<directory>/webdataset/``: ``train-00000-of-00003.tar`` …, each row of the table one sample:

- ``<key>.png`` / ``.jpg`` / ``.webp`` / ``.gif`` / ``.bmp`` / ``.tiff`` (by the bytes' magic; ``.bin`` otherwise)
  for an ``image`` column (encoded bytes, or a ``{bytes, path}`` struct), or ``<key>.txt`` for a ``text`` column;
- ``<key>.json``: the row's ``id``, ``label``, ``cluster_level_*`` and every other column (structs such as
  ``georef`` as objects);
- ``<key>.cls``: the label, only when it is an integer (WebDataset's decoder reads ``.cls`` as ``int``; any
  other label is in the ``.json`` alone).

``key`` is the id percent-encoded with ``.`` and ``/`` escaped too (WebDataset cuts a key at the first ``.``
of a member's name), so it is unique and the id can be read back from it or from the ``.json``. Members have
fixed metadata (mtime 0, mode 0644): the same rows give the same bytes.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from pathlib import Path
from urllib.parse import quote

import pyarrow as pa

from curation_assets.store.files import make_temp_dir, publish_shards

WEBDATASET_DIR = "webdataset"
_TEMP_PREFIX = ".webdataset-"
_IMAGE_MAGIC = ((b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF8", "gif"), (b"BM", "bmp"),
                (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"))
_INTEGER = re.compile(r"-?\d+")


def sample_key(row_id: str) -> str:
    """The WebDataset key of an id: percent-encoded, ``.`` and ``/`` included, so it holds neither."""
    return quote(row_id, safe="").replace(".", "%2E")


def image_extension(data: bytes) -> str:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return next((ext for magic, ext in _IMAGE_MAGIC if data.startswith(magic)), "bin")


class WebDatasetWriter:
    """Writes tables into ``.tar`` shards of at most ``shard_rows`` rows and about ``shard_bytes`` bytes, in a
    temp directory; :meth:`publish` names them ``train-XXXXX-of-NNNNN.tar`` and swaps them in as
    ``<directory>/webdataset/``; :meth:`abort` drops them."""

    def __init__(self, directory: Path, shard_rows: int, shard_bytes: int):
        if shard_rows < 1 or shard_bytes < 1:
            raise ValueError(f"shard_rows and shard_bytes must be >= 1, got {shard_rows}, {shard_bytes}")
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(f"{_TEMP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.directory, self.shard_rows, self.shard_bytes = directory, shard_rows, shard_bytes
        self.tmp = make_temp_dir(directory, _TEMP_PREFIX)
        self.paths: list[Path] = []
        self.rows = 0
        self._tar: tarfile.TarFile | None = None
        self._shard_rows = 0

    def write(self, table: pa.Table) -> None:
        content = "image" if "image" in table.column_names else "text"
        if content not in table.column_names or "id" not in table.column_names:
            raise ValueError(f"a WebDataset row needs 'id' and 'image' or 'text' columns, got {table.column_names}")
        for row in table.to_pylist():
            if self._tar is None:
                self.paths.append(self.tmp / f"part-{len(self.paths):05d}.tar")
                self._tar = tarfile.open(self.paths[-1], mode="w", format=tarfile.PAX_FORMAT)
                self._shard_rows = 0
            self._add_sample(row, content)
            self._shard_rows += 1
            self.rows += 1
            if self._shard_rows >= self.shard_rows or self._tar.fileobj.tell() >= self.shard_bytes:
                self._close_shard()

    def _add_sample(self, row: dict, content: str) -> None:
        key = sample_key(row["id"])
        data = row.pop(content)
        if isinstance(data, dict):  # a Hugging Face image struct {bytes, path}
            data = data["bytes"]
        if data is None:
            raise ValueError(f"row {row['id']!r} has no {content}")
        if content == "image":
            self._add_member(f"{key}.{image_extension(data)}", data)
        else:
            self._add_member(f"{key}.txt", data.encode("utf-8"))
        label = row.get("label")
        if label is not None and _INTEGER.fullmatch(str(label)):
            self._add_member(f"{key}.cls", str(label).encode())
        self._add_member(f"{key}.json", json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8"))

    def _add_member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        self._tar.addfile(info, io.BytesIO(data))

    def _close_shard(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None

    def publish(self) -> list[Path]:
        """Name the shards and replace the previous ``webdataset/`` folder; returns the shard paths."""
        self._close_shard()
        return publish_shards(self.tmp, self.paths, self.directory, WEBDATASET_DIR, ".tar")

    def abort(self) -> None:
        self._close_shard()
        shutil.rmtree(self.tmp, ignore_errors=True)
