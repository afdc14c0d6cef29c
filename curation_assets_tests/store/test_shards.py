import numpy as np
import pytest

from curation_assets.core import LevelSpec, hierarchical_kmeans
from curation_assets.store import ShardedArray, ShardWriter


def write_shards(tmp_path, X, shard_rows, dtype="float32"):
    writer = ShardWriter(tmp_path, dtype=dtype, shard_rows=shard_rows)
    for start in range(0, len(X), 37):
        writer.append(X[start : start + 37])
    writer.publish()
    return ShardedArray.open(tmp_path)


def test_shards_round_trip_slices_and_fancy_indexing(tmp_path):
    X = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32)
    A = write_shards(tmp_path, X, shard_rows=128)
    assert len(list((tmp_path / "shards").glob("part-*.npy"))) == 8
    assert A.shape == (1000, 8) and len(A) == 1000
    np.testing.assert_array_equal(A[100:400], X[100:400])
    idx = np.array([999, 3, 128, 127, 500, 3])
    np.testing.assert_array_equal(A[idx], X[idx])
    np.testing.assert_array_equal(np.asarray(A), X)
    sub = A.subset(np.arange(0, 1000, 3))
    np.testing.assert_array_equal(sub[5:9], X[15:27:3])
    np.testing.assert_array_equal(sub.subset(np.array([0, 2]))[:], X[[0, 6]])


def test_float16_storage_reads_back_as_float32(tmp_path):
    X = np.random.default_rng(0).normal(size=(300, 4)).astype(np.float32)
    A = write_shards(tmp_path, X, shard_rows=100, dtype="float16")
    assert A[0:10].dtype == np.float32
    np.testing.assert_allclose(A[:], X, atol=2e-3)


def test_republish_replaces_old_shards_and_abort_leaves_nothing(tmp_path):
    write_shards(tmp_path, np.ones((500, 2), np.float32), shard_rows=100)
    A = write_shards(tmp_path, np.zeros((50, 2), np.float32), shard_rows=100)
    assert A.shape == (50, 2)
    w = ShardWriter(tmp_path)
    w.append(np.ones((5, 2), np.float32))
    w.abort()
    assert not list(tmp_path.glob(".shards-*"))
    w2 = ShardWriter(tmp_path)
    w2.append(np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="dimension changed"):
        w2.append(np.ones((2, 3), np.float32))


def test_core_runs_on_a_sharded_pool(tmp_path):
    X = np.random.default_rng(0).normal(size=(3000, 6)).astype(np.float32)
    A = write_shards(tmp_path, X, shard_rows=700)
    a = hierarchical_kmeans(A, [LevelSpec(40, 2, 5), LevelSpec(8)], seed=0)
    b = hierarchical_kmeans(X, [LevelSpec(40, 2, 5), LevelSpec(8)], seed=0)
    np.testing.assert_array_equal(a.labels(2), b.labels(2))


def test_sharded_array_pickles_as_paths_and_row_ranges_select_rows(tmp_path):
    import pickle

    X = np.random.default_rng(2).standard_normal((3000, 32)).astype(np.float32)
    pool = write_shards(tmp_path, X, shard_rows=1000).subset(np.arange(1, 3000, 3))
    view = pool.row_range(100, 400)
    blob = pickle.dumps(view)
    assert len(blob) < 300 * 8 + 2000  # the row numbers and paths, not 300 × 32 floats
    back = pickle.loads(blob)
    np.testing.assert_array_equal(back[:len(back)], X[1::3][100:400])
    assert pool.row_range(900, 5000).shape == (100, 32)
    in_memory = ShardedArray([X[:10]])
    assert in_memory.paths is None
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(in_memory))[:10], X[:10])
