import io

import numpy as np
import polars as pl
import pytest
from PIL import Image

from curation_assets_tests.graph._helpers import HashEmbedder, curate


def write_docs(data_root, rows):
    raw = data_root / "raw/text"
    raw.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).write_parquet(raw / "docs.parquet")


def base_docs(n=80):
    return [{"id": f"d{i:03d}", "text": f"entry {i}: a note about subject number {i}", "label": f"c{i % 4}"}
            for i in range(n)]


def test_exact_copies_are_removed_audited_and_never_reach_clustering(small_config, data_root):
    rows = base_docs() + [{"id": "z-copy", "text": "  ENTRY 3:   a note about subject NUMBER 3 ", "label": "c3"}]
    write_docs(data_root, rows)
    result = curate(small_config, "text", embedder=HashEmbedder())
    removed = pl.read_parquet(data_root / "deduplicated/text/removed.parquet")
    assert removed.to_dicts()[0]["id"] == "z-copy" and removed["duplicate_of"][0] == "d003"
    assert removed["rule"][0] == "exact"
    meta = result.asset_materializations_for_node("deduplicated")[0].metadata
    assert meta["removed_rows"].value == 1 and meta["removed_by_rule"].value == {"exact": 1}
    subset = pl.read_parquet(data_root / "curated/text/subset.parquet")
    assert "z-copy" not in subset["id"].to_list()
    level_1_inputs = len(np.load(data_root / "clustering/text/level_1/assignment.npy"))
    kept = pl.read_parquet(data_root / "deduplicated/text/pool.parquet")
    assert level_1_inputs == len(kept)


def test_dedup_can_be_turned_off(small_config, data_root):
    text = small_config.read_text().replace("embedder: {kind: sentence_transformer, batch_size: 64}",
                                            "embedder: {kind: sentence_transformer, batch_size: 64}\n"
                                            "    dedup: {enabled: false}")
    small_config.write_text(text)
    write_docs(data_root, base_docs() + [{"id": "z-copy", "text": "entry 3: a note about subject number 3",
                                          "label": "c3"}])
    curate(small_config, "text", embedder=HashEmbedder())
    assert len(pl.read_parquet(data_root / "deduplicated/text/removed.parquet")) == 0


@pytest.mark.slow
def test_near_duplicate_texts_with_the_real_model(small_config, data_root):
    topics = ["a large body of salt water", "a tool for cutting wood", "a small songbird of European woods",
              "the act of repairing a roof", "a sweet yellow tropical fruit", "a vehicle that runs on rails",
              "an instrument for measuring air pressure", "a legal document transferring property",
              "a disease of the lungs caused by bacteria", "a festival celebrated with lanterns"]
    rows = [{"id": f"t{i:02d}", "text": t, "label": "x"} for i, t in enumerate(topics)]
    rows += [{"id": "u-swap", "text": "a big body of salt water", "label": "x"},
             {"id": "u-case", "text": "A Tool For Cutting   Wood", "label": "x"}]
    write_docs(data_root, rows)
    curate(small_config, "text", selection=["raw_corpus", "embeddings", "deduplicated"])
    removed = dict(pl.read_parquet(data_root / "deduplicated/text/removed.parquet")
                   .select("id", "duplicate_of").iter_rows())
    assert removed == {"u-swap": "t00", "u-case": "t01"}


@pytest.mark.slow
def test_near_duplicate_images_with_the_real_model(small_config, data_root):
    from curation_assets.demo import satellite_tiles

    tiles = satellite_tiles(tile_px=90)
    land = tiles.filter(pl.col("label") == "land")
    picks = np.random.default_rng(0).choice(len(land), 12, replace=False)
    raw = data_root / "raw/image/tiles"
    raw.mkdir(parents=True)
    originals = []
    for k, p in enumerate(picks):
        blob = land["image"][int(p)]
        (raw / f"orig-{k:02d}.png").write_bytes(blob)
        originals.append(Image.open(io.BytesIO(blob)).convert("RGB"))
    buf = io.BytesIO()
    originals[0].save(buf, format="JPEG", quality=90)
    (raw / "z-jpeg.jpg").write_bytes(buf.getvalue())
    buf = io.BytesIO()
    originals[1].resize((81, 81)).save(buf, format="PNG")
    (raw / "z-resized.png").write_bytes(buf.getvalue())
    curate(small_config, "image", selection=["raw_corpus", "embeddings", "deduplicated"])
    removed = dict(pl.read_parquet(data_root / "deduplicated/image/removed.parquet")
                   .select("id", "duplicate_of").iter_rows())
    assert removed.get("tiles/z-jpeg.jpg") == "tiles/orig-00.png"
    assert removed.get("tiles/z-resized.png") == "tiles/orig-01.png"
    assert not any(k.startswith("tiles/orig") for k in removed)
