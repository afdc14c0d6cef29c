"""Print the benchmark_scores of every modality as markdown tables (for the README).

Run after materializing: .venv/bin/python bench/scores_table.py [data root, default $CURATION_DATA_DIR or data/]
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from curation_assets.storage import data_root

KEY_METRICS = ("normalized_entropy", "kl_to_uniform", "coverage", "rare_half_share", "linear_balanced_accuracy",
               "knn_balanced_accuracy", "representation_linear_balanced_accuracy",
               "representation_knn_balanced_accuracy", "coverage_mean_distance", "kde_kl_to_uniform")


def table(frame: pl.DataFrame) -> str:
    frame = frame.filter(pl.col("metric").is_in(KEY_METRICS) | pl.col("metric").str.starts_with("cluster_entropy")
                         | pl.col("metric").str.starts_with("gain_share"))
    methods = list(dict.fromkeys(frame["method"]))
    metrics = list(dict.fromkeys(frame["metric"]))
    cell = {(r["method"], r["metric"]): f"{r['value']:.3f} ± {r['std']:.3f}" for r in frame.to_dicts()}
    lines = ["| metric | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(cell.get((meth, m), "") for meth in methods) + " |" for m in metrics]
    return "\n".join(lines)


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else data_root()
    for path in sorted((root / "benchmarks").glob("*.parquet")):
        print(f"\n### {path.stem}\n")
        print(table(pl.read_parquet(path)))


if __name__ == "__main__":
    main()
