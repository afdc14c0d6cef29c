"""The published subset is the curated one: user-shaped folders (sorted by class, with planted duplicates)
through the real CLI, the downloaded ``subset.parquet`` checked against what is known independently: the
labels joined back by id, the planted duplicates, and a direct ``curation_assets.core`` call on the same
kept rows."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curation_assets.config import load_config
from curation_assets.core import hierarchical_kmeans, hierarchical_sampling, label_balance
from curation_assets.demo.folders import image_folder, long_tail, text_corpus
from curation_assets_tests.cli import HANG_LIMIT_S, cli_env, launch_ok
from curation_assets_tests.graph._helpers import check_results, curate

REPO = Path(__file__).resolve().parents[2]


def direct_core_ids(root: Path, config: Path, modality: str, kept: set) -> set:
    """The subset a direct core call draws from the same kept rows (the embedded rows minus the planted copies,
    in embedding order), with the configured levels and sampling."""
    from curation_assets.store import ShardedArray

    cfg = load_config(config).modality(modality)
    rows = pl.read_parquet(root / f"embeddings/{modality}/rows.parquet")
    keep = np.flatnonzero(rows["id"].is_in(list(kept)).to_numpy())
    X = np.asarray(ShardedArray.open(root / f"embeddings/{modality}"))[keep]
    tree = hierarchical_kmeans(X, cfg.levels, seed=cfg.seed, metric=cfg.metric)
    target = cfg.sampling.resolve_target(len(keep))
    idx = hierarchical_sampling(tree, target, strategy=cfg.sampling.strategy, multiplier=cfg.sampling.multiplier,
                                seed=cfg.sampling.seed, alpha=cfg.sampling.alpha)
    return set(rows["id"].gather(keep[idx]).to_list())


def entropy(ids, labels: dict) -> float:
    pool = np.array(list(labels.values()))
    return label_balance(np.array([labels[i] for i in ids]), pool)["normalized_entropy"]


def random_entropy(labels: dict, size: int, seeds=range(10)) -> tuple[float, float]:
    ids = np.array(list(labels))
    values = [entropy(np.random.default_rng(s).choice(ids, size, replace=False), labels) for s in seeds]
    return float(np.mean(values)), float(np.std(values))


def assert_published_is_curated(root: Path, config: Path, modality: str, labels: dict,
                                 copies: set) -> tuple[pl.DataFrame, dict]:
    """Checks the downloaded subset; returns it and the labels of the kept pool (what curation drew from)."""
    published = pl.read_parquet(root / f"curated/{modality}/subset.parquet")
    ids = set(published["id"].to_list())
    assert len(ids) == len(published)
    removed = set(pl.read_parquet(root / f"deduplicated/{modality}/removed.parquet")["id"].to_list())
    assert copies <= removed and not ids & removed, "a removed duplicate was published"
    kept = {i: label for i, label in labels.items() if i not in removed}
    assert len(published) == round(0.2 * len(kept))  # 20 % of the deduplicated pool, not of the raw folder
    assert ids == direct_core_ids(root, config, modality, set(kept))
    present = {kept[i] for i in ids}
    sizes = pl.Series(list(kept.values())).value_counts()
    big = {c for c, n in sizes.iter_rows() if n >= 20}
    assert big <= present, f"classes missing from the subset: {big - present}"
    return published, kept


LOAD_IN_A_FRESH_PYTHON = """
import json, sys
import datasets
ds = datasets.load_dataset("parquet", data_dir=sys.argv[1])["train"]
content = "image" if "image" in ds.column_names else "text"
first = ds[0][content]
kind = type(first).__module__ + "." + type(first).__name__
print(json.dumps({"columns": ds.column_names, "ids": list(ds["id"]), "labels": list(ds["label"]),
                  "clusters": list(ds["cluster_level_1"]), "content_type": kind,
                  "size": list(first.size) if content == "image" else len(first)}))
"""


def assert_dataset_is_the_published_subset(root: Path, modality: str, published: pl.DataFrame, labels: dict) -> None:
    """``datasets.load_dataset("parquet", data_dir=...)`` in a fresh Python returns the published rows, in order,
    with decoded images (or the texts), labels joined by id and the cluster ids of subset.parquet."""
    out = subprocess.run([sys.executable, "-c", LOAD_IN_A_FRESH_PYTHON, str(root / f"datasets/{modality}")],
                         capture_output=True, text=True, timeout=HANG_LIMIT_S,
                         env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded["ids"] == published["id"].to_list()
    assert loaded["labels"] == [labels[i] for i in loaded["ids"]]
    assert loaded["clusters"] == published["cluster_level_1"].to_list()
    assert loaded["columns"] == ["id", modality, "label", *published.columns[1:]]
    if modality == "image":
        assert loaded["content_type"].startswith("PIL.") and loaded["size"] == [28, 28]
    else:
        assert loaded["content_type"] == "builtins.str" and loaded["size"] > 10
    card = (root / f"datasets/{modality}/README.md").read_text()
    assert card.startswith("---\nlicense:") and "configs:" in card and "## Licence" in card
    assert f'data_dir="{modality}"' in card and str(root) not in card  # a relative, copy-pasteable snippet
    assert "tile_px" not in card and "±" in card  # only this modality's settings; spreads beside the means
    assert not (root / f"datasets/{modality}/record.json").exists()  # nothing internal in the shipped folder


USER_CONFIG = """
modalities:
  {modality}:
    source: {{kind: files}}
    embedder: {embedder}
    metric: cosine
    levels:
      - {{per_cluster: 10, resampling_steps: 5}}
      - {{per_cluster: 4, resampling_steps: 5}}
    sampling: {{fraction: 0.2, seed: 0}}
    benchmark: {{seeds: [0, 1, 2]}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("modality, largest", [("image", 200), ("text", 160), ("image", 2000)],
                         ids=["image-700", "text-540", "image-7000"])
def test_a_users_class_sorted_folder_with_duplicates_gets_its_curated_subset(tmp_path, monkeypatch, modality,
                                                                             largest):
    root, config = tmp_path / "data", tmp_path / "curation.yaml"
    embedder = "{kind: efficientnet_lite0, batch_size: 64, image_size: 64}" if modality == "image" else \
        "{kind: sentence_transformer, batch_size: 64}"
    config.write_text(USER_CONFIG.format(modality=modality, embedder=embedder))
    if modality == "image":
        labels, copies = image_folder(root / "raw/image", long_tail(10, largest, largest // 10), copies_every=6)
    else:
        labels, copies = text_corpus(root / "raw/text", long_tail(8, largest, 20), copies_every=5)
    launch_ok(cli_env(config, root, tmp_path / "home"), modality)
    published, kept = assert_published_is_curated(root, config, modality, labels, copies)
    assert_dataset_is_the_published_subset(root, modality, published, kept)
    rand_mean, _ = random_entropy(kept, len(published))
    assert entropy(published["id"], kept) >= rand_mean
    scores = pl.read_parquet(root / f"benchmarks/{modality}/scores.parquet")
    value = {(m, k): v for m, k, v in scores.select("method", "metric", "value").iter_rows()}
    np.testing.assert_allclose(value[("published", "normalized_entropy")], entropy(published["id"], kept))
    # more seeds of the published draw (the balanced_subset asset with another sampling seed)
    monkeypatch.setenv("CURATION_CONFIG", str(config))
    monkeypatch.setenv("CURATION_DATA_DIR", str(root))
    for seed in (1, 2):
        result = curate(config, modality, selection=["balanced_subset"],
                        run_config={"ops": {"balanced_subset": {"config": {"seed": seed}}}})
        assert all(check_results(result).values())
        again = pl.read_parquet(root / f"curated/{modality}/subset.parquet")["id"]
        assert entropy(again, kept) >= rand_mean


def test_planted_duplicates_are_what_the_fixture_says(tmp_path):
    labels, copies = text_corpus(tmp_path / "raw", long_tail(8, 160, 20), copies_every=5)
    rows = pl.read_ndjson(tmp_path / "raw/docs.jsonl")
    assert rows["id"].n_unique() == len(rows) == len(labels) + len(copies)
    assert rows["text"].str.strip_chars().str.to_lowercase().n_unique() == len(labels)
