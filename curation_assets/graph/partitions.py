"""One static partition per modality, read from the configuration (text, image, satellite, simulated, ...)."""

from __future__ import annotations

from dagster import StaticPartitionsDefinition
from dagster._core.errors import DagsterUnknownPartitionError

from curation_assets.config import CurationConfig


class ModalityPartitions(StaticPartitionsDefinition):
    """The modalities of ``curation.yaml``; an unknown one (``--partition video``) is refused with the list."""

    def validate_partition_key(self, partition_key: str, context=None) -> None:
        if not self.has_partition_key(partition_key):
            raise DagsterUnknownPartitionError(
                f"no modality {partition_key!r} in curation.yaml: the configured partitions are "
                f"{', '.join(self.get_partition_keys())} (a new modality is a new key under modalities:)")


def modality_partitions(config: CurationConfig) -> StaticPartitionsDefinition:
    return ModalityPartitions(list(config.modalities))
