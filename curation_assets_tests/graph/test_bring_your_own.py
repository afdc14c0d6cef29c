"""Bring your own model, embeddings and shards (issue 25), through ``dg launch`` as a user runs it: precomputed
vectors in a Parquet column, a local transformers model, WebDataset shards in and out."""

import io
import json
import subprocess
import sys
import tarfile

import numpy as np
import polars as pl
import pytest

from curation_assets.config import load_config
from curation_assets.core import hierarchical_kmeans, hierarchical_sampling
from curation_assets_tests.cli import cli_env, launch_ok
from curation_assets_tests.test_trust import metadata_of

BASE = """
modalities:
  {name}:
    source: {{kind: files{reader}}}
    embedder: {embedder}
    metric: cosine
    dedup: {{threshold: 0.999}}
    levels:
      - {{per_cluster: 10, resampling_steps: 3}}
      - {{per_cluster: 4, resampling_steps: 3}}
    sampling: {{fraction: 0.3, seed: 0}}
    benchmark: {{seeds: [0], test_per_class: 5}}
    export: {{formats: {formats}}}
"""


def config_file(tmp_path, name, embedder, reader="", formats="[parquet]"):
    path = tmp_path / "curation.yaml"
    path.write_text(BASE.format(name=name, embedder=embedder, reader=reader, formats=formats))
    return path


def clustered_vectors(n=600, d=24, concepts=8, seed=0):
    rng = np.random.default_rng(seed)
    sizes = np.maximum(8, (n / np.arange(1, concepts + 1) / np.sum(1 / np.arange(1, concepts + 1))).astype(int))
    centres = rng.standard_normal((concepts, d))
    X = np.concatenate([c + 0.3 * rng.standard_normal((s, d)) for c, s in zip(centres, sizes, strict=True)])
    labels = np.repeat(np.arange(concepts), sizes)
    return X.astype(np.float32), labels


@pytest.mark.slow
def test_precomputed_vectors_are_curated_without_a_model_and_as_the_core_would(tmp_path):
    X, labels = clustered_vectors()
    root = tmp_path / "data"
    (root / "raw/vectors").mkdir(parents=True)
    order = np.random.default_rng(1).permutation(len(X))  # rows not in id order
    pl.DataFrame({"id": [f"v{i:04d}" for i in order], "text": [f"item {i}" for i in order],
                  "label": [f"c{labels[i]}" for i in order], "embedding": X[order].tolist()}
                 ).write_parquet(root / "raw/vectors/features.parquet")
    config = config_file(tmp_path, "vectors", "{kind: precomputed, column: embedding}")
    launch_ok(cli_env(config, root, tmp_path / "home"), "vectors")
    meta = metadata_of(root, "embeddings", "vectors")
    assert meta["model_loaded"] is False and meta["torch_imported"] is False
    published = set(pl.read_parquet(root / "curated/vectors/subset.parquet")["id"].to_list())
    cfg = load_config(config).modality("vectors")
    tree = hierarchical_kmeans(X[order], cfg.levels, seed=cfg.seed, metric="cosine")  # the pool: every row, file order
    rows = hierarchical_sampling(tree, cfg.sampling.resolve_target(len(X)), strategy=cfg.sampling.strategy,
                                 seed=cfg.sampling.seed, alpha=cfg.sampling.alpha)
    assert published == {f"v{order[r]:04d}" for r in rows}


def test_precomputed_vectors_are_checked_row_by_row(small_config, data_root):
    from curation_assets_tests.test_reliability import failure

    config = config_file(small_config.parent, "vectors", "{kind: precomputed}")
    (data_root / "raw/vectors").mkdir(parents=True)
    pl.DataFrame({"id": ["a", "b", "c"], "text": ["x", "y", "z"], "embedding": [[1.0, 0.0], [0.0, 1.0], [1.0]]}
                 ).write_parquet(data_root / "raw/vectors/bad.parquet")
    assert "bad.parquet row 2 (id 'c'): 'embedding' has 1 values, expected 2" in failure(config, "vectors")
    pl.DataFrame({"id": ["a", "b"], "text": ["x", "y"], "embedding": [[1.0, 0.0], [float("nan"), 1.0]]}
                 ).write_parquet(data_root / "raw/vectors/bad.parquet")
    assert "bad.parquet row 1 (id 'b'): 'embedding' holds NaN or inf" in failure(config, "vectors")
    config.write_text(config.read_text().replace("    metric: cosine\n", ""))
    with pytest.raises(Exception, match="precomputed embeddings need metric"):
        load_config(config)


@pytest.mark.slow
def test_a_tiny_local_transformers_model_curates_a_folder(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    words = "the a cat dog sat on mat ran fast slow red blue green house tree car".split()
    model_dir = tmp_path / "tiny-bert"
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(
        vocab_size=5 + len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64)).eval().save_pretrained(model_dir)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    transformers.BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, model_max_length=64
                               ).save_pretrained(model_dir)
    root = tmp_path / "data"
    (root / "raw/docs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    texts = sorted({" ".join(rng.choice(words, size=rng.integers(3, 9))) for _ in range(200)})
    pl.DataFrame({"text": texts}).write_parquet(root / "raw/docs/docs.parquet")
    config = config_file(tmp_path, "docs", f"{{kind: transformers, model: {model_dir}, pooling: mean}}")
    launch_ok(cli_env(config, root, tmp_path / "home"), "docs")
    meta = metadata_of(root, "embeddings", "docs")
    assert meta["dim"] == 32 and meta["embedded_new_rows"] == len(texts)
    assert len(pl.read_parquet(root / "curated/docs/subset.parquet")) == round(0.3 * len(texts))


def write_shards(folder, images: pl.DataFrame, shards: int) -> None:
    for s in range(shards):
        with tarfile.open(folder / f"shard-{s:03d}.tar", "w") as tar:
            for k, row in enumerate(images[s::shards].iter_rows(named=True)):
                for ext, data in (("png", row["image"]), ("cls", row["label"].encode())):
                    info = tarfile.TarInfo(f"sample{k:05d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))


READ_BACK = """
import glob, json, sys
import webdataset as wds
rows = {}
for sample in wds.WebDataset(sorted(glob.glob(sys.argv[1] + "/*.tar")), shardshuffle=False):
    meta = json.loads(sample["json"])
    content = [k for k in sample if k in ("png", "jpg", "webp")][0]
    rows[meta["id"]] = sample[content].hex()
print(json.dumps(rows))
"""


@pytest.mark.slow
def test_webdataset_shards_in_and_out(tmp_path):
    from curation_assets.demo import demo_corpus

    images = demo_corpus("image", max_items=1200, seed=2)
    root = tmp_path / "data"
    (root / "raw/shards").mkdir(parents=True)
    write_shards(root / "raw/shards", images, shards=4)
    config = config_file(tmp_path, "shards", "{kind: efficientnet_lite0, image_size: 64}",
                         formats="[parquet, webdataset]")
    launch_ok(cli_env(config, root, tmp_path / "home"), "shards")
    corpus = pl.read_parquet(root / "corpus/shards/corpus.parquet")
    assert len(corpus) == 1200 and corpus["id"][0].startswith("shard-000.tar/sample")
    subset = pl.read_parquet(root / "curated/shards/subset.parquet")["id"]
    out = subprocess.run([sys.executable, "-c", READ_BACK, str(root / "datasets/shards/webdataset")],
                         capture_output=True, text=True, check=True)
    exported = json.loads(out.stdout)
    assert set(exported) == set(subset.to_list()) and len(exported) == len(subset)
    content = dict(corpus.filter(pl.col("id").is_in(subset.implode())).select("id", "image").iter_rows())
    assert all(exported[i] == content[i].hex() for i in exported)  # the very bytes of the user's shards


def importable(name: str):
    """The library, or a skip: timm and open_clip import torchvision, which PyPI builds against CUDA torch and which
    fails to import beside the CPU torch 2.13.0 this project pins (see their extras in pyproject.toml)."""
    import importlib

    try:
        return importlib.import_module(name)
    except Exception as e:
        pytest.skip(f"{name} cannot be imported here ({type(e).__name__}: {e})")


def image_folder_of(root, name: str, n: int = 240):
    from curation_assets.demo import demo_corpus

    folder = root / "raw" / name
    for row in demo_corpus("image", max_items=n, seed=5).iter_rows(named=True):
        (folder / row["label"]).mkdir(parents=True, exist_ok=True)
        (folder / row["label"] / f"{row['id']}.png").write_bytes(row["image"])


@pytest.mark.slow
def test_a_tiny_local_timm_model_curates_a_folder(tmp_path):
    timm, torch = importable("timm"), importable("torch")
    model_dir = tmp_path / "tiny-vit"
    torch.manual_seed(3)
    timm.models.save_for_hf(timm.create_model("test_vit", pretrained=False, img_size=48).eval(), model_dir,
                            safe_serialization=True)
    root = tmp_path / "data"
    image_folder_of(root, "photos")
    config = config_file(tmp_path, "photos", f"{{kind: timm, model: {model_dir}}}")
    launch_ok(cli_env(config, root, tmp_path / "home"), "photos")
    assert metadata_of(root, "embeddings", "photos")["embedded_new_rows"] == 240
    assert len(pl.read_parquet(root / "curated/photos/subset.parquet")) == 72


@pytest.mark.slow
def test_a_tiny_local_open_clip_model_curates_a_folder(tmp_path):
    open_clip, torch = importable("open_clip"), importable("torch")
    from safetensors.torch import save_file

    model_dir = tmp_path / "tiny-clip"
    model_dir.mkdir()
    torch.manual_seed(4)
    spec = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8,
                                            "head_width": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    save_file(open_clip.CLIP(**spec).eval().state_dict(), model_dir / "open_clip_model.safetensors")
    (model_dir / "open_clip_config.json").write_text(json.dumps({"model_cfg": spec, "preprocess_cfg": {
        "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}}))
    root = tmp_path / "data"
    image_folder_of(root, "photos")
    config = config_file(tmp_path, "photos", f"{{kind: open_clip, model: {model_dir}}}")
    launch_ok(cli_env(config, root, tmp_path / "home"), "photos")
    assert metadata_of(root, "embeddings", "photos")["dim"] == 16
    assert len(pl.read_parquet(root / "curated/photos/subset.parquet")) == 72
