"""The execution resource: which backend runs embedding and the full-pool assignments."""

from __future__ import annotations

from dagster import ConfigurableResource

from curation_assets.config import ExecutionConfig
from curation_assets.execution import make_backend


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
