"""The splits of a level as independent tasks (issue 26): any grouping of the clusters gives the same level."""

import numpy as np

from curation_assets.core import LevelSpec, fit_level
from curation_assets.core.splits import SplitSettings, split_clusters, split_groups


def clusters_of(n_rows: int, sizes: list[int]) -> list[tuple[np.ndarray, int]]:
    ends = np.cumsum(sizes)
    return [(np.arange(end - size, end), 100 + i) for i, (size, end) in enumerate(zip(sizes, ends, strict=True))
            if end <= n_rows]


def test_groups_keep_the_cluster_order_and_cover_every_cluster_once():
    clusters = clusters_of(1000, [300, 50, 50, 400, 10, 190])
    groups = split_groups(clusters, group_rows=350)
    assert [[int(c[0][0]) for c in g] for g in groups] == [[0, 300], [350], [400], [800, 810]]
    assert [c for g in groups for c in g] == clusters
    assert split_groups([], group_rows=10) == []


def test_any_grouping_gives_the_same_split_results():
    X = np.random.default_rng(1).standard_normal((1000, 24)).astype(np.float32)
    clusters = clusters_of(1000, [300, 50, 50, 400, 10, 190])
    settings = SplitSettings(n_splits=4, metric="cosine")
    whole = split_clusters(X, clusters, settings)
    grouped = [r for g in split_groups(clusters, group_rows=100) for r in split_clusters(X, g, settings)]
    for (c1, l1, d1, p1), (c2, l2, d2, p2) in zip(whole, grouped, strict=True):
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_array_equal(l1, l2)
        np.testing.assert_array_equal(d1, d2)
        assert p1 == p2
    assert [len(c) for c, *_ in whole] == [4, 4, 4, 4, 4, 4] and max(labels.max() for _, labels, *_ in whole) == 3


def test_a_splitter_decides_where_the_splits_run_not_what_they_give():
    X = np.random.default_rng(2).standard_normal((3000, 16)).astype(np.float32)
    spec = LevelSpec(12, resampling_steps=2, sample_size=5, n_splits=3)
    calls = []

    def one_task_per_cluster(X, clusters, settings):
        calls.append(len(clusters))
        return [r for c in clusters for r in split_clusters(X, [c], settings)]

    a = fit_level(X, spec, seed=9)
    b = fit_level(X, spec, seed=9, splitter=one_task_per_cluster)
    assert calls == [12] and a.n_clusters == 36
    np.testing.assert_array_equal(a.assignment, b.assignment)
    np.testing.assert_array_equal(a.centroids, b.centroids)
