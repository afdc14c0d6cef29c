"""The Dagster ``Definitions``: the per-modality curation graph, its job, sensors and resources.

raw_corpus → embeddings → deduplicated → clustering_level_1 … N → balanced_subset → benchmark_scores → curated_dataset

``curation.yaml`` is read once, here; every asset, check and sensor of the code location uses that one
configuration object. Runs execute their steps in one process (the graph of a partition is a chain, so a
process per step would only add start-up time), so a run also reads the configuration once.
"""

from __future__ import annotations

from dagster import AssetKey, AssetSelection, Definitions, define_asset_job, in_process_executor

from curation_assets.config import CurationConfig, load_config
from curation_assets.graph.automation import build_config_sensor, build_raw_files_sensor
from curation_assets.graph.cluster import build_level_assets
from curation_assets.graph.curate import build_balanced_subset
from curation_assets.graph.dedup import build_deduplicated
from curation_assets.graph.embed import build_embeddings
from curation_assets.graph.evaluate import build_benchmark_scores
from curation_assets.graph.export import build_curated_dataset
from curation_assets.graph.ingest import build_raw_corpus
from curation_assets.graph.io import CurationIOManager
from curation_assets.graph.partitions import modality_partitions
from curation_assets.graph.resources import EmbedderResource, ExecutionResource


def build_definitions(curation: CurationConfig) -> Definitions:
    partitions = modality_partitions(curation)
    assets = [build_raw_corpus(curation, partitions), build_embeddings(curation, partitions),
              build_deduplicated(curation, partitions), *build_level_assets(curation, partitions),
              build_balanced_subset(curation, partitions), build_benchmark_scores(curation, partitions),
              build_curated_dataset(curation, partitions)]
    curate = define_asset_job("curate", selection=AssetSelection.all(), partitions_def=partitions,
                              description="The whole curation graph of one modality partition.")

    def downstream_of(asset: str) -> set[AssetKey]:
        return AssetSelection.assets(asset).downstream().resolve(assets)

    return Definitions(
        assets=assets,
        jobs=[curate],
        sensors=[build_raw_files_sensor(curation, curate), build_config_sensor(curation, curate, downstream_of)],
        resources={"store": CurationIOManager(), "embedder": EmbedderResource(), "execution": ExecutionResource()},
        executor=in_process_executor,
    )


defs = build_definitions(load_config())
