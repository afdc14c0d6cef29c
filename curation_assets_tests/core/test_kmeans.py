import numpy as np
import pytest

from curation_assets.core import assign, kmeans, kmeans_plusplus


def blobs(n_per=200, centres=((0, 0), (10, 0), (0, 10), (10, 10)), seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(c, 0.3, size=(n_per, 2)) for c in centres]).astype(np.float32)
    return X, np.repeat(np.arange(len(centres)), n_per)


def test_kmeans_recovers_separated_blobs():
    X, truth = blobs()
    res = kmeans(X, 4, seed=0)
    assert res.centroids.shape == (4, 2) and res.labels.shape == (800,)
    # each true blob maps to exactly one cluster
    for b in range(4):
        assert len(np.unique(res.labels[truth == b])) == 1
    assert len(np.unique(res.labels)) == 4


def test_kmeans_is_deterministic_for_a_seed_and_changes_with_it():
    X = np.random.default_rng(1).normal(size=(3000, 16)).astype(np.float32)
    a, b, c = kmeans(X, 30, seed=3), kmeans(X, 30, seed=3), kmeans(X, 30, seed=4)
    np.testing.assert_array_equal(a.centroids, b.centroids)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.centroids, c.centroids)


def test_kmeans_plusplus_spreads_seeds_over_separated_blobs():
    # D² sampling: after the first seed, the next ones land in the blobs not yet covered.
    X, truth = blobs(n_per=500)
    hits = 0
    for seed in range(20):
        seeds = kmeans_plusplus(X, 4, np.random.default_rng(seed))
        nearest = np.linalg.norm(X[:, None] - seeds[None], axis=2).argmin(axis=0)
        hits += len(np.unique(truth[nearest])) == 4
    assert hits >= 19


def test_kmeans_plusplus_rows_are_data_points_and_distinct():
    X = np.random.default_rng(0).normal(size=(500, 8)).astype(np.float32)
    seeds = kmeans_plusplus(X, 100, np.random.default_rng(0))
    assert seeds.shape == (100, 8)
    assert len(np.unique(seeds, axis=0)) == 100
    assert all((np.abs(X - s).sum(axis=1) == 0).any() for s in seeds)


def test_kmeans_plusplus_handles_duplicates():
    X = np.repeat(np.eye(3, dtype=np.float32), 10, axis=0)
    seeds = kmeans_plusplus(X, 5, np.random.default_rng(0))
    assert seeds.shape == (5, 3)
    assert len(np.unique(seeds, axis=0)) == 3


def test_high_dimensional_path_matches_low_dimensional_labels():
    # d > 8 uses faiss's flat index, d <= 8 a k-d tree: both must give the exact nearest centroid.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 12)).astype(np.float32)
    C = rng.normal(size=(50, 12)).astype(np.float32)
    labels, dists = assign(X, C)
    brute = ((X[:, None] - C[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(labels, brute.argmin(axis=1))
    np.testing.assert_allclose(dists, brute.min(axis=1), rtol=1e-4, atol=1e-4)
    labels2, _ = assign(X[:, :2], C[:, :2])
    np.testing.assert_array_equal(labels2, ((X[:, None, :2] - C[None, :, :2]) ** 2).sum(axis=2).argmin(axis=1))


def test_cosine_kmeans_gives_unit_centroids():
    X = np.random.default_rng(0).normal(size=(1000, 16)).astype(np.float32) * 5
    res = kmeans(X, 10, seed=0, metric="cosine")
    np.testing.assert_allclose(np.linalg.norm(res.centroids, axis=1), 1.0, rtol=1e-5)
    assert (res.distances <= 4.0 + 1e-5).all()


def test_kmeans_on_memmap(tmp_path):
    X = np.random.default_rng(0).normal(size=(2000, 16)).astype(np.float32)
    path = tmp_path / "x.npy"
    np.save(path, X)
    mm = np.load(path, mmap_mode="r")
    a, b = kmeans(mm, 20, seed=0), kmeans(X, 20, seed=0)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_training_sample_is_bounded_but_assignment_covers_all():
    X = np.random.default_rng(0).normal(size=(5000, 4)).astype(np.float32)
    res = kmeans(X, 10, seed=0, max_points_per_centroid=20)
    assert res.labels.shape == (5000,)
    assert len(np.unique(res.labels)) == 10


@pytest.mark.parametrize(
    "X, k, message",
    [
        (np.zeros((5, 2), np.float32), 6, "k=6"),
        (np.zeros(5, np.float32), 2, "2-D"),
        (np.zeros((0, 3), np.float32), 1, "empty"),
    ],
)
def test_kmeans_rejects_bad_arguments(X, k, message):
    with pytest.raises(ValueError, match=message):
        kmeans(X, k)


def test_kmeans_rejects_unknown_metric():
    with pytest.raises(ValueError, match="metric"):
        kmeans(np.zeros((5, 2), np.float32), 2, metric="manhattan")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_assignment_bytes_do_not_depend_on_the_thread_count(metric):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((20_000, 384)).astype(np.float32)
    C = rng.standard_normal((300, 384)).astype(np.float32)
    one = assign(X, C, metric, threads=1)
    two = assign(X, C, metric, threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])  # a multi-threaded GEMM differs here in the last bits
