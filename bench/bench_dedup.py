"""Near-duplicate removal at scale with curation_assets.core.dedup: k-means-blocked faiss range search.

  .venv/bin/python bench/bench_dedup.py --n 100000 [--n 1000000] [--d 384] [--dup-share 0.02] [--threshold 0.95]

Random unit vectors (pairwise cosine ≈ 0) plus a share of planted near copies (cosine ≈ 0.995 to their
source). The blocked path is forced (block_clusters ≈ n / 2000 unless given). Prints one JSON line per n:
wall time, peak RSS of the process so far, planted pairs vs removed rows, recall (planted pairs whose two
rows end in one group) and false removals (removed rows that are neither a planted copy nor its source).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np

from curation_assets.core.dedup import DEFAULT_NPROBE, ROWS_PER_BUCKET, deduplicate


def make_pool(n: int, d: int, dup_share: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, sources, copies): random unit rows; row copies[k] is a near copy of row sources[k]."""
    rng = np.random.default_rng(seed)
    n_dup = int(n * dup_share)
    n_src = n - n_dup
    X = np.empty((n, d), dtype=np.float32)
    for s in range(0, n_src, 100_000):
        block = rng.standard_normal((min(100_000, n_src - s), d), dtype=np.float32)
        X[s : s + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    sources = rng.choice(n_src, n_dup, replace=False)
    noise = rng.standard_normal((n_dup, d), dtype=np.float32) * np.float32(0.1 / np.sqrt(d))
    copies = np.arange(n_src, n)
    X[copies] = X[sources] + noise
    return X, sources, copies


def run(n: int, d: int, dup_share: float, threshold: float, block_clusters: int | None, nprobe: int) -> dict:
    X, sources, copies = make_pool(n, d, dup_share)
    ids = np.char.add("r", np.arange(n).astype(str))
    bc = block_clusters or max(2, round(n / ROWS_PER_BUCKET))
    t = time.perf_counter()
    res = deduplicate(X, ids, threshold, block_clusters=bc, nprobe=nprobe)
    secs = time.perf_counter() - t
    rep = np.arange(n)
    rep[res.removed] = res.duplicate_of
    found = int((rep[copies] == rep[sources]).sum())
    planted_rows = np.zeros(n, bool)
    planted_rows[copies] = planted_rows[sources] = True
    return {"n": n, "d": d, "threshold": threshold, "block_clusters": bc, "nprobe": nprobe,
            "seconds": round(secs, 1), "planted": len(copies), "removed": len(res.removed),
            "recall": round(found / max(1, len(copies)), 4),
            "false_removals": int((~planted_rows[res.removed]).sum()),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, action="append", help="pool size(s), repeatable (default 100000)")
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--dup-share", type=float, default=0.02)
    ap.add_argument("--threshold", type=float, default=0.95)
    ap.add_argument("--block-clusters", type=int, default=None)
    ap.add_argument("--nprobe", type=int, default=DEFAULT_NPROBE)
    args = ap.parse_args()
    for n in args.n or [100_000]:
        print(json.dumps(run(n, args.d, args.dup_share, args.threshold, args.block_clusters, args.nprobe)), flush=True)


if __name__ == "__main__":
    main()
