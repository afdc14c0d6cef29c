"""Any local ``open_clip`` model: its image tower (``kind: open_clip``) or its text tower
(``kind: open_clip_text``), both into the model's shared embedding space. A folder as the hub holds it:
``open_clip_config.json`` (``model_cfg`` and ``preprocess_cfg``) and ``open_clip_model.safetensors``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from curation_assets.core.linalg import unit_rows

from ._local import (
    TEXT_BATCH_ROWS,
    LocalModel,
    device_class,
    embed_images,
    library_version,
    pad_rows,
    split_texts,
)
from .base import (
    EmbedResult,
    ModelNotAvailableError,
    Progress,
    configure_torch_threads,
    default_batch_size,
    directory_digest,
    set_offline_env,
)

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


class _OpenClipEmbedder(LocalModel):
    """An ``open_clip`` model loaded with ``create_model_and_transforms("local-dir:<dir>")``; a folder without
    weights is refused (open_clip would build a random model)."""

    modality = ""
    dedup_threshold = None  # an unknown model's cosine scale: curation.yaml must set dedup.threshold
    config_options: frozenset = frozenset()
    library = "open_clip"

    @classmethod
    def from_config(cls, cfg, device: str, batch_size: int | None):
        return cls(cfg.model, batch_size=batch_size, device=device)

    def __init__(self, model: str, batch_size: int | None = None, device: str = "auto") -> None:
        super().__init__(model, batch_size, device)
        self.name = f"open_clip:{model}|{self.modality}"
        self._preprocess: Any = None

    @functools.cached_property
    def identity(self) -> str:
        return (f"open_clip:{directory_digest(self.model_dir)}|{self.modality}|encode_{self.modality}"
                f"|{device_class(self.device)}|open_clip_torch=={library_version('open_clip_torch')}")

    def load_model(self) -> Any:
        if self._model is None:
            if not any(p.suffix in _WEIGHT_SUFFIXES for p in self.model_dir.iterdir()):
                raise ModelNotAvailableError(f"open_clip model directory {self.model_dir} holds no weights file")
            set_offline_env()
            configure_torch_threads()
            import open_clip

            model, _, self._preprocess = open_clip.create_model_and_transforms(f"local-dir:{self.model_dir}")
            self._model = model.eval().to(self.device)
        return self._model


class OpenClipImageEmbedder(_OpenClipEmbedder):
    """Embeds encoded image bytes with the image tower (``encode_image``), preprocessed by the model's own
    evaluation transform (its ``preprocess_cfg``: size, resize mode, interpolation, mean, std). Every batch is
    padded to ``batch_size`` (default 512 on a GPU, 64 on a CPU) with copies; undecodable items are in
    ``failed``. Needs the ``open_clip`` extra (and so a torchvision that imports beside torch)."""

    modality = "image"
    reader = "image"

    def __init__(self, model: str, batch_size: int | None = None, device: str = "auto") -> None:
        super().__init__(model, batch_size, device)
        self.batch_size = batch_size or default_batch_size(self.device)

    def _to_tensor(self, image) -> Any:
        self.load_model()
        return self._preprocess(image)

    def _forward(self, batch) -> Any:
        return self.load_model().encode_image(batch.to(self.device))

    @functools.cached_property
    def dim(self) -> int:
        import torch
        from PIL import Image

        with torch.inference_mode():
            return int(self._forward(self._to_tensor(Image.new("RGB", (8, 8)))[None]).shape[1])

    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult:
        return embed_images(items, self.batch_size, self._to_tensor, self._forward, lambda: self.dim, progress)


class OpenClipTextEmbedder(_OpenClipEmbedder):
    """Embeds ``str`` items with the text tower (``encode_text``) and the model's own tokenizer, which pads
    every text to the model's context length; batches are padded to ``batch_size`` rows (default 16) with
    copies. Empty or non-``str`` items are reported in ``failed``."""

    modality = "text"
    reader = "text"

    def __init__(self, model: str, batch_size: int | None = None, device: str = "auto") -> None:
        super().__init__(model, batch_size, device)
        self.batch_size = batch_size or TEXT_BATCH_ROWS

    @functools.cached_property
    def _tokenizer(self) -> Any:
        self.load_model()
        import open_clip

        return open_clip.get_tokenizer(f"local-dir:{self.model_dir}")

    def _vectors(self, texts: list[str]) -> np.ndarray:
        import torch

        tokens = self._tokenizer(pad_rows(texts, self.batch_size)).to(self.device)
        with torch.inference_mode():
            return self.load_model().encode_text(tokens)[: len(texts)].float().cpu().numpy()

    @functools.cached_property
    def dim(self) -> int:
        return int(self._vectors(["a"]).shape[1])

    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult:
        _, texts, failed = split_texts(items)
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if progress is not None:
            progress(0, n)
        for start in range(0, n, self.batch_size):
            out[start : start + self.batch_size] = self._vectors(texts[start : start + self.batch_size])
            if progress is not None:
                progress(min(start + self.batch_size, n), n)
        return EmbedResult(vectors=unit_rows(out, inplace=True), failed=failed)
