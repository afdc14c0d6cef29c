"""What every asset shares: the configuration, the modality's layout, metadata conversion."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from dagster import AssetExecutionContext, MetadataValue

from curation_assets.config import CurationConfig, ModalityConfig, config_path, load_config
from curation_assets.storage import Layout, cached, write_fingerprint


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> CurationConfig:
    return load_config(Path(path))


def current_config() -> CurationConfig:
    """The YAML configuration, re-read when the file changes."""
    path = config_path()
    return _load(str(path), path.stat().st_mtime if path.exists() else 0.0)


def modality_context(context: AssetExecutionContext) -> tuple[str, ModalityConfig, Layout]:
    modality = context.partition_key
    return modality, current_config().modality(modality), Layout(modality)


def md(text: str) -> dict:
    """Mark a metadata value as markdown in the stored record."""
    return {"__md__": text}


def to_dagster(metadata: dict) -> dict:
    """Stored (JSON) metadata → Dagster metadata values (markdown, numbers, text, JSON)."""
    out = {}
    for key, value in metadata.items():
        if isinstance(value, dict) and "__md__" in value:
            out[key] = MetadataValue.md(value["__md__"])
        elif isinstance(value, bool):
            out[key] = MetadataValue.bool(value)
        elif isinstance(value, int):
            out[key] = MetadataValue.int(value)
        elif isinstance(value, float):
            out[key] = MetadataValue.float(value)
        elif isinstance(value, str):
            out[key] = MetadataValue.text(value)
        else:
            out[key] = MetadataValue.json(value)
    return out


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = round(time.perf_counter() - self.start, 3)


def reuse_or_compute(context: AssetExecutionContext, directory: Path, fp: str, compute) -> dict:
    """The stored metadata of ``directory`` when it is up to date for fingerprint ``fp``; otherwise run
    ``compute()`` (which writes the files and returns the metadata) and record the fingerprint last."""
    record = cached(directory, fp)
    if record is not None:
        context.log.info(f"{directory}: up to date (fingerprint {fp}), reusing it")
        return record["metadata"]
    metadata = compute()
    write_fingerprint(directory, fp, metadata)
    return metadata
