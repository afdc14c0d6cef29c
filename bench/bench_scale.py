"""Hierarchical k-means + balanced sampling at scale, out of core, with a FLOP count.

  python bench/bench_scale.py gen --n 1000000 --d 384 --kind longtail --out /tmp/pool.npy
  python bench/bench_scale.py run --data /tmp/pool.npy [--engine ours|sklearn] [--levels default|issue18]
                                  [--device cpu|cuda|torch-cpu|auto]
                                  [--seeding-candidates 1] [--seeding-points-per-centroid 0]

`run` opens the pool as a read-only memory map and fits the default 4 levels with the library's
default k-means settings (n_iter=50, greedy k-means++, 256 training points per centroid):
k = 2000 × split 10 = 20k, 2000, 500, 100; m = 1, 10, 10, 10; r = 1, 5, 2, 2; then draws 10 %.
``--levels issue18`` fits issue 18's job instead: 3 levels, k = 2000 / 500 / 100, r = 10 / 5 / 2, 10
resampling steps each (``issue18-small``: k = 200 / 50 / 10, for small pools). ``--device`` runs the heavy
passes there (core ``device``); on a torch device a small k-means runs first, untimed (``warmup_s``: CUDA
context and kernel loading).
It prints one JSON line: wall seconds per stage, the distance work actually done and its GFLOP/s,
and peak RSS. The work is every point–centroid squared distance computed by GEMM (2·d FLOPs each):
seeding rows, Lloyd searches (the exact filtered Lloyd skips the pairs its bounds rule out; those are
not counted), full assignments and splits, as each level reports it (``Level.distance_pairs``).
Run it under `/usr/bin/time -v` for an outside RSS measurement (bench/run_all.py does). A long-tailed
pool's concepts are written next to it (``<out>.concepts.npy``); `run` then also reports the concept
KL-to-uniform of the subset (0 = every concept equally often). ``--seeding-candidates 1`` seeds with plain
D² sampling, ``--seeding-points-per-centroid 0`` seeds on every training row instead of a bounded sample.
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from curation_assets.core import LevelSpec, hierarchical_kmeans, hierarchical_sampling, label_balance

hierarchy_module = importlib.import_module("curation_assets.core.hierarchy")
kmeans_module = importlib.import_module("curation_assets.core.kmeans")

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


def concepts_path(data: str) -> Path:
    return Path(f"{data}.concepts.npy")


def generate(n: int, d: int, kind: str, out: str, seed: int = 0) -> None:
    """Write an (n, d) float32 pool chunk by chunk: isotropic noise, or 1000 Zipf(1.0) concepts (and their labels)."""
    rng = np.random.default_rng(seed)
    X = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, d))
    centres = rng.standard_normal((1000, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, 1001)
    concepts = np.empty(n, dtype=np.int16)
    for start in range(0, n, GEN_CHUNK):
        m = min(GEN_CHUNK, n - start)
        if kind == "random":
            block = rng.standard_normal((m, d), dtype=np.float32)
        else:
            concept = rng.choice(1000, size=m, p=weights / weights.sum())
            block = centres[concept] + rng.standard_normal((m, d), dtype=np.float32) * np.float32(0.35 / np.sqrt(d))
            concepts[start : start + m] = concept
        X[start : start + m] = block
    X.flush()
    if kind == "longtail":
        np.save(concepts_path(out), concepts)


def sklearn_fit_centroids(X, k, rng, *, rows=None, n_iter=50, metric="l2", max_points_per_centroid=256,
                          seeding_candidates=None, workers=None, device="cpu"):
    """The contract of core's ``fit_centroids``, trained by scikit-learn's KMeans (greedy k-means++, Lloyd).

    Counts the pairs scikit-learn computes: (2 + ln k) candidates × n per seed, n × k per Lloyd iteration.
    """
    from sklearn.cluster import KMeans

    n_rows = X.shape[0] if rows is None else len(rows)
    sample = kmeans_module.training_sample(n_rows, k, max_points_per_centroid, rng)
    taken = sample if rows is None else (rows if sample is None else rows[sample])
    train = np.ascontiguousarray(X if taken is None else X[taken], dtype=np.float32)
    km = KMeans(k, init="k-means++", n_init=1, max_iter=n_iter, random_state=int(rng.integers(2**31 - 1)),
                algorithm="lloyd").fit(train)
    pairs = len(train) * k * (kmeans_module.default_seeding_candidates(k) + int(km.n_iter_))
    return kmeans_module.TrainedCentroids(km.cluster_centers_.astype(np.float32), int(km.n_iter_), pairs)


def warm_up(device: str, d: int) -> float:
    """Seconds of a small untimed k-means on a torch device (CUDA context, kernels); 0 on the faiss path."""
    if kmeans_module.resolve_device(device) == "cpu":
        return 0.0
    t = time.perf_counter()
    kmeans_module.kmeans(np.random.default_rng(0).standard_normal((20_000, d), dtype=np.float32), 100, device=device)
    return round(time.perf_counter() - t, 1)


def run(data: str, engine: str, target_fraction: float = 0.1, seeding_candidates: int | None = None,
        levels: str = "default", device: str = "cpu") -> dict:
    X = np.load(data, mmap_mode="r")
    if engine == "sklearn":
        hierarchy_module.fit_centroids = sklearn_fit_centroids
    specs = [replace(spec, seeding_candidates=seeding_candidates) for spec in LEVELS[levels]]
    warmup = warm_up(device, X.shape[1])
    times = {}
    t0 = time.perf_counter()

    def mark(t, _level):
        times[f"level_{t}_s"] = round(time.perf_counter() - t0, 1)

    h = hierarchical_kmeans(X, specs, seed=0, on_level=mark, device=device)
    t1 = time.perf_counter()
    idx = hierarchical_sampling(h, int(target_fraction * X.shape[0]), seed=0)
    t2 = time.perf_counter()
    flops = 2.0 * X.shape[1] * sum(level.distance_pairs for level in h.levels)
    balance = {}
    if concepts_path(data).is_file():
        concepts = np.load(concepts_path(data))
        balance["concept_kl_to_uniform"] = round(label_balance(concepts[idx], concepts)["kl_to_uniform"], 4)
    return {"engine": engine, "device": kmeans_module.resolve_device(device), "n": X.shape[0], "d": X.shape[1],
            "clusters": [lv.n_clusters for lv in h.levels], "warmup_s": warmup,
            **times, "clustering_s": round(t1 - t0, 1), "sampling_s": round(t2 - t1, 2),
            "total_s": round(t2 - t0, 1), "subset": len(idx), **balance, "gflop": round(flops / 1e9),
            "gflops_per_s": round(flops / 1e9 / (t1 - t0), 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--n", type=int, required=True)
    g.add_argument("--d", type=int, default=384)
    g.add_argument("--kind", choices=["random", "longtail"], default="longtail")
    g.add_argument("--out", required=True)
    r = sub.add_parser("run")
    r.add_argument("--data", required=True)
    r.add_argument("--engine", choices=["ours", "sklearn"], default="ours")
    r.add_argument("--levels", choices=sorted(LEVELS), default="default")
    r.add_argument("--device", default="cpu", help="cpu (faiss), cuda, torch-cpu or auto")
    r.add_argument("--seeding-candidates", type=int, default=None, help="default 2 + ln k; 1: plain D² sampling")
    r.add_argument("--seeding-points-per-centroid", type=int, default=None,
                   help="bound of the seeding sample (0: none; default: the library's)")
    args = ap.parse_args()
    if args.cmd == "gen":
        generate(args.n, args.d, args.kind, args.out)
    else:
        if args.seeding_points_per_centroid is not None:
            kmeans_module.SEEDING_POINTS_PER_CENTROID = args.seeding_points_per_centroid or None
        print(json.dumps(run(args.data, args.engine, seeding_candidates=args.seeding_candidates, levels=args.levels,
                             device=args.device)))


if __name__ == "__main__":
    main()
