"""What a new user gets: user-shaped folders (class-sorted, long-tailed, with planted copies) through the CLI.

  .venv/bin/python bench/user_folders.py [--modalities image text] [--out /tmp/user_folders]

Builds each folder with ``curation_assets.demo.folders`` (images: 10 Fashion-MNIST classes, 450 → 45 per
class, an exact copy of every 7th image; text: WordNet glosses of 8 distinct topics, 300 → 30 per class, a
case/whitespace variant of every 7th), runs ``dg launch --job curate`` on it with the bundled
``curation.yaml``'s settings for that modality (only the source changed to the folder: what a new user gets),
and prints what ``benchmark_scores`` measured on the published ``subset.parquet``: its label balance and probe
accuracy against random samples of the same size (mean ± std over the seeds), and the subset's size and pool.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

from curation_assets.demo.folders import TEXT_CLASSES, image_folder, long_tail, text_corpus
from curation_assets.store import Layout, Scores

REPO = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2, 3, 4]


def user_config(modalities: list[str]) -> str:
    """The bundled curation.yaml's blocks of these modalities, reading the user's folder, scored over 5 seeds."""
    bundled = yaml.safe_load((REPO / "curation.yaml").read_text())["modalities"]
    blocks = {m: {**bundled[m], "source": {"kind": "files"}, "benchmark": {"seeds": SEEDS}} for m in modalities}
    return yaml.safe_dump({"modalities": blocks})
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
    (out / "curation.yaml").write_text(user_config(args.modalities))
    env = {**os.environ, "CURATION_CONFIG": str(out / "curation.yaml"), "CURATION_DATA_DIR": str(out / "data"),
           "DAGSTER_HOME": str(out / "home"), "HF_HUB_OFFLINE": "1"}
    for modality in args.modalities:
        raw = out / "data/raw" / modality
        if modality == "image":
            labels, copies = image_folder(raw, long_tail(10, 450, 45), copies_every=7)
        else:
            labels, copies = text_corpus(raw, long_tail(len(TEXT_CLASSES), 300, 30), copies_every=7)
        run = subprocess.run([str(Path(sys.executable).parent / "dg"), "launch", "--job", "curate",
                              "--partition", modality], cwd=REPO, env=env, capture_output=True, text=True)
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
