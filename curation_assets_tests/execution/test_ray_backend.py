"""The Ray backend on a local 2-CPU cluster started on demand (loopback only): same bytes as in-process."""

import os

import numpy as np
import pytest
import ray

from curation_assets.config import ExecutionConfig, RayConfig
from curation_assets.core import LevelSpec, fit_level
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
    summary = ray_backend.run_summary()
    assert summary["tasks"] == local.stats["tasks"] > 2 * 4
    assert summary["ray_cpus"] == 2 and summary["ray_nodes"] == 1
    assert {n["NodeManagerAddress"] for n in ray.nodes()} == {"127.0.0.1"}  # loopback only
    assert summary["workers"] and all(not w.endswith(f":{os.getpid()}") for w in summary["workers"])


def test_a_path_no_node_can_see_is_refused_before_any_task(tmp_path, ray_backend):
    from curation_assets.execution.ray_backend import SharedStorageError

    with pytest.raises(SharedStorageError, match="same path"):
        ray_backend.check_storage(tmp_path / "not-shared" / "corpus.parquet")


def test_a_worker_killed_in_the_middle_of_a_level_is_retried_with_the_same_result(tmp_path, ray_backend):
    """SIGKILL a Ray worker process while it runs an assignment task: Ray reruns the task and the level is the
    same as in-process."""
    import signal
    import subprocess
    import threading
    import time

    X = np.random.default_rng(4).standard_normal((60_000, 32)).astype(np.float32)
    spec = LevelSpec(60, resampling_steps=6, sample_size=10)
    killed: list[int] = []

    def kill_one_assignment_worker():
        deadline = time.time() + 120
        while not killed and time.time() < deadline:
            ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
            busy = [int(line.split()[0]) for line in ps.splitlines() if "ray::_assign_task" in line]
            if busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.append(busy[0])
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_assignment_worker, daemon=True)
    killer.start()
    through_ray = fit_level(X, spec, seed=2, metric="l2", assigner=ray_backend.assign)
    killer.join()
    local = fit_level(X, spec, seed=2, metric="l2",
                      assigner=InProcessBackend(embed_task_rows=100, assign_task_rows=300).assign)
    assert killed, "no assignment task was running to be killed"
    np.testing.assert_array_equal(through_ray.assignment, local.assignment)
    np.testing.assert_array_equal(through_ray.centroids, local.centroids)
