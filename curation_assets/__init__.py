"""curation_assets: balanced self-supervised training-set curation as a Dagster platform.

Kept light on purpose: ``import curation_assets.core`` must not pay for Dagster or torch.
The Dagster ``Definitions`` are built on first access to ``curation_assets.defs``.
"""

__all__ = ["defs"]


def __getattr__(name: str):
    if name == "defs":
        from curation_assets.definitions import defs

        return defs
    raise AttributeError(f"module 'curation_assets' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + ["defs"])
