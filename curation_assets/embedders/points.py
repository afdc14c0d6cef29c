"""The identity embedder of low-dimensional points (the paper's 2-D simulation): the point is its vector."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import EmbedResult, Progress


class PointEmbedder:
    """Items are coordinate sequences (``[x, y]``); their vectors are the coordinates, not normalised."""

    name = identity = "identity (points)"
    reader = None  # points come from a generated source, not from a folder
    dedup_threshold = 0.99
    cache_vectors = False  # the points are their vectors: nothing to cache

    @classmethod
    def from_config(cls, cfg, device: str, batch_size: int | None) -> PointEmbedder:
        return cls()

    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult:
        vectors = np.asarray([np.asarray(item, dtype=np.float32) for item in items], dtype=np.float32)
        self.dim = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        return EmbedResult(vectors=vectors)
