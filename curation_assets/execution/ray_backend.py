"""The Ray backend: embedding tasks on Ray actors (one model per actor), assignment, split and Lloyd tasks as Ray tasks.

Workers read the corpus and the embedding shards by path (nothing but task descriptions and results
crosses the network), so every node must see the data root at the same path; this is checked on every
alive node before the first task touching a path.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from this machine

import ray  # noqa: E402
from ray.util import ActorPool  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from curation_assets.config import RayConfig  # noqa: E402
from curation_assets.core.assignment import Metric  # noqa: E402
from curation_assets.core.lloyd_tasks import LloydRound, LloydState, LloydSums, LloydTasks, lloyd_task  # noqa: E402
from curation_assets.core.splits import (  # noqa: E402
    ClusterToSplit,
    SplitResult,
    SplitSettings,
    split_clusters,
    split_groups,
)
from curation_assets.core.workers import single_threaded  # noqa: E402
from curation_assets.execution import TaskCounter, assign_rows, embed_rows, row_tasks, task_ranges  # noqa: E402

TASKS_IN_FLIGHT_PER_CPU = 2  # assignment tasks queued per cluster CPU (bounds the object store's use)


class SharedStorageError(RuntimeError):
    """A Ray node cannot see a file of the data root."""


def ray_worker_id() -> str:
    return f"{ray.get_runtime_context().get_node_id()[:8]}:{os.getpid()}"


class EmbedWorker:
    """A Ray actor holding one embedder: ``factory()`` runs once, with torch limited to the actor's CPUs."""

    def __init__(self, factory: Callable, threads: int):
        from curation_assets.embedders.base import configure_torch_threads

        configure_torch_threads(threads)
        self.model = factory()

    def embed(self, corpus_path: str, column: str, rows: np.ndarray):
        return embed_rows(self.model, corpus_path, column, rows), ray_worker_id()


TASK_RETRIES = 3  # a task whose worker dies (killed, out of memory, node lost) is run again, elsewhere if need be


@ray.remote(max_retries=TASK_RETRIES)
def _assign_task(X, centroids: np.ndarray, metric: Metric, start: int, stop: int):
    labels, dists = assign_rows(X, centroids, metric, start, stop)
    return labels, dists, ray_worker_id()


@ray.remote(max_retries=TASK_RETRIES)
def _split_task(X, clusters: list[ClusterToSplit], settings: SplitSettings):
    """One group of a level's splits on a worker: X arrives as shard paths (reopened as memory maps) or by
    reference; only the group's members are read."""
    return split_clusters(X, clusters, settings), ray_worker_id()


@ray.remote(max_retries=TASK_RETRIES, num_returns=2)
def _lloyd_task(X, state: LloydState, rnd: LloydRound):
    """One Lloyd task of one iteration on a worker; its new state stays in the object store for the next one."""
    state, sums = single_threaded(lloyd_task, X, state, rnd)
    return state, (sums, ray_worker_id())


@ray.remote(num_cpus=0)
def _path_visible(path: str) -> bool:
    return Path(path).exists()


class RayBackend(TaskCounter):
    """Sends embedding, assignment, split and Lloyd tasks to Ray (see :mod:`curation_assets.execution`)."""

    name = "ray"

    def __init__(self, cfg: RayConfig, embed_task_rows: int, assign_task_rows: int, lloyd_task_rows: int):
        self.cfg, self.embed_task_rows, self.assign_task_rows = cfg, embed_task_rows, assign_task_rows
        self.lloyd_tasks = LloydTasks(self.lloyd, lloyd_task_rows)
        self._visible: set[str] = set()
        self._last_pool: tuple = (None, None)
        self.reset_stats()

    # -- connection ------------------------------------------------------------------------------------
    def connect(self):
        """Join the configured cluster, or start a local one (loopback only) on first use."""
        if not ray.is_initialized():
            kwargs: dict = {"logging_level": "WARNING", "runtime_env": self.cfg.runtime_env}
            if self.cfg.address is None:  # "local": a new cluster, even if RAY_ADDRESS or another cluster is around
                kwargs.update(address="local", num_cpus=self.cfg.num_cpus, include_dashboard=False)
            else:
                kwargs["address"] = self.cfg.address
            ray.init(**kwargs)
        return ray

    def cluster_cpus(self) -> int:
        return int(self.connect().cluster_resources().get("CPU", 1))


    def check_storage(self, path) -> None:
        """Refuse to start when an alive node cannot see ``path`` (the data root must be shared)."""
        path = str(Path(path).resolve())
        if path in self._visible:
            return
        self.connect()
        nodes = [n for n in ray.nodes() if n["Alive"]]
        seen = ray.get([_path_visible.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(path) for n in nodes])
        blind = [n["NodeManagerAddress"] for n, ok in zip(nodes, seen, strict=True) if not ok]
        if blind:
            raise SharedStorageError(
                f"Ray node(s) {blind} cannot see {path}: every node must mount the data root "
                "(CURATION_DATA_DIR) at the same path, e.g. a shared filesystem")
        self._visible.add(path)

    def run_summary(self) -> dict:
        return {**super().run_summary(), "ray_address": self.cfg.address or "local cluster started on demand",
                "ray_nodes": sum(1 for n in ray.nodes() if n["Alive"]), "ray_cpus": self.cluster_cpus()}

    # -- the two passes --------------------------------------------------------------------------------
    def embed(self, factory: Callable, corpus_path, column: str,
              rows: np.ndarray) -> Iterator[tuple[np.ndarray, object]]:
        """``(task rows, EmbedResult)`` of every embedding task, in row order, from a pool of actors (the driver
        consulted the embedding cache first: only the rows it lacks come here)."""
        tasks = row_tasks(rows, self.embed_task_rows)
        if not tasks:
            return
        self.check_storage(corpus_path)
        per_actor = self.cfg.cpus_per_embed_actor
        n_actors = min(len(tasks), self.cfg.embed_actors or max(1, int(self.cluster_cpus() // per_actor)))
        actor_cls = ray.remote(EmbedWorker).options(num_cpus=per_actor, max_restarts=TASK_RETRIES,
                                                    max_task_retries=TASK_RETRIES)
        actors = [actor_cls.remote(factory, max(1, int(per_actor))) for _ in range(n_actors)]
        try:
            results = ActorPool(actors).map(lambda actor, task: actor.embed.remote(str(corpus_path), column, task),
                                            tasks)
            for task, (result, worker) in zip(tasks, results, strict=True):
                self._count(worker)
                yield task, result
        finally:
            for actor in actors:
                ray.kill(actor)

    def assign(self, X, centroids: np.ndarray, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
        """The core's ``Assigner`` as Ray tasks: shard views travel as paths, in-memory inputs by reference."""
        n = len(X)
        labels, dists = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float32)
        ranges = task_ranges(n, self.assign_task_rows)
        self.connect()
        c_ref = ray.put(np.ascontiguousarray(centroids, dtype=np.float32))
        if getattr(X, "paths", None):
            self.check_storage(X.paths[0])
            tasks = (_assign_task.remote(X.row_range(a, b), c_ref, metric, 0, b - a) for a, b in ranges)
        else:
            x_ref = ray.put(np.ascontiguousarray(X, dtype=np.float32))
            tasks = (_assign_task.remote(x_ref, c_ref, metric, a, b) for a, b in ranges)
        results = _ordered(tasks, TASKS_IN_FLIGHT_PER_CPU * self.cluster_cpus())
        for (start, stop), (lab, dist, worker) in zip(ranges, results, strict=True):
            labels[start:stop], dists[start:stop] = lab, dist
            self._count(worker)
        return labels, dists

    def _pool_ref(self, X):
        """X for tasks: shard views as their paths (every node checked to see them), in-memory arrays by reference;
        put once for consecutive passes over the same X (a level's Lloyd iterations)."""
        self.connect()
        if self._last_pool[0] is not X:
            if getattr(X, "paths", None):
                self.check_storage(X.paths[0])
                ref = ray.put(X)  # pickled as shard paths and the pool's rows, no embedding copied
            else:
                ref = ray.put(np.ascontiguousarray(X, dtype=np.float32))
            self._last_pool = (X, ref)
        return self._last_pool[1]

    def split(self, X, clusters: list[ClusterToSplit], settings: SplitSettings) -> list[SplitResult]:
        """The core's ``Splitter`` as Ray tasks, one per group of clusters (the same groups as in-process)."""
        x_ref = self._pool_ref(X)
        tasks = (_split_task.remote(x_ref, group, settings) for group in split_groups(clusters, self.assign_task_rows))
        results: list[SplitResult] = []
        for group_results, worker in _ordered(tasks, TASKS_IN_FLIGHT_PER_CPU * self.cluster_cpus()):
            results += group_results
            self._count(worker)
        return results

    def lloyd(self, X, states: list, rnd: LloydRound) -> tuple[list, list[LloydSums]]:
        """The core's ``LloydPass`` as Ray tasks: the states come back as object references, so every task's rows,
        labels and bounds stay in the object store between iterations; only the sums reach the driver."""
        x_ref, rnd_ref = self._pool_ref(X), ray.put(rnd)
        refs = [_lloyd_task.remote(x_ref, state, rnd_ref) for state in states]
        parts: list[LloydSums] = []
        for sums, worker in ray.get([sums_ref for _, sums_ref in refs]):
            parts.append(sums)
            self._count(worker)
        return [state_ref for state_ref, _ in refs], parts


def _ordered(refs: Iterable, window: int) -> Iterator:
    """Results of ``refs`` in order, with at most ``window`` submitted and not yet collected."""
    pending: deque = deque()
    for ref in refs:
        pending.append(ref)
        if len(pending) >= window:
            yield ray.get(pending.popleft())
    while pending:
        yield ray.get(pending.popleft())
