"""Where the heavy passes of a k-means run: ``"cpu"`` (faiss, the default), ``"cuda"`` / ``"cuda:N"``, ``"torch-cpu"``.

``"cuda"`` and ``"torch-cpu"`` run the same algorithms through torch (``curation_assets.core.backend_torch``,
imported only then), the latter on the CPU so that tests without a GPU run the very code a GPU runs; ``"auto"``
is ``"cuda"`` when torch is installed and sees a GPU, else ``"cpu"``. The seeding loop, the random draws and the
empty-cluster rule are shared, so a seed gives the same draws on every device, and the same seeds, labels and
centroids as long as no decision falls within float rounding: a D² acceptance test, a greedy candidate's gain, or
a near tie, a point whose squared distances to two centroids differ by less than the float32 rounding of
||x||² + ||c||² - 2 x·c (about 1e-7 of ||x||² + ||c||², so frequent when the rows are far from the origin
compared to their spread). The two paths round the GEMM distances differently, and after such a tie they follow
different, equally valid k-means runs: the balance of the subset is the same (bench/bench_longtail.py
``--device``), not its bytes. In dimension <= 8 every device takes the k-d tree path on the CPU (exact, and not
GEMM work).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from curation_assets.core.assignment import KD_TREE_MAX_DIM
from curation_assets.core.backend_faiss import FaissKernels
from curation_assets.core.workers import Workers, shared_workers

DEVICES = ("auto", "cpu", "cuda", "torch-cpu")  # and "cuda:N"


def resolve_device(device: str) -> str:
    """The device a run uses: ``"auto"`` is ``"cuda"`` when torch is installed and sees a GPU, else ``"cpu"``;
    the other names of ``DEVICES`` and ``"cuda:N"`` stay as they are. ``"auto"`` imports torch (about 2 s in a
    fresh process) only when torch is already imported, or the machine shows an NVIDIA GPU to the kernel, or
    the platform is not Linux (where that cannot be asked without torch)."""
    if device == "auto":
        if sys.platform.startswith("linux") and "torch" not in sys.modules and not _nvidia_gpu_visible():
            return "cpu"
        if importlib.util.find_spec("torch") is None:
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if device in DEVICES or device.startswith("cuda:"):
        return device
    raise ValueError(f"device must be one of {DEVICES} or 'cuda:N', got {device!r}")


def _nvidia_gpu_visible() -> bool:
    """Whether the NVIDIA driver shows a GPU (``/proc/driver/nvidia/gpus/*`` or ``/dev/nvidia0``): without one
    CUDA cannot see a GPU either, so torch need not be imported to ask."""
    gpus = Path("/proc/driver/nvidia/gpus")
    return (gpus.is_dir() and any(gpus.iterdir())) or Path("/dev/nvidia0").exists()


def kernels_for(device: str, d: int, workers: Workers | None = None):
    """The kernels running the heavy passes for ``device`` in dimension ``d``: :class:`FaissKernels` (on
    ``workers``, default :func:`shared_workers`) for ``"cpu"`` and whenever d <= 8, the torch kernels of
    ``curation_assets.core.backend_torch`` otherwise (torch is imported here, never at import time)."""
    device = resolve_device(device)
    if device == "cpu" or d <= KD_TREE_MAX_DIM:
        return FaissKernels(workers or shared_workers())
    from curation_assets.core.backend_torch import torch_kernels

    return torch_kernels(device)
