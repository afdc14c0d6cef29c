"""Execution backends for the data-parallel passes of curation (no Dagster here).

Three passes grow with the pool: embedding every corpus row, assigning every pool row to its nearest centroid
(after k-means and after each resampling step, docs/method.md section 2), and a level's splits (a small k-means
inside every cluster). A level's k-means and resampling k-means train on a bounded sample: seeding in the calling
process, Lloyd there too unless the sample has more than ``lloyd_task_rows`` rows, when its iterations become
tasks as well (:mod:`~curation_assets.core.lloyd_tasks`). A backend cuts each pass into the same tasks
(:func:`task_ranges`, :func:`~curation_assets.core.splits.split_groups`, the Lloyd tasks' rows) and runs the same
function per task (:func:`embed_rows`, :func:`assign_rows`, :func:`~curation_assets.core.splits.split_clusters`,
:func:`~curation_assets.core.lloyd_tasks.lloyd_task`), so a seed gives identical bytes whichever backend ran:

- :class:`InProcessBackend` (``local``): the tasks one after another in this process;
- ``RayBackend`` (``ray``, optional extra ``pip install -e .[ray]``): embedding tasks on a pool of
  Ray actors (one model per actor), assignment, split and Lloyd tasks as Ray tasks over the embedding shards.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from curation_assets.config import ExecutionConfig
from curation_assets.core.assignment import Metric
from curation_assets.core.clustering import assign
from curation_assets.core.lloyd_tasks import LloydRound, LloydState, LloydSums, LloydTasks, run_in_process
from curation_assets.core.seeding_tasks import InProcessHolders, SeedingTasks
from curation_assets.core.splits import ClusterToSplit, SplitResult, SplitSettings, split_clusters, split_groups
from curation_assets.core.workers import shared_workers

RAY_SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def task_ranges(n_rows: int, task_rows: int) -> list[tuple[int, int]]:
    """``[start, stop)`` row ranges of at most ``task_rows`` rows covering ``n_rows``."""
    return [(start, min(start + task_rows, n_rows)) for start in range(0, n_rows, task_rows)]


def read_items(corpus_path, column: str, rows: np.ndarray) -> list:
    """The ``column`` values of the corpus rows ``rows`` (sorted), reading only the row groups holding them."""
    parquet = pq.ParquetFile(corpus_path)
    ends = np.cumsum([parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
    group_of = np.searchsorted(ends, rows, side="right")
    items: list = []
    for g in np.unique(group_of):
        local = rows[group_of == g] - (ends[g - 1] if g else 0)
        items += pl.from_arrow(parquet.read_row_group(int(g), columns=[column]))[column].gather(local).to_list()
    return items


def embed_rows(model, corpus_path, column: str, rows: np.ndarray):
    """One embedding task: the corpus rows ``rows`` through ``model`` (an ``EmbedResult``)."""
    return model.embed(read_items(corpus_path, column, rows))


def row_tasks(rows: np.ndarray, task_rows: int) -> list[np.ndarray]:
    """The rows to embed (sorted corpus row numbers) cut into tasks of at most ``task_rows`` rows."""
    return [rows[start : start + task_rows] for start in range(0, len(rows), task_rows)]


def assign_rows(X, centroids: np.ndarray, metric: Metric, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """One assignment task: nearest centroid and squared distance of rows ``start:stop`` of X."""
    return assign(X, centroids, metric, rows=np.arange(start, stop))  # read chunk by chunk, not as one copy


class TaskCounter:
    """What a backend ran and where since :meth:`reset_stats`, for the assets' metadata."""

    name: str

    def reset_stats(self) -> None:
        self.stats = {"tasks": 0, "workers": set()}

    def _count(self, worker: str, tasks: int = 1) -> None:
        self.stats["tasks"] += tasks
        self.stats["workers"].add(worker)

    def run_summary(self) -> dict:
        return {"execution": self.name, "tasks": self.stats["tasks"], "workers": sorted(self.stats["workers"])}


class InProcessBackend(TaskCounter):
    """Runs every task in this process, in order (the default)."""

    name = "local"

    def __init__(self, embed_task_rows: int, assign_task_rows: int, device: str = "cpu",
                 lloyd_task_rows: int = ExecutionConfig().lloyd_task_rows,
                 seeding_task_rows: int = ExecutionConfig().seeding_task_rows):
        self.embed_task_rows, self.assign_task_rows, self.device = embed_task_rows, assign_task_rows, device
        self.lloyd_tasks = LloydTasks(self.lloyd, lloyd_task_rows)
        self.seeding_tasks = SeedingTasks(self.seeding_holders, seeding_task_rows)
        self.worker = f"local:{os.getpid()}"
        self.reset_stats()

    def embed(self, factory: Callable, corpus_path, column: str,
              rows: np.ndarray) -> Iterator[tuple[np.ndarray, object]]:
        """``(task rows, EmbedResult)`` of every embedding task over the corpus rows ``rows``, in row order; the
        model is built only when there is a row to embed."""
        tasks = row_tasks(rows, self.embed_task_rows)
        model = factory() if tasks else None
        for task in tasks:
            self._count(self.worker)
            yield task, embed_rows(model, corpus_path, column, task)

    def assign(self, X, centroids: np.ndarray, metric: Metric) -> tuple[np.ndarray, np.ndarray]:
        """The core's ``Assigner``: the same tasks as every backend, run here on the configured device."""
        self._count(self.worker, tasks=len(task_ranges(len(X), self.assign_task_rows)))
        return assign(X, centroids, metric, chunk_rows=self.assign_task_rows, device=self.device)

    def split(self, X, clusters: list[ClusterToSplit], settings: SplitSettings) -> list[SplitResult]:
        """The core's ``Splitter``: one task per group of about ``assign_task_rows`` member rows, run here."""
        results: list[SplitResult] = []
        for group in split_groups(clusters, self.assign_task_rows):
            self._count(self.worker)
            results += split_clusters(X, group, settings, device=self.device)
        return results

    def seeding_holders(self, X, blocks: list, metric: Metric, first: tuple[int, np.ndarray]) -> InProcessHolders:
        """The core's ``HoldersOpener``: the seeding sample's blocks kept here, their work on the thread pool."""
        self._count(self.worker, tasks=len(blocks))
        return InProcessHolders(X, blocks, metric, first, shared_workers())

    def lloyd(self, X, states: list[LloydState], rnd: LloydRound) -> tuple[list[LloydState], list[LloydSums]]:
        """The core's ``LloydPass``: one iteration's tasks on this process's thread pool (CPU)."""
        self._count(self.worker, tasks=len(states))
        return run_in_process(X, states, rnd, shared_workers())


@functools.lru_cache(maxsize=4)
def _cached_backend(config_json: str):
    cfg = ExecutionConfig.model_validate_json(config_json)
    if cfg.backend == "local":
        return InProcessBackend(cfg.embed_task_rows, cfg.assign_task_rows, cfg.device, cfg.lloyd_task_rows,
                                cfg.seeding_task_rows)
    if cfg.ray.address is None and "ray" not in sys.modules:
        # Ray's single-machine mode (its default on macOS/Windows): a cluster started on demand binds to
        # 127.0.0.1 only. Read when ray is imported, so it must be set before that.
        os.environ.setdefault(RAY_SINGLE_MACHINE_ENV, "0")
    try:
        from curation_assets.execution.ray_backend import RayBackend
    except ImportError as exc:
        raise RuntimeError("execution backend 'ray' needs Ray: pip install -e '.[ray]' "
                           f"(import failed: {exc})") from exc
    return RayBackend(cfg.ray, cfg.embed_task_rows, cfg.assign_task_rows, cfg.lloyd_task_rows, cfg.seeding_task_rows)


def make_backend(cfg: ExecutionConfig):
    """The backend of an ``execution`` block, one per process and settings (so later steps of the same
    process reuse its Ray connection)."""
    return _cached_backend(cfg.model_dump_json())


__all__ = ["InProcessBackend", "TaskCounter", "assign_rows", "embed_rows", "make_backend", "read_items", "row_tasks",
           "task_ranges"]
