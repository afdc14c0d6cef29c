"""Any local ``timm`` image model (``kind: timm``): a folder as ``timm`` saves it (``config.json`` with the
architecture and ``pretrained_cfg``, ``model.safetensors``), e.g. a DINOv2 or CLIP ViT from the hub's ``timm/``."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from ._local import LocalModel, device_class, embed_images, library_version
from .base import (
    EmbedResult,
    Progress,
    configure_torch_threads,
    default_batch_size,
    directory_digest,
    set_offline_env,
)


class TimmEmbedder(LocalModel):
    """Embeds encoded image bytes with a ``timm`` model: the features before the classifier
    (``forward_head(forward_features(x), pre_logits=True)``), L2-normalised. Preprocessing is the model's own
    evaluation transform (``timm.data.resolve_data_config`` of its ``pretrained_cfg``: input size,
    interpolation, crop, mean and std). Every batch is padded to ``batch_size`` (default 512 on a GPU, 64 on a
    CPU) with copies; undecodable items are reported in ``failed``. Needs the ``timm`` extra (and so a
    torchvision that imports beside torch).
    """

    reader = "image"
    dedup_threshold = None  # an unknown model's cosine scale: curation.yaml must set dedup.threshold
    config_options: frozenset = frozenset()
    library = "timm"

    @classmethod
    def from_config(cls, cfg, device: str, batch_size: int | None) -> TimmEmbedder:
        return cls(cfg.model, batch_size=batch_size, device=device)

    def __init__(self, model: str, batch_size: int | None = None, device: str = "auto") -> None:
        super().__init__(model, batch_size, device)
        self.batch_size = batch_size or default_batch_size(self.device)
        self.name = f"timm:{model}"
        self._transform: Any = None

    @functools.cached_property
    def identity(self) -> str:
        return (f"timm:{directory_digest(self.model_dir)}|pre_logits|preprocess=pretrained_cfg"
                f"|{device_class(self.device)}|timm=={library_version('timm')}")

    def load_model(self) -> Any:
        if self._model is None:
            set_offline_env()
            configure_torch_threads()
            import timm

            model = timm.create_model(f"local-dir:{self.model_dir}", pretrained=True)
            config = timm.data.resolve_data_config({}, model=model)
            self._transform = timm.data.create_transform(**config, is_training=False)
            self._model = model.eval().to(self.device)
        return self._model

    def _to_tensor(self, image) -> Any:
        self.load_model()
        return self._transform(image)

    def _forward(self, batch) -> Any:
        model = self.load_model()
        return model.forward_head(model.forward_features(batch.to(self.device)), pre_logits=True)

    @functools.cached_property
    def dim(self) -> int:
        import torch
        from PIL import Image

        with torch.inference_mode():
            return int(self._forward(self._to_tensor(Image.new("RGB", (8, 8)))[None]).shape[1])

    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult:
        self.load_model()
        return embed_images(items, self.batch_size, self._to_tensor, self._forward, lambda: self.dim, progress)
