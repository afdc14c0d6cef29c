"""The original implementation's README example: five rings, levels [1000, 300], r [15, 2], m 10, N 1000.

Run: .venv/bin/python bench/bench_rings.py [--seeds 10]
Prints per-ring counts of the 1000 drawn points and the wall time of clustering + sampling per seed.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from curation_assets.core import LevelSpec, hierarchical_kmeans, hierarchical_sampling
from curation_assets.core.synthetic import RING_SIZES, five_rings

LEVELS = [LevelSpec(1000, resampling_steps=10, sample_size=15), LevelSpec(300, resampling_steps=10, sample_size=2)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    X, ring = five_rings(seed=0)
    print(f"ring sizes {list(RING_SIZES)}; original implementation drew [225, 119, 216, 207, 233]; "
          f"load {os.getloadavg()[0]:.2f}")
    counts, times = [], []
    for seed in range(args.seeds):
        t = time.perf_counter()
        idx = hierarchical_sampling(hierarchical_kmeans(X, LEVELS, seed=seed), 1000, strategy="random", seed=seed)
        times.append(time.perf_counter() - t)
        counts.append(np.bincount(ring[idx], minlength=5))
        print(f"seed {seed}: per ring {counts[-1].tolist()}  {times[-1]:.2f} s")
    c = np.array(counts)
    print(f"mean {c.mean(0).round(1).tolist()}  std {c.std(0).round(1).tolist()}  "
          f"200-ring min {c[:, 1].min()}  max ring max {c.max()}  time median {np.median(times):.2f} s "
          f"max {max(times):.2f} s")


if __name__ == "__main__":
    main()
