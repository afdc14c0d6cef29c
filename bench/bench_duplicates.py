"""Near-duplicate removal at scale: k-means-blocked faiss range search, no n² step.

  .venv/bin/python bench/bench_duplicates.py --n 100000 [--d 384] [--dup-share 0.02] [--threshold 0.95]

Random unit vectors (pairwise cosine ≈ 0) with a share of planted near copies (cosine ≈ 0.99 to their
source). Prints one JSON line: wall time, peak RSS, planted vs removed (recall) and false removals.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from curation_assets.core.duplicates import deduplicate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--dup-share", type=float, default=0.02)
    ap.add_argument("--threshold", type=float, default=0.95)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n_dup = int(args.n * args.dup_share)
    n_src = args.n - n_dup
    X = np.empty((args.n, args.d), dtype=np.float32)
    for s in range(0, n_src, 100_000):
        block = rng.standard_normal((min(100_000, n_src - s), args.d), dtype=np.float32)
        X[s : s + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    sources = rng.choice(n_src, n_dup, replace=False)
    noise = rng.standard_normal((n_dup, args.d), dtype=np.float32) * np.float32(0.1 / np.sqrt(args.d))
    X[n_src:] = X[sources] + noise
    ids = [f"{i:08d}" for i in range(args.n)]
    t = time.perf_counter()
    res = deduplicate(X, ids, args.threshold)
    secs = time.perf_counter() - t
    removed = set(res.removed.tolist())
    planted = set(range(n_src, args.n))
    print(json.dumps({"n": args.n, "d": args.d, "threshold": args.threshold, "seconds": round(secs, 1),
                      "planted": n_dup, "removed": len(removed), "recall": round(len(removed & planted) / n_dup, 4),
                      "false_removals": len(removed - planted),
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}))


if __name__ == "__main__":
    main()
