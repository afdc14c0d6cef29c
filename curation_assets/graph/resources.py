"""Resources: the embedder (built once per process) and the execution backend, each overridable per run."""

from __future__ import annotations

import functools
from collections.abc import Callable

from dagster import ConfigurableResource

from curation_assets.config import EmbedderConfig, ExecutionConfig
from curation_assets.core.devices import resolve_device
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
    ``backend`` (``local`` | ``ray``), ``ray_address`` (``auto``, ``host:port``, ``ray://host:10001``) and
    ``device`` (``auto`` | ``cpu`` | ``cuda``)."""

    backend: str | None = None
    ray_address: str | None = None
    device: str | None = None

    def config(self, cfg: ExecutionConfig) -> ExecutionConfig:
        """The block with this run's overrides, validated like the YAML."""
        data = cfg.model_dump()
        if self.backend is not None:
            data["backend"] = self.backend
        if self.ray_address is not None:
            data["ray"]["address"] = self.ray_address
        if self.device is not None:
            data["device"] = self.device
        return ExecutionConfig.model_validate(data)

    def compute_device(self, cfg: ExecutionConfig) -> str:
        """The device clustering runs on in this process: ``cpu`` or ``cuda`` (``auto`` resolved)."""
        return resolve_device(self.config(cfg).device)

    def get(self, cfg: ExecutionConfig):
        """The backend for this run, with its task counters reset."""
        backend = make_backend(self.config(cfg))
        backend.reset_stats()
        return backend
