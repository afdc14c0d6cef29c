from types import SimpleNamespace

import numpy as np
import polars as pl

from curation_assets.core import LevelSpec, hierarchical_kmeans, hierarchical_sampling
from curation_assets.core.synthetic import zipf_concepts
from curation_assets.evaluation import (
    ORACLE,
    PUBLISHED,
    Curation,
    Task,
    benchmark,
    evaluation_split,
    gain_share_rows,
    oracle_balanced,
    whitening,
)
from curation_assets.graph.checks import scores_checks


def test_oracle_is_as_balanced_as_class_sizes_allow():
    labels = np.repeat(np.array(["a", "b", "c"], dtype=object), [100, 20, 3])
    idx = oracle_balanced(labels, 30, seed=0)
    _, counts = np.unique(labels[idx].astype(str), return_counts=True)
    assert sorted(counts.tolist()) == [3, 13, 14] and len(np.unique(idx)) == 30


def test_evaluation_split_takes_at_most_its_share_of_the_rarest_class():
    sizes = {"huge": 450, "mid": 120, "rare": 45, "tiny": 4}
    labels = np.concatenate([np.full(n, c, dtype=object) for c, n in sizes.items()] + [np.full(30, None)])
    test = evaluation_split(labels, per_class=40, max_share=0.2, seed=0)
    taken = {c: int(test[labels == c].sum()) for c in sizes}
    assert taken == {"huge": 40, "mid": 24, "rare": 9, "tiny": 0}
    assert not test[-30:].any()  # unlabelled rows are never evaluation rows


def test_gain_share_arithmetic():
    rows = [{"method": m, "metric": "normalized_entropy", "value": v, "std": 0.0, "seeds": 1}
            for m, v in (("random", 0.5), (ORACLE, 0.9), ("hierarchical_resampled", 0.7), ("kmeans", 0.4))]
    share = {r["method"]: r["value"] for r in gain_share_rows(rows)}
    assert set(share) == {"hierarchical_resampled", "kmeans"}
    np.testing.assert_allclose([share["hierarchical_resampled"], share["kmeans"]], [0.5, -0.25])


def _scores(published, random, recomputed, spread):
    frame = pl.DataFrame([{"method": m, "metric": "normalized_entropy", "value": v, "spread": s}
                          for m, v, s in ((PUBLISHED, published, 0.0), ("random", random, 0.02),
                                          ("hierarchical_resampled", recomputed, spread))])
    return {c.check_name: c.passed for c in scores_checks(SimpleNamespace(frame=frame))}


def test_checks_fail_when_the_published_subset_is_less_balanced_than_random_or_disagrees():
    assert _scores(0.9, 0.8, 0.91, 0.03) == {"published_not_less_balanced_than_random": True,
                                             "published_matches_recomputed_method": True}
    assert not _scores(0.7, 0.8, 0.71, 0.03)["published_not_less_balanced_than_random"]
    assert not _scores(0.9, 0.8, 0.80, 0.03)["published_matches_recomputed_method"]


def test_whitening_is_learned_on_the_subset_only():
    X = np.random.default_rng(0).normal(size=(500, 10)) * np.arange(1, 11)
    rep = whitening(X, dim=4)
    Z = rep(X)
    assert Z.shape == (500, 4)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(4), atol=1e-6)


def test_benchmark_scores_the_published_rows_and_recomputes_them_for_the_same_seed():
    X, y = zipf_concepts(n_concepts=12, n_points=3000, dim=16, seed=0)
    labels = y.astype(str).astype(object)
    task = Task.of(X, labels, per_class=10, max_share=0.2, seed=0)
    levels = (LevelSpec(per_cluster=50, resampling_steps=2, sample_size=5), LevelSpec(15))
    tree = hierarchical_kmeans(task.X, levels, seed=0)
    published = hierarchical_sampling(tree, 300, seed=0)
    curation = Curation(levels)
    np.testing.assert_array_equal(curation.select("hierarchical_resampled", task, 300, 0), published)
    rows = benchmark(task, published, tree, curation, seeds=(0, 1))
    value = {(r["method"], r["metric"]): r["value"] for r in rows}
    assert value[(PUBLISHED, "normalized_entropy")] > value[("random", "normalized_entropy")]
    assert value[(ORACLE, "normalized_entropy")] >= value[(PUBLISHED, "normalized_entropy")]
    assert (PUBLISHED, "linear_balanced_accuracy") in value and (PUBLISHED, "gain_share_normalized_entropy") in value
    assert {m for m, _ in value} >= {PUBLISHED, "random", "kmeans", "hierarchical", "hierarchical_resampled",
                                     "full", ORACLE}
