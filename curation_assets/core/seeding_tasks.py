"""Greedy k-means++ with its distance work on workers that keep their blocks, for a seeding sample larger than one
worker should hold (docs/method.md, section 3).

The seeding sample is cut into blocks of ``SEEDING_POINT_BLOCK`` rows, a cut that depends on its size only. The
blocks are kept by *holders* (:class:`SeedingBlocks`: in this process, or one per Ray actor): their rows (float32,
unit rows for cosine), their D² and the current batch's distance rows from the proposals. The driver runs the
rejection-sampling loop every device runs (:func:`~curation_assets.core.seeding.seed_by_rejection`) over
:class:`TaskSeeding`, whose calls go to the holders: a batch's distance rows are computed where the rows are, a
step's gains are summed per block there and added on the driver in block order, and D² is lowered there. The
driver keeps D² at the batch's proposals, lowered with the proposals' distances to each other (computed on the
driver), so the acceptance test of a proposal needs no round trip; it fetches all of D² once per batch for the D²
draw. Whichever holders keep which blocks, the same arithmetic runs per block and the driver adds the blocks in
order: the seeds are the same on every backend and for any number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from curation_assets.core.assignment import Metric
from curation_assets.core.linalg import read_rows
from curation_assets.core.seeding import SEEDING_POINT_BLOCK
from curation_assets.core.workers import Workers, pairwise_sq_dists, row_blocks


class SeedingBlocks:
    """Some blocks of a seeding sample, kept where they are used: ``blocks`` are ``(first index in the sample,
    the block's rows of X)``; D² starts as ``d2`` (one array per block) or as the distance to ``first``."""

    def __init__(self, X, blocks: Sequence[tuple[int, np.ndarray]], metric: Metric,
                 first: tuple[int, np.ndarray] | None = None, d2: Sequence[np.ndarray] | None = None):
        self.starts = [start for start, _ in blocks]
        self.parts = [read_rows(X, rows, metric == "cosine") for _, rows in blocks]
        if d2 is None:
            index, vector = first
            self.d2 = [pairwise_sq_dists(vector[None], part)[0] for part in self.parts]
            self._zero(index)
        else:
            self.d2 = [np.array(block, dtype=np.float32) for block in d2]
        self.rows: list[np.ndarray] = []

    def _zero(self, index: int) -> None:
        """D² of sample row ``index`` is exactly 0 (a GEMM leaves rounding noise on a point's distance to itself)."""
        for start, d2 in zip(self.starts, self.d2, strict=True):
            if start <= index < start + len(d2):
                d2[index - start] = 0.0

    def current_d2(self) -> list[np.ndarray]:
        return self.d2

    def propose(self, vectors: np.ndarray) -> None:
        self.rows = [pairwise_sq_dists(vectors, part) for part in self.parts]

    def gains(self, accepted: list[int]) -> list[np.ndarray]:
        """Per block: how much each accepted proposal would lower the sum of D²."""
        return [np.maximum(d2 - rows[accepted], 0.0).sum(axis=1, dtype=np.float64)
                for d2, rows in zip(self.d2, self.rows, strict=True)]

    def lower(self, best: int, index: int) -> None:
        """Add the batch's proposal ``best`` (sample row ``index``) as a centroid."""
        for d2, rows in zip(self.d2, self.rows, strict=True):
            np.minimum(d2, rows[best], out=d2)
        self._zero(index)


class Holders(Protocol):
    """All blocks of a seeding sample, kept by some holders: what :class:`TaskSeeding` asks of a backend. Every
    list answer is per block, in block order."""

    def current_d2(self) -> list[np.ndarray]: ...

    def propose(self, vectors: np.ndarray) -> None: ...

    def gains(self, accepted: list[int]) -> list[np.ndarray]: ...

    def lower(self, best: int, index: int) -> None: ...


HoldersOpener = Callable[[object, list[tuple[int, np.ndarray]], Metric, tuple[int, np.ndarray]], Holders]
"""``(X, blocks, metric, (first index, its row)) -> holders`` of those blocks: how a backend keeps them."""


@dataclass(frozen=True)
class SeedingTasks:
    """Seeding with holders opened by ``open``; used for seeding samples of more than ``task_rows`` rows."""

    open: HoldersOpener
    task_rows: int


def sample_blocks(rows: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """The blocks of a seeding sample (rows of X): ``(first index in the sample, rows)``, a function of its size."""
    return [(start, rows[start:stop]) for start, stop in row_blocks(len(rows), SEEDING_POINT_BLOCK)]


class TaskSeeding:
    """A seeding space (:class:`~curation_assets.core.seeding.HostSeeding`'s calls) over holders (module docstring)."""

    def __init__(self, X, rows: np.ndarray, metric: Metric, first: int, tasks: SeedingTasks):
        self.X, self.rows, self.metric = X, rows, metric
        first_row = read_rows(X, rows[[first]], metric == "cosine")[0]
        self.holders = tasks.open(X, sample_blocks(rows), metric, (first, first_row))
        self.pairs = len(rows)

    def current_d2(self) -> np.ndarray:
        self.d2 = np.concatenate(self.holders.current_d2())
        return self.d2

    def propose(self, proposals: np.ndarray) -> None:
        vectors = read_rows(self.X, self.rows[proposals], self.metric == "cosine")
        self.holders.propose(vectors)
        self.proposals = proposals
        self.at_proposals = self.d2[proposals].copy()  # D² now at the batch's proposals, kept here
        self.between = pairwise_sq_dists(vectors, vectors)
        self.pairs += len(proposals) * (len(self.rows) + len(proposals))

    def d2_at(self, cursor: int) -> float:
        return self.at_proposals[cursor]

    def gains(self, accepted: list[int]) -> np.ndarray:
        return np.sum(self.holders.gains(accepted), axis=0)  # block by block, in block order

    def lower(self, best: int) -> None:
        self.holders.lower(best, int(self.proposals[best]))
        np.minimum(self.at_proposals, self.between[best], out=self.at_proposals)
        self.at_proposals[self.proposals == self.proposals[best]] = 0.0


class InProcessHolders:
    """Every block held in this process, one :class:`SeedingBlocks` per block, the blocks' work on ``workers``."""

    def __init__(self, X, blocks: list[tuple[int, np.ndarray]], metric: Metric, first: tuple[int, np.ndarray],
                 workers: Workers):
        self.workers = workers
        self.holders = workers.run(lambda block: SeedingBlocks(X, [block], metric, first), blocks)

    def current_d2(self) -> list[np.ndarray]:
        return [holder.d2[0] for holder in self.holders]

    def propose(self, vectors: np.ndarray) -> None:
        self.workers.run(lambda holder: holder.propose(vectors), self.holders)

    def gains(self, accepted: list[int]) -> list[np.ndarray]:
        return [gains[0] for gains in self.workers.run(lambda holder: holder.gains(accepted), self.holders)]

    def lower(self, best: int, index: int) -> None:
        self.workers.run(lambda holder: holder.lower(best, index), self.holders)
