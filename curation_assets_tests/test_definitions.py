import subprocess
import sys

import curation_assets


def test_definitions_load_with_every_asset_check_job_sensor_and_schedule():
    defs = curation_assets.defs
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    n = 3
    assert keys == {"raw_corpus", "embeddings", "deduplicated", "balanced_subset", "benchmark_scores",
                    *(f"clustering_level_{t}" for t in range(1, n + 1))}
    checks = {c.name for c in graph.asset_check_keys}
    assert {"embeddings_finite_and_expected_dim", "subset_size_and_ids", "subset_more_balanced_than_pool",
            "curated_not_less_balanced_than_random", "no_empty_cluster_level_1"} <= checks
    assert defs.resolve_job_def("curate") is not None
    assert defs.resolve_sensor_def("raw_files_sensor") is not None
    assert defs.resolve_schedule_def("daily_benchmarks") is not None
    partitions = defs.resolve_assets_def("raw_corpus").partitions_def.get_partition_keys()
    assert partitions == ["simulated", "text", "image", "satellite"]


def test_package_exposes_defs_lazily():
    assert "defs" in dir(curation_assets)
    code = "import sys, curation_assets; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
