"""Where the time of a whole-graph run goes, per partition: each step's computation seconds (from the records the
run published) and the share of ``benchmark_scores``; run it on the data root of a finished run (``bash
.ci/demo.sh`` writes ``data/``).

    .venv/bin/python bench/demo_phases.py [--root data] [--partitions simulated text image satellite]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from records import STEPS, step_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1] / "data")
    parser.add_argument("--partitions", nargs="+", default=["simulated", "text", "image", "satellite"])
    args = parser.parse_args()
    table = {m: step_seconds(args.root, m) for m in args.partitions}
    print("| step | " + " | ".join(args.partitions) + " |\n|---|" + "---|" * len(args.partitions))
    for step in STEPS:
        print(f"| {step} | " + " | ".join(f"{table[m][step]:.1f}" if step in table[m] else "–"
                                          for m in args.partitions) + " |")
    totals = {m: sum(t.values()) for m, t in table.items()}
    print("| **all steps** | " + " | ".join(f"{totals[m]:.1f}" for m in args.partitions) + " |")
    print("| **benchmark_scores share** | " + " | ".join(
        f"{table[m]['benchmark_scores'] / totals[m]:.0%}" for m in args.partitions) + " |")


if __name__ == "__main__":
    main()
