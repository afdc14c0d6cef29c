"""Vectors a user computed elsewhere (any model, e.g. DINOv2 or CLIP features): a column of the corpus itself.

``embedder: {kind: precomputed, column: embedding}``: the files under ``raw/<modality>/`` are Parquet with
``id``, the content (``text`` or ``image``) and a column of fixed-length float lists; the readers check every
row has one, of one length, finite (an error names the file, row and id otherwise). No model is loaded and
nothing is imported for one: the vectors go to the ``embeddings`` artefact as they are (not normalised: the
``metric`` you set decides). Their similarity scale is yours, so ``metric`` and ``dedup.threshold`` are
required settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import EmbedResult, Progress


class PrecomputedEmbedder:
    """Reads the vectors of the corpus column ``column`` (``input_column``: what the embeddings step feeds it)."""

    reader = "text"  # a Parquet of id, text, <column>; set source.reader: image for id, image, <column>
    dedup_threshold = None  # the user's scale: dedup.threshold is required
    cache_vectors = False  # the corpus holds the vectors already
    config_options = frozenset({"column"})

    @classmethod
    def from_config(cls, cfg, device: str, batch_size: int | None) -> PrecomputedEmbedder:
        return cls(cfg.column or "embedding")

    def __init__(self, column: str = "embedding"):
        self.input_column = column
        self.name = self.identity = f"precomputed (corpus column {column!r})"
        self.dim = 0

    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult:
        vectors = np.asarray([np.asarray(v, dtype=np.float32) for v in items], dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"column {self.input_column!r}: rows of different lengths reached the embedder")
        self.dim = int(vectors.shape[1])
        return EmbedResult(vectors=vectors)
