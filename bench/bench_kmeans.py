"""Our k-means vs scikit-learn's KMeans on the same data: time, inertia, distance work and GFLOP/s vs sgemm.

Run: .venv/bin/python bench/bench_kmeans.py [--n 100000] [--d 128] [--k 1000] [--iters 20]

Both seed with greedy k-means++ (2 + ln k candidates per step) and run at most ``--iters`` Lloyd
iterations on all rows (scikit-learn with tol=0: it stops, like ours, only once no label changes).
"work done" counts the point–centroid squared distances each one computes, 2·d FLOPs each: for ours
the pairs it reports (seeding rows, the exact filtered Lloyd's searches, the final assignment), for
scikit-learn (2 + ln k)·n·k for seeding and n·k per Lloyd iteration. "plain-Lloyd GFLOP/s" divides the
work plain Lloyd needs for the same iterations (2·n·k·d per iteration) by our whole time (seeding and
final assignment included): the speed a Lloyd computing every distance would need to finish as fast.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_info

from curation_assets.core import kmeans
from curation_assets.core.seeding import default_seeding_candidates


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
    n, d, k = args.n, args.d, args.k
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, d)).astype(np.float32)
    X = (centres[rng.integers(0, 200, n)] + 0.5 * rng.standard_normal((n, d))).astype(np.float32)
    peak = sgemm_gflops()
    print(f"machine: {os.cpu_count()} cores, BLAS {[i.get('internal_api') for i in threadpool_info()]}, "
          f"sgemm peak {peak:.1f} GFLOP/s, load {os.getloadavg()[0]:.2f}")
    print(f"data: n={n} d={d} k={k} max iterations={args.iters}")
    flop_per_pair = 2.0 * d

    secs, ours = _timed(lambda: kmeans(X, k, n_iter=args.iters, seed=0, max_points_per_centroid=None))
    done = ours.distance_pairs * flop_per_pair / 1e9
    print(f"ours    : {secs:7.2f} s  {ours.n_iter} Lloyd iterations  inertia {ours.inertia:.5g}  "
          f"work done {done:.0f} GFLOP = {done / secs:.1f} GFLOP/s ({100 * done / secs / peak:.0f}% of sgemm)  "
          f"plain-Lloyd GFLOP/s {n * k * ours.n_iter * flop_per_pair / 1e9 / secs:.1f}")
    from sklearn.cluster import KMeans

    secs_sk, sk = _timed(lambda: KMeans(k, init="k-means++", n_init=1, max_iter=args.iters, tol=0,
                                        algorithm="lloyd", random_state=0).fit(X))
    done_sk = n * k * (default_seeding_candidates(k) + sk.n_iter_) * flop_per_pair / 1e9
    print(f"sklearn : {secs_sk:7.2f} s  {sk.n_iter_} Lloyd iterations  inertia {sk.inertia_:.5g}  "
          f"work done {done_sk:.0f} GFLOP = {done_sk / secs_sk:.1f} GFLOP/s ({100 * done_sk / secs_sk / peak:.0f}% "
          f"of sgemm)")
    print(f"speed-up {secs_sk / secs:.1f}x; inertia ratio ours/sklearn {ours.inertia / sk.inertia_:.4f}")


if __name__ == "__main__":
    main()
