"""Thread scaling of one clustering level, phase by phase.

Run: .venv/bin/python bench/bench_threads.py [--threads 1 2] [--n 300000] [--k 1000] [--steps 10] [--r 10]
                                          [--splits 1] [--device cpu] [--data pool.npy]

Fits one level (``fit_level``: k-means, ``--steps`` resampling steps of ``--r`` members per cluster, optional
``--splits``) on a long-tailed n × 384 pool (bench_scale.py ``gen --kind longtail``, written under /tmp and
removed afterwards unless ``--data`` names one), read as a memory map. Every thread count runs in a fresh
process with ``OMP_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` / ``MKL_NUM_THREADS`` set, so faiss, BLAS and the
core's thread pool all take it. Prints a markdown table: seconds per phase and its share of the wall time,
per thread count, and the speed-up. Phases (exclusive time, measured by wrapping the core's functions):
seeding (greedy k-means++), Lloyd, assignment (full passes over the input), resampling draw (picking the
r members per cluster), training-row gathers (the training copies of every k-means), splits (everything
inside them), other (the rest: checks, compaction). ``--device torch-cpu`` times the torch kernels instead.
"others' CPU" is the CPU time the rest of the machine used during a run (/proc/stat minus this process):
a timing is only worth reporting when it is near 0.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PHASES = ("seeding", "Lloyd", "assignment", "resampling draw", "training-row gathers", "splits", "other")


class PhaseClock:
    """Exclusive wall time per phase: a wrapped call's time minus that of the wrapped calls inside it; nothing
    inside a "splits" call is attributed elsewhere."""

    def __init__(self):
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.stack: list[list] = []

    def wrap(self, module, name: str, phase: str) -> None:
        fn = getattr(module, name)

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            if self.stack and self.stack[-1][0] == "splits":
                return fn(*args, **kwargs)
            frame = [phase, 0.0]
            self.stack.append(frame)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                self.stack.pop()
                self.seconds[phase] += spent - frame[1]
                if self.stack:
                    self.stack[-1][1] += spent

        setattr(module, name, timed)


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (/proc/stat), or 0 where there is none."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(args) -> None:
    import numpy as np

    from curation_assets.core import LevelSpec, fit_level

    seeding = importlib.import_module("curation_assets.core.seeding")
    backend_faiss = importlib.import_module("curation_assets.core.backend_faiss")
    hierarchy = importlib.import_module("curation_assets.core.hierarchy")
    clock = PhaseClock()
    clock.wrap(seeding, "greedy_seeds", "seeding")  # every device's seeding loop
    clock.wrap(backend_faiss.FaissKernels, "lloyd", "Lloyd")
    clock.wrap(backend_faiss.FaissKernels, "training_rows", "training-row gathers")
    clock.wrap(hierarchy, "assign", "assignment")
    clock.wrap(hierarchy, "per_cluster_sample", "resampling draw")
    clock.wrap(hierarchy, "_split_clusters", "splits")
    if args.device != "cpu":
        backend_torch = importlib.import_module("curation_assets.core.backend_torch")
        clock.wrap(backend_torch.TorchKernels, "lloyd", "Lloyd")
        clock.wrap(backend_torch.TorchKernels, "training_rows", "training-row gathers")
    X = np.load(args.data, mmap_mode="r")
    spec = LevelSpec(args.k, resampling_steps=args.steps, sample_size=args.r, n_splits=args.splits)
    busy, own = busy_cpu_seconds(), own_cpu_seconds()
    start = time.perf_counter()
    level = fit_level(X, spec, seed=0, device=args.device)
    wall = time.perf_counter() - start
    others = busy_cpu_seconds() - busy - (own_cpu_seconds() - own)
    clock.seconds["other"] = wall - sum(clock.seconds.values())
    print(json.dumps({"wall": wall, "phases": clock.seconds, "clusters": level.n_clusters,
                      "load": os.getloadavg()[0], "others_cpu": others}))


def run_child(threads: int, args) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--child", "--data", args.data, "--k", str(args.k), "--steps", str(args.steps),
           "--r", str(args.r), "--splits", str(args.splits), "--device", args.device]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.splitlines()[-1])


def table(results: dict[int, dict]) -> str:
    counts = list(results)
    head = "| phase | " + " | ".join(f"{t} thread{'s' * (t > 1)}: s (share)" for t in counts)
    head += " | speed-up |" if len(counts) > 1 else " |"
    lines = [head, "|---" * (len(counts) + 1 + (len(counts) > 1)) + "|"]
    for phase in (*PHASES, "wall"):
        values = [r["wall"] if phase == "wall" else r["phases"][phase] for r in results.values()]
        walls = [r["wall"] for r in results.values()]
        cells = [f"{v:.1f} ({100 * v / w:.0f} %)" for v, w in zip(values, walls, strict=True)]
        if len(counts) > 1:
            cells.append(f"{values[0] / values[-1]:.2f}×" if values[-1] > 0.05 else "–")
        lines.append(f"| {'**wall**' if phase == 'wall' else phase} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--n", type=int, default=300_000)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--r", type=int, default=10)
    ap.add_argument("--splits", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="core device: cpu (faiss), torch-cpu, cuda")
    ap.add_argument("--data", help="an existing (n, d) float32 .npy pool (default: generate one under /tmp)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        if args.data is None:
            args.data = str(Path(tmp) / "pool.npy")
            subprocess.run([sys.executable, str(HERE / "bench_scale.py"), "gen", "--n", str(args.n), "--kind",
                            "longtail", "--out", args.data], check=True)
        print(f"machine: {os.cpu_count()} cores; load before {os.getloadavg()[0]:.2f}", flush=True)
        results = {t: run_child(t, args) for t in args.threads}
    print(f"one level of {args.n} × 384 (long-tailed), k = {args.k}, {args.steps} resampling steps of "
          f"r = {args.r}, splits {args.splits}, device {args.device}; others' CPU during the runs: "
          + ", ".join(f"{r['others_cpu']:.1f} s" for r in results.values()) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
