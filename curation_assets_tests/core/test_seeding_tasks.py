"""Seeding with its blocks kept by holders (issue 26): the same seeds for any thread count or grouping, as good as
the in-process seeding, used only above its size."""

import functools

import numpy as np
import pytest

from curation_assets.core import LevelSpec, fit_level, seeding_tasks
from curation_assets.core.clustering import fit_centroids
from curation_assets.core.seeding import greedy_seeds, host_seeding
from curation_assets.core.seeding_tasks import InProcessHolders, SeedingBlocks, SeedingTasks, TaskSeeding
from curation_assets.core.workers import Workers, shared_workers
from curation_assets_tests.core.test_lloyd_tasks import blobs


def in_process(task_rows: int, threads: int | None = None) -> SeedingTasks:
    workers = shared_workers(threads)
    return SeedingTasks(lambda X, blocks, metric, first: InProcessHolders(X, blocks, metric, first, workers),
                        task_rows)


class OneHolder:
    """Every block in one :class:`SeedingBlocks`: another grouping of the same blocks."""

    def __init__(self, X, blocks, metric, first):
        self.holder = SeedingBlocks(X, blocks, metric, first)

    def __getattr__(self, name):
        return getattr(self.holder, name)


def potential(X, centroids):
    return sum(float(((X[s : s + 2000, None] - centroids[None]) ** 2).sum(-1).min(1).sum())
               for s in range(0, len(X), 2000))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_the_seeds_do_not_depend_on_threads_or_on_which_holder_keeps_a_block(monkeypatch, metric):
    monkeypatch.setattr(seeding_tasks, "SEEDING_POINT_BLOCK", 1500)
    X = blobs(8000, 24, seed=5)
    rows = np.sort(np.random.default_rng(0).choice(len(X), 6000, replace=False))
    runs = []
    for tasks in (in_process(1, 1), in_process(1, 3), SeedingTasks(OneHolder, 1)):
        open_space = functools.partial(TaskSeeding, X, rows, metric, tasks=tasks)
        runs.append(greedy_seeds(np.empty((len(rows), 0)), 60, None, np.random.default_rng(2), open_space))
    for seeds, pairs in runs[1:]:
        np.testing.assert_array_equal(seeds, runs[0][0])
        assert pairs == runs[0][1]
    assert len(set(runs[0][0].tolist())) == 60


def test_the_seeds_are_as_good_as_in_process_seeding():
    X = blobs(20_000, 32, seed=6)
    rows = np.arange(len(X))
    ours, _ = greedy_seeds(np.empty((len(X), 0)), 100, None, np.random.default_rng(4),
                           functools.partial(TaskSeeding, X, rows, "l2", tasks=in_process(1)))
    dense, _ = greedy_seeds(X, 100, None, np.random.default_rng(4), host_seeding(X, Workers(2)))
    assert potential(X, X[ours]) <= 1.05 * potential(X, X[dense])


def test_only_a_seeding_sample_larger_than_a_task_is_held_in_blocks():
    X = blobs(6000, 16, seed=7)
    opened = []
    local = in_process(1000)

    def counted(X, blocks, metric, first):
        opened.append(len(blocks))
        return local.open(X, blocks, metric, first)

    tasks = SeedingTasks(counted, 1000)
    fit_centroids(X, 10, np.random.default_rng(0), seeding_tasks=tasks)  # 640 seeding rows
    assert opened == []
    fit_centroids(X, 30, np.random.default_rng(0), seeding_tasks=tasks)  # 1920 seeding rows
    assert opened == [1]
    spec = LevelSpec(40, resampling_steps=2, sample_size=30)
    ours, plain = fit_level(X, spec, seed=3, seeding_tasks=tasks), fit_level(X, spec, seed=3)
    assert (ours.assignment == plain.assignment).mean() > 0.99
