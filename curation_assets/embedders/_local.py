"""Shared by the embedders of a user's own model (``transformers``, ``timm``, ``open_clip``): where the model
lies, its identity, decoding and fixed-shape batches."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from curation_assets.core.linalg import unit_rows

from .base import EmbedResult, ModelNotAvailableError, Progress, set_offline_env, torch_device

TEXT_BATCH_ROWS = 16  # texts per forward pass unless batch_size is configured (every pass is padded to it)


class LocalModel:
    """What the embedders of a local model directory share: the argument checks, the torch device, the
    directory (:func:`resolve_model_dir`); ``library`` names the library in messages."""

    library: str

    def __init__(self, model: str, batch_size: int | None = None, device: str = "auto") -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.device = torch_device(device)
        self._model: Any = None

    @functools.cached_property
    def model_dir(self) -> Path:
        return resolve_model_dir(self.model, self.library)


def resolve_model_dir(model: str | None, library: str) -> Path:
    """The local directory of ``model``: a directory as it is; a Hugging Face hub id (``org/name``) only when
    its snapshot is already in the local cache. Anything else raises :class:`ModelNotAvailableError`."""
    if not model:
        raise ModelNotAvailableError(f"the {library} embedder needs `model`: a local model directory")
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") != 1:
        raise ModelNotAvailableError(f"{library} model directory {model!r} does not exist")
    set_offline_env()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception as e:
        raise ModelNotAvailableError(
            f"{library} model {model!r} is not a local directory and not in the local Hugging Face cache (there "
            "is no network access here). Download it where there is (e.g. `huggingface-cli download "
            f"{model} --local-dir /some/dir`), copy the directory here and set `model` to its path. "
            f"Cause: {type(e).__name__}: {e}"
        ) from e


def library_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not-installed"


def device_class(device: str) -> str:
    """``cpu`` / ``cuda`` (``cuda:1`` counts as ``cuda``): the part of the device that can change the vectors."""
    return device.split(":")[0]


def split_texts(items: Sequence) -> tuple[list[int], list[str], list[tuple[int, str]]]:
    """(positions of the embeddable texts, those texts, failed items as (position, reason))."""
    positions, texts, failed = [], [], []
    for i, t in enumerate(items):
        if not isinstance(t, str):
            failed.append((i, f"not a string: {type(t).__name__}"))
        elif not t.strip():
            failed.append((i, "empty text"))
        else:
            positions.append(i)
            texts.append(t)
    return positions, texts, failed


def decode_rgb(item: Any):
    """Encoded image bytes -> an RGB ``PIL.Image`` (raises on anything else)."""
    from PIL import Image

    if isinstance(item, memoryview | bytearray):
        item = bytes(item)
    if not isinstance(item, bytes):
        raise TypeError(f"expected encoded image bytes, got {type(item).__name__}")
    with Image.open(io.BytesIO(item)) as img:
        return img.convert("RGB")


def pad_rows(rows: list, size: int) -> list:
    """``rows`` followed by copies of its last row up to ``size``: every forward pass has the same shape, so a
    row's vector does not depend on its batch-mates."""
    return rows + [rows[-1]] * (size - len(rows))


def embed_images(
    items: Sequence,
    batch_size: int,
    to_tensor: Callable[[Any], Any],
    forward: Callable[[Any], Any],
    dim: Callable[[], int],
    progress: Progress | None = None,
) -> EmbedResult:
    """Decode each item, ``to_tensor`` (PIL image -> CHW tensor), ``forward`` full batches of ``batch_size``
    (padded with copies of the last image) -> L2-normalised float32 rows; undecodable items go to ``failed``."""
    import torch

    n = len(items)
    failed: list[tuple[int, str]] = []
    chunks: list[np.ndarray] = []
    if progress is not None:
        progress(0, n)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            tensors = []
            for i in range(start, min(start + batch_size, n)):
                try:
                    tensors.append(to_tensor(decode_rgb(items[i])))
                except Exception as e:
                    failed.append((i, f"cannot decode image: {type(e).__name__}: {e}"))
            if tensors:
                feats = forward(torch.stack(pad_rows(tensors, batch_size)))
                chunks.append(feats[: len(tensors)].float().cpu().numpy())
            if progress is not None:
                progress(min(start + batch_size, n), n)
    vecs = np.concatenate(chunks) if chunks else np.empty((0, dim()), dtype=np.float32)
    return EmbedResult(vectors=unit_rows(vecs), failed=failed)
