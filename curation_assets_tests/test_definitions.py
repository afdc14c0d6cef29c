import ast
import subprocess
import sys
from pathlib import Path

import curation_assets

PACKAGE = Path(curation_assets.__file__).parent
ASSET_MODULES = ("ingest", "embed", "dedup", "cluster", "curate", "evaluate", "export")


def test_definitions_load_with_every_asset_check_job_and_sensor():
    defs = curation_assets.defs
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == {"raw_corpus", "embeddings", "deduplicated", "balanced_subset", "benchmark_scores",
                    "curated_dataset", *(f"clustering_level_{t}" for t in range(1, 4))}
    checks = {c.name for c in graph.asset_check_keys}
    assert {"embeddings_finite_and_expected_dim", "subset_size_and_ids", "subset_more_balanced_than_pool",
            "published_not_less_balanced_than_random", "benchmark_complete", "published_is_the_sampler_draw",
            "no_empty_cluster_level_1"} <= checks
    assert defs.resolve_job_def("curate") is not None
    assert {s.name for s in defs.sensors} == {"raw_files_sensor", "config_sensor"}
    partitions = defs.resolve_assets_def("raw_corpus").partitions_def.get_partition_keys()
    assert partitions == ["simulated", "text", "image", "satellite"]


def test_lineage_is_the_data_flow():
    """Every asset's upstream in the UI is exactly the input it reads (no hidden file reads)."""
    graph = curation_assets.defs.resolve_asset_graph()
    upstream = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
                for k in graph.get_all_asset_keys()}
    assert upstream == {"raw_corpus": set(), "embeddings": {"raw_corpus"}, "deduplicated": {"embeddings"},
                        "clustering_level_1": {"deduplicated"}, "clustering_level_2": {"clustering_level_1"},
                        "clustering_level_3": {"clustering_level_2"}, "balanced_subset": {"clustering_level_3"},
                        "benchmark_scores": {"balanced_subset"},
                        "curated_dataset": {"balanced_subset", "benchmark_scores"}}


def test_no_asset_module_imports_another_or_reads_files_itself():
    for name in ASSET_MODULES:
        tree = ast.parse((PACKAGE / "graph" / f"{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not {f"curation_assets.graph.{m}" for m in ASSET_MODULES} & imported, name
        calls = {n.func.attr for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
        assert not {"read_parquet", "scan_parquet", "load", "read_text"} & calls, name


def test_package_exposes_defs_lazily():
    assert "defs" in dir(curation_assets)
    code = "import sys, curation_assets.core; print('dagster' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
