import numpy as np
import pytest

from curation_assets.core import (
    cluster_size_stats,
    gini,
    kde_kl_to_uniform,
    kl_to_uniform,
    label_balance,
    normalized_entropy,
)


def test_balanced_subset_has_entropy_one_and_kl_zero():
    pool = np.repeat(["a", "b", "c", "d"], [100, 50, 10, 5])
    subset = np.repeat(["a", "b", "c", "d"], 5)
    m = label_balance(subset, pool)
    assert m["normalized_entropy"] == pytest.approx(1.0)
    assert m["kl_to_uniform"] == pytest.approx(0.0, abs=1e-12)
    assert m["coverage"] == 1.0
    assert m["rare_half_share"] == pytest.approx(0.5)


def test_single_class_subset():
    pool = np.repeat(["a", "b", "c", "d"], [100, 50, 10, 5])
    m = label_balance(np.array(["a"] * 7), pool)
    assert m["coverage"] == pytest.approx(1 / 4)
    assert m["normalized_entropy"] == pytest.approx(0.0)
    assert m["kl_to_uniform"] == pytest.approx(np.log(4))
    assert m["rare_half_share"] == 0.0


def test_label_balance_rejects_unknown_labels():
    with pytest.raises(ValueError, match="not in the pool"):
        label_balance(np.array(["z"]), np.array(["a", "b"]))


def test_entropy_kl_gini_on_hand_made_counts():
    assert normalized_entropy([5, 5]) == pytest.approx(1.0)
    assert normalized_entropy([1, 0], n_categories=2) == 0.0
    assert kl_to_uniform([1, 1, 2], 4) == pytest.approx(
        0.25 * np.log(0.25 * 4) * 2 + 0.5 * np.log(0.5 * 4))
    assert gini([3, 3, 3]) == pytest.approx(0.0)
    assert gini([0, 0, 0, 12]) == pytest.approx(0.75)


def test_cluster_size_stats():
    s = cluster_size_stats([1, 2, 3, 10])
    assert s == {"n_clusters": 4, "min": 1, "median": 2.5, "max": 10,
                 "normalized_entropy": pytest.approx(normalized_entropy([1, 2, 3, 10])),
                 "gini": pytest.approx(gini([1, 2, 3, 10]))}


def test_kde_kl_uniform_points_are_low_and_a_clump_is_high():
    rng = np.random.default_rng(0)
    uniform = kde_kl_to_uniform(rng.uniform(-3, 3, size=(300, 2)))
    clump = kde_kl_to_uniform(rng.normal(0, 0.3, size=(300, 2)))
    assert 0.02 < uniform < 0.07  # the paper's floor: 0.040 ± 0.007
    assert clump > 1.0
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        kde_kl_to_uniform(np.zeros((3, 3)))
