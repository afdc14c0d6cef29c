"""One static partition per modality, read from the configuration (text, image, satellite, simulated, ...)."""

from __future__ import annotations

from dagster import StaticPartitionsDefinition

from curation_assets.config import CurationConfig


def modality_partitions(config: CurationConfig) -> StaticPartitionsDefinition:
    return StaticPartitionsDefinition(list(config.modalities))
