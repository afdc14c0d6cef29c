"""Lloyd as tasks (issue 26): plain Lloyd's centroids, the same bytes for any thread count or task order."""

import numpy as np
import pytest

from curation_assets.core import LevelSpec, fit_level
from curation_assets.core.clustering import fit_centroids
from curation_assets.core.lloyd_tasks import LloydTasks, even_blocks, lloyd_task, run_in_process, run_lloyd_tasks
from curation_assets.core.workers import Workers, shared_workers
from curation_assets_tests.core.test_kmeans import _plain_lloyd


def blobs(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = 4 * rng.standard_normal((40, d))
    return (centres[rng.integers(0, 40, n)] + rng.standard_normal((n, d))).astype(np.float32)


def in_process(task_rows: int, threads: int | None = None) -> LloydTasks:
    workers = shared_workers(threads)
    return LloydTasks(lambda X, states, rnd: run_in_process(X, states, rnd, workers), task_rows)


def test_tasks_are_the_fewest_equal_blocks():
    assert even_blocks(10, 4) == [(0, 3), (3, 6), (6, 10)]
    assert even_blocks(8, 4) == [(0, 4), (4, 8)]
    assert even_blocks(3, 10) == [(0, 3)]


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_lloyd_as_tasks_gives_the_centroids_of_plain_lloyd(metric):
    X = blobs(12_000, 16)
    if metric == "cosine":
        X /= np.linalg.norm(X, axis=1, keepdims=True)
    init = X[np.random.default_rng(1).choice(len(X), 400, replace=False)]
    rows = np.arange(len(X))
    ours, iterations, pairs = run_lloyd_tasks(X, rows, init, 40, np.random.default_rng(0), metric, in_process(2500),
                                              shared_workers())
    plain, plain_iterations = _plain_lloyd(X, init, 40, spherical=metric == "cosine")
    assert iterations == plain_iterations
    np.testing.assert_allclose(ours, plain, rtol=1e-5, atol=1e-5)
    assert pairs < 0.5 * len(X) * len(init) * iterations  # the bounds skip most pairs, as in-process Lloyd's do


def test_the_bytes_do_not_depend_on_threads_or_on_the_order_tasks_run_in():
    X = blobs(9_000, 24, seed=2)
    rows = np.sort(np.random.default_rng(3).choice(len(X), 7_000, replace=False))
    init = X[rows[:90]]

    def backwards(X, states, rnd):  # a backend finishing the tasks in another order, each on its own worker
        results = [lloyd_task(X, state, rnd) for state in reversed(states)][::-1]
        return [state for state, _ in results], [sums for _, sums in results]

    ways = ((in_process(1000, 1), 1), (in_process(1000, 3), 3), (LloydTasks(backwards, 1000), 2))
    runs = [run_lloyd_tasks(X, rows, init, 30, np.random.default_rng(5), "l2", tasks, Workers(threads))
            for tasks, threads in ways]
    for centroids, iterations, pairs in runs[1:]:
        np.testing.assert_array_equal(centroids, runs[0][0])
        assert (iterations, pairs) == runs[0][1:]


def test_only_a_sample_larger_than_a_task_trains_as_tasks_and_the_level_is_the_same():
    X = blobs(6_000, 16, seed=4)
    calls = []
    local = in_process(1_500)

    def counted(X, states, rnd):
        calls.append(len(states))
        return local.run(X, states, rnd)

    tasks = LloydTasks(counted, 1_500)
    fit_centroids(X, 20, np.random.default_rng(0), max_points_per_centroid=50, lloyd_tasks=tasks)  # 1000 rows
    assert calls == []
    fit = fit_centroids(X, 20, np.random.default_rng(0), lloyd_tasks=tasks)
    assert set(calls) == {4} and len(calls) == fit.n_iter
    spec = LevelSpec(30, resampling_steps=2, sample_size=40)
    ours = fit_level(X, spec, seed=1, lloyd_tasks=tasks)
    plain = fit_level(X, spec, seed=1)
    np.testing.assert_allclose(ours.centroids, plain.centroids, rtol=1e-5, atol=1e-5)
    assert (ours.assignment == plain.assignment).mean() > 0.999
