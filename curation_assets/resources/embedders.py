"""The embedder resource: builds the configured model of a modality once per process."""

from __future__ import annotations

import functools
from collections.abc import Callable

from dagster import ConfigurableResource

from curation_assets.config import EmbedderConfig
from curation_assets.embedders import build_embedder


class EmbedderResource(ConfigurableResource):
    """Turns a modality's ``embedder`` YAML block into an embedder; optional run-wide overrides."""

    device: str | None = None
    batch_size: int | None = None

    def factory(self, cfg: EmbedderConfig) -> Callable:
        """A picklable zero-argument callable that builds the embedder: called in this process, or once
        in every worker of a distributed backend (one model per worker)."""
        return functools.partial(build_embedder, cfg, self.device, self.batch_size)
