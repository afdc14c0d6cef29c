"""Long-tailed concepts (issue 15): how balanced is a 10 % curated subset over 100 Zipf-sized concepts?

Run: .venv/bin/python bench/bench_longtail.py [--seeds 3] [--candidates 1] [--seeding-points-per-centroid 0]
                                           [--device cpu|torch-cpu|cuda|auto]

Data (``core.synthetic.zipf_concepts``, one draw per seed): 100 Gaussian concepts around random unit
centres in 64-d, sizes ∝ rank^-1 (Zipf 1.0), 30k points. Curation: 2 levels, k = 300 / 60, r = 50 / 2,
10 resampling steps each, a 10 % budget drawn at random inside the leaves. Labels are hidden from the
curation; the score is the label KL divergence of the subset to uniform (0 = every concept equally often;
a random 10 % subset scores about 0.9). Prints per seed the KL and the wall time of clustering +
sampling, then the mean. ``--candidates 1`` seeds with plain D² sampling instead of greedy k-means++;
``--seeding-points-per-centroid 0`` seeds on every training row instead of a bounded sample; ``--device``
runs the heavy passes on the torch kernels (``torch-cpu``: on the CPU; the first seed's time includes
loading torch).
"""

from __future__ import annotations

import argparse
import importlib
import os
import time

import numpy as np

from curation_assets.core import LevelSpec, hierarchical_kmeans, hierarchical_sampling, label_balance
from curation_assets.core.synthetic import zipf_concepts

kmeans_module = importlib.import_module("curation_assets.core.kmeans")


def levels(candidates: int | None) -> list[LevelSpec]:
    return [LevelSpec(300, resampling_steps=10, sample_size=50, seeding_candidates=candidates),
            LevelSpec(60, resampling_steps=10, sample_size=2, seeding_candidates=candidates)]


def run(seed: int, candidates: int | None = None, device: str = "cpu") -> tuple[float, float]:
    """(label KL-to-uniform of the subset, seconds of clustering + sampling) for one seed."""
    X, concept = zipf_concepts(n_concepts=100, n_points=30_000, dim=64, exponent=1.0, seed=seed)
    start = time.perf_counter()
    h = hierarchical_kmeans(X, levels(candidates), seed=seed, device=device)
    subset = hierarchical_sampling(h, len(X) // 10, strategy="random", seed=seed)
    seconds = time.perf_counter() - start
    return label_balance(concept[subset], concept)["kl_to_uniform"], seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--candidates", type=int, default=None, help="seeding candidates per step (default 2 + ln k)")
    ap.add_argument("--seeding-points-per-centroid", type=int, default=None,
                    help="bound of the seeding sample (0: no bound; default: the library's)")
    ap.add_argument("--device", default="cpu", help="cpu (faiss), torch-cpu, cuda or auto")
    args = ap.parse_args()
    if args.seeding_points_per_centroid is not None:
        kmeans_module.SEEDING_POINTS_PER_CENTROID = args.seeding_points_per_centroid or None
    print(f"load {os.getloadavg()[0]:.2f}; device {args.device}")
    kls, times = [], []
    for seed in range(args.seeds):
        kl, seconds = run(seed, args.candidates, args.device)
        kls.append(kl)
        times.append(seconds)
        print(f"seed {seed}: KL to uniform {kl:.3f}  {seconds:.2f} s", flush=True)
    print(f"mean KL {np.mean(kls):.3f} (min {min(kls):.3f}, max {max(kls):.3f}) over seeds 0-{args.seeds - 1}; "
          f"time max {max(times):.2f} s")


if __name__ == "__main__":
    main()
