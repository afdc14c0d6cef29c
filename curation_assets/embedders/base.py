"""The embedder interface shared by text and image embedders."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from curation_assets.core.devices import resolve_device

Progress = Callable[[int, int], None]


class ModelNotAvailableError(RuntimeError):
    """The requested model cannot be loaded without network access."""


@dataclass
class EmbedResult:
    """``vectors``: (n_ok, dim) float32, L2-normalised rows, in input order with the failed items left out.

    ``failed``: ``(position in items, reason)`` for each item that could not be embedded, ascending.
    ``ok_positions()`` gives the input position of each row of ``vectors``.
    """

    vectors: np.ndarray
    failed: list[tuple[int, str]] = field(default_factory=list)

    def ok_positions(self, n_items: int) -> np.ndarray:
        mask = np.ones(n_items, dtype=bool)
        mask[[i for i, _ in self.failed]] = False
        return np.flatnonzero(mask)


@runtime_checkable
class Embedder(Protocol):
    """What the ``embeddings`` step needs of a model.

    - ``name``: a readable model name for the metadata.
    - ``identity``: everything that decides the vectors (weights content or version, preprocessing, pooling,
      device class), as a string; the content cache of embeddings is keyed by it. It must be cheap and must not
      load the model (a run whose rows are all cached loads nothing).
    - ``dim``: the vector length (may load the model).
    - ``embed(items)``: a row's vector must not depend on its batch-mates (tested bitwise): batches have a
      fixed shape, padded with copies, so the same content always gives the same bytes.
    - optional: ``load_model()`` loads the weights now (``embed`` does it on first use; the step times it apart);
      ``cache_vectors = False`` keeps the vectors out of the content cache; ``input_column`` names the corpus
      column to embed when it is not the content (precomputed vectors).
    """

    name: str
    identity: str
    dim: int

    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult: ...


def directory_digest(path: Path) -> str:
    """A content hash of a model directory (every file's relative path and bytes), for ``identity``; memoised
    per process by (path, sizes, modification times), so hashing large weights costs once."""
    path = Path(path).expanduser().resolve()
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(x.startswith(".") for x in
                                                                           p.relative_to(path).parts))
    stamp = tuple((p.relative_to(path).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _digest_files(str(path), stamp)


@functools.lru_cache(maxsize=32)
def _digest_files(root: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    for rel, size, _ in stamp:
        h.update(f"{rel}\0{size}\0".encode())
        with open(Path(root) / rel, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:16]


_THREADS_SET = False


def configure_torch_threads(threads: int | None = None) -> None:
    """Set torch's intra-op threads once per process (imports torch): ``threads``, default
    ``os.cpu_count()``; a worker sharing the machine (a Ray actor) passes its own CPU share first."""
    global _THREADS_SET
    if _THREADS_SET:
        return
    import torch

    torch.set_num_threads(max(1, threads or os.cpu_count() or 1))
    _THREADS_SET = True


CPU_BATCH_SIZE = 64  # items per forward pass on a CPU (the default of earlier rounds)
GPU_BATCH_SIZE = 512  # items per forward pass on a GPU, where small batches leave it idle (not measured here:
# bench/bench_gpu.py compares 64 / 256 / 1024 on a GPU)


def default_batch_size(device: str) -> int:
    """The batch size of an embedder whose configuration gives none: ``GPU_BATCH_SIZE`` on a CUDA device
    (``device`` after :func:`torch_device`), else ``CPU_BATCH_SIZE``."""
    return GPU_BATCH_SIZE if device.startswith("cuda") else CPU_BATCH_SIZE


def torch_device(device: str) -> str:
    """The torch device an embedder runs on: ``auto`` as clustering resolves it (``core.kmeans.resolve_device``:
    ``cuda`` when torch sees a GPU, else ``cpu``); any other torch device name (``cpu``, ``cuda:1``) as it is."""
    return resolve_device(device) if device == "auto" else device


def set_offline_env() -> None:
    """Never let Hugging Face libraries reach the network (set before they are imported)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
