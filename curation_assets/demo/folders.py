"""User-shaped folders built from the bundled data: what a new user drops into ``raw/<modality>/``.

Long-tailed classes, files sorted by class, and planted exact copies (which sort after their original,
so dedup keeps the original): the shape that exposes any mix-up between row indices. Used by the tests
and by ``bench/user_folders.py``; try them yourself with ``python -m curation_assets.demo.folders``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

IMAGE_CLASSES = ("Coat", "Shirt", "Pullover", "Sneaker", "Dress", "Sandal", "Ankle boot", "T-shirt/top", "Bag",
                 "Trouser")
TEXT_CLASSES = ("noun.animal", "noun.plant", "noun.food", "noun.body", "noun.location", "noun.time", "noun.shape",
                "verb.weather")  # WordNet lexicographer files whose glosses are distinct topics


def long_tail(n_classes: int, largest: int, smallest: int) -> list[int]:
    """Class sizes falling geometrically from ``largest`` to ``smallest``."""
    return np.round(np.geomspace(largest, smallest, n_classes)).astype(int).tolist()


def image_folder(raw: Path, sizes: list[int], copies_every: int) -> tuple[dict[str, str], set[str]]:
    """Fashion-MNIST PNGs in one folder per class (``sizes`` in :data:`IMAGE_CLASSES` order), with an exact
    copy of every ``copies_every``-th image; returns (label of every original id, the copies' ids)."""
    from curation_assets.demo import demo_corpus

    demo = demo_corpus("image")
    labels, copies = {}, set()
    for label, n in zip(IMAGE_CLASSES, sizes, strict=False):
        folder = raw / label.replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        for k, blob in enumerate(demo.filter(pl.col("label") == label)["image"].head(n)):
            (folder / f"{k:04d}.png").write_bytes(blob)
            labels[f"{folder.name}/{k:04d}.png"] = folder.name
            if k % copies_every == 0:
                (folder / f"zcopy-{k:04d}.png").write_bytes(blob)
                copies.add(f"{folder.name}/zcopy-{k:04d}.png")
    return labels, copies


def text_corpus(raw: Path, sizes: list[int], copies_every: int) -> tuple[dict[str, str], set[str]]:
    """WordNet glosses of :data:`TEXT_CLASSES` (``sizes`` in that order) in one jsonl sorted by class, with a case
    and whitespace variant of every ``copies_every``-th gloss; returns (label of every original id, copies' ids)."""
    from curation_assets.demo import demo_corpus

    demo = demo_corpus("text")
    raw.mkdir(parents=True, exist_ok=True)
    rows, labels, copies = [], {}, set()
    for label, n in zip(TEXT_CLASSES, sizes, strict=False):
        for k, text in enumerate(demo.filter(pl.col("label") == label)["text"].head(n)):
            name = f"{label}-{k:04d}"
            rows.append({"id": name, "text": text, "label": label})
            labels[name] = label
            if k % copies_every == 0:
                rows.append({"id": f"{name}-copy", "text": "  " + text.upper() + " ", "label": label})
                copies.add(f"{name}-copy")
    pl.DataFrame(rows).write_ndjson(raw / "docs.jsonl")
    return labels, copies


def main() -> None:
    ap = argparse.ArgumentParser(description="Write a user-shaped folder into <root>/raw/<modality>/.")
    ap.add_argument("modality", choices=["image", "text"])
    ap.add_argument("--root", default="data")
    ap.add_argument("--largest", type=int, default=450)
    ap.add_argument("--smallest", type=int, default=45)
    ap.add_argument("--copies-every", type=int, default=7)
    args = ap.parse_args()
    raw = Path(args.root) / "raw" / args.modality
    if args.modality == "image":
        labels, copies = image_folder(raw, long_tail(10, args.largest, args.smallest), args.copies_every)
    else:
        labels, copies = text_corpus(raw, long_tail(len(TEXT_CLASSES), args.largest, args.smallest), args.copies_every)
    print(f"wrote {len(labels)} items and {len(copies)} planted copies under {raw}")


if __name__ == "__main__":
    main()
