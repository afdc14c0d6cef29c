"""Where every artefact lives under the data root, atomic writes, and fingerprints for reuse.

Layout under ``CURATION_DATA_DIR`` (default ``data/``)::

    raw/<modality>/                 files a user drops in
    corpus/<modality>/corpus.parquet
    embeddings/<modality>/shards/part-*.npy (float32 or float16 memmaps) + rows.parquet
    deduplicated/<modality>/kept.parquet + removed.parquet
    clustering/<modality>/level_<t>/centroids.npy, assignment.npy, distances.npy
    curated/<modality>/subset.parquet
    benchmarks/<modality>.parquet

Every artefact directory holds ``fingerprint.json``, written last: the hash of the inputs
and settings that produced it plus the materialization's metadata. An asset whose
fingerprint matches skips its work (cheap reruns, resume after a crash).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
from filelock import FileLock

from curation_assets.config import REPO_ROOT

FINGERPRINT_FILE = "fingerprint.json"


def data_root() -> Path:
    return Path(os.environ.get("CURATION_DATA_DIR", REPO_ROOT / "data")).resolve()


def confined(root: Path, relative: str | os.PathLike) -> Path:
    """Resolve a configured path inside the data root; refuse anything that escapes it."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"configured path {str(relative)!r} resolves to {path}, outside the data root {root}")
    return path


class Layout:
    """Paths of one modality's artefacts."""

    def __init__(self, modality: str, root: Path | None = None):
        self.root = root or data_root()
        self.modality = modality

    def raw_dir(self, configured: str | None = None) -> Path:
        return confined(self.root, configured or f"raw/{self.modality}")

    @property
    def corpus_dir(self) -> Path:
        return self.root / "corpus" / self.modality

    @property
    def embeddings_dir(self) -> Path:
        return self.root / "embeddings" / self.modality

    def level_dir(self, t: int) -> Path:
        return self.root / "clustering" / self.modality / f"level_{t}"

    @property
    def dedup_dir(self) -> Path:
        return self.root / "deduplicated" / self.modality

    @property
    def curated_dir(self) -> Path:
        return self.root / "curated" / self.modality

    @property
    def benchmark_file(self) -> Path:
        return self.root / "benchmarks" / f"{self.modality}.parquet"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock of this modality: two runs of one partition never write at once."""
        lock_dir = self.root / "_locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / f"{self.modality}.lock")):
            yield


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_npy(path: Path, array: np.ndarray) -> None:
    """Atomic ``.npy`` write (temp file + rename)."""
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    _atomic(path, write)


def load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    """Open a ``.npy`` as a read-only memory map; pickled object arrays are refused."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot load without pickle (object arrays are refused): {exc}") from exc


def save_parquet(path: Path, frame: pl.DataFrame) -> None:
    """Atomic, deterministic Parquet write (zstd, no statistics timestamps)."""
    _atomic(path, lambda tmp: frame.write_parquet(tmp, compression="zstd"))


def save_json(path: Path, obj) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(obj, indent=1, sort_keys=True, default=str)))


def fingerprint(*parts) -> str:
    """Stable short hash of JSON-serialisable parts (settings, upstream fingerprints, code versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_digest(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of a file's bytes (prefix), for fingerprints of raw inputs."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()[:16]


def read_fingerprint(directory: Path) -> dict | None:
    path = directory / FINGERPRINT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def cached(directory: Path, fp: str) -> dict | None:
    """The stored record of ``directory`` if it was produced from fingerprint ``fp``, else None."""
    record = read_fingerprint(directory)
    return record if record is not None and record.get("fingerprint") == fp else None


def invalidate(directory: Path) -> None:
    """Forget ``directory``'s fingerprint before replacing its files: a crash half-way then reads as
    'not computed' (and is recomputed), never as an up-to-date mix of old and new files."""
    (directory / FINGERPRINT_FILE).unlink(missing_ok=True)


def write_fingerprint(directory: Path, fp: str, metadata: dict) -> None:
    """Mark ``directory`` complete for ``fp``; written after all of its files."""
    save_json(directory / FINGERPRINT_FILE, {"fingerprint": fp, "metadata": metadata})


SHARD_ROWS = 262_144
SHARDS_DIR = "shards"


class ShardWriter:
    """Append (rows, d) batches into ``.npy`` shards of at most ``shard_rows`` rows, in a temp directory.

    Memory stays bounded by one shard; :meth:`publish` swaps the finished shards in.
    """

    def __init__(self, directory: Path, dtype: str = "float32", shard_rows: int = SHARD_ROWS):
        self.directory, self.dtype, self.shard_rows = directory, np.dtype(dtype), shard_rows
        self.tmp = Path(tempfile.mkdtemp(dir=_mkdir(directory), prefix=".shards-"))
        self.buffer: list[np.ndarray] = []
        self.buffered = self.rows = 0
        self.dim: int | None = None
        self.paths: list[Path] = []

    def append(self, block: np.ndarray) -> None:
        if self.dim is None:
            self.dim = block.shape[1]
        elif block.shape[1] != self.dim:
            raise ValueError(f"embedding dimension changed between batches: {self.dim} then {block.shape[1]} "
                             f"at row {self.rows} (did the model change?); nothing was written")
        self.buffer.append(np.asarray(block, dtype=self.dtype))
        self.buffered += len(block)
        self.rows += len(block)
        while self.buffered >= self.shard_rows:
            self._flush(self.shard_rows)

    def _flush(self, rows: int) -> None:
        data = np.concatenate(self.buffer)
        path = self.tmp / f"part-{len(self.paths):05d}.npy"
        np.save(path, data[:rows], allow_pickle=False)
        self.paths.append(path)
        self.buffer = [data[rows:]] if rows < len(data) else []
        self.buffered = len(data) - rows

    def publish(self) -> Path:
        """Replace ``directory/shards`` by the written shards; returns that directory."""
        if self.buffered:
            self._flush(self.buffered)
        final = self.directory / SHARDS_DIR
        old = self.directory / ".shards-old"
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            final.rename(old)
        self.tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class ShardedArray:
    """A read-only (n, d) float32 view over ``.npy`` shard memory maps, optionally restricted to some rows.

    Supports what the core needs from an array: ``shape``, ``ndim``, ``dtype``, ``len``, slicing and
    integer-array indexing (each returns an in-memory float32 array) and ``np.asarray``.
    """

    ndim = 2
    dtype = np.dtype(np.float32)

    def __init__(self, shards: list[np.ndarray], rows: np.ndarray | None = None):
        self.shards = shards
        self.offsets = np.concatenate([[0], np.cumsum([len(s) for s in shards])])
        self.rows = rows
        self.shape = (int(self.offsets[-1]) if rows is None else len(rows), int(shards[0].shape[1]))

    @classmethod
    def open(cls, directory: Path) -> ShardedArray:
        paths = sorted((directory / SHARDS_DIR).glob("part-*.npy"))
        if not paths:
            raise FileNotFoundError(f"no embedding shards under {directory / SHARDS_DIR}")
        return cls.from_paths(paths)

    @classmethod
    def from_paths(cls, paths: list, rows: np.ndarray | None = None) -> ShardedArray:
        return cls([load_npy(Path(p)) for p in paths], rows)

    @property
    def paths(self) -> list[str] | None:
        """The shard files, or None when a shard is held in memory."""
        paths = [getattr(s, "filename", None) for s in self.shards]
        return None if any(p is None for p in paths) else [str(p) for p in paths]

    def __reduce__(self):
        """Pickled (to send to a worker process) as shard paths and rows, reopened there as memory maps:
        no embedding is copied, but the worker must see the same files."""
        if self.paths is None:
            return ShardedArray, (self.shards, self.rows)
        return ShardedArray.from_paths, (self.paths, self.rows)

    def row_range(self, start: int, stop: int) -> ShardedArray:
        """The view of rows ``start:stop`` (a task's share of the array)."""
        return self.subset(np.arange(start, min(stop, len(self)), dtype=np.int64))

    def __len__(self) -> int:
        return self.shape[0]

    def subset(self, rows: np.ndarray) -> ShardedArray:
        base = np.asarray(rows, dtype=np.int64)
        return ShardedArray(self.shards, base if self.rows is None else self.rows[base])

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        shard_of = np.searchsorted(self.offsets, rows, side="right") - 1
        for s in np.unique(shard_of):
            sel = np.flatnonzero(shard_of == s)
            local = rows[sel] - self.offsets[s]
            out[sel] = self.shards[s][local] if not np.all(np.diff(local) == 1) else \
                self.shards[s][local[0] : local[-1] + 1]
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            idx = np.arange(*key.indices(len(self)))
        elif isinstance(key, (int, np.integer)):
            return self[np.array([key])][0]
        else:
            idx = np.asarray(key, dtype=np.int64)
        return self._gather(idx if self.rows is None else self.rows[idx])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        full = self[: len(self)]
        return full if dtype is None else full.astype(dtype)
