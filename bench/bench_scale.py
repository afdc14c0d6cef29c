"""Hierarchical k-means + balanced sampling at scale, out of core, with a FLOP count.

  python bench/bench_scale.py gen --n 1000000 --d 384 --kind longtail --out /tmp/pool.npy
  python bench/bench_scale.py run --data /tmp/pool.npy [--engine ours|sklearn]

`run` opens the pool as a read-only memory map and fits the paper-shaped 4 levels
(k = 200 × split 100 = 20k, 2k, 500, 100; m = 1, 10, 10, 10; r = 1, 10, 5, 3) then draws 10 %.
It prints one JSON line: wall seconds per stage, the achieved GFLOP/s of the distance work
(2·n·k·d per assignment pass, counted on every k-means call) and peak RSS. Run it under
`/usr/bin/time -v` for an outside RSS measurement (bench/run_all.py does).
"""

from __future__ import annotations

import argparse
import importlib
import json
import resource
import time

import numpy as np

from curation_assets.core import LevelSpec, hierarchical_kmeans, hierarchical_sampling

hierarchy_module = importlib.import_module("curation_assets.core.hierarchy")

PAPER_SHAPED_LEVELS = [
    LevelSpec(200, n_splits=100, resampling_steps=1, sample_size=1, n_iter=20),
    LevelSpec(2000, resampling_steps=10, sample_size=10, n_iter=20),
    LevelSpec(500, resampling_steps=10, sample_size=5, n_iter=20),
    LevelSpec(100, resampling_steps=10, sample_size=3, n_iter=20),
]
GEN_CHUNK = 100_000


def generate(n: int, d: int, kind: str, out: str, seed: int = 0) -> None:
    """Write an (n, d) float32 pool chunk by chunk: isotropic noise, or 1000 Zipf(1.0) concepts."""
    rng = np.random.default_rng(seed)
    X = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(n, d))
    centres = rng.standard_normal((1000, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, 1001)
    for start in range(0, n, GEN_CHUNK):
        m = min(GEN_CHUNK, n - start)
        if kind == "random":
            block = rng.standard_normal((m, d), dtype=np.float32)
        else:
            concept = rng.choice(1000, size=m, p=weights / weights.sum())
            block = centres[concept] + rng.standard_normal((m, d), dtype=np.float32) * np.float32(0.35 / np.sqrt(d))
        X[start : start + m] = block
    X.flush()


class FlopCounter:
    """Wraps the k-means used by the hierarchy to count distance work (2·n·k·d per Lloyd pass)."""

    def __init__(self, inner):
        self.inner, self.flops = inner, 0.0

    def __call__(self, X, k, **kwargs):
        res = self.inner(X, k, **kwargs)
        n, d = X.shape
        train = n if kwargs.get("max_points_per_centroid") is None else min(n, k * kwargs["max_points_per_centroid"])
        self.flops += 2.0 * d * k * (train * max(res.n_iter, 1) + n)  # Lloyd passes + final assignment
        return res


def sklearn_kmeans(X, k, *, n_iter=50, seed=0, metric="l2", max_points_per_centroid=256, assigner=None):
    """The same contract as core.kmeans, computed by scikit-learn's KMeans (for comparison)."""
    from sklearn.cluster import KMeans

    from curation_assets.core.kmeans import KMeansResult, assign

    X = np.ascontiguousarray(X, dtype=np.float32)
    km = KMeans(k, init="k-means++", n_init=1, max_iter=n_iter, random_state=seed, algorithm="lloyd").fit(X)
    labels, dists = (assigner or assign)(X, km.cluster_centers_.astype(np.float32), "l2")
    return KMeansResult(km.cluster_centers_.astype(np.float32), labels, dists, n_iter=int(km.n_iter_))


def run(data: str, engine: str, target_fraction: float = 0.1) -> dict:
    X = np.load(data, mmap_mode="r")
    inner = hierarchy_module.kmeans if engine == "ours" else sklearn_kmeans
    counter = FlopCounter(inner)
    hierarchy_module.kmeans = counter
    times = {}
    t0 = time.perf_counter()
    def mark(t, _level):
        times[f"level_{t}_s"] = round(time.perf_counter() - t0, 1)

    h = hierarchical_kmeans(X, PAPER_SHAPED_LEVELS, seed=0, on_level=mark)
    t1 = time.perf_counter()
    idx = hierarchical_sampling(h, int(target_fraction * X.shape[0]), seed=0)
    t2 = time.perf_counter()
    return {"engine": engine, "n": X.shape[0], "d": X.shape[1], "clusters": [lv.n_clusters for lv in h.levels],
            **times, "clustering_s": round(t1 - t0, 1), "sampling_s": round(t2 - t1, 2),
            "total_s": round(t2 - t0, 1), "subset": len(idx), "gflop": round(counter.flops / 1e9),
            "gflops_per_s": round(counter.flops / 1e9 / (t1 - t0), 1),
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
    args = ap.parse_args()
    if args.cmd == "gen":
        generate(args.n, args.d, args.kind, args.out)
    else:
        print(json.dumps(run(args.data, args.engine)))


if __name__ == "__main__":
    main()
