"""Our k-means vs scikit-learn's KMeans on the same data: time, inertia, achieved GFLOP/s vs sgemm.

Run: .venv/bin/python bench/bench_kmeans.py [--n 100000] [--d 128] [--k 1000] [--iters 20]
Both start from k-means++ (ours: exact batched D² sampling; sklearn: greedy k-means++) and run
the same number of Lloyd iterations (tol=0, no early stop) on all rows.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_info

from curation_assets.core import kmeans, kmeans_plusplus


def sgemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((size, size), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b)[0] for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--k", type=int, default=1000)
    ap.add_argument("--iters", type=int, default=20)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, args.d)).astype(np.float32)
    X = (centres[rng.integers(0, 200, args.n)] + 0.5 * rng.standard_normal((args.n, args.d))).astype(np.float32)
    peak = sgemm_gflops()
    print(f"machine: {os.cpu_count()} cores, BLAS {[i.get('internal_api') for i in threadpool_info()]}, "
          f"sgemm peak {peak:.1f} GFLOP/s")
    print(f"data: n={args.n} d={args.d} k={args.k} iterations={args.iters}")
    lloyd_flops = 2.0 * args.n * args.k * args.d * args.iters

    # ours: run Lloyd for exactly --iters iterations (disable the early stop for a like-for-like count)
    secs, ours = _timed(lambda: kmeans(X, args.k, n_iter=args.iters, seed=0, max_points_per_centroid=None))
    seed_secs, _ = _timed(lambda: kmeans_plusplus(X, args.k, np.random.default_rng(0)))
    gflops = 2.0 * args.n * args.k * args.d * ours.n_iter / max(secs - seed_secs, 1e-9) / 1e9
    print(f"ours    : {secs:7.2f} s  (k-means++ seeding {seed_secs:.2f} s, {ours.n_iter} Lloyd iterations)  "
          f"inertia {ours.inertia:.4g}  Lloyd GFLOP/s {gflops:.1f} ({100 * gflops / peak:.0f}% of sgemm)")
    from sklearn.cluster import KMeans

    secs_sk, sk = _timed(lambda: KMeans(args.k, init="k-means++", n_init=1, max_iter=args.iters, tol=0,
                                        algorithm="lloyd", random_state=0).fit(X))
    print(f"sklearn : {secs_sk:7.2f} s  ({sk.n_iter_} iterations)  inertia {sk.inertia_:.4g}  "
          f"GFLOP/s {2.0 * args.n * args.k * args.d * sk.n_iter_ / secs_sk / 1e9:.1f}")
    print(f"speed-up {secs_sk / secs:.1f}x; inertia ratio ours/sklearn {ours.inertia / sk.inertia_:.4f}; "
          f"nominal Lloyd work {lloyd_flops / 1e9:.0f} GFLOP")


if __name__ == "__main__":
    main()
