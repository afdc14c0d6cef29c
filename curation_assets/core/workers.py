"""The thread pool of the distance work and the blocks it runs on (docs/method.md, section 3: making k-means fast).

Every GEMM of the clustering (seeding rows, Lloyd searches, assignments) is a single-threaded faiss call on a
block of rows, and the blocks run on a thread pool (:class:`Workers`). The blocks are a function of the work's
size only, never of the thread count: a multi-threaded BLAS call, or a different cut, rounds differently, so the
bytes of every result are the same whatever the number of threads. A pass over few rows (a resampling k-means
trains on r·k of them) is cut into ``TASKS_PER_PASS`` blocks so that many threads share it.

The pool of a process is made once, on the first pass that needs it (:func:`shared_workers`); a pass of a single
block runs on the calling thread. Nearest-centroid searches are a GEMM and an argmin (:func:`nearest_of`), with
near ties re-checked in float64.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np

ASSIGN_BLOCK_ROWS = 8_192  # rows per single-threaded search or distance block
TASKS_PER_PASS = 64  # a training pass over few rows is cut into this many blocks (down to MIN_BLOCK_ROWS rows)
MIN_BLOCK_ROWS = 512  # fewest rows of a block (GEMM efficiency)
SEARCH_BLOCK_FLOATS = 1 << 20  # point-centroid distances of one nearest-centroid GEMM (4 MB)
TIE_TOLERANCE = 1e-5  # GEMM distances closer than this share of ||x||² + ||c||² are recomputed exactly


def pairwise_sq_dists(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Squared L2 distances (len(A), len(B)) by one GEMM on this thread (call it on a :class:`Workers` thread)."""
    return np.maximum(faiss.pairwise_distances(A, B), 0.0)


def nearest_of(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index into B (int64) of the nearest row of B to every row of A, and its squared L2 distance (float32; for
    unit rows, 2 - 2 cos), on this thread.

    GEMMs of at most ``SEARCH_BLOCK_FLOATS`` distances and an argmin (faiss's flat index search costs 2-3 times
    more per row on blocks under ~2000 rows). Always faiss's L2 GEMM, also for unit rows: its BLAS runs on this
    thread, where numpy's matmul (faiss's inner-product path) would pick its own thread count and round
    differently in a Ray worker. Where the two best GEMM distances of a row differ by less than their float32
    rounding (``TIE_TOLERANCE``), the two are recomputed exactly in float64 and the nearer kept, so near ties go
    the way exact arithmetic sends them, whatever the GEMM's rounding."""
    labels, sq = np.empty(len(A), dtype=np.int64), np.empty(len(A), dtype=np.float32)
    step = max(1, SEARCH_BLOCK_FLOATS // len(B))
    for start in range(0, len(A), step):
        labels[start : start + step], sq[start : start + step] = _nearest_in_block(A[start : start + step], B)
    return labels, sq


def _nearest_in_block(A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`nearest_of` for one GEMM of squared distances ``D``."""
    D = faiss.pairwise_distances(A, B)
    rows = np.arange(len(A))
    best = D.argmin(axis=1)
    found = D[rows, best].astype(np.float64)
    if len(B) > 1:
        D[rows, best] = np.inf
        second = D.argmin(axis=1)
        scale = np.einsum("ij,ij->i", A, A) + np.einsum("ij,ij->i", B, B)[best]
        close = np.flatnonzero(D[rows, second] - found <= TIE_TOLERANCE * scale)
        if len(close):
            pair = np.stack([best[close], second[close]], axis=1)
            x, c = A[close, None, :].astype(np.float64), B[pair].astype(np.float64)
            exact = ((x - c) ** 2).sum(axis=2)
            take = (exact[:, 1] < exact[:, 0]) | ((exact[:, 1] == exact[:, 0]) & (pair[:, 1] < pair[:, 0]))
            best[close], found[close] = pair[np.arange(len(close)), take.astype(np.int64)], exact.min(axis=1)
    return best, np.maximum(found, 0.0).astype(np.float32)


def _one_thread(fn: Callable, *args):
    faiss.omp_set_num_threads(1)  # this thread only: one BLAS thread per call, whatever the pool size
    return fn(*args)


class Workers(ThreadPoolExecutor):
    """A thread pool whose tasks run their faiss / BLAS calls single-threaded.

    Results are bytes-identical for any pool size as long as the task boundaries do not depend on it.
    """

    def __init__(self, threads: int):
        super().__init__(threads)
        self.threads = threads

    def run(self, fn: Callable, *iterables) -> list:
        """``[fn(*args) for args in zip(*iterables)]``, each call single-threaded on the pool; a lone call runs on
        the calling thread (a small pass is not worth the hand-over)."""
        calls = list(zip(*iterables, strict=True))
        if len(calls) == 1:
            return [single_threaded(fn, *calls[0])]
        return list(self.map(functools.partial(_one_thread, fn), *zip(*calls, strict=True)))


def single_threaded(fn: Callable, *args):
    """``fn(*args)`` on this thread with faiss single-threaded, then the thread's faiss thread count restored."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return fn(*args)
    finally:
        faiss.omp_set_num_threads(threads)


_SHARED_WORKERS: dict[int, Workers] = {}
os.register_at_fork(after_in_child=_SHARED_WORKERS.clear)  # a forked child has none of the parent's threads


def shared_workers(threads: int | None = None) -> Workers:
    """The process-wide pool of ``threads`` threads (default :func:`assign_threads`), started once.

    Tasks on it must not wait for other tasks on it (no nesting).
    """
    threads = threads or assign_threads()
    if threads not in _SHARED_WORKERS:
        _SHARED_WORKERS[threads] = Workers(threads)
    return _SHARED_WORKERS[threads]


def assign_threads() -> int:
    """Threads for the distance work: ``OMP_NUM_THREADS`` when set (Ray sets it to a task's CPUs), else all cores."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, int(env)) if env.isdigit() else max(1, os.cpu_count() or 1)


def row_blocks(n: int, block_rows: int = ASSIGN_BLOCK_ROWS) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of ``block_rows`` rows covering n rows."""
    return [(s, min(s + block_rows, n)) for s in range(0, n, block_rows)]


def task_blocks(n: int, max_rows: int = ASSIGN_BLOCK_ROWS, min_rows: int = MIN_BLOCK_ROWS) -> list[tuple[int, int]]:
    """The blocks of a pass over n rows: ``TASKS_PER_PASS`` of them (enough for many threads) unless that makes
    them smaller than ``min_rows`` or larger than ``max_rows`` rows. A function of n only: a block's GEMM rounds
    the same whatever the number of threads."""
    return row_blocks(n, min(max_rows, max(min_rows, -(-n // TASKS_PER_PASS))))


def label_order(labels: np.ndarray, k: int) -> np.ndarray:
    """``np.argsort(labels, kind="stable")`` for labels in [0, k): a radix sort of 16-bit labels when k allows
    (about 6× faster than sorting int64, the same order)."""
    return np.argsort(labels.astype(np.int16) if k <= 1 << 15 else labels, kind="stable")
