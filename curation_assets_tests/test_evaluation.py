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
    random_selection,
    study_methods,
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


def _scores(published, random, errors=()):
    frame = pl.DataFrame([{"method": m, "metric": "normalized_entropy", "value": v, "std": 0.01, "seeds": 3}
                          for m, v in ((PUBLISHED, published), ("random", random))])
    tree = SimpleNamespace(n_levels=1, levels=[SimpleNamespace(n_clusters=5)], pool=SimpleNamespace(
        layout=SimpleNamespace(modality="text")))
    scores = SimpleNamespace(frame=frame, record=SimpleNamespace(facts={"errors": list(errors)}),
                             subset=SimpleNamespace(tree=tree))
    return {c.check_name: (c.passed, c.description) for c in scores_checks(scores)}


def test_checks_fail_when_the_published_subset_is_less_balanced_than_random_and_say_why():
    passed = _scores(0.9, 0.8)
    assert passed["published_not_less_balanced_than_random"][0] and passed["benchmark_complete"][0]
    failed, why = _scores(0.7, 0.8)["published_not_less_balanced_than_random"]
    assert not failed and why.startswith("[text] FAILED") and "0.700" in why and "0.800 ± 0.010" in why
    broken = _scores(0.9, 0.8, [{"method": "kmeans", "seed": 1, "error": "ValueError: boom"}])["benchmark_complete"]
    assert not broken[0] and "kmeans" in broken[1]


def test_whitening_is_learned_on_the_subset_only():
    X = np.random.default_rng(0).normal(size=(500, 10)) * np.arange(1, 11)
    rep = whitening(X, dim=4)
    Z = rep(X)
    assert Z.shape == (500, 4)
    np.testing.assert_allclose(np.cov(Z, rowvar=False), np.eye(4), atol=1e-6)


def test_benchmark_scores_the_published_rows_against_cheap_baselines_and_refits_on_request():
    X, y = zipf_concepts(n_concepts=12, n_points=3000, dim=16, seed=0)
    labels = y.astype(str).astype(object)
    task = Task.of(X, labels, per_class=10, max_share=0.2, seed=0)
    levels = (LevelSpec(per_cluster=50, resampling_steps=2, sample_size=5), LevelSpec(15))
    tree = hierarchical_kmeans(task.X, levels, seed=0)
    published = hierarchical_sampling(tree, 300, seed=0)
    curation = Curation(levels)
    np.testing.assert_array_equal(curation.select("hierarchical_resampled", task, 300, 0), published)
    lines = []
    rows, errors = benchmark(task, published, tree, curation, seeds=(0, 1), log=lines.append)
    value = {(r["method"], r["metric"]): r["value"] for r in rows}
    assert not errors and {m for m, _ in value} == {PUBLISHED, "random", "redraw", ORACLE}
    assert value[(PUBLISHED, "normalized_entropy")] > value[("random", "normalized_entropy")]
    assert value[(ORACLE, "normalized_entropy")] >= value[(PUBLISHED, "normalized_entropy")]
    assert (PUBLISHED, "linear_balanced_accuracy") in value and (PUBLISHED, "gain_share_normalized_entropy") in value
    assert any(line.startswith("redraw seed 2") for line in lines)  # never the published draw's seed 0
    rows, _ = benchmark(task, published, tree, curation, seeds=(0,), methods=study_methods("full"))
    assert {r["method"] for r in rows} >= {"kmeans", "hierarchical", "hierarchical_resampled", "full"}


def test_baselines_take_repeats_like_a_subset_with_a_multiplier():
    X, y = zipf_concepts(n_concepts=5, n_points=200, dim=8, seed=0)
    task = Task.of(X, y.astype(str).astype(object), per_class=2, max_share=0.2, seed=0)
    tree = hierarchical_kmeans(task.X, (LevelSpec(10),), seed=0)
    curation = Curation((LevelSpec(10),), multiplier=2)
    published = curation.draw(tree, 300, seed=0)  # more rows than the pool: repeats
    rows, errors = benchmark(task, published, tree, curation, seeds=(0, 1))
    assert not errors and {r["method"] for r in rows} >= {"random", "redraw", ORACLE}
    picks = random_selection(200, 300, seed=0, multiplier=2)
    assert len(picks) == 300 and np.bincount(picks).max() == 2


def test_a_failing_method_is_recorded_and_the_others_still_count(monkeypatch):
    X, y = zipf_concepts(n_concepts=5, n_points=300, dim=8, seed=0)
    task = Task.of(X, y.astype(str).astype(object), per_class=2, max_share=0.2, seed=0)
    tree = hierarchical_kmeans(task.X, (LevelSpec(10),), seed=0)
    curation = Curation((LevelSpec(10),))

    def broken(*args, **kwargs):
        raise RuntimeError("baseline broke")

    monkeypatch.setattr("curation_assets.evaluation.random_selection", broken)
    rows, errors = benchmark(task, curation.draw(tree, 60, 0), tree, curation, seeds=(0, 1))
    assert [e["method"] for e in errors] == ["random", "random"] and "baseline broke" in errors[0]["error"]
    assert {r["method"] for r in rows} >= {PUBLISHED, "redraw"}
