"""The Ray backend: embedding and seeding on Ray actors (one model, or some blocks of a seeding sample, per actor),
assignment, split and Lloyd tasks as Ray tasks.

Workers read the corpus and the embedding shards by path (nothing but task descriptions and results
crosses the network), so every node must see the data root at the same path; this is checked on every
alive node before the first task touching a path.
"""

from __future__ import annotations

import logging
import os
import weakref
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
from curation_assets.core.seeding_tasks import SeedingBlocks, SeedingTasks  # noqa: E402
from curation_assets.core.splits import (  # noqa: E402
    ClusterToSplit,
    SplitResult,
    SplitSettings,
    split_clusters,
    split_groups,
)
from curation_assets.core.workers import single_threaded  # noqa: E402
from curation_assets.execution import TaskCounter, assign_rows, embed_rows, row_tasks, task_ranges  # noqa: E402

logger = logging.getLogger(__name__)
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


CONNECT_ATTEMPTS = 3  # Ray Client connections tried before giving up
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


class SeedingActor(SeedingBlocks):
    """A Ray actor keeping some blocks of a seeding sample (:class:`~curation_assets.core.seeding_tasks.SeedingBlocks`)
    with faiss single-threaded."""

    def __init__(self, *args, **kwargs):
        import faiss

        faiss.omp_set_num_threads(1)
        super().__init__(*args, **kwargs)

    def worker(self) -> str:
        return ray_worker_id()


class RaySeedingHolders:
    """The blocks of a seeding sample on Ray actors, contiguous groups of blocks each. An actor that dies is
    replaced, with every other: all restart from D² at the current batch's start and replay the batch's
    proposals and the centroids added since, so the seeds are the same (up to ``TASK_RETRIES`` times)."""

    def __init__(self, backend: RayBackend, X, blocks: list, metric: Metric, first: tuple[int, np.ndarray]):
        self.backend, self.metric, self.first = backend, metric, first
        self.x_ref = backend._pool_ref(X)
        n_actors = max(1, min(len(blocks), backend.cluster_cpus()))
        self.groups = [blocks[i * len(blocks) // n_actors : (i + 1) * len(blocks) // n_actors] for i in range(n_actors)]
        self.snapshot: list | None = None  # D² per block at the batch's start
        self.vectors, self.lowered, self.restarts = None, [], 0
        self.actors: list | None = None  # started on the first call

    def _start(self) -> list:
        cls = ray.remote(SeedingActor).options(num_cpus=1, max_restarts=0)
        at, actors = 0, []
        self._started = actors  # killed on a failure, even one before they all answered
        for group in self.groups:
            d2 = None if self.snapshot is None else self.snapshot[at : at + len(group)]
            actors.append(cls.remote(self.x_ref, group, self.metric, None if d2 else self.first, d2))
            at += len(group)
        for worker in ray.get([actor.worker.remote() for actor in actors]):
            self.backend._count(worker)
        if self.vectors is not None:
            ray.get([actor.propose.remote(self.vectors) for actor in actors])
        for best, index in self.lowered:
            for actor in actors:
                actor.lower.remote(best, index)
        return actors

    def _each(self, method: str, *args) -> list:
        """``method(*args)`` on every actor, answers in block order; a dead actor (even while starting) replaces
        them all."""
        while True:
            try:
                self.actors = self.actors or self._start()
                answers = ray.get([getattr(actor, method).remote(*args) for actor in self.actors])
                return [part for answer in answers for part in (answer or [])]
            except ray.exceptions.RayActorError:
                if self.restarts == TASK_RETRIES:
                    raise
                self.restarts += 1
                for actor in self._started:
                    ray.kill(actor)
                self.actors = None

    def current_d2(self) -> list[np.ndarray]:
        d2 = self._each("current_d2")
        self.snapshot, self.vectors, self.lowered = d2, None, []
        return d2

    def propose(self, vectors: np.ndarray) -> None:
        self.vectors = vectors
        self._each("propose", vectors)

    def gains(self, accepted: list[int]) -> list[np.ndarray]:
        return self._each("gains", accepted)

    def lower(self, best: int, index: int) -> None:
        self.lowered.append((best, index))
        for actor in self.actors or []:  # in order before the actor's next call; a failure surfaces there
            actor.lower.remote(best, index)


@ray.remote(num_cpus=0)
def _path_visible(path: str) -> bool:
    return Path(path).exists()


class RayBackend(TaskCounter):
    """Sends embedding, assignment, split and Lloyd tasks to Ray (see :mod:`curation_assets.execution`)."""

    name = "ray"

    def __init__(self, cfg: RayConfig, embed_task_rows: int, assign_task_rows: int, lloyd_task_rows: int,
                 seeding_task_rows: int):
        self.cfg, self.embed_task_rows, self.assign_task_rows = cfg, embed_task_rows, assign_task_rows
        self.lloyd_tasks = LloydTasks(self.lloyd, lloyd_task_rows)
        self.seeding_tasks = SeedingTasks(self.seeding_holders, seeding_task_rows)
        self._visible: set[str] = set()
        self._last_pool: tuple = (lambda: None, None)
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
            for attempt in range(1, CONNECT_ATTEMPTS + 1):
                try:
                    ray.init(**kwargs)
                    break
                except ConnectionAbortedError as exc:  # Ray Client: the head's server for this connection did not
                    if attempt == CONNECT_ATTEMPTS:  # start (seen on a busy 2-core head); a new try gets a new one
                        raise
                    logger.warning("Ray Client connection to %s failed (%s); trying again", self.cfg.address, exc)
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
        if self._last_pool[0]() is not X:
            if getattr(X, "paths", None):
                self.check_storage(X.paths[0])
                ref = ray.put(X)  # pickled as shard paths and the pool's rows, no embedding copied
            else:
                ref = ray.put(np.ascontiguousarray(X, dtype=np.float32))
            self._last_pool = (weakref.ref(X), ref)  # the cache does not keep X alive
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

    def seeding_holders(self, X, blocks: list, metric: Metric, first: tuple[int, np.ndarray]) -> RaySeedingHolders:
        """The core's ``HoldersOpener``: a seeding sample's blocks kept on Ray actors, one per cluster CPU at most."""
        return RaySeedingHolders(self, X, blocks, metric, first)

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
