"""Files under the data root: where it is, atomic writes, ``.npy`` and Parquet without pickle.

Every file and folder is created with the user's umask (``tempfile`` alone would make them 0600 / 0700, so
another account could not read a published dataset), and every path built from user input is checked to
stay inside the data root before anything is read, written or removed there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from curation_assets.config import REPO_ROOT


def data_root() -> Path:
    """``$CURATION_DATA_DIR``, default ``data/`` of the repository."""
    return Path(os.environ.get("CURATION_DATA_DIR", REPO_ROOT / "data")).resolve()


class OutsideDataRootError(ValueError):
    """A path built from user input (a configured path, a modality name, a link) leaves the data root."""


def confined(root: Path, relative: str | os.PathLike) -> Path:
    """Resolve a configured path inside the data root; refuse anything that escapes it."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise OutsideDataRootError(f"configured path {str(relative)!r} resolves to {path}, outside the data root "
                                   f"{root}")
    return path


def current_umask() -> int:
    """The process's umask, read without changing it (Linux reports it in /proc; elsewhere it is set and reset)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def user_mode(path: Path, directory: bool = False) -> None:
    """Give a file (0666) or folder (0777) that ``tempfile`` created the permissions the user's umask allows."""
    os.chmod(path, (0o777 if directory else 0o666) & ~current_umask())


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new temporary folder inside ``parent``, with the user's permissions."""
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    user_mode(path, directory=True)
    return path


def publish_shards(tmp: Path, paths: list[Path], directory: Path, folder: str, suffix: str) -> list[Path]:
    """Name the shards written into ``tmp`` ``train-XXXXX-of-NNNNN<suffix>`` and swap ``tmp`` in as
    ``directory/folder`` (the previous folder is removed); returns the published shard paths."""
    n = len(paths)
    names = [f"train-{i:05d}-of-{n:05d}{suffix}" for i in range(n)]
    for path, name in zip(paths, names, strict=True):
        path.rename(path.with_name(name))
    final, old = directory / folder, directory / f".{folder}.old"
    staged = tmp.rename(directory / f".{folder}.staged")
    if final.exists():
        final.rename(old)
    staged.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return [final / name for name in names]


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp path beside ``path``; renamed onto ``path`` when the block succeeds, removed when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    user_mode(Path(tmp))
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
