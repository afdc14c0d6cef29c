import numpy as np
import pytest

from curation_assets.core import HierarchicalClustering, Level, balanced_budget, hierarchical_sampling, tempered_budget


def level(assignment, n_clusters, d=2):
    assignment = np.asarray(assignment, dtype=np.int64)
    return Level(np.zeros((n_clusters, d), np.float32), assignment, np.zeros(len(assignment), np.float32))


def tree_from_sizes(leaf_sizes, parents=None):
    """A hand-made tree: level-1 clusters of the given sizes (rows in order), optional level-2 parents."""
    a1 = np.repeat(np.arange(len(leaf_sizes)), leaf_sizes)
    levels = [level(a1, len(leaf_sizes))]
    if parents is not None:
        levels.append(level(parents, max(parents) + 1))
    return HierarchicalClustering(levels)


def per_leaf(h, idx):
    return np.bincount(h.labels(1)[idx], minlength=h.levels[0].n_clusters)


def test_balanced_budget_water_fills_exactly():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(balanced_budget([10, 1, 5], 9, rng), [4, 1, 4])
    np.testing.assert_array_equal(balanced_budget([10, 1, 5], 16, rng), [10, 1, 5])
    np.testing.assert_array_equal(balanced_budget([10, 1, 5], 100, rng), [10, 1, 5])
    np.testing.assert_array_equal(balanced_budget([3, 3, 3], 0, rng), [0, 0, 0])


def test_balanced_budget_leftover_goes_to_clusters_larger_than_the_cap():
    for seed in range(20):
        alloc = balanced_budget([10, 1, 5], 10, np.random.default_rng(seed))
        assert alloc.sum() == 10 and alloc[1] == 1
        assert sorted(alloc[[0, 2]].tolist()) == [4, 5]


def test_balanced_budget_property():
    rng = np.random.default_rng(0)
    for _ in range(200):
        caps = rng.integers(0, 30, size=rng.integers(1, 12))
        budget = int(rng.integers(0, caps.sum() + 5))
        alloc = balanced_budget(caps, budget, rng)
        assert alloc.sum() == min(budget, caps.sum())
        assert (alloc <= caps).all() and (alloc >= 0).all()
        unsaturated = alloc < caps  # every unsaturated cluster sits at the top allocation (±1)
        if unsaturated.any():
            assert alloc[unsaturated].min() >= alloc.max() - 1


def test_one_level_sampling_counts():
    h = tree_from_sizes([50, 2, 10, 30])
    idx = hierarchical_sampling(h, 30, seed=0)
    counts = per_leaf(h, idx)
    # cap c=9: 9 + 2 + 9 + 9 = 29, one leftover slot to a cluster larger than 9
    assert counts[1] == 2 and counts.sum() == 30
    assert sorted(counts[[0, 2, 3]].tolist()) == [9, 9, 10]
    assert len(np.unique(idx)) == 30 and np.all(np.diff(idx) >= 0)


def test_two_level_budgets_recurse_into_children():
    # level 1: sizes 40, 40, 1, 1, 20 ; level 2: {0,1,2,3} -> A, {4} -> B
    h = tree_from_sizes([40, 40, 1, 1, 20], parents=[0, 0, 0, 0, 1])
    idx = hierarchical_sampling(h, 40, seed=0)
    counts = per_leaf(h, idx)
    # top: A (82 pts) and B (20 pts): cap 20 -> A 20, B 20; inside A: 1, 1 and 9, 9
    np.testing.assert_array_equal(counts, [9, 9, 1, 1, 20])


def test_many_levels_and_identity_levels_do_not_change_the_draw():
    h2 = tree_from_sizes([40, 40, 1, 1, 20], parents=[0, 0, 0, 0, 1])
    h4 = HierarchicalClustering(h2.levels + [level([0, 1], 2), level([0, 1], 2)])
    assert h4.n_levels == 4
    np.testing.assert_array_equal(hierarchical_sampling(h2, 40, seed=5), hierarchical_sampling(h4, 40, seed=5))


def test_empty_clusters_get_no_budget():
    a1 = np.array([0, 0, 0, 2, 2, 2, 2])  # cluster 1 is empty
    h = HierarchicalClustering([level(a1, 3)])
    idx = hierarchical_sampling(h, 4, seed=0)
    np.testing.assert_array_equal(per_leaf(h, idx), [2, 0, 2])


def test_closest_strategy_takes_nearest_points_first():
    a1 = np.zeros(5, dtype=np.int64)
    dist = np.array([5.0, 1.0, 4.0, 0.5, 3.0], np.float32)
    h = HierarchicalClustering([Level(np.zeros((1, 2), np.float32), a1, dist)])
    np.testing.assert_array_equal(hierarchical_sampling(h, 2, strategy="closest"), [1, 3])


def test_multiplier_tiles_small_clusters():
    h = tree_from_sizes([2, 10])
    idx = hierarchical_sampling(h, 12, multiplier=3, seed=0)
    counts = per_leaf(h, idx)
    np.testing.assert_array_equal(counts, [6, 6])
    np.testing.assert_array_equal(np.bincount(idx[idx < 2]), [3, 3])


def test_sampling_is_deterministic_per_seed():
    rng = np.random.default_rng(0)
    h = tree_from_sizes(rng.integers(1, 50, size=40).tolist())
    a, b = hierarchical_sampling(h, 300, seed=1), hierarchical_sampling(h, 300, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, hierarchical_sampling(h, 300, seed=2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target_size": 100}, "exceeds the pool"),
        ({"target_size": 0}, "target_size"),
        ({"target_size": 5, "strategy": "farthest"}, "strategy"),
        ({"target_size": 5, "multiplier": 0}, "multiplier"),
    ],
)
def test_sampling_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hierarchical_sampling(tree_from_sizes([10, 10]), **kwargs)


def test_target_equal_to_pool_takes_everything():
    h = tree_from_sizes([3, 7])
    np.testing.assert_array_equal(hierarchical_sampling(h, 10), np.arange(10))


def test_tempered_budget_interpolates_between_balanced_and_proportional():
    caps = np.array([400, 100, 25, 1])
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(tempered_budget(caps, 100, 0.0, rng), balanced_budget(caps, 100, rng))
    prop = tempered_budget(caps, 105, 1.0, rng)
    assert prop.sum() == 105 and (np.abs(prop - caps * 105 / caps.sum()) <= 1).all()
    half = tempered_budget(caps, 100, 0.5, rng)
    assert half.sum() == 100 and half[0] > half[1] > half[2] >= half[3]
    assert (half <= caps).all()


def test_alpha_one_sampling_is_proportional_to_cluster_size():
    h = tree_from_sizes([600, 300, 100])
    counts = per_leaf(h, hierarchical_sampling(h, 100, seed=0, alpha=1.0))
    np.testing.assert_array_equal(counts, [60, 30, 10])
    with pytest.raises(ValueError, match="alpha"):
        hierarchical_sampling(h, 10, alpha=1.5)
