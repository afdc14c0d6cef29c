"""The content-addressed cache of embeddings: a vector is a pure function of (model identity, row content).

Layout, under ``<root>/_cache/embeddings/<model>/`` (``<model>`` = a hash of the embedder's ``identity``)::

    model.json                  the identity in words and the vector dimension
    segments/<n>.vectors.npy    (m, d) float32 vectors
    segments/<n>.keys.npy       (m,) 16-byte content keys (``content_key``), in the same order
    segments/<n>.json           rows, dimension and sha256 of the vectors file: written last, it commits the segment

A run looks its rows' keys up, embeds only the missing ones and appends them as new segments (one per
embedding task, so a killed run keeps what it finished). A segment is trusted only when its commit file,
shapes and checksum agree (a truncated, edited or foreign segment is removed and its rows recomputed;
uncommitted files a killed run left are removed). Writers hold the model's lock. Size: when the
segments hold more than ``max_unused_rows`` rows that no published ``embeddings`` artefact uses, or more
than ``MAX_SEGMENTS`` segments, they are compacted into one, keeping every used row and the most recently
written unused ones up to the bound. Delete the folder to clear the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from filelock import FileLock

from curation_assets.store.files import load_npy, read_json, save_json, save_npy

KEY_BYTES = 16
MAX_SEGMENTS = 64
FORMAT = 1


def content_key(item) -> bytes:
    """The 16-byte key of one row's content (text, or encoded bytes: an image file, a tile)."""
    data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
    prefix = b"t" if isinstance(item, str) else b"b"
    return hashlib.blake2b(prefix + data, digest_size=KEY_BYTES).digest()


def content_keys(items) -> np.ndarray:
    return np.array([content_key(i) for i in items], dtype=f"S{KEY_BYTES}")


def model_folder(identity: str) -> str:
    return hashlib.sha256(f"{FORMAT}|{identity}".encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class _Segment:
    name: str
    keys: np.ndarray
    vectors: np.ndarray  # memory map


class EmbeddingCache:
    """The cache of one model (see the module docstring). ``problems`` lists segments found broken and removed."""

    def __init__(self, directory: Path, identity: str):
        self.directory = directory / model_folder(identity)
        self.identity = identity
        self.segments_dir = self.directory / "segments"
        self.problems: list[str] = []
        self._segments: list[_Segment] | None = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.segments_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.directory / ".lock")):
            yield

    @property
    def dim(self) -> int | None:
        info = read_json(self.directory / "model.json")
        return None if info is None else int(info["dim"])

    # -- reading --------------------------------------------------------------------------------------------
    def _load(self) -> list[_Segment]:
        """Every committed, verified segment (oldest first); anything else is removed."""
        segments, committed = [], set()
        dim = self.dim
        for commit in sorted(self.segments_dir.glob("*.json"), key=lambda p: int(p.stem)):
            segment = self._verified(commit, dim)
            if segment is not None:
                segments.append(segment)
                committed.add(commit.stem)
        for leftover in self.segments_dir.glob("*.npy"):  # a killed run's uncommitted files
            if leftover.name.split(".")[0] not in committed:
                leftover.unlink(missing_ok=True)
        return segments

    def _verified(self, commit: Path, dim: int | None) -> _Segment | None:
        name = commit.stem
        vectors_path, keys_path = (self.segments_dir / f"{name}.{part}.npy" for part in ("vectors", "keys"))
        info = read_json(commit) or {}
        try:
            if info.get("sha256") != _file_digest(vectors_path):
                raise ValueError("checksum differs (truncated or edited)")
            vectors, keys = load_npy(vectors_path), load_npy(keys_path, mmap=False)
            if vectors.dtype != np.float32 or vectors.shape != (info.get("rows"), dim) or keys.shape != (len(vectors),):
                raise ValueError(f"shape {vectors.shape} {vectors.dtype}, expected ({info.get('rows')}, {dim}) float32")
        except (OSError, ValueError) as exc:
            self.problems.append(f"segment {name}: {exc}")
            for path in (commit, vectors_path, keys_path):
                path.unlink(missing_ok=True)
            return None
        return _Segment(name, keys, vectors)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(found mask, location) of every key; a location indexes :meth:`gather` (the newest copy wins)."""
        with self.locked():
            self._segments = self._load()
        if not self._segments:
            return np.zeros(len(keys), dtype=bool), np.zeros(len(keys), dtype=np.int64)
        stored = np.concatenate([s.keys for s in self._segments])
        unique_keys, newest = self._newest(stored)
        pos = np.minimum(np.searchsorted(unique_keys, keys), len(unique_keys) - 1)
        found = unique_keys[pos] == keys
        return found, np.where(found, newest[pos], 0)

    @staticmethod
    def _newest(stored: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sorted distinct keys, position of the newest copy of each in ``stored``, oldest segment first)."""
        unique_keys, first_from_end = np.unique(stored[::-1], return_index=True)
        return unique_keys, len(stored) - 1 - first_from_end

    def gather(self, locations: np.ndarray) -> np.ndarray:
        """The vectors at ``locations`` (from :meth:`lookup`), as a float32 array in that order."""
        sizes = np.array([len(s.keys) for s in self._segments])
        starts = np.concatenate([[0], np.cumsum(sizes)])
        out = np.empty((len(locations), self.dim), dtype=np.float32)
        which = np.searchsorted(starts, locations, side="right") - 1
        for s in np.unique(which):
            picked = np.flatnonzero(which == s)
            out[picked] = self._segments[s].vectors[locations[picked] - starts[s]]
        return out

    # -- writing --------------------------------------------------------------------------------------------
    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Commit one segment (vectors first, the commit file last)."""
        if len(keys) == 0:
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.locked():
            if self.dim is None:
                save_json(self.directory / "model.json", {"identity": self.identity, "dim": int(vectors.shape[1]),
                                                          "format": FORMAT})
            elif self.dim != vectors.shape[1]:
                raise ValueError(f"the model gives {vectors.shape[1]}-d vectors but its cache holds {self.dim}-d ones")
            names = [int(p.stem) for p in self.segments_dir.glob("*.json")]
            name = str(max(names, default=-1) + 1)
            self._write_segment(name, keys, vectors)

    def _write_segment(self, name: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        vectors_path = self.segments_dir / f"{name}.vectors.npy"
        save_npy(vectors_path, vectors)
        save_npy(self.segments_dir / f"{name}.keys.npy", np.asarray(keys, dtype=f"S{KEY_BYTES}"))
        save_json(self.segments_dir / f"{name}.json", {"rows": len(keys), "dim": int(vectors.shape[1]),
                                                       "sha256": _file_digest(vectors_path)})

    def compact(self, used: np.ndarray, max_unused_rows: int) -> dict:
        """Rewrite the segments as one when they hold more than ``max_unused_rows`` rows not in ``used`` (keys of
        the published artefacts) or more than ``MAX_SEGMENTS`` segments; returns what it did."""
        with self.locked():
            segments = self._load()
            if not segments:
                return {"cache_rows": 0}
            keys = np.concatenate([s.keys for s in segments])
            latest = np.sort(self._newest(keys)[1])  # one copy per key, the newest, in writing order
            in_use = np.isin(keys[latest], used)
            unused = latest[~in_use]
            state = {"cache_rows": len(latest), "cache_unused_rows": len(unused), "cache_segments": len(segments)}
            if len(unused) <= max_unused_rows and len(segments) <= MAX_SEGMENTS and len(latest) == len(keys):
                return state
            recent_unused = unused[max(0, len(unused) - max_unused_rows):] if max_unused_rows else unused[:0]
            keep = np.sort(np.concatenate([latest[in_use], recent_unused]))
            self._segments = segments
            vectors = self.gather(keep)
            name = str(max(int(s.name) for s in segments) + 1)
            self._write_segment(name, keys[keep], vectors)
            for s in segments:
                for part in (".json", ".vectors.npy", ".keys.npy"):
                    (self.segments_dir / f"{s.name}{part}").unlink(missing_ok=True)
            return {**state, "compacted_to_rows": len(keep), "evicted_rows": len(latest) - len(keep)}


__all__ = ["EmbeddingCache", "content_key", "content_keys"]
