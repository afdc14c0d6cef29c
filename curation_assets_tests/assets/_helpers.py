from dagster import materialize

from curation_assets.config import load_config
from curation_assets.definitions import build_definitions


def curate(config_path, partition: str, selection=None, run_config=None):
    """Materialize the graph (or a selection) of one partition in-process; returns the result."""
    defs = build_definitions(load_config(config_path))
    assets = list(defs.assets)
    return materialize(assets, partition_key=partition, selection=selection, resources={"embedder":
                       defs.resources["embedder"]}, run_config=run_config, raise_on_error=True)


def check_results(result) -> dict[str, bool]:
    return {e.event_specific_data.check_name: e.event_specific_data.passed
            for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}


QUALITY_CHECK = "curated_not_less_balanced_than_random"


def assert_data_checks_pass(result):
    """Every data-integrity check passes; the quality check (curated vs random) ran (on a few hundred
    items its verdict is noise, so it is asserted on the demo corpora, not here)."""
    checks = check_results(result)
    assert QUALITY_CHECK in checks
    assert all(v for k, v in checks.items() if k != QUALITY_CHECK), checks
