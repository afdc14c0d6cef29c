"""The ``"cpu"`` device: the heavy passes of a k-means as faiss GEMMs and numpy bookkeeping on a thread pool.

Every pass is cut into blocks that depend on the work's size only (``workers``), each block a single-threaded
faiss call, so the bytes of a result do not depend on the number of threads. An assignment task reads, normalises
and searches its own block; training copies are gathered a block per task. The torch kernels
(``backend_torch``) answer the same calls on a torch device.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from curation_assets.core.assignment import Metric, NearestCentroid
from curation_assets.core.linalg import unit_rows
from curation_assets.core.lloyd import run_lloyd
from curation_assets.core.seeding import HostSeeding, host_seeding
from curation_assets.core.workers import Workers, row_blocks


class FaissKernels:
    """The ``"cpu"`` device: faiss GEMMs and numpy / scipy bookkeeping on a :class:`Workers` pool.

    The kernels of a device answer the same calls (the torch kernels mirror them): ``assign``,
    ``training_rows`` (the rows a k-means trains and seeds on), ``seeding`` (opens a seeding space for
    :func:`seeding.seed_by_rejection`) and ``lloyd``.
    """

    def __init__(self, workers: Workers):
        self.workers = workers

    @staticmethod
    def resident(X):
        """X itself: the CPU reads it in place (a torch device copies it into its memory when it fits)."""
        return X

    def assign(self, X, centroids: np.ndarray, metric: Metric, chunk_rows: int,
               rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """:func:`clustering.assign` on this device: every block is read (a view of X, or a gathered copy;
        normalised for cosine) and searched by one task of the pool, so reading, normalising and searching all run
        in parallel and at most one block per thread is copied at a time."""
        search = NearestCentroid(centroids, metric)
        n = X.shape[0] if rows is None else len(rows)
        labels = np.empty(n, dtype=np.int64)
        dists = np.empty(n, dtype=np.float32)

        def block(start: int, stop: int) -> None:
            if rows is None:  # a slice: a view of X, copied only to normalise it
                part = X[start:stop]
                part = unit_rows(part) if metric == "cosine" else np.ascontiguousarray(part, np.float32)
            else:  # a gathered copy, normalised in place
                part = np.ascontiguousarray(X[rows[start:stop]], np.float32)
                if metric == "cosine":
                    unit_rows(part, inplace=True)
            labels[start:stop], dists[start:stop] = search.search(part)

        blocks = [(start + a, start + b) for start in range(0, n, chunk_rows)
                  for a, b in row_blocks(min(chunk_rows, n - start))]
        self.workers.run(block, *zip(*blocks, strict=True))
        return labels, dists

    def training_rows(self, X, taken: np.ndarray | None, seeding_rows: np.ndarray | None,
                      metric: Metric) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, seeding rows): X's rows ``taken`` (None: all) and the ``seeding_rows`` among them
        (None: all), unit rows for cosine. All of X is read in place, copied only to normalise (and the
        seeding sample gathered); otherwise one copy, the seeding sample's rows first (seeding reads a view).
        Copies are made a block of rows per task of the pool."""
        if taken is None:
            train = self._copy(X, None, metric) if metric == "cosine" else np.ascontiguousarray(X, dtype=np.float32)
            return train, (train if seeding_rows is None else train[seeding_rows])
        if seeding_rows is not None:
            taken = np.concatenate([taken[seeding_rows], np.delete(taken, seeding_rows)])
        train = self._copy(X, taken, metric)
        return train, (train if seeding_rows is None else train[: len(seeding_rows)])

    def _copy(self, X, rows: np.ndarray | None, metric: Metric) -> np.ndarray:
        """A float32 copy of X's rows ``rows`` (None: all), unit rows for cosine."""
        out = np.empty((X.shape[0] if rows is None else len(rows), X.shape[1]), dtype=np.float32)

        def block(start: int, stop: int) -> None:
            out[start:stop] = X[start:stop] if rows is None else X[rows[start:stop]]
            if metric == "cosine":
                unit_rows(out[start:stop], inplace=True)

        self.workers.run(block, *zip(*row_blocks(len(out)), strict=True))
        return out

    def seeding(self, X: np.ndarray) -> Callable[[int], HostSeeding]:
        """Opens the seeding space of X (contiguous float32) on its first seed."""
        return host_seeding(X, self.workers)

    def lloyd(self, X: np.ndarray, init: np.ndarray, n_iter: int, rng: np.random.Generator,
              spherical: bool) -> tuple[np.ndarray, int, int]:
        """Exact filtered Lloyd (:func:`lloyd.lloyd`); returns (centroids, iterations run, GEMM pairs computed)."""
        return run_lloyd(X, init, n_iter, rng, spherical, self.workers)
