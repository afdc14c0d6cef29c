"""What a new user gets: user-shaped folders (class-sorted, long-tailed, with planted copies) through the CLI.

  .venv/bin/python bench/user_folders.py [--modalities image text] [--out /tmp/user_folders]

Builds each folder with ``curation_assets.demo.folders`` (images: 10 Fashion-MNIST classes, 450 → 45 per
class, an exact copy of every 7th image; text: 8 topics, 300 → 30 sentences, a case/whitespace variant of
every 7th), runs ``dagster asset materialize --select '*'`` on it with the settings below, and prints what
``benchmark_scores`` measured on the published ``subset.parquet``: its label balance and probe accuracy
against random samples of the same size (mean ± std over the seeds), and the subset's size and pool.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from curation_assets.demo.folders import image_folder, long_tail, text_corpus
from curation_assets.store import Layout, Scores

REPO = Path(__file__).resolve().parents[1]
CONFIG = """
modalities:
  image:
    source: {kind: files}
    embedder: {kind: efficientnet_lite0, batch_size: 64, image_size: 96}
    metric: cosine
    levels: [{per_cluster: 20, resampling_steps: 10}, {per_cluster: 4, resampling_steps: 10}]
    sampling: {fraction: 0.2, seed: 0}
    benchmark: {seeds: [0, 1, 2, 3, 4]}
  text:
    source: {kind: files}
    embedder: {kind: sentence_transformer, batch_size: 64}
    metric: cosine
    levels: [{per_cluster: 20, resampling_steps: 10}, {per_cluster: 4, resampling_steps: 10}]
    sampling: {fraction: 0.2, seed: 0}
    benchmark: {seeds: [0, 1, 2, 3, 4]}
"""
METRICS = ("normalized_entropy", "kl_to_uniform", "coverage", "rare_half_share", "linear_balanced_accuracy",
           "knn_balanced_accuracy")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--modalities", nargs="+", default=["image", "text"])
    ap.add_argument("--out", default="/tmp/user_folders")
    args = ap.parse_args()
    out = Path(args.out)
    (out / "home").mkdir(parents=True, exist_ok=True)
    (out / "home/dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    (out / "curation.yaml").write_text(CONFIG)
    env = {**os.environ, "CURATION_CONFIG": str(out / "curation.yaml"), "CURATION_DATA_DIR": str(out / "data"),
           "DAGSTER_HOME": str(out / "home"), "HF_HUB_OFFLINE": "1"}
    for modality in args.modalities:
        raw = out / "data/raw" / modality
        if modality == "image":
            labels, copies = image_folder(raw, long_tail(10, 450, 45), copies_every=7)
        else:
            labels, copies = text_corpus(raw, long_tail(8, 300, 30), copies_every=7)
        run = subprocess.run([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m",
                              "curation_assets", "--select", "*", "--partition", modality], cwd=REPO, env=env,
                             capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(run.stderr[-3000:])
        scores = Scores.open(Layout(modality, out / "data"))
        frame = scores.frame
        print(f"\n{modality}: {len(labels)} items + {len(copies)} planted copies; pool {len(scores.subset.tree.pool)}"
              f" after dedup; published subset {len(scores.subset)}")
        print("| metric | published | random (mean ± std) | oracle_balanced |\n|---|---|---|---|")
        for metric in METRICS:
            cell = {m: frame.filter((frame["method"] == m) & (frame["metric"] == metric)).row(0, named=True)
                    for m in ("published", "random", "oracle_balanced")}
            print(f"| {metric} | {cell['published']['value']:.3f} | {cell['random']['value']:.3f} ± "
                  f"{cell['random']['std']:.3f} | {cell['oracle_balanced']['value']:.3f} |")


if __name__ == "__main__":
    main()
