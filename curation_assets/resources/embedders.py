"""The embedder resource: builds the configured model of a modality once per process."""

from __future__ import annotations

from dagster import ConfigurableResource

from curation_assets.config import EmbedderConfig


class EmbedderResource(ConfigurableResource):
    """Turns a modality's ``embedder`` YAML block into an embedder; optional run-wide overrides."""

    device: str | None = None
    batch_size: int | None = None

    def build(self, cfg: EmbedderConfig):
        device = self.device or cfg.device
        batch = self.batch_size or cfg.batch_size
        if cfg.kind == "sentence_transformer":
            from curation_assets.embedders.text import SentenceTransformerEmbedder

            return _cached(SentenceTransformerEmbedder, model=cfg.model, batch_size=batch, device=device)
        if cfg.kind == "efficientnet_lite0":
            from curation_assets.embedders.image import EfficientNetLite0Embedder

            return _cached(EfficientNetLite0Embedder, image_size=cfg.image_size, batch_size=batch, device=device)
        raise ValueError(f"embedder kind {cfg.kind!r} does not embed items")


_MODELS: dict = {}


def _cached(cls, **kwargs):
    """One model per process and settings (loading a model costs seconds)."""
    key = (cls.__name__, tuple(sorted(kwargs.items())))
    if key not in _MODELS:
        _MODELS[key] = cls(**kwargs)
    return _MODELS[key]
