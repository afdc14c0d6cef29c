"""The original implementation's README example: five rings, levels [1000, 300], r [15, 2], m 10, N 1000.

Run: .venv/bin/python bench/bench_rings.py [--seeds 10]
Prints per-ring counts of the 1000 drawn points and the wall time of clustering + sampling per seed, with the CPU
seconds the rest of the machine used meanwhile. The first seed runs in this fresh process with nothing warmed up;
the import time of the library is printed apart.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import os  # noqa: E402

import numpy as np  # noqa: E402
from bench_threads import busy_cpu_seconds, own_cpu_seconds  # noqa: E402  (bench/ is on sys.path)

from curation_assets.core import LevelSpec, hierarchical_kmeans, hierarchical_sampling  # noqa: E402
from curation_assets.core.synthetic import RING_SIZES, five_rings  # noqa: E402

IMPORTED = time.perf_counter()
LEVELS = [LevelSpec(1000, resampling_steps=10, sample_size=15), LevelSpec(300, resampling_steps=10, sample_size=2)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    X, ring = five_rings(seed=0)
    print(f"ring sizes {list(RING_SIZES)}; original implementation drew [225, 119, 216, 207, 233]; "
          f"load {os.getloadavg()[0]:.2f}; imports {IMPORTED - STARTED:.2f} s")
    counts, times = [], []
    for seed in range(args.seeds):
        t, busy, own = time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds()
        idx = hierarchical_sampling(hierarchical_kmeans(X, LEVELS, seed=seed), 1000, strategy="random", seed=seed)
        times.append(time.perf_counter() - t)
        others = busy_cpu_seconds() - busy - (own_cpu_seconds() - own)
        counts.append(np.bincount(ring[idx], minlength=5))
        print(f"seed {seed}: per ring {counts[-1].tolist()}  {times[-1]:.2f} s  (others' CPU {others:.1f} s)",
              flush=True)
    c = np.array(counts)
    print(f"mean {c.mean(0).round(1).tolist()}  std {c.std(0).round(1).tolist()}  "
          f"200-ring min {c[:, 1].min()}  max ring max {c.max()}  time first {times[0]:.2f} s, "
          f"median {np.median(times):.2f} s, max {max(times):.2f} s; load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
