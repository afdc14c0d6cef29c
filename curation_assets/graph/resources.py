"""Resources: the embedder (built once per process) and the execution backend, each overridable per run."""

from __future__ import annotations

import functools
from collections.abc import Callable

from dagster import ConfigurableResource

from curation_assets.config import EmbedderConfig, ExecutionConfig
from curation_assets.embedders import build_embedder
from curation_assets.execution import make_backend


class EmbedderResource(ConfigurableResource):
    """Turns a modality's ``embedder`` YAML block into an embedder; optional run-wide overrides."""

    device: str | None = None
    batch_size: int | None = None

    def factory(self, cfg: EmbedderConfig) -> Callable:
        """A picklable zero-argument callable that builds the embedder: called in this process, or once
        in every worker of a distributed backend (one model per worker)."""
        return functools.partial(build_embedder, cfg, self.device, self.batch_size)


class ExecutionResource(ConfigurableResource):
    """The YAML's ``execution`` block, optionally overridden for a run (launchpad or code):
    ``backend`` (``local`` | ``ray``) and ``ray_address`` (``auto``, ``host:port``, ``ray://host:10001``)."""

    backend: str | None = None
    ray_address: str | None = None

    def get(self, cfg: ExecutionConfig):
        """The backend for this run (validated like the YAML), with its task counters reset."""
        data = cfg.model_dump()
        if self.backend is not None:
            data["backend"] = self.backend
        if self.ray_address is not None:
            data["ray"]["address"] = self.ray_address
        backend = make_backend(ExecutionConfig.model_validate(data))
        backend.reset_stats()
        return backend
