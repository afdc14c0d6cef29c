"""Long-tailed concepts: how balanced is a 10 % curated subset over 100 Zipf-sized concepts, ours vs the reference?

Run: .venv/bin/python bench/bench_longtail.py [--seeds 50] [--out bench/results/longtail_ours.json]
                                           [--reference /tmp/ssl-data-curation] [--candidates 1] [--device cpu]
     .venv/bin/python bench/bench_longtail.py --compare bench/results/longtail_ours.json \
                                                         bench/results/longtail_reference.json

Data (``core.synthetic.zipf_concepts``, one draw per seed): 100 Gaussian concepts around random unit
centres in 64-d, sizes ∝ rank^-1 (Zipf 1.0), 30k points. Curation: 2 levels, k = 300 / 60, r = 50 / 2,
10 resampling steps each (closest members), a 10 % budget drawn at random inside the leaves. Labels are
hidden from the curation; the score is the label KL divergence of the subset to uniform (0 = every concept
equally often; a random 10 % subset scores about 0.9). Prints per seed the KL and the wall time of
clustering + sampling (the first seed runs in this fresh process, nothing warmed up; the import time of the
library is printed apart) with the CPU seconds the rest of the machine used meanwhile (a timing is only worth
reporting when that is near 0), then the mean.

``--reference PATH`` runs the authors' implementation (facebookresearch/ssl-data-curation, CC-BY-NC: a
checkout outside this repository, imported from PATH at run time, nothing of it is copied here) on the same
points: its ``hierarchical_kmeans_with_resampling`` on a CPU torch tensor and its ``hierarchical_sampling``,
seeded through the global numpy / ``random`` / torch generators it draws from. The shims it needs on CPU and
on numpy 2 live in :func:`reference_run`. ``--out`` saves the per-seed results as JSON; ``--compare`` prints
mean, sd and the 95 % interval of the difference of two such files (Welch).
``--candidates 1`` seeds with plain D² sampling; ``--device`` runs our heavy passes on the torch kernels.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import random  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from bench_threads import busy_cpu_seconds, own_cpu_seconds  # noqa: E402  (bench/ is on sys.path)

from curation_assets.core import LevelSpec, hierarchical_kmeans, hierarchical_sampling, label_balance  # noqa: E402
from curation_assets.core.synthetic import zipf_concepts  # noqa: E402

IMPORTED = time.perf_counter()

N_POINTS, N_CONCEPTS, DIM = 30_000, 100, 64
CLUSTERS, SAMPLE_SIZES, RESAMPLING_STEPS = (300, 60), (50, 2), 10


def pool(seed: int) -> tuple[np.ndarray, np.ndarray]:
    return zipf_concepts(n_concepts=N_CONCEPTS, n_points=N_POINTS, dim=DIM, exponent=1.0, seed=seed)


def levels(candidates: int | None) -> list[LevelSpec]:
    return [LevelSpec(k, resampling_steps=RESAMPLING_STEPS, sample_size=r, seeding_candidates=candidates)
            for k, r in zip(CLUSTERS, SAMPLE_SIZES, strict=True)]


def run(seed: int, candidates: int | None = None, device: str = "cpu") -> tuple[float, float]:
    """(label KL-to-uniform of the subset, seconds of clustering + sampling) for one seed, ours."""
    X, concept = pool(seed)
    start = time.perf_counter()
    h = hierarchical_kmeans(X, levels(candidates), seed=seed, device=device)
    subset = hierarchical_sampling(h, len(X) // 10, strategy="random", seed=seed)
    seconds = time.perf_counter() - start
    return label_balance(concept[subset], concept)["kl_to_uniform"], seconds


def reference_run(checkout: str):
    """``run`` for the reference implementation at ``checkout``: imports it from there (its package is ``src``)."""
    sys.path.insert(0, checkout)
    import torch
    from src import hierarchical_kmeans_gpu
    from src import hierarchical_sampling as reference_sampling
    from src.clusters import HierarchicalCluster

    np.Inf = np.inf  # numpy 2 removed the alias its k-means uses

    def run_reference(seed: int, candidates: int | None = None, device: str = "cpu") -> tuple[float, float]:
        X, concept = pool(seed)
        np.random.seed(seed)  # its k-means++ and resampling draw from numpy's global generator,
        random.seed(seed)  # its leaf draw from Python's
        torch.manual_seed(seed)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # its progress bars
            tree = hierarchical_kmeans_gpu.hierarchical_kmeans_with_resampling(
                data=torch.tensor(X), n_clusters=list(CLUSTERS), n_levels=len(CLUSTERS),
                sample_sizes=list(SAMPLE_SIZES), n_resamples=RESAMPLING_STEPS, sample_strategy="closest",
                verbose=False)
            subset = reference_sampling.hierarchical_sampling(HierarchicalCluster.from_dict(tree), len(X) // 10)
        seconds = time.perf_counter() - start
        return label_balance(concept[subset], concept)["kl_to_uniform"], seconds

    return run_reference


def checkout_commit(checkout: str) -> str:
    """The commit of a git checkout (``unknown`` when git cannot tell)."""
    out = subprocess.run(["git", "-C", checkout, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def compare(ours_path: str, reference_path: str) -> None:
    """Mean, sd of both files' KLs, the 95 % interval of the difference of means (Welch), per-run times."""
    from scipy import stats

    a, b = (json.loads(Path(p).read_text()) for p in (ours_path, reference_path))
    kl_a, kl_b = (np.array([r["kl"] for r in f["runs"]]) for f in (a, b))
    var_a, var_b = kl_a.var(ddof=1) / len(kl_a), kl_b.var(ddof=1) / len(kl_b)
    dof = (var_a + var_b) ** 2 / (var_a**2 / (len(kl_a) - 1) + var_b**2 / (len(kl_b) - 1))
    half = stats.t.ppf(0.975, dof) * np.sqrt(var_a + var_b)
    diff = kl_a.mean() - kl_b.mean()
    ref_half = stats.t.ppf(0.975, len(kl_b) - 1) * np.sqrt(var_b)
    print("| implementation | seeds | mean KL | sd | 95 % interval of the mean | s per run (first, median, max) |")
    print("|---|---|---|---|---|---|")
    for f, kl in ((a, kl_a), (b, kl_b)):
        t = [r["seconds"] for r in f["runs"]]
        ci = stats.t.ppf(0.975, len(kl) - 1) * kl.std(ddof=1) / np.sqrt(len(kl))
        print(f"| {f['implementation']} | {len(kl)} | {kl.mean():.3f} | {kl.std(ddof=1):.3f} | "
              f"{kl.mean() - ci:.3f}–{kl.mean() + ci:.3f} | {t[0]:.2f}, {np.median(t):.2f}, {max(t):.2f} |")
    print(f"\ndifference of means {diff:+.4f}, 95 % interval {diff - half:+.4f} … {diff + half:+.4f} (Welch); "
          f"{a['implementation']} mean {'inside or below' if kl_a.mean() <= kl_b.mean() + ref_half else 'above'} "
          f"the {b['implementation']}'s 95 % interval")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=50)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--candidates", type=int, default=None, help="seeding candidates per step (default 2 + ln k)")
    ap.add_argument("--device", default="cpu", help="cpu (faiss), torch-cpu, cuda or auto")
    ap.add_argument("--reference", help="checkout of facebookresearch/ssl-data-curation: run it instead of ours")
    ap.add_argument("--out", help="save the per-seed results to this JSON file")
    ap.add_argument("--compare", nargs=2, metavar=("OURS", "REFERENCE"), help="compare two --out files")
    args = ap.parse_args()
    if args.compare:
        return compare(*args.compare)
    one_run = reference_run(args.reference) if args.reference else run
    name = f"reference {checkout_commit(args.reference)}" if args.reference else f"ours ({args.device})"
    print(f"{name}; load {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores; imports {IMPORTED - STARTED:.2f} s",
          flush=True)
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        busy, own = busy_cpu_seconds(), own_cpu_seconds()
        kl, seconds = one_run(seed, args.candidates, args.device)
        others = busy_cpu_seconds() - busy - (own_cpu_seconds() - own)
        runs.append({"seed": seed, "kl": round(kl, 5), "seconds": round(seconds, 3),
                     "load": round(os.getloadavg()[0], 2), "others_cpu_s": round(others, 2)})
        print(f"seed {seed}: KL to uniform {kl:.3f}  {seconds:.2f} s  (others' CPU {others:.1f} s)", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps({"implementation": name, "machine": f"{os.cpu_count()} cores, "
                                                  f"{platform.machine()}", "runs": runs}, indent=1) + "\n")
    kls, times = [r["kl"] for r in runs], [r["seconds"] for r in runs]
    print(f"mean KL {np.mean(kls):.3f} (sd {np.std(kls, ddof=1) if len(kls) > 1 else 0:.3f}, min {min(kls):.3f}, "
          f"max {max(kls):.3f}); time first {times[0]:.2f} s, max {max(times):.2f} s")


if __name__ == "__main__":
    main()
