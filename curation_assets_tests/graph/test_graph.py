import hashlib

import numpy as np
import polars as pl
import pytest

from curation_assets.store import ShardedArray
from curation_assets_tests.graph._helpers import assert_data_checks_pass, check_results, curate


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_simulated_partition_end_to_end(small_config, data_root):
    result = curate(small_config, "simulated")
    assert result.success
    subset = pl.read_parquet(data_root / "curated/simulated/subset.parquet")
    assert subset.columns == ["id", "cluster_level_1", "cluster_level_2", "cluster_level_3"]
    assert len(subset) == 300 and subset["id"].n_unique() == 300
    checks = check_results(result)
    assert checks and all(v in (True, "skipped") for v in checks.values()), checks
    scores = pl.read_parquet(data_root / "benchmarks/simulated/scores.parquet")
    assert {"method", "metric", "value", "std", "spread"} <= set(scores.columns)
    assert set(scores["method"]) >= {"published", "random", "redraw", "oracle_balanced"}
    # every labelled row is in the pool: nothing is held out of curation
    assert len(pl.read_parquet(data_root / "deduplicated/simulated/pool.parquet")) == 9000


def test_rerun_is_reused_and_byte_identical_and_seed_changes_it(small_config, data_root):
    curate(small_config, "simulated")
    path = data_root / "curated/simulated/subset.parquet"
    first = sha(path)
    level_1 = data_root / "clustering/simulated/level_1/centroids.npy"
    mtime = level_1.stat().st_mtime_ns
    result = curate(small_config, "simulated")
    assert sha(path) == first
    assert level_1.stat().st_mtime_ns == mtime  # not recomputed
    mats = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    assert len(mats) == 9
    curate(small_config, "simulated", selection=["balanced_subset"],
           run_config={"ops": {"balanced_subset": {"config": {"seed": 1}}}})
    assert sha(path) != first


def test_launchpad_override_of_a_level(small_config, data_root):
    curate(small_config, "simulated", selection=["raw_corpus", "embeddings", "deduplicated", "clustering_level_1"],
           run_config={"ops": {"clustering_level_1": {"config": {"n_clusters": 200}}}})
    assert np.load(data_root / "clustering/simulated/level_1/centroids.npy").shape == (200, 2)


def test_fewer_levels_pass_through(small_config, data_root):
    # satellite is configured with a single level: levels 2 and 3 are pass-through
    result = curate(small_config, "satellite")
    subset = pl.read_parquet(data_root / "curated/satellite/subset.parquet")
    assert subset.columns == ["id", "cluster_level_1"] and len(subset) == 40
    assert not (data_root / "clustering/satellite/level_2/centroids.npy").exists()
    assert_data_checks_pass(result)


@pytest.mark.slow
def test_text_partition_with_real_model(small_config, data_root):
    result = curate(small_config, "text")
    X = ShardedArray.open(data_root / "embeddings/text")
    assert X.shape[1] == 384
    subset = pl.read_parquet(data_root / "curated/text/subset.parquet")
    pool = pl.read_parquet(data_root / "deduplicated/text/pool.parquet")
    assert len(subset) == round(0.3 * len(pool)) and subset["id"].is_in(pool["id"].implode()).all()
    assert_data_checks_pass(result)


@pytest.mark.slow
def test_image_partition_with_real_model(small_config, data_root):
    result = curate(small_config, "image")
    assert ShardedArray.open(data_root / "embeddings/image").shape[1] == 1280
    assert (data_root / "curated/image/subset.parquet").exists()
    assert_data_checks_pass(result)
