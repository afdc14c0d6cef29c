"""Print the benchmark_scores of every materialized modality as markdown tables (for the README).

Run after materializing: .venv/bin/python bench/scores_table.py [data root, default $CURATION_DATA_DIR or data/]
The ``published`` column scores the rows of the published subset.parquet itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

from curation_assets.config import load_config
from curation_assets.plots import scores_markdown
from curation_assets.store import Layout, NotMaterializedError, Scores, data_root

KEY_METRICS = ("normalized_entropy", "kl_to_uniform", "coverage", "rare_half_share", "linear_balanced_accuracy",
               "knn_balanced_accuracy", "representation_linear_balanced_accuracy",
               "representation_knn_balanced_accuracy", "coverage_mean_distance", "kde_kl_to_uniform")


def main():
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else data_root()
    for modality in load_config().modalities:
        try:
            scores = Scores.open(Layout(modality, root))
        except NotMaterializedError:
            continue
        rows = [r for r in scores.frame.to_dicts() if r["metric"] in KEY_METRICS
                or r["metric"].startswith(("cluster_entropy", "gain_share"))]
        pool = len(scores.subset.tree.pool)
        print(f"\n### {modality} (published subset: {len(scores.subset)} of {pool} pool rows)\n")
        print(scores_markdown(rows))


if __name__ == "__main__":
    main()
