"""Embeddings as ``.npy`` shards: written with bounded memory, read back as one memory-mapped array."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from curation_assets.store.files import load_npy, make_temp_dir

SHARD_ROWS = 262_144
SHARDS_DIR = "shards"
_TEMP_PREFIX = ".shards-"


class ShardWriter:
    """Append (rows, d) batches into ``.npy`` shards of at most ``shard_rows`` rows, in a temp directory.

    Memory stays bounded by one shard; :meth:`publish` swaps the finished shards in. Temp directories
    that a killed run left behind are removed when the next writer starts (callers hold the modality's
    lock, so no other writer can be using them).
    """

    def __init__(self, directory: Path, dtype: str = "float32", shard_rows: int = SHARD_ROWS):
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(f"{_TEMP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.directory, self.dtype, self.shard_rows = directory, np.dtype(dtype), shard_rows
        self.tmp = make_temp_dir(directory, _TEMP_PREFIX)
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
        old = self.directory / f"{_TEMP_PREFIX}old"
        if final.exists():
            final.rename(old)
        self.tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

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
