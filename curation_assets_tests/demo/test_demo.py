"""Fast checks of the bundled demo corpora (curation_assets.demo)."""

from __future__ import annotations

import io
import sys

import numpy as np
import polars as pl
import pytest
from PIL import Image

from curation_assets.demo import SATELLITE_CLASSES, _stratified_indices, demo_corpus, demo_data_dir
from curation_assets.readers import GEOREF

N_CLASSES = {"text": 45, "image": 10, "satellite": 4}


@pytest.fixture(scope="module")
def text_df() -> pl.DataFrame:
    return demo_corpus("text")


@pytest.fixture(scope="module")
def image_df() -> pl.DataFrame:
    return demo_corpus("image")


@pytest.fixture(scope="module")
def sat_df() -> pl.DataFrame:
    return demo_corpus("satellite", max_items=400, seed=0)


def _decode(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    im = Image.open(io.BytesIO(png))
    im.load()
    return im


def test_data_dir_points_at_repo_data():
    d = demo_data_dir()
    assert d.name == "demo" and d.parent.name == "data"
    assert (d / "text" / "wordnet_glosses.parquet").is_file()
    assert (d / "image" / "fashion_mnist_longtail.parquet").is_file()


def test_text_schema_and_content(text_df):
    assert text_df.schema == pl.Schema({"id": pl.String, "text": pl.String, "label": pl.String})
    assert text_df.height == 117_659
    assert text_df["id"].n_unique() == text_df.height
    first = text_df.row(0, named=True)
    assert first["id"] == "n.00001740"
    assert first["text"].startswith("entity: that which is perceived")
    assert first["label"] == "noun.Tops"
    assert set(text_df["id"].str.slice(0, 2).unique()) == {"n.", "v.", "a.", "r."}
    assert not text_df["text"].str.split(": ").list.first().str.contains("_").any()


def test_image_schema_and_pngs(image_df):
    assert image_df.schema == pl.Schema({"id": pl.String, "image": pl.Binary, "label": pl.String})
    assert image_df.height == 20_503
    assert image_df["id"].n_unique() == image_df.height
    assert image_df["id"].str.contains(r"^fmnist-(train|test)-\d{5}$").all()
    for png in image_df["image"].head(20):
        im = _decode(png)
        assert im.mode == "L" and im.size == (28, 28)


def test_satellite_schema_pngs_and_georeference(sat_df):
    assert sat_df.schema == pl.Schema({"id": pl.String, "image": pl.Binary, "label": pl.String, "georef": GEOREF})
    first = demo_corpus("satellite", max_items=None, tile_px=30).row(0, named=True)  # the north-west tile
    assert first["georef"] == {"crs": "EPSG:4326", "x_min": -180.0, "x_max": -178.0, "y_min": 88.0, "y_max": 90.0}
    assert sat_df.height == 400
    assert set(sat_df["label"]) <= set(SATELLITE_CLASSES)
    for png in sat_df["image"].head(20):
        im = _decode(png)
        assert im.mode == "RGB" and im.size == (30, 30)


def test_satellite_full_label_grid():
    from curation_assets.demo import _satellite_grid

    frac, labels = _satellite_grid(30)
    assert labels.shape == (90, 180)
    names, counts = np.unique(labels, return_counts=True)
    counts = dict(zip(names.tolist(), counts.tolist(), strict=True))
    assert set(counts) == set(SATELLITE_CLASSES)
    assert counts["polar"] == 90 * 180 // 3  # |lat| >= 60 is a third of the rows
    assert counts["ocean"] == max(counts.values())
    assert counts["ocean"] > counts["land"] > counts["coast"]


@pytest.mark.parametrize("modality", ["text", "image"])
def test_label_counts_and_long_tail(modality, request):
    df = request.getfixturevalue(f"{modality}_df")
    counts = df["label"].value_counts()["count"]
    assert len(counts) == N_CLASSES[modality]
    assert counts.max() >= 5 * counts.min()


def test_image_is_zipf_shaped(image_df):
    counts = sorted(image_df["label"].value_counts()["count"].to_list(), reverse=True)
    assert counts == [round(7000 / i) for i in range(1, 11)]


@pytest.mark.parametrize("modality", ["text", "image", "satellite"])
def test_max_items_is_deterministic_and_proportional(modality):
    a = demo_corpus(modality, max_items=300, seed=7)
    b = demo_corpus(modality, max_items=300, seed=7)
    c = demo_corpus(modality, max_items=300, seed=8)
    assert a.height == 300
    assert a.equals(b)
    assert not a["id"].equals(c["id"])
    assert a["label"].value_counts(sort=True).equals(c["label"].value_counts(sort=True))


def test_max_items_bounds(text_df):
    assert demo_corpus("image", max_items=0).height == 0
    assert demo_corpus("text", max_items=10**9).height == text_df.height


def test_stratified_indices_keep_shape():
    labels = np.array(["a"] * 900 + ["b"] * 90 + ["c"] * 10)
    idx = _stratified_indices(labels, 100, seed=3)
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    _, counts = np.unique(labels[idx], return_counts=True)
    assert counts.tolist() == [90, 9, 1]


def test_bad_arguments():
    with pytest.raises(ValueError, match="modality"):
        demo_corpus("audio")
    with pytest.raises(ValueError, match="max_items"):
        demo_corpus("text", max_items=-1)


def test_missing_files_message(monkeypatch, tmp_path):
    monkeypatch.setenv("CURATION_DEMO_DIR", str(tmp_path))
    assert demo_data_dir() == tmp_path.resolve()
    with pytest.raises(FileNotFoundError, match="build_demo_data.py --image"):
        demo_corpus("image")


def test_only_light_imports():
    """The demo module may import numpy, polars, Pillow, the stdlib and the readers only (never dagster or torch)."""
    import ast

    import curation_assets.demo as demo

    tree = ast.parse(open(demo.__file__, encoding="utf-8").read())
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots.add(node.module.split(".")[0])
    third_party = roots - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"numpy", "polars", "PIL", "curation_assets"}
    assert {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
            and n.module.startswith("curation_assets")} == {"curation_assets.readers"}
