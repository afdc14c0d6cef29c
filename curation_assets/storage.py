"""Where every artefact lives under the data root, atomic writes, and fingerprints for reuse.

Layout under ``CURATION_DATA_DIR`` (default ``data/``)::

    raw/<modality>/                 files a user drops in
    corpus/<modality>/corpus.parquet
    embeddings/<modality>/embeddings.npy + rows.parquet
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
