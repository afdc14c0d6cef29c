"""Hierarchical k-means + balanced sampling at scale, out of core, with a FLOP count.

  python bench/bench_scale.py gen --n 1000000 --d 384 --kind longtail --out /tmp/pool.npy [--concepts 1000]
                                  [--noise 0.3]
  python bench/bench_scale.py run --data /tmp/pool.npy [--engine ours|sklearn] [--levels default|issue18]
                                  [--device cpu|cuda|torch-cpu|auto] [--phases]
                                  [--seeding-candidates 1] [--seeding-points-per-centroid 0]
  python bench/bench_scale.py job [--pool /tmp/bench_scale_job.npy --keep] [--noise 0.3]

`job` is issue 24's 1M job in one command: a 1M × 384 long-tailed pool of 3000 Zipf concepts with noise std 0.3
per coordinate (generated once), the default levels below and a 10 % draw, run in a fresh process under
`/usr/bin/time -v`; it prints the run's JSON line (with ``--phases``), then wall time and peak RSS.

`run` opens the pool as a read-only memory map and fits the default 4 levels with the library's
default k-means settings (n_iter=50, greedy k-means++, 256 training points per centroid):
k = 2000 × split 10 = 20k, 2000, 500, 100; m = 1, 10, 10, 10; r = 1, 5, 2, 2; then draws 10 %.
``--levels issue18`` fits issue 18's job instead: 3 levels, k = 2000 / 500 / 100, r = 10 / 5 / 2, 10
resampling steps each (``issue18-small``: k = 200 / 50 / 10, for small pools). ``--device`` runs the heavy
passes there (core ``device``); on a torch device a small k-means runs first, untimed (``warmup_s``: CUDA
context and kernel loading).
It prints one JSON line: wall seconds per stage, the distance work actually done and its GFLOP/s, the CPU
seconds the rest of the machine used meanwhile (``others_cpu_s``: a timing is only worth reporting when it is
near 0), and peak RSS; ``--phases`` adds exclusive seconds per phase (seeding, Lloyd, assignment, splits, ...).
The work is every point–centroid squared distance computed by GEMM (2·d FLOPs each):
seeding rows, Lloyd searches (the exact filtered Lloyd skips the pairs its bounds rule out; those are
not counted), full assignments and splits, as each level reports it (``Level.distance_pairs``).
Run it under `/usr/bin/time -v` for an outside RSS measurement (bench/run_all.py does). A long-tailed
pool's concepts are written next to it (``<out>.concepts.npy``); `run` then also reports the concept
KL-to-uniform of the subset (0 = every concept equally often). ``--seeding-candidates 1`` seeds with plain
D² sampling, ``--seeding-points-per-centroid 0`` seeds on every training row instead of a bounded sample.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from bench_threads import busy_cpu_seconds, own_cpu_seconds  # bench/ is on sys.path when a script runs from it

from curation_assets.core import (
    LevelSpec,
    hierarchical_kmeans,
    hierarchical_sampling,
    kmeans,
    label_balance,
    resolve_device,
)

hierarchy_module = importlib.import_module("curation_assets.core.hierarchy")
backend_faiss = importlib.import_module("curation_assets.core.backend_faiss")
clustering = importlib.import_module("curation_assets.core.clustering")
seeding = importlib.import_module("curation_assets.core.seeding")
splits_module = importlib.import_module("curation_assets.core.splits")

DEFAULT_LEVELS = [
    LevelSpec(2000, n_splits=10, resampling_steps=1, sample_size=1),
    LevelSpec(2000, 10, 5),
    LevelSpec(500, 10, 2),
    LevelSpec(100, 10, 2),
]
ISSUE18_LEVELS = [LevelSpec(2000, 10, 10), LevelSpec(500, 10, 5), LevelSpec(100, 10, 2)]
LEVELS = {"default": DEFAULT_LEVELS, "issue18": ISSUE18_LEVELS,
          "issue18-small": [LevelSpec(200, 10, 10), LevelSpec(50, 10, 5), LevelSpec(10, 10, 2)]}
GEN_CHUNK = 100_000
JOB_NOISE = 0.3  # the 1M job's pool: 3000 Zipf concepts, noise std 0.3 per coordinate


def concepts_path(data: str) -> Path:
    return Path(f"{data}.concepts.npy")


def generate(n: int, d: int, kind: str, out: str, seed: int = 0, concepts: int = 1000,
             noise: float | None = None, dtype: str = "float32") -> None:
    """Write an (n, d) pool of ``dtype`` chunk by chunk: isotropic noise, or ``concepts`` Zipf(1.0) concepts around
    random unit centres with Gaussian noise of ``noise`` per coordinate (default 0.35 / sqrt(d)), and their labels.
    The draws are made in float32 whatever ``dtype`` (a float16 pool is the float32 one rounded)."""
    rng = np.random.default_rng(seed)
    X = np.lib.format.open_memmap(out, mode="w+", dtype=np.dtype(dtype), shape=(n, d))
    centres = rng.standard_normal((concepts, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, concepts + 1)
    scale = np.float32(0.35 / np.sqrt(d) if noise is None else noise)
    labels = np.empty(n, dtype=np.int16)
    for start in range(0, n, GEN_CHUNK):
        m = min(GEN_CHUNK, n - start)
        if kind == "random":
            block = rng.standard_normal((m, d), dtype=np.float32)
        else:
            concept = rng.choice(concepts, size=m, p=weights / weights.sum())
            block = centres[concept] + rng.standard_normal((m, d), dtype=np.float32) * scale
            labels[start : start + m] = concept
        X[start : start + m] = block
    X.flush()
    if kind == "longtail":
        np.save(concepts_path(out), labels)


def sklearn_fit_centroids(X, k, rng, *, rows=None, n_iter=50, metric="l2", max_points_per_centroid=256,
                          seeding_candidates=None, workers=None, device="cpu"):
    """The contract of core's ``fit_centroids``, trained by scikit-learn's KMeans (greedy k-means++, Lloyd).

    Counts the pairs scikit-learn computes: (2 + ln k) candidates × n per seed, n × k per Lloyd iteration.
    """
    from sklearn.cluster import KMeans

    n_rows = X.shape[0] if rows is None else len(rows)
    sample = clustering.training_sample(n_rows, k, max_points_per_centroid, rng)
    taken = sample if rows is None else (rows if sample is None else rows[sample])
    train = np.ascontiguousarray(X if taken is None else X[taken], dtype=np.float32)
    km = KMeans(k, init="k-means++", n_init=1, max_iter=n_iter, random_state=int(rng.integers(2**31 - 1)),
                algorithm="lloyd").fit(train)
    pairs = len(train) * k * (seeding.default_seeding_candidates(k) + int(km.n_iter_))
    return clustering.TrainedCentroids(km.cluster_centers_.astype(np.float32), int(km.n_iter_), pairs)


def warm_up(device: str, d: int) -> float:
    """Seconds of a small untimed k-means on a torch device (CUDA context, kernels); 0 on the faiss path."""
    if resolve_device(device) == "cpu":
        return 0.0
    t = time.perf_counter()
    kmeans(np.random.default_rng(0).standard_normal((20_000, d), dtype=np.float32), 100, device=device)
    return round(time.perf_counter() - t, 1)


def phase_clock():
    """bench_threads' clock of exclusive seconds per phase, wrapped around the core's functions (faiss path)."""
    from bench_threads import PhaseClock

    clock = PhaseClock()
    clock.wrap(seeding, "greedy_seeds", "seeding")
    clock.wrap(backend_faiss.FaissKernels, "lloyd", "Lloyd")
    clock.wrap(clustering, "run_lloyd_tasks", "Lloyd")
    clock.wrap(backend_faiss.FaissKernels, "training_rows", "training-row gathers")
    clock.wrap(hierarchy_module, "assign", "assignment")
    clock.wrap(splits_module, "assign", "assignment")  # a cluster's members to its sub-centroids
    clock.wrap(hierarchy_module, "per_cluster_sample", "resampling draw")
    clock.wrap(hierarchy_module, "_split_clusters", "splits")
    return clock


def pool_view(data: str):
    """The pool as the core reads it: a float32 memory map in place, any other dtype (float16) through a shard view
    that converts the rows it reads to float32, a chunk at a time (never the whole pool)."""
    from curation_assets.store import ShardedArray

    X = np.load(data, mmap_mode="r")
    return X if X.dtype == np.float32 else ShardedArray.from_paths([data])


def backend_passes(data: str, backend: str, lloyd_task_rows: int | None,
                   seeding_task_rows: int | None) -> tuple[object, dict, float]:
    """The pool and the execution backend's passes: ``local`` passes only its Lloyd and seeding tasks (when
    ``lloyd_task_rows`` / ``seeding_task_rows`` are given; assignments and splits then run in-process as the core's
    defaults, the same tasks); ``ray`` a local cluster of this machine's cores, started here, receiving the pool as
    shard paths and running the assignment, split, Lloyd and seeding tasks. Returns (pool view, fit_level keyword
    arguments, start s)."""
    from curation_assets.config import ExecutionConfig, RayConfig
    from curation_assets.execution import make_backend
    from curation_assets.store import ShardedArray

    rows = {key: value for key, value in (("lloyd_task_rows", lloyd_task_rows),
                                          ("seeding_task_rows", seeding_task_rows)) if value is not None}
    if backend == "local":
        local = make_backend(ExecutionConfig(backend="local", device="cpu", **rows))
        passes = {name: getattr(local, name) for name, given in (("lloyd_tasks", lloyd_task_rows),
                                                                 ("seeding_tasks", seeding_task_rows)) if given}
        return pool_view(data), passes, 0.0
    started = time.perf_counter()
    ray_backend = make_backend(ExecutionConfig(backend="ray", ray=RayConfig(num_cpus=os.cpu_count()), **rows))
    ray_backend.connect()
    return ShardedArray.from_paths([data]), {"assigner": ray_backend.assign, "splitter": ray_backend.split,
                                             "lloyd_tasks": ray_backend.lloyd_tasks,
                                             "seeding_tasks": ray_backend.seeding_tasks}, \
        round(time.perf_counter() - started, 1)


def levels_digest(h) -> str:
    """sha256 of every level's centroids, assignment and distances: equal digests, byte-identical trees."""
    digest = hashlib.sha256()
    for level in h.levels:
        for part in (level.centroids, level.assignment, level.distances):
            digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()[:16]


def run(data: str, engine: str, target_fraction: float = 0.1, seeding_candidates: int | None = None,
        levels: str = "default", device: str = "cpu", phases: bool = False, backend: str = "local",
        lloyd_task_rows: int | None = None, seeding_task_rows: int | None = None) -> dict:
    X = np.load(data, mmap_mode="r")
    inputs, passes, ray_start = backend_passes(data, backend, lloyd_task_rows, seeding_task_rows)
    if engine == "sklearn":
        hierarchy_module.fit_centroids = splits_module.fit_centroids = sklearn_fit_centroids
    specs = [replace(spec, seeding_candidates=seeding_candidates) for spec in LEVELS[levels]]
    warmup = warm_up(device, X.shape[1])
    clock = phase_clock() if phases else None
    times = {}
    busy, own = busy_cpu_seconds(), own_cpu_seconds()
    memory = ProcessMemory()
    t0 = time.perf_counter()

    def mark(t, _level):
        times[f"level_{t}_s"] = round(time.perf_counter() - t0, 1)

    h = hierarchical_kmeans(inputs, specs, seed=0, on_level=mark, device=device, **passes)
    t1 = time.perf_counter()
    idx = hierarchical_sampling(h, int(target_fraction * X.shape[0]), seed=0)
    t2 = time.perf_counter()
    flops = 2.0 * X.shape[1] * sum(level.distance_pairs for level in h.levels)
    others = busy_cpu_seconds() - busy - (own_cpu_seconds() - own)
    balance = {}
    if clock is not None:
        clock.seconds["other"] = (t1 - t0) - sum(clock.seconds.values())
        balance["phases_s"] = {phase: round(seconds, 1) for phase, seconds in clock.seconds.items()}
    if concepts_path(data).is_file():
        concepts = np.load(concepts_path(data))
        balance["concept_kl_to_uniform"] = round(label_balance(concepts[idx], concepts)["kl_to_uniform"], 4)
    return {"engine": engine, "backend": backend, "ray_start_s": ray_start, "device": resolve_device(device),
            "lloyd_task_rows": lloyd_task_rows, "seeding_task_rows": seeding_task_rows, "n": X.shape[0],
            "d": X.shape[1], "dtype": str(X.dtype),
            "levels_sha256": levels_digest(h),
            "clusters": [lv.n_clusters for lv in h.levels], "warmup_s": warmup,
            **times, "clustering_s": round(t1 - t0, 1), "sampling_s": round(t2 - t1, 2),
            "total_s": round(t2 - t0, 1), "subset": len(idx), **balance, "gflop": round(flops / 1e9),
            "gflops_per_s": round(flops / 1e9 / (t1 - t0), 1), "others_cpu_s": round(others, 1),
            "load": round(os.getloadavg()[0], 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            **memory.stop()}


class ProcessMemory:
    """Peak resident memory of this process and of every process it started (a local Ray cluster's GCS, raylet and
    workers), sampled every 0.1 s from /proc: ``VmRSS`` and ``RssAnon`` per process, and the peak of the tree's
    anonymous total. Anonymous memory is what a process holds apart from the memory-mapped pool's file pages,
    which count in RSS once touched but stay reclaimable page cache."""

    def __init__(self):
        self.root, self.peaks, self.tree_anon = os.getpid(), {}, 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _descendants(self) -> list[int]:
        parent = {}
        for status in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = status.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(status.parent.name)] = int(fields[1])
        tree, frontier = [self.root], [self.root]
        while frontier:
            frontier = [pid for pid, ppid in parent.items() if ppid in frontier]
            tree += frontier
        return tree

    def _sample(self) -> None:
        while not self.done.wait(0.1):
            total = 0
            for pid in self._descendants():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                rss, anon = (int(re.search(rf"{key}:\s+(\d+)", status).group(1)) // 1024
                             for key in ("VmRSS", "RssAnon"))
                name = "driver" if pid == self.root else process_name(cmd)
                peak = self.peaks.setdefault(pid, {"process": name, "peak_rss_mb": 0, "peak_anonymous_mb": 0})
                peak["peak_rss_mb"], peak["peak_anonymous_mb"] = max(peak["peak_rss_mb"], rss), \
                    max(peak["peak_anonymous_mb"], anon)
                if name.startswith("ray::_"):  # a Ray worker: the tasks it was seen running
                    peak["process"] = "ray worker"
                    peak["tasks_seen"] = sorted({*peak.get("tasks_seen", []), name[5:]})
                total += anon
            self.tree_anon = max(self.tree_anon, total)

    def stop(self) -> dict:
        self.done.set()
        self.thread.join()
        others = sorted((p for pid, p in self.peaks.items() if pid != self.root and p["peak_rss_mb"] >= 50),
                        key=lambda p: -p["peak_rss_mb"])
        return {"peak_anonymous_rss_mb": self.peaks.get(self.root, {}).get("peak_anonymous_mb", 0),
                "processes": others, "tree_peak_anonymous_mb": self.tree_anon}


def process_name(cmdline: list[bytes]) -> str:
    """A started process by what it runs: a Ray worker's task (``ray::_lloyd_task``), or its program's name."""
    first = cmdline[0].decode(errors="replace")
    if first.startswith("ray::"):
        return first.split()[0]
    return " ".join(Path(part.decode(errors="replace")).name for part in cmdline[:2] if part)[:60]


def timed_process(cmd: list[str]) -> tuple[dict, float, float]:
    """Run ``cmd`` in a fresh process under /usr/bin/time -v; returns (its last JSON line, wall s, peak RSS MB)."""
    out = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", out.stderr).group(1)
    seconds = sum(float(p) * 60**i for i, p in enumerate(reversed(wall.split(":"))))
    return json.loads([ln for ln in out.stdout.splitlines() if ln.startswith("{")][-1]), seconds, rss


def job(pool: str, n: int, concepts: int, noise: float, keep: bool, backend: str = "local", dtype: str = "float32",
        lloyd_task_rows: int | None = None, seeding_task_rows: int | None = None) -> None:
    """The 1M job: a long-tailed pool (generated once at ``pool``), the default levels, a 10 % draw, timed in a
    fresh process; prints its JSON line, then the process's wall time and peak RSS."""
    if not Path(pool).is_file():
        generate(n, 384, "longtail", pool, concepts=concepts, noise=noise, dtype=dtype)
    print(f"machine: {os.cpu_count()} cores; load before {os.getloadavg()[0]:.2f}", flush=True)
    tasks = [arg for flag, rows in (("--lloyd-task-rows", lloyd_task_rows), ("--seeding-task-rows", seeding_task_rows))
             if rows is not None for arg in (flag, str(rows))]
    try:
        res, wall, rss = timed_process([sys.executable, __file__, "run", "--data", pool, "--phases",
                                        "--backend", backend, *tasks])
    finally:
        if not keep:
            Path(pool).unlink()
            concepts_path(pool).unlink(missing_ok=True)
    print(json.dumps(res))
    print(f"wall {wall:.1f} s, peak RSS {rss:.0f} MB (/usr/bin/time -v); others' CPU during the run "
          f"{res['others_cpu_s']} s, load after {res['load']}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--d", type=int, default=384)
    g.add_argument("--kind", choices=["random", "longtail"], default="longtail")
    g.add_argument("--out", required=True)
    g.add_argument("--concepts", type=int, default=1000, help="long-tailed pool: number of Zipf concepts")
    g.add_argument("--noise", type=float, default=None,
                   help="long-tailed pool: noise std per coordinate (default 0.35 / sqrt(d))")
    g.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    r = sub.add_parser("run")
    r.add_argument("--data", required=True)
    r.add_argument("--engine", choices=["ours", "sklearn"], default="ours")
    r.add_argument("--levels", choices=sorted(LEVELS), default="default")
    r.add_argument("--device", default="cpu", help="cpu (faiss), cuda, torch-cpu or auto")
    r.add_argument("--seeding-candidates", type=int, default=None, help="default 2 + ln k; 1: plain D² sampling")
    r.add_argument("--seeding-points-per-centroid", type=int, default=None,
                   help="bound of the seeding sample (0: none; default: the library's)")
    r.add_argument("--phases", action="store_true", help="seconds per phase (seeding, Lloyd, assignment, ...)")
    r.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="ray: assignments, splits and Lloyd tasks on a local Ray cluster of this machine's cores")
    r.add_argument("--lloyd-task-rows", type=int, default=None,
                   help="run Lloyd as tasks of this many training rows (default: in one process)")
    r.add_argument("--seeding-task-rows", type=int, default=None,
                   help="keep a larger seeding sample in blocks on the backend's workers (default: in one process)")
    j = sub.add_parser("job")
    j.add_argument("--pool", default="/tmp/bench_scale_job.npy", help="generated there unless it exists")
    j.add_argument("--n", type=int, default=1_000_000)
    j.add_argument("--concepts", type=int, default=3000)
    j.add_argument("--noise", type=float, default=JOB_NOISE, help="noise std per coordinate")
    j.add_argument("--keep", action="store_true", help="keep the pool for the next run")
    j.add_argument("--backend", choices=["local", "ray"], default="local")
    j.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="of a generated pool")
    j.add_argument("--lloyd-task-rows", type=int, default=None)
    j.add_argument("--seeding-task-rows", type=int, default=None)
    args = ap.parse_args()
    if args.cmd == "gen":
        generate(args.n, args.d, args.kind, args.out, concepts=args.concepts, noise=args.noise, dtype=args.dtype)
    elif args.cmd == "job":
        job(args.pool, args.n, args.concepts, args.noise, args.keep, args.backend, args.dtype, args.lloyd_task_rows,
            args.seeding_task_rows)
    else:
        if args.seeding_points_per_centroid is not None:
            seeding.SEEDING_POINTS_PER_CENTROID = args.seeding_points_per_centroid or None
        print(json.dumps(run(args.data, args.engine, seeding_candidates=args.seeding_candidates, levels=args.levels,
                             device=args.device, phases=args.phases, backend=args.backend,
                             lloyd_task_rows=args.lloyd_task_rows, seeding_task_rows=args.seeding_task_rows)))


if __name__ == "__main__":
    main()
