import io

import numpy as np
import polars as pl
import pytest
from PIL import Image

from curation_assets_tests.graph._helpers import assert_data_checks_pass, curate

TOPICS = {
    "cooking": ["Simmer the {} sauce slowly", "Chop the {} finely before frying", "Bake the {} bread for an hour"],
    "sailing": ["Trim the {} sail in a gust", "The {} boat tacked upwind", "Drop anchor near the {} harbour"],
    "finance": ["The {} bond yield rose today", "Quarterly {} earnings beat forecasts", "The {} index fell sharply"],
}
WORDS = ["red", "small", "old", "quiet", "bright", "local", "early", "wide", "rare", "plain", "cold", "fresh"]


@pytest.mark.slow
def test_users_parquet_text_corpus_is_curated_without_code_change(small_config, data_root):
    rows = [{"id": f"doc-{i}", "text": tpl.format(w), "label": topic}
            for i, (topic, tpl, w) in enumerate((t, tpl, w) for t, tpls in TOPICS.items() for tpl in tpls
                                                for w in WORDS)]
    raw = data_root / "raw/text"
    raw.mkdir(parents=True)
    pl.DataFrame(rows).write_parquet(raw / "my_corpus.parquet")
    result = curate(small_config, "text")
    subset = pl.read_parquet(data_root / "curated/text/subset.parquet")
    assert subset["id"].str.starts_with("doc-").all()
    meta = result.asset_materializations_for_node("raw_corpus")[0].metadata
    assert meta["source"].value == "files" and meta["dagster/row_count"].value == len(rows)
    assert_data_checks_pass(result)


def _png(color, size=32, noise_seed=0):
    rng = np.random.default_rng(noise_seed)
    arr = np.clip(np.array(color)[None, None, :] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_users_image_folder_is_curated_with_a_corrupt_file_skipped(small_config, data_root):
    raw = data_root / "raw/image"
    for label, color, n in (("red", (220, 30, 30), 60), ("green", (30, 200, 40), 20), ("blue", (20, 40, 210), 10)):
        (raw / label).mkdir(parents=True)
        for i in range(n):
            (raw / label / f"{i:03d}.png").write_bytes(_png(color, noise_seed=i))
    (raw / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    # noisy copies of three colours are near-duplicates by construction: keep them all here
    small_config.write_text(small_config.read_text().replace(
        "embedder: {kind: efficientnet_lite0, batch_size: 64, image_size: 64}",
        "embedder: {kind: efficientnet_lite0, batch_size: 64, image_size: 64}\n    dedup: {enabled: false}", 1))
    result = curate(small_config, "image")
    emb_meta = result.asset_materializations_for_node("embeddings")[0].metadata
    assert emb_meta["failed_rows"].value == 1
    subset = pl.read_parquet(data_root / "curated/image/subset.parquet")
    assert "red/broken.png" not in subset["id"].to_list()
    assert subset["id"].str.contains("/").all()
