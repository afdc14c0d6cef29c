"""The Ray backend on a local 2-CPU cluster started on demand (loopback only): same bytes as in-process."""

import os

import numpy as np
import pytest
import ray

from curation_assets.config import ExecutionConfig, RayConfig
from curation_assets.core import LevelSpec, fit_level, seeding_tasks
from curation_assets.core.lloyd_tasks import LloydTasks
from curation_assets.core.seeding_tasks import SeedingTasks
from curation_assets.execution import InProcessBackend, make_backend
from curation_assets.store import ShardedArray, ShardWriter


@pytest.fixture(scope="module")
def ray_backend():
    """An on-demand local cluster; a stale RAY_ADDRESS (left by an earlier connection) must not be joined."""
    backend = make_backend(ExecutionConfig(backend="ray", ray=RayConfig(num_cpus=2), assign_task_rows=300))
    stale = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = "127.0.0.1:9"  # nothing listens there
    try:
        backend.connect()
    finally:
        if stale is None:
            os.environ.pop("RAY_ADDRESS")
        else:
            os.environ["RAY_ADDRESS"] = stale
    yield backend
    ray.shutdown()


def sharded_pool(tmp_path, X):
    writer = ShardWriter(tmp_path, shard_rows=1500)
    writer.append(X)
    writer.publish()
    return ShardedArray.open(tmp_path).subset(np.arange(0, len(X), 2))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_a_level_fitted_through_ray_is_identical(tmp_path, ray_backend, metric):
    """The assignments and the splits run as Ray tasks: the level is the in-process one, byte for byte."""
    X = np.random.default_rng(3).standard_normal((5000, 48)).astype(np.float32)
    spec = LevelSpec(40, resampling_steps=3, sample_size=6, n_splits=3)
    local = InProcessBackend(embed_task_rows=100, assign_task_rows=300)
    ray_backend.reset_stats()
    for inputs in (sharded_pool(tmp_path, X), X[:1234]):  # shard files by path, an in-memory array by reference
        a = fit_level(inputs, spec, seed=5, metric=metric, assigner=local.assign, splitter=local.split)
        b = fit_level(inputs, spec, seed=5, metric=metric, assigner=ray_backend.assign, splitter=ray_backend.split)
        assert a.n_clusters > spec.n_clusters  # the splits ran
        np.testing.assert_array_equal(fit_level(inputs, spec, seed=5, metric=metric).assignment, a.assignment)
        np.testing.assert_array_equal(a.assignment, b.assignment)
        np.testing.assert_array_equal(a.distances, b.distances)
        np.testing.assert_array_equal(a.centroids, b.centroids)
        assert fit_level(inputs, spec, seed=5, metric=metric).distance_pairs == a.distance_pairs
    summary = ray_backend.run_summary()
    assert summary["tasks"] == local.stats["tasks"] > 2 * 4
    assert summary["ray_cpus"] == 2 and summary["ray_nodes"] == 1
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # loopback only
    assert summary["workers"] and all(not w.endswith(f":{os.getpid()}") for w in summary["workers"])


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_lloyd_and_seeding_as_ray_tasks_give_the_in_process_level(tmp_path, monkeypatch, ray_backend, metric):
    """A training sample of more rows than a Lloyd task holds: its iterations run as Ray tasks over the shards,
    the states staying in the object store; a seeding sample of more rows than a seeding task holds: its blocks
    are kept by Ray actors. The level is the in-process one byte for byte."""
    monkeypatch.setattr(seeding_tasks, "SEEDING_POINT_BLOCK", 400)  # 1920 seeding rows: 5 blocks on 2 actors
    X = np.random.default_rng(6).standard_normal((6000, 40)).astype(np.float32)
    spec = LevelSpec(30, resampling_steps=2, sample_size=20, n_splits=2)
    local = InProcessBackend(embed_task_rows=100, assign_task_rows=300)
    for inputs in (sharded_pool(tmp_path, X), X[:2500]):
        ray_backend.reset_stats()
        local.reset_stats()
        a = fit_level(inputs, spec, seed=7, metric=metric, lloyd_tasks=LloydTasks(local.lloyd, 700),
                      seeding_tasks=SeedingTasks(local.seeding_holders, 1000))  # the first k-means only
        b = fit_level(inputs, spec, seed=7, metric=metric, assigner=ray_backend.assign, splitter=ray_backend.split,
                      lloyd_tasks=LloydTasks(ray_backend.lloyd, 700),
                      seeding_tasks=SeedingTasks(ray_backend.seeding_holders, 1000))
        np.testing.assert_array_equal(a.centroids, b.centroids)
        np.testing.assert_array_equal(a.assignment, b.assignment)
        np.testing.assert_array_equal(a.distances, b.distances)
        assert local.stats["tasks"] >= 4 * 2  # 3000 and 2500 training rows: 5 and 4 tasks an iteration
        assert ray_backend.stats["tasks"] > local.stats["tasks"]  # plus the assignments and splits


def test_a_path_no_node_can_see_is_refused_before_any_task(tmp_path, ray_backend):
    from curation_assets.execution.ray_backend import SharedStorageError

    with pytest.raises(SharedStorageError, match="same path"):
        ray_backend.check_storage(tmp_path / "not-shared" / "corpus.parquet")


@pytest.mark.parametrize("task", ["_assign_task", "_lloyd_task", "SeedingActor"])
def test_a_worker_killed_in_the_middle_of_a_level_is_retried_with_the_same_result(tmp_path, monkeypatch, ray_backend,
                                                                                 task):
    """SIGKILL a Ray worker process while it runs an assignment task or a Lloyd task (Ray reruns the task), or a
    seeding actor (the actors restart from the batch's start): the level is the same as in-process."""
    import signal
    import threading
    import time
    from pathlib import Path

    X = np.random.default_rng(4).standard_normal((60_000, 64)).astype(np.float32)
    spec = LevelSpec(60, resampling_steps=6, sample_size=10, max_points_per_centroid=None)
    monkeypatch.setattr(seeding_tasks, "SEEDING_POINT_BLOCK", 1000)  # 3840 seeding rows: 4 blocks on 2 actors
    killed: list[int] = []

    def kill_one_busy_worker():
        deadline = time.time() + 120
        while not killed and time.time() < deadline:
            for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
                try:
                    if cmdline.read_bytes().startswith(f"ray::{task}".encode()):
                        os.kill(int(cmdline.parent.name), signal.SIGKILL)
                        killed.append(int(cmdline.parent.name))
                        break
                except OSError:
                    continue
            time.sleep(0.002)

    local_backend = InProcessBackend(embed_task_rows=100, assign_task_rows=300)
    killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
    killer.start()
    through_ray = fit_level(X, spec, seed=2, metric="l2", assigner=ray_backend.assign,
                            lloyd_tasks=LloydTasks(ray_backend.lloyd, 15_000),
                            seeding_tasks=SeedingTasks(ray_backend.seeding_holders, 2000))
    killer.join()
    local = fit_level(X, spec, seed=2, metric="l2", assigner=local_backend.assign,
                      lloyd_tasks=LloydTasks(local_backend.lloyd, 15_000),
                      seeding_tasks=SeedingTasks(local_backend.seeding_holders, 2000))
    assert killed, f"no {task} was running to be killed"
    np.testing.assert_array_equal(through_ray.assignment, local.assignment)
    np.testing.assert_array_equal(through_ray.centroids, local.centroids)


def test_a_ray_client_connection_whose_server_did_not_start_is_tried_again(monkeypatch):
    """Ray Client's head starts a server per connection; when it fails to start, a new connection gets a new one."""
    from curation_assets.execution.ray_backend import CONNECT_ATTEMPTS, RayBackend

    calls = []

    def init(**kwargs):
        calls.append(kwargs["address"])
        if len(calls) < CONNECT_ATTEMPTS:
            raise ConnectionAbortedError("Starting Ray client server failed")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", init)
    backend = RayBackend(RayConfig(address="ray://127.0.0.1:1"), 100, 300, 1000, 1000)
    backend.connect()
    assert calls == ["ray://127.0.0.1:1"] * CONNECT_ATTEMPTS

    def never_starts(**kwargs):
        calls.append(kwargs["address"])
        raise ConnectionAbortedError("Starting Ray client server failed")

    calls.clear()
    monkeypatch.setattr(ray, "init", never_starts)
    with pytest.raises(ConnectionAbortedError):
        backend.connect()
    assert len(calls) == CONNECT_ATTEMPTS
