"""The Dagster ``Definitions``: the per-modality curation graph, its jobs, sensor and schedule.

raw_corpus → embeddings → deduplicated → clustering_level_1 … clustering_level_N → balanced_subset → benchmark_scores
"""

from __future__ import annotations

from dagster import AssetSelection, Definitions, define_asset_job

from curation_assets.assets._common import current_config
from curation_assets.assets.benchmarks import build_benchmark_asset
from curation_assets.assets.clustering import build_level_assets
from curation_assets.assets.corpus import build_corpus_asset
from curation_assets.assets.dedup import build_dedup_asset
from curation_assets.assets.embeddings import build_embeddings_asset
from curation_assets.assets.subset import build_subset_asset
from curation_assets.config import CurationConfig
from curation_assets.partitions import modality_partitions
from curation_assets.resources.embedders import EmbedderResource
from curation_assets.resources.execution import ExecutionResource
from curation_assets.schedules import build_daily_benchmarks_schedule
from curation_assets.sensors import build_raw_files_sensor


def build_definitions(config: CurationConfig) -> Definitions:
    partitions = modality_partitions(config)
    n = config.max_levels
    assets = [build_corpus_asset(partitions), build_embeddings_asset(partitions), build_dedup_asset(partitions),
              *build_level_assets(n, partitions),
              build_subset_asset(n, partitions), build_benchmark_asset(partitions)]
    curate = define_asset_job("curate", selection=AssetSelection.all(), partitions_def=partitions,
                              description="The whole curation graph of one modality partition.")
    refresh = define_asset_job("refresh_benchmarks", selection=AssetSelection.assets("benchmark_scores"),
                               partitions_def=partitions)
    return Definitions(
        assets=assets,
        jobs=[curate, refresh],
        sensors=[build_raw_files_sensor(curate)],
        schedules=[build_daily_benchmarks_schedule(refresh)],
        resources={"embedder": EmbedderResource(), "execution": ExecutionResource()},
    )


defs = build_definitions(current_config())
