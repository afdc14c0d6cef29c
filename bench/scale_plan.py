"""What each pass of a hierarchical k-means job costs, from its shape: a FLOP model calibrated on a measured run.

  .venv/bin/python bench/scale_plan.py [--calibration bench/results/scale_job_1m.json]

Every pass is GEMM work, 2·d FLOPs per point–centroid pair; the model counts, per level t with input n_t and
k_t clusters (the library's defaults: training sample ≤ 256 rows per centroid, seeding on ≤ 64 rows per centroid
with 2 + ln k candidates per step, at most 50 Lloyd iterations, the level's m_t resampling k-means on r_t·k_t rows):

* seeding    (1 + m_t) × seeding rows × k × (2 + ln k) × 1.25 (proposals drawn beyond the accepted ones)
* Lloyd      (1 + m_t) × training rows × k × 50 (an upper bound: the filtered Lloyd skips pairs, stops early)
* assignment (1 + m_t) × n_t × k (every input to its nearest centroid, after the k-means and every step)
* splits     for s_t > 1: per cluster of n_t / k_t members, its own seeding + Lloyd with s_t centroids + members × s_t

``--calibration`` is the JSON line of a measured ``bench_scale.py job`` run (``phases_s`` and its shape): each
pass's achieved rate = model FLOPs / measured seconds. The plan then prices the paper's job (743M × 1024, 4 levels)
and intermediate sizes at those rates per 2-core machine, and at an assumed GPU rate (no GPU was lent: the rate is
an assumption, named in the output). Machines divide every pass: assignment, splits, Lloyd's partial sums (tasks
when a training sample exceeds ``execution.lloyd_task_rows``) and the seeding's distance work (blocks held by Ray
actors when a seeding sample exceeds ``execution.seeding_task_rows``). Distributed seeding also pays one round trip
per greedy k-means++ step (``STEP_ROUND_TRIP_S``, measured); the GPU columns keep seeding on one GPU, as no
distributed GPU seeding exists here.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

TRAIN_PER_CENTROID, SEED_PER_CENTROID, LLOYD_ITERATIONS, PROPOSAL_OVERHEAD = 256, 64, 50, 1.25
PASSES = ("seeding", "Lloyd", "assignment", "splits")
GPU_TFLOPS = 100.0  # ASSUMED sustained fp32/TF32 GEMM rate of one H100-class GPU on these passes (not measured)
# Measured 2026-12-06, bench_scale.py job --n 1000000 --dtype float16 --lloyd-task-rows 131072
# --seeding-task-rows 65536: seeding took 39.8 s with level 1's 2000 steps on 2 local Ray actors against 29.1 s
# with the same blocks in one process: (39.8 - 29.1) / 2000 steps, actor start included.
STEP_ROUND_TRIP_S = 0.0054


@dataclass(frozen=True)
class Level:
    k: int
    resampling_steps: int = 0
    sample_size: int = 1
    n_splits: int = 1


def kmeans_pairs(rows: float, k: int) -> tuple[float, float]:
    """(seeding pairs, Lloyd pairs) of one k-means on ``rows`` rows."""
    train = min(rows, TRAIN_PER_CENTROID * k)
    seed_rows = min(train, SEED_PER_CENTROID * k)
    return seed_rows * k * (2 + math.log(k)) * PROPOSAL_OVERHEAD, train * k * LLOYD_ITERATIONS


def job_flops(n: float, d: int, levels: list[Level]) -> dict[str, float]:
    """Model FLOPs per pass of the whole hierarchy (module docstring)."""
    flops = dict.fromkeys(PASSES, 0.0)
    inputs = n
    for level in levels:
        runs = 1 + (level.resampling_steps if level.sample_size > 1 else 0)
        for r in range(runs):
            rows = inputs if r == 0 else min(inputs, level.sample_size * level.k)
            seeding, lloyd = kmeans_pairs(rows, level.k)
            flops["seeding"] += 2 * d * seeding
            flops["Lloyd"] += 2 * d * lloyd
            flops["assignment"] += 2 * d * inputs * level.k
        if level.n_splits > 1:
            members = inputs / level.k
            seeding, lloyd = kmeans_pairs(members, level.n_splits)
            flops["splits"] += 2 * d * level.k * (seeding + lloyd + members * level.n_splits)
        inputs = level.k * level.n_splits
    return flops


def seeding_steps(levels: list[Level]) -> int:
    """Greedy k-means++ steps of the levels' k-means (one round trip each when seeding is distributed; the splits'
    small k-means seed inside their tasks)."""
    return sum(level.k * (1 + (level.resampling_steps if level.sample_size > 1 else 0)) for level in levels)


JOB_LEVELS = [Level(2000, 1, 1, 10), Level(2000, 10, 5), Level(500, 10, 2), Level(100, 10, 2)]  # bench_scale's job
PAPER = (743_000_000, 1024, [Level(100_000, 1, 1, 100), Level(500_000, 10, 10), Level(50_000, 10, 5),
                             Level(10_000, 10, 3)])


def fmt_seconds(s: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:,.1f} {unit}"
    return f"{s:,.1f} s"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calibration", nargs="+", default=["bench/results/scale_job_1m.json"])
    args = ap.parse_args()
    runs = [json.loads(Path(p).read_text()) for p in args.calibration]
    flops = job_flops(runs[0]["n"], runs[0]["d"], JOB_LEVELS)
    rate = {p: flops[p] / max(runs[0]["phases_s"][p], 1e-9) for p in PASSES}  # achieved FLOP/s per pass
    print(f"calibration: the {runs[0]['n']:,}-row job; achieved rate per pass (model FLOPs / measured s), "
          "2 cores:")
    print("| pass | model TFLOP | measured s | achieved GFLOP/s |\n|---|---:|---:|---:|")
    for p in PASSES:
        print(f"| {p} | {flops[p] / 1e12:,.1f} | {runs[0]['phases_s'][p]:.1f} | {rate[p] / 1e9:,.0f} |")
    for run in runs[1:]:
        run_flops = job_flops(run["n"], run["d"], JOB_LEVELS)
        predicted = {p: run_flops[p] / rate[p] for p in PASSES}
        print(f"\nprediction for the {run['n']:,}-row job: " + ", ".join(
            f"{p} {predicted[p]:.1f} s (measured {run['phases_s'][p]:.1f})" for p in PASSES))
    print("\nThe paper's job priced at these rates (per pass; machines = 2-core machines like this one, or GPUs at "
          f"an ASSUMED {GPU_TFLOPS:.0f} TFLOP/s each):")
    print("| pool | model PFLOP (seeding / Lloyd / assignment / splits) | 1 machine | 100 machines | 1000 machines | "
          "8 GPUs | 64 GPUs |\n|---|---|---:|---:|---:|---:|---:|")
    for n in (10_000_000, 100_000_000, PAPER[0]):
        levels = [Level(max(2, round(lv.k * n / PAPER[0])), lv.resampling_steps, lv.sample_size, lv.n_splits)
                  for lv in PAPER[2]]
        f = job_flops(n, PAPER[1], levels)
        cpu = {p: f[p] / rate[p] for p in PASSES}

        round_trips = seeding_steps(levels) * STEP_ROUND_TRIP_S

        def on(machines: int, cost: dict, round_trips: float = round_trips) -> float:  # every pass divides
            return sum(cost.values()) / machines + (round_trips if machines > 1 else 0)

        def on_gpus(gpus: int, cost: dict) -> float:  # seeding on one GPU, the rest divides
            return cost["seeding"] + sum(cost[p] for p in PASSES[1:]) / gpus

        gpu = {p: f[p] / (GPU_TFLOPS * 1e12) for p in PASSES}
        shape = "/".join(f"{lv.k:,}" + (f"×{lv.n_splits}" if lv.n_splits > 1 else "") for lv in levels)
        print(f"| {n / 1e6:,.0f}M × {PAPER[1]}, k = {shape} | " + " / ".join(f"{f[p] / 1e15:,.1f}" for p in PASSES)
              + f" | {fmt_seconds(on(1, cpu))} | {fmt_seconds(on(100, cpu))} | {fmt_seconds(on(1000, cpu))} | "
              f"{fmt_seconds(on_gpus(8, gpu))} | {fmt_seconds(on_gpus(64, gpu))} |")
    print(f"\nDistributed seeding's round trips: {STEP_ROUND_TRIP_S * 1e3:.1f} ms per greedy k-means++ step "
          f"(measured on a local 2-actor Ray cluster); the paper's levels take {seeding_steps(PAPER[2]):,} steps, "
          f"{fmt_seconds(seeding_steps(PAPER[2]) * STEP_ROUND_TRIP_S)} of round trips whatever the machine count.")


if __name__ == "__main__":
    main()
