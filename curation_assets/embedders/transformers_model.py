"""Any local Hugging Face ``transformers`` model: text (``kind: transformers``) or images
(``kind: transformers_image``), e.g. BERT-like text encoders, DINOv2, ViT, CLIP, SigLIP. Needs no torchvision."""

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
    Progress,
    configure_torch_threads,
    default_batch_size,
    directory_digest,
    set_offline_env,
)

TOKEN_BUCKET = 16  # texts are padded to a multiple of this many tokens (a fixed shape per length bucket)
_FALLBACK_MAX_LENGTH = 512


class _TransformersEmbedder(LocalModel):
    """A model loaded with ``AutoModel`` from a local directory (or a hub id already in the local cache).

    The model's output: ``get_text_features`` / ``get_image_features`` for a dual encoder (CLIP, SigLIP: a
    model that has them), else its forward pass. ``pooling`` turns it into one vector: ``mean`` (over the
    tokens, padding left out; over the positions of a feature map), ``cls`` (the first token) or ``pooler``
    (the output's ``pooler_output``, a dual encoder's projected embedding). Default: ``pooler`` for a dual
    encoder, else ``mean`` for text, ``cls`` for images with tokens (ViT, DINOv2), ``mean`` for feature maps.
    """

    modality = ""
    dedup_threshold = None  # an unknown model's cosine scale: curation.yaml must set dedup.threshold
    config_options = frozenset({"pooling"})  # the optional EmbedderConfig fields it reads
    library = "transformers"

    def __init__(self, model: str, pooling: str | None = None, batch_size: int | None = None,
                 device: str = "auto") -> None:
        if pooling not in (None, "mean", "cls", "pooler"):
            raise ValueError(f"pooling must be mean, cls or pooler, got {pooling!r}")
        super().__init__(model, batch_size, device)
        self.pooling = pooling
        self.name = f"transformers:{model}"
        self._preprocessor: Any = None

    @functools.cached_property
    def identity(self) -> str:
        return (f"transformers:{directory_digest(self.model_dir)}|{self.modality}|pooling={self.pooling or 'default'}"
                f"|{self._identity_options()}|{device_class(self.device)}|transformers=={library_version('transformers')}")

    def _identity_options(self) -> str:
        return ""

    def load_model(self) -> tuple[Any, Any]:
        if self._model is None:
            set_offline_env()
            configure_torch_threads()
            from transformers import AutoModel

            model = AutoModel.from_pretrained(self.model_dir, local_files_only=True)
            self._preprocessor = self._load_preprocessor()
            self._model = model.eval().to(self.device)
        return self._model, self._preprocessor

    def _load_preprocessor(self) -> Any:
        raise NotImplementedError

    def _pooled(self, inputs: dict, mask: Any = None) -> Any:
        """One vector per row of ``inputs`` (the model's keyword arguments)."""
        model, _ = self.load_model()
        features = getattr(model, f"get_{self.modality}_features", None)
        output = features(**inputs) if features is not None else model(**inputs)
        pooling = self.pooling or ("pooler" if features is not None else None)
        if pooling == "pooler":
            if getattr(output, "pooler_output", None) is None:
                raise ValueError(f"{self.name}: the model has no pooler output; set pooling: mean or cls")
            return output.pooler_output.flatten(1)
        hidden = output.last_hidden_state
        if hidden.ndim == 4:  # a convolutional feature map (ResNet, ConvNeXt): its positions are the tokens
            if pooling == "cls":
                raise ValueError(f"{self.name}: a feature map has no class token; set pooling: mean or pooler")
            hidden = hidden.flatten(2).transpose(1, 2)
        elif pooling is None and self.modality == "image":
            pooling = "cls"
        if pooling == "cls":
            return hidden[:, 0]
        if mask is None:
            return hidden.mean(dim=1)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)


class TransformersTextEmbedder(_TransformersEmbedder):
    """Embeds ``str`` items with a local ``transformers`` text model and its tokenizer (``kind: transformers``).

    Texts longer than ``max_length`` tokens (default: the model's own limit) are truncated. Rows are grouped
    by token-length bucket (a multiple of 16 tokens), each bucket padded to that length and each batch to
    ``batch_size`` rows (default 16) with copies, so a text's vector never depends on its batch-mates.
    Empty or non-``str`` items are reported in ``failed``.
    """

    modality = "text"
    reader = "text"
    config_options = frozenset({"pooling", "max_length"})

    @classmethod
    def from_config(cls, cfg, device: str, batch_size: int | None) -> TransformersTextEmbedder:
        return cls(cfg.model, pooling=cfg.pooling, max_length=cfg.max_length, batch_size=batch_size, device=device)

    def __init__(self, model: str, pooling: str | None = None, max_length: int | None = None,
                 batch_size: int | None = None, device: str = "auto") -> None:
        super().__init__(model, pooling, batch_size, device)
        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.max_length = max_length
        self.batch_size = batch_size or TEXT_BATCH_ROWS

    def _identity_options(self) -> str:
        return f"max_length={self.max_length or 'model'}|bucket={TOKEN_BUCKET}"

    def _load_preprocessor(self) -> Any:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        if tokenizer.pad_token is None:  # GPT-like tokenizers: pad with the end token (masked out anyway)
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    @functools.cached_property
    def token_limit(self) -> int:
        """Tokens per text: ``max_length``, else the smaller of the tokenizer's and the model's limits."""
        if self.max_length is not None:
            return self.max_length
        model, tokenizer = self.load_model()
        config = getattr(model.config, "text_config", None) or model.config
        limits = [getattr(config, "max_position_embeddings", None), tokenizer.model_max_length]
        known = [int(x) for x in limits if isinstance(x, int) and 0 < x < 1_000_000]
        return min(known) if known else _FALLBACK_MAX_LENGTH

    @functools.cached_property
    def dim(self) -> int:
        return int(self._vectors(["a"], TOKEN_BUCKET).shape[1])

    def _vectors(self, texts: list[str], length: int) -> np.ndarray:
        """Vectors of ``texts`` (at most ``batch_size``), as one padded batch of ``length`` tokens."""
        import torch

        _, tokenizer = self.load_model()
        enc = tokenizer(pad_rows(texts, self.batch_size), padding="max_length", truncation=True,
                        max_length=min(length, self.token_limit), return_tensors="pt")
        inputs = {key: enc[key].to(self.device) for key in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            vecs = self._pooled(inputs, inputs["attention_mask"])
        return vecs[: len(texts)].float().cpu().numpy()

    def _batches(self, texts: list[str]) -> list[tuple[list[int], int]]:
        """(rows, padded length) per forward pass: rows grouped by token-length bucket, ``batch_size`` at a time."""
        _, tokenizer = self.load_model()
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=self.token_limit)["input_ids"]]
        buckets: dict[int, list[int]] = {}
        for row, n_tokens in enumerate(lengths):
            buckets.setdefault(-(-n_tokens // TOKEN_BUCKET) * TOKEN_BUCKET, []).append(row)
        return [(rows[s : s + self.batch_size], length) for length, rows in sorted(buckets.items())
                for s in range(0, len(rows), self.batch_size)]

    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult:
        _, texts, failed = split_texts(items)
        n = len(texts)
        out = np.empty((n, self.dim), dtype=np.float32)
        if progress is not None:
            progress(0, n)
        done = 0
        for rows, length in self._batches(texts) if n else []:
            out[rows] = self._vectors([texts[r] for r in rows], length)
            done += len(rows)
            if progress is not None:
                progress(done, n)
        return EmbedResult(vectors=unit_rows(out, inplace=True), failed=failed)


class TransformersImageEmbedder(_TransformersEmbedder):
    """Embeds encoded image bytes with a local ``transformers`` vision model (``kind: transformers_image``),
    preprocessed by the model's own image processor (``preprocessor_config.json``: size, crop, mean, std) with
    its PIL backend, the same with or without torchvision. Every batch is padded to ``batch_size`` (default
    512 on a GPU, 64 on a CPU) with copies; undecodable items are reported in ``failed``."""

    modality = "image"
    reader = "image"

    @classmethod
    def from_config(cls, cfg, device: str, batch_size: int | None) -> TransformersImageEmbedder:
        return cls(cfg.model, pooling=cfg.pooling, batch_size=batch_size, device=device)

    def __init__(self, model: str, pooling: str | None = None, batch_size: int | None = None,
                 device: str = "auto") -> None:
        super().__init__(model, pooling, batch_size, device)
        self.batch_size = batch_size or default_batch_size(self.device)

    def _identity_options(self) -> str:
        return "preprocess=model-pil"

    def _load_preprocessor(self) -> Any:
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(self.model_dir, local_files_only=True, backend="pil")

    def _to_tensor(self, image) -> Any:
        _, processor = self.load_model()
        return processor(images=[image], return_tensors="pt")["pixel_values"][0]

    def _forward(self, batch) -> Any:
        return self._pooled({"pixel_values": batch.to(self.device)})

    @functools.cached_property
    def dim(self) -> int:
        import torch
        from PIL import Image

        with torch.inference_mode():
            return int(self._forward(self._to_tensor(Image.new("RGB", (8, 8)))[None]).shape[1])

    def embed(self, items: Sequence, progress: Progress | None = None) -> EmbedResult:
        self.load_model()
        return embed_images(items, self.batch_size, self._to_tensor, self._forward, lambda: self.dim, progress)
