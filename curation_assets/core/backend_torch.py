"""The torch kernels: the heavy passes of a k-means (``curation_assets.core.clustering``) on a torch device.

Imported only when a torch device is asked for (``device="cuda"``, ``"cuda:N"``, ``"torch-cpu"``, or
``"auto"`` on a machine with a GPU), never by ``import curation_assets.core``. The algorithms are the faiss
path's (``backend_faiss``, ``seeding``, ``lloyd``), on the device:

- assignment: the rows stream to the device in chunks of ``chunk_rows`` (a memory map is read in place, a
  chunk at a time) and are searched against all centroids in blocks of at most ``DEVICE_BLOCK_FLOATS``
  distances, float32 GEMM (``||x||² + ||c||² - 2 x·c``, clamped at 0; ``2 - 2 cos`` for cosine);
- seeding: the same batched rejection sampling, the same random draws (the loop is
  ``seeding.seed_by_rejection``): D² and the proposals' distance rows stay on the device; the host keeps
  only what the acceptance test reads, D² at the batch's proposals (from the proposals' distances among
  themselves), so a step costs one small transfer (its candidates' gains);
- Lloyd: plain Lloyd, a full GEMM search per iteration (a GPU computes every distance faster than a
  filter decides which to skip; the labels are those of plain Lloyd, like the filtered Lloyd's), stopping
  once no point moves. Centroid sums are float64 on the device, updated for the points that moved by a
  sort and a prefix sum per cluster (no atomic additions: a seed gives the same bytes run after run), and
  the means come from ``lloyd.cluster_means`` on the host (the same empty-cluster rule and draws);
- the rows a k-means trains on are gathered on the device.

A level fitted without an external assigner holds its input in device memory when it takes at most
``RESIDENT_SHARE`` of the free GPU memory (one read of the pool for all the level's passes); on the CPU
(``"torch-cpu"``) the input is always streamed, host memory stays bounded as on the faiss path.

Exactness: float32 throughout, no TF32 (torch's default "highest" float32 matmul precision; a process that
lowers it with ``torch.set_float32_matmul_precision`` changes the distances). The results are those of the
faiss path up to float rounding (``devices``). bf16 / fp16 distances are not offered: they
would need an exact float32 re-check of near ties, and no GPU measurement has shown them to keep the results.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from curation_assets.core.assignment import ASSIGN_CHUNK_ROWS, Metric
from curation_assets.core.lloyd import cluster_means

DEVICE_BLOCK_FLOATS = 1 << 26  # distances of one search block on the device (256 MB)
SUM_CHUNK_ROWS = 8_192  # rows per prefix sum of the centroid sums (bounds its float64 rounding and memory)
RESIDENT_SHARE = 0.5  # a level's input stays on a GPU when it takes at most this share of the free memory


@functools.cache
def torch_kernels(device: str) -> TorchKernels:
    """The kernels of ``device`` (``"torch-cpu"``, ``"cuda"``, ``"cuda:N"``), one per process and device."""
    return TorchKernels(device)


def _unit_rows_(X: torch.Tensor) -> torch.Tensor:
    """Scale the rows of X to unit L2 norm in place; rows of norm 0 stay 0."""
    norms = torch.linalg.vector_norm(X, dim=1, keepdim=True)
    return X.div_(torch.where(norms > 0, norms, torch.ones_like(norms)))


class _TorchSeeding:
    """A greedy seeding space (``seeding.HostSeeding``) on the device: D² and the batch's distance rows there;
    on the host, D² at the batch's proposals, kept current from the proposals' distances among themselves."""

    def __init__(self, X: torch.Tensor, first: int):
        self.X, self.sq = X, (X * X).sum(dim=1)
        self.d2 = self._rows(torch.tensor([first], device=X.device))[0]
        self.d2[first] = 0.0  # exactly: a GEMM leaves rounding noise on a point's distance to itself
        self.pairs = len(X)

    def _rows(self, index: torch.Tensor) -> torch.Tensor:
        """Squared distances (len(index), n) from the rows ``index`` of X to all of them."""
        out = torch.addmm(self.sq[None, :], self.X[index], self.X.T, alpha=-2.0)
        return out.add_(self.sq[index, None]).clamp_min_(0.0)

    def current_d2(self) -> np.ndarray:
        return self.d2.to("cpu", copy=True).numpy()

    def propose(self, proposals: np.ndarray) -> None:
        index = torch.from_numpy(proposals).to(self.X.device)
        self.proposals, self.rows = proposals, self._rows(index)
        self.now = self.d2[index].cpu().numpy().copy()  # D² now at every proposal
        self.among = self.rows[:, index].cpu().numpy()  # (proposal, proposal) squared distances
        self.pairs += self.rows.numel()

    def d2_at(self, cursor: int) -> float:
        return self.now[cursor]

    def gains(self, accepted: list[int]) -> np.ndarray:
        """How much each accepted proposal would lower the potential (the sum of D²)."""
        rows = self.rows[torch.tensor(accepted, device=self.X.device)]
        return (self.d2 - rows).clamp_min_(0.0).sum(dim=1, dtype=torch.float64).cpu().numpy()

    def lower(self, best: int) -> None:
        point = int(self.proposals[best])
        torch.minimum(self.d2, self.rows[best], out=self.d2)
        self.d2[point] = 0.0
        np.minimum(self.now, self.among[best], out=self.now)
        self.now[self.proposals == point] = 0.0


class TorchKernels:
    """The kernels of a torch device, answering the calls of ``backend_faiss.FaissKernels`` (module docstring).

    Row matrices may be host arrays (memory maps included; streamed) or float32 tensors on the device.
    """

    def __init__(self, device: str):
        self.device = torch.device("cpu" if device == "torch-cpu" else device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r}: torch {torch.__version__} sees no CUDA GPU "
                               "(use device 'auto' to fall back to the CPU)")

    def _upload(self, block) -> torch.Tensor:
        """A host block of rows as a float32 tensor on the device (a read-only memmap slice is copied)."""
        host = np.ascontiguousarray(block, dtype=np.float32)
        return torch.from_numpy(host if host.flags.writeable else host.copy()).to(self.device)

    def _chunks(self, X, rows: np.ndarray | None, chunk_rows: int):
        """``(start, stop, rows start:stop of X, or of X[rows], on the device)``, a chunk at a time."""
        n = X.shape[0] if rows is None else len(rows)
        for start in range(0, n, chunk_rows):
            stop = min(start + chunk_rows, n)
            if torch.is_tensor(X):
                yield start, stop, X[start:stop] if rows is None else X[torch.from_numpy(rows[start:stop]).to(X.device)]
            else:
                yield start, stop, self._upload(X[start:stop] if rows is None else X[rows[start:stop]])

    def _gather(self, X, rows: np.ndarray | None) -> torch.Tensor:
        """X's rows (all, or ``rows``) as one new float32 tensor on the device."""
        out = torch.empty((X.shape[0] if rows is None else len(rows), X.shape[1]), device=self.device)
        for start, stop, block in self._chunks(X, rows, ASSIGN_CHUNK_ROWS):
            out[start:stop] = block
        return out

    def resident(self, X):
        """X in device memory when it takes at most ``RESIDENT_SHARE`` of the GPU's free memory, else X
        itself (streamed at every pass; always on the CPU, where a copy would double the host memory)."""
        if torch.is_tensor(X) or self.device.type != "cuda":
            return X
        free, _ = torch.cuda.mem_get_info(self.device)
        return self._gather(X, None) if X.shape[0] * X.shape[1] * 4 <= RESIDENT_SHARE * free else X

    def _nearest(self, X: torch.Tensor, C: torch.Tensor, cosine: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels int64, squared distances float32) of the rows of X against all centroids C, on the device."""
        labels = torch.empty(len(X), dtype=torch.int64, device=self.device)
        sq = torch.empty(len(X), device=self.device)
        c_sq = (C * C).sum(dim=1)
        step = max(1, DEVICE_BLOCK_FLOATS // len(C))
        for start in range(0, len(X), step):
            block = X[start : start + step]
            if cosine:  # unit rows: the largest inner product, 2 - 2 cos
                best, labels[start : start + step] = (block @ C.T).max(dim=1)
                sq[start : start + step] = (2.0 - 2.0 * best).clamp_min_(0.0)
            else:  # ||c||² - 2 x·c, then + ||x||²
                best, labels[start : start + step] = torch.addmm(c_sq[None, :], block, C.T, alpha=-2.0).min(dim=1)
                sq[start : start + step] = (best + (block * block).sum(dim=1)).clamp_min_(0.0)
        return labels, sq

    def assign(self, X, centroids: np.ndarray, metric: Metric, chunk_rows: int,
               rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``clustering.assign`` on this device: X (or X[rows]) streamed in chunks of ``chunk_rows`` rows."""
        C = self._upload(centroids)
        if metric == "cosine":  # the nearest by cosine, as NearestCentroid
            C = _unit_rows_(C.clone())
        n = X.shape[0] if rows is None else len(rows)
        labels, dists = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float32)
        for start, stop, block in self._chunks(X, rows, chunk_rows):
            if metric == "cosine":
                block = _unit_rows_(block.clone())
            found, sq = self._nearest(block, C, cosine=metric == "cosine")
            labels[start:stop], dists[start:stop] = found.cpu().numpy(), sq.cpu().numpy()
        return labels, dists

    def training_rows(self, X, taken: np.ndarray | None, seeding_rows: np.ndarray | None,
                      metric: Metric) -> tuple[torch.Tensor, torch.Tensor]:
        """``FaissKernels.training_rows`` on this device: (training rows, seeding rows), unit rows for cosine."""
        if taken is not None and seeding_rows is not None:  # the seeding sample's rows first: seeding reads a view
            taken = np.concatenate([taken[seeding_rows], np.delete(taken, seeding_rows)])
        if taken is None and torch.is_tensor(X) and metric != "cosine":
            train = X
        else:
            train = self._gather(X, taken)
            if metric == "cosine":
                _unit_rows_(train)
        if seeding_rows is None:
            return train, train
        if taken is None:
            return train, train[torch.from_numpy(seeding_rows).to(self.device)]
        return train, train[: len(seeding_rows)]

    @staticmethod
    def seeding(X: torch.Tensor):
        """Opens the seeding space of X (rows on the device) on its first seed."""
        return functools.partial(_TorchSeeding, X)

    def _add_rows(self, sums: torch.Tensor, labels: torch.Tensor, rows: torch.Tensor, sign: float) -> None:
        """``sums[labels[i]] += sign * rows[i]`` in float64, deterministically: per chunk, the rows sorted by
        label, a prefix sum, and one difference of it per cluster (no two writes to one cluster)."""
        for start in range(0, len(labels), SUM_CHUNK_ROWS):
            label, order = torch.sort(labels[start : start + SUM_CHUNK_ROWS], stable=True)
            prefix = rows[start : start + SUM_CHUNK_ROWS][order].double().cumsum(dim=0)
            last = torch.nonzero(label[1:] != label[:-1]).squeeze(1)
            last = torch.cat([last, torch.tensor([len(label) - 1], device=self.device)])
            segment = prefix[last]
            segment[1:] -= prefix[last[:-1]]
            sums[label[last]] += sign * segment

    def lloyd(self, X: torch.Tensor, init: torch.Tensor, n_iter: int, rng: np.random.Generator,
              spherical: bool) -> tuple[np.ndarray, int, int]:
        """Plain Lloyd on the device from ``init`` (module docstring); returns (centroids, iterations, GEMM pairs)."""
        n, k = len(X), len(init)
        C, C_dev = init.cpu().numpy().copy(), init
        labels, _ = self._nearest(X, C_dev)
        sums = torch.zeros((k, X.shape[1]), dtype=torch.float64, device=self.device)
        self._add_rows(sums, labels, X, 1.0)
        counts, pairs = torch.bincount(labels, minlength=k), n * k
        for it in range(1, n_iter + 1):
            if it > 1:
                new_labels, _ = self._nearest(X, C_dev)
                pairs += n * k
                moved = torch.nonzero(new_labels != labels).squeeze(1)
                if len(moved) == 0:
                    return C, it, pairs
                rows, old, new = X[moved], labels[moved], new_labels[moved]
                counts += torch.bincount(new, minlength=k) - torch.bincount(old, minlength=k)
                self._add_rows(sums, new, rows, 1.0)
                self._add_rows(sums, old, rows, -1.0)
                labels = new_labels
            C = cluster_means(sums.cpu().numpy(), counts.cpu().numpy(), C, rng, spherical)
            C_dev = self._upload(C)
        return C, n_iter, pairs
