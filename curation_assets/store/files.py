"""Files under the data root: where it is, atomic writes, ``.npy`` and Parquet without pickle."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from curation_assets.config import REPO_ROOT


def data_root() -> Path:
    """``$CURATION_DATA_DIR``, default ``data/`` of the repository."""
    return Path(os.environ.get("CURATION_DATA_DIR", REPO_ROOT / "data")).resolve()


def confined(root: Path, relative: str | os.PathLike) -> Path:
    """Resolve a configured path inside the data root; refuse anything that escapes it."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise ValueError(f"configured path {str(relative)!r} resolves to {path}, outside the data root {root}")
    return path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp path beside ``path``; renamed onto ``path`` when the block succeeds, removed when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_npy(path: Path, array: np.ndarray) -> None:
    """Atomic ``.npy`` write (temp file + rename)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def load_npy(path: Path, mmap: bool = True) -> np.ndarray:
    """Open a ``.npy`` as a read-only memory map; pickled object arrays are refused."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot load without pickle (object arrays are refused): {exc}") from exc


def save_parquet(path: Path, frame: pl.DataFrame) -> None:
    """Atomic, deterministic Parquet write (zstd)."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp, compression="zstd")


def save_json(path: Path, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str))


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
