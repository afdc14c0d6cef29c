import numpy as np
import pytest

from curation_assets.core import assign, kmeans, kmeans_plusplus
from curation_assets.core.assignment import KD_TREE_MAX_DIM
from curation_assets.core.lloyd import FILTER_MIN_PAIRS, lloyd, run_lloyd
from curation_assets.core.seeding import default_seeding_candidates
from curation_assets.core.workers import shared_workers


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


def test_near_ties_go_the_way_of_exact_arithmetic():
    # Far from the origin, ||x||² + ||c||² - 2 x·c in float32 loses the difference between two close centroids;
    # the search re-checks such rows exactly, so every label is the float64 nearest centroid.
    rng = np.random.default_rng(7)
    offset = np.full(32, 300.0)
    C = (offset + rng.standard_normal((2, 32)) * 0.05).astype(np.float32)
    X = (offset + rng.standard_normal((5000, 32)) * 0.05).astype(np.float32)
    exact = ((X[:, None].astype(np.float64) - C[None].astype(np.float64)) ** 2).sum(axis=2)
    labels, dists = assign(X, C)
    np.testing.assert_array_equal(labels, exact.argmin(axis=1))
    np.testing.assert_allclose(dists, exact.min(axis=1), rtol=1e-6)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_assignment_bytes_do_not_depend_on_the_thread_count(metric):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((20_000, 384)).astype(np.float32)
    C = rng.standard_normal((300, 384)).astype(np.float32)
    one = assign(X, C, metric, threads=1)
    two = assign(X, C, metric, threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])  # a multi-threaded GEMM differs here in the last bits


def _plain_lloyd(X, init, n_iter, spherical=False):
    """Textbook Lloyd in float64: every point to its nearest centroid among all of them, then the means."""
    X64, C = X.astype(np.float64), init.astype(np.float64)
    labels = None
    for it in range(1, n_iter + 1):
        new = ((X64**2).sum(1)[:, None] - 2 * X64 @ C.T + (C**2).sum(1)[None, :]).argmin(axis=1)
        if labels is not None and np.array_equal(new, labels):
            return C, it
        labels = new
        assert np.bincount(labels, minlength=len(C)).min() > 0, "the reference does not handle empty clusters"
        C = np.stack([X64[labels == j].mean(axis=0) for j in range(len(C))])
        if spherical:
            C /= np.linalg.norm(C, axis=1, keepdims=True)
    return C, n_iter


@pytest.mark.parametrize("metric, d", [("l2", 16), ("cosine", 16), ("l2", 2)])  # GEMM and k-d tree paths
def test_filtered_lloyd_gives_the_centroids_of_plain_lloyd_and_skips_most_pairs(metric, d):
    rng = np.random.default_rng(0)
    centres = 4 * rng.standard_normal((40, d))
    X = (centres[rng.integers(0, 40, 12_000)] + rng.standard_normal((12_000, d))).astype(np.float32)
    if metric == "cosine":
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    init = X[rng.choice(len(X), 400, replace=False)]
    assert len(X) * len(init) >= FILTER_MIN_PAIRS  # the filtered search runs
    ours, iterations, pairs = run_lloyd(X, init.copy(), 40, np.random.default_rng(0), metric == "cosine",
                                      shared_workers())
    plain, plain_iterations = _plain_lloyd(X, init, 40, spherical=metric == "cosine")
    assert iterations == plain_iterations
    np.testing.assert_allclose(ours, plain, rtol=1e-5, atol=1e-5)
    if d > KD_TREE_MAX_DIM:
        assert pairs < 0.5 * len(X) * len(init) * iterations  # what the bounds rule out is not computed
    public, public_iterations = lloyd(X, init, 40, metric)
    np.testing.assert_array_equal(public, ours)
    assert public_iterations == iterations


def _greedy_seed_set_probabilities(X, k, candidates):
    """Exact distribution of the set of seeds of sequential greedy k-means++ (first seed uniform; then the best of
    ``candidates`` i.i.d. D² draws: lowest potential, the first drawn among tied ones), by enumerating every
    sequence. Ties are common here: two points that only capture each other lower the potential equally."""
    D = ((X[:, None].astype(np.float64) - X[None].astype(np.float64)) ** 2).sum(axis=2)
    probabilities = {}

    def walk(chosen, p):
        if len(chosen) == k:
            key = frozenset(chosen)
            probabilities[key] = probabilities.get(key, 0.0) + p
            return
        d2 = D[:, chosen].min(axis=1)
        q = d2 / d2.sum()
        potential = np.minimum(d2[:, None], D).sum(axis=0)  # after adding each point
        for x in np.flatnonzero(q > 0):
            tied = np.isclose(potential, potential[x], rtol=1e-9)
            better, tie = q[(potential < potential[x]) & ~tied].sum(), q[tied].sum()
            no_better_some_tied = (1 - better) ** candidates - (1 - better - tie) ** candidates
            walk(chosen + [x], p * no_better_some_tied * q[x] / tie)

    for first in range(len(X)):
        walk([first], 1.0 / len(X))
    return probabilities


@pytest.mark.parametrize("d", [2, 12])  # the k-d tree path and the batched GEMM path
@pytest.mark.parametrize("candidates", [1, 3])
def test_greedy_kmeans_plusplus_is_exact_in_distribution(d, candidates):
    X = np.random.default_rng(3).standard_normal((7, d)).astype(np.float32)
    exact = _greedy_seed_set_probabilities(X, 4, candidates)
    counts: dict = {}
    runs = 2000
    for seed in range(runs):
        seeds = kmeans_plusplus(X, 4, np.random.default_rng(seed), candidates=candidates)
        key = frozenset(int(np.flatnonzero((X == s).all(axis=1))[0]) for s in seeds)
        counts[key] = counts.get(key, 0) + 1
    total_variation = 0.5 * sum(abs(counts.get(key, 0) / runs - exact.get(key, 0.0)) for key in exact.keys() | counts)
    assert total_variation < 0.07, total_variation
    other = _greedy_seed_set_probabilities(X, 4, 4 - candidates)  # what a wrong number of candidates would give
    assert 0.5 * sum(abs(other.get(key, 0) - exact.get(key, 0)) for key in exact.keys() | other) > 0.12


def test_seeding_candidates_reach_kmeans_and_one_is_plain_d2_sampling():
    X, _ = blobs(n_per=300)
    default, plain = kmeans(X, 12, seed=0), kmeans(X, 12, seed=0, seeding_candidates=1)
    assert default_seeding_candidates(12) == 4
    assert not np.array_equal(default.centroids, plain.centroids)
    np.testing.assert_array_equal(
        kmeans_plusplus(X, 12, np.random.default_rng(0), candidates=1),
        kmeans_plusplus(X, 12, np.random.default_rng(0), candidates=1))


def test_training_does_not_depend_on_the_thread_count():
    rng = np.random.default_rng(5)
    centres = 3 * rng.standard_normal((60, 64))
    X = (centres[rng.integers(0, 60, 20_000)] + rng.standard_normal((20_000, 64))).astype(np.float32)
    one, two = kmeans(X, 300, seed=1, threads=1), kmeans(X, 300, seed=1, threads=2)
    assert one.n_iter > 2 and one.distance_pairs < 300 * 20_000 * (one.n_iter + 8)  # filtered Lloyd ran
    np.testing.assert_array_equal(one.centroids, two.centroids)  # seeding GEMMs, Lloyd searches, sums
    np.testing.assert_array_equal(one.labels, two.labels)
    np.testing.assert_array_equal(one.distances, two.distances)
