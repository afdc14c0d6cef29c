import numpy as np

from curation_assets.assets.benchmarks import balance_check
from curation_assets.core import LevelSpec
from curation_assets.core.synthetic import zipf_concepts
from curation_assets.evaluation import ORACLE, Task, benchmark, gain_share_rows, oracle_balanced, whitening


def test_oracle_is_as_balanced_as_class_sizes_allow():
    labels = np.repeat(np.array(["a", "b", "c"]), [100, 20, 3])
    idx = oracle_balanced(labels, 30, seed=0)
    _, counts = np.unique(labels[idx], return_counts=True)
    assert sorted(counts.tolist()) == [3, 13, 14] and len(np.unique(idx)) == 30


def test_gain_share_arithmetic():
    rows = [{"method": m, "metric": "normalized_entropy", "value": v, "std": 0.0, "seeds": 1}
            for m, v in (("random", 0.5), (ORACLE, 0.9), ("hierarchical_resampled", 0.7), ("kmeans", 0.4))]
    share = {r["method"]: r["value"] for r in gain_share_rows(rows)}
    assert set(share) == {"hierarchical_resampled", "kmeans"}
    np.testing.assert_allclose([share["hierarchical_resampled"], share["kmeans"]], [0.5, -0.25])


def test_balance_check_fails_when_curated_is_less_balanced_than_random():
    def rows(cur, rnd):
        return [{"method": "hierarchical_resampled", "metric": "normalized_entropy", "value": cur},
                {"method": "random", "metric": "normalized_entropy", "value": rnd}]
    assert balance_check(rows(0.9, 0.8)).passed
    assert not balance_check(rows(0.7, 0.8)).passed


def test_whitening_is_learned_on_the_subset_only():
    X = np.random.default_rng(0).normal(size=(500, 10)) * np.arange(1, 11)
    rep = whitening(X, dim=4)
    Z = rep(X)
    assert Z.shape == (500, 4)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(4), atol=1e-6)


def test_benchmark_on_long_tailed_concepts():
    X, y = zipf_concepts(n_concepts=12, n_points=3000, dim=16, seed=0)
    y = y.astype(str)
    rng = np.random.default_rng(0)
    test = np.concatenate([rng.choice(np.flatnonzero(y == c), size=min(10, (y == c).sum() // 2), replace=False)
                           for c in np.unique(y)])
    pool = np.setdiff1d(np.arange(len(y)), test)
    task = Task(X[pool], y[pool], X[test], y[test])
    rows = benchmark(task, [LevelSpec(60, 2, 5), LevelSpec(15)], target=300, seeds=(0,))
    value = {(r["method"], r["metric"]): r["value"] for r in rows}
    assert value[("hierarchical_resampled", "normalized_entropy")] > value[("random", "normalized_entropy")]
    assert value[(ORACLE, "normalized_entropy")] >= value[("hierarchical_resampled", "normalized_entropy")]
    assert ("hierarchical_resampled", "gain_share_normalized_entropy") in value
    assert {m for m, _ in value} >= {"random", "kmeans", "hierarchical", "hierarchical_resampled", "full", ORACLE}
