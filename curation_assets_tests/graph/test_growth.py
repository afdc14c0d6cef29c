"""Growing corpora (issue 22): a new file costs what is new. Vectors come from a content cache, dedup searches only
new rows, and the result equals a run from scratch on the same files."""

import os
import signal
import time

import numpy as np
import polars as pl
import pytest

from curation_assets_tests.cli import cli_env, launch_ok, popen
from curation_assets_tests.graph._helpers import HashEmbedder, curate
from curation_assets_tests.test_reliability import raw
from curation_assets_tests.test_trust import metadata_of

CURATION = "*balanced_subset"  # the curation itself through the CLI: the benchmark and the export are tested elsewhere
PARTS = ("raw_corpus", "embeddings", "deduplicated", "clustering_level_1", "clustering_level_2", "clustering_level_3",
         "balanced_subset")


def docs(folder, name: str, start: int, n: int, copies: int = 0) -> None:
    rows = [{"id": f"{name}-{i:04d}", "text": f"{name} note {i} about topic {i % 9} and {i % 4}", "label": f"t{i % 9}"}
            for i in range(start, start + n)]
    rows += [{"id": f"{name}-copy-{i:04d}", "text": f"{name} note {i} about topic {i % 9} and {i % 4}".upper(),
              "label": f"t{i % 9}"} for i in range(start, start + copies)]  # exact copies after normalisation
    pl.DataFrame(rows).write_parquet(folder / f"{name}.parquet")


def subset(root) -> pl.DataFrame:
    return pl.read_parquet(root / "curated/text/subset.parquet")


def run(config, root, monkeypatch, embedder):
    monkeypatch.setenv("CURATION_DATA_DIR", str(root))
    result = curate(config, "text", selection=list(PARTS), embedder=embedder)
    return {node: result.asset_materializations_for_node(node)[0].metadata for node in PARTS}


def test_a_new_file_costs_its_rows_and_equals_a_run_from_scratch(small_config, tmp_path, monkeypatch):
    grown, scratch = tmp_path / "grown", tmp_path / "scratch"
    docs(raw(grown, "text"), "a", 0, 150, copies=10)
    model = HashEmbedder()
    run(small_config, grown, monkeypatch, model)
    docs(raw(grown, "text"), "b", 1000, 40, copies=5)
    meta = run(small_config, grown, monkeypatch, model)
    assert model.embedded_items == 160 + 45  # the second run embedded only the new file's rows
    assert meta["embeddings"]["embedded_new_rows"].value == 45 and meta["embeddings"]["reused_from_cache"].value == 160
    assert meta["deduplicated"]["incremental"].value is True
    assert meta["deduplicated"]["rows_searched_now"].value == 40  # the new survivors only
    changes = meta["balanced_subset"]["since_previous_subset"].value
    assert changes["pool"]["added"] == 40 and changes["pool"]["removed"] == 0
    for folder in ("a", "b"):
        docs(raw(scratch, "text"), folder, 0 if folder == "a" else 1000, 150 if folder == "a" else 40,
             copies=10 if folder == "a" else 5)
    run(small_config, scratch, monkeypatch, HashEmbedder())
    assert subset(grown).equals(subset(scratch))
    for name in ("pool.parquet", "removed.parquet"):
        assert pl.read_parquet(grown / "deduplicated/text" / name).equals(
            pl.read_parquet(scratch / "deduplicated/text" / name))


def test_removing_a_file_embeds_nothing_and_editing_a_row_embeds_one(small_config, data_root, monkeypatch):
    folder = raw(data_root, "text")
    docs(folder, "a", 0, 120)
    docs(folder, "b", 500, 30)
    model = HashEmbedder()
    run(small_config, data_root, monkeypatch, model)
    (folder / "b.parquet").unlink()
    before = model.embedded_items
    meta = run(small_config, data_root, monkeypatch, model)
    assert model.embedded_items == before and meta["embeddings"]["model_loaded"].value is False
    assert not subset(data_root)["id"].str.starts_with("b-").any()
    rows = pl.read_parquet(folder / "a.parquet").with_columns(
        pl.when(pl.col("id") == "a-0007").then(pl.lit("an edited note")).otherwise(pl.col("text")).alias("text"))
    rows.write_parquet(folder / "a.parquet")
    meta = run(small_config, data_root, monkeypatch, model)
    assert model.embedded_items == before + 1 and meta["embeddings"]["embedded_new_rows"].value == 1


def test_a_broken_or_foreign_cache_entry_is_recomputed_never_trusted(small_config, data_root, monkeypatch):
    docs(raw(data_root, "text"), "a", 0, 100)
    model = HashEmbedder()
    run(small_config, data_root, monkeypatch, model)
    first = subset(data_root)
    segments = sorted((data_root / "_cache/embeddings").glob("*/segments/*.vectors.npy"))
    data = bytearray(segments[0].read_bytes())
    segments[0].write_bytes(bytes(data[: len(data) - 40]))  # truncated
    foreign = segments[0].parent / "99.vectors.npy"  # a killed run's or a stranger's file, never committed
    np.save(foreign, np.ones((3, 16), np.float32))
    docs(raw(data_root, "text"), "b", 900, 5)  # so the step runs again
    meta = run(small_config, data_root, monkeypatch, model)
    assert "checksum" in str(meta["embeddings"]["cache_problems"].value) and not foreign.exists()
    assert meta["embeddings"]["embedded_new_rows"].value == 105  # the broken segment's rows embedded again
    (raw(data_root, "text") / "b.parquet").unlink()
    run(small_config, data_root, monkeypatch, model)
    assert subset(data_root).equals(first)


def test_the_cache_keeps_what_is_published_and_a_bounded_rest(small_config, data_root, monkeypatch):
    small_config.write_text(small_config.read_text() + "embedding_cache: {max_unused_rows: 10}\n")
    docs(raw(data_root, "text"), "a", 0, 100)
    docs(raw(data_root, "text"), "b", 500, 50)
    model = HashEmbedder()
    run(small_config, data_root, monkeypatch, model)
    (raw(data_root, "text") / "b.parquet").unlink()
    meta = run(small_config, data_root, monkeypatch, model)
    assert meta["embeddings"]["compacted_to_rows"].value == 100 + 10
    assert meta["embeddings"]["evicted_rows"].value == 40
    docs(raw(data_root, "text"), "b", 500, 50)  # back again: 10 rows were kept, 40 are embedded anew
    assert run(small_config, data_root, monkeypatch, model)["embeddings"]["embedded_new_rows"].value == 40


@pytest.mark.slow
def test_growth_through_the_cli_with_a_kill_mid_embedding(small_config, tmp_path):
    """The real model through ``dg launch``: A, then A + B killed while B is embedded, the rerun completes and equals
    a run from scratch on A + B; then B removed and one row edited: exactly that row is embedded."""
    small_config.write_text(small_config.read_text() + "execution: {embed_task_rows: 32}\n")
    grown, scratch = tmp_path / "grown", tmp_path / "scratch"
    docs(raw(grown, "text"), "a", 0, 120)
    env = cli_env(small_config, grown, tmp_path / "home")
    launch_ok(env, "text", CURATION)
    segments = grown / "_cache/embeddings"
    before = len(list(segments.glob("*/segments/*.json")))
    docs(raw(grown, "text"), "b", 1000, 480)
    proc = popen(env, "text")
    deadline = time.time() + 600
    while len(list(segments.glob("*/segments/*.json"))) < before + 3 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    launch_ok(env, "text", CURATION)
    meta = metadata_of(grown, "embeddings", "text")
    assert 0 < meta["embedded_new_rows"] < 480 and meta["cache_problems"] == "none"  # the kill kept its segments
    docs(raw(scratch, "text"), "a", 0, 120)
    docs(raw(scratch, "text"), "b", 1000, 480)
    launch_ok(cli_env(small_config, scratch, tmp_path / "home2"), "text", CURATION)
    assert subset(grown).equals(subset(scratch))
    (raw(grown, "text") / "b.parquet").unlink()  # a removed file embeds nothing, so the one row embedded is the edit
    rows = pl.read_parquet(raw(grown, "text") / "a.parquet")
    rows.with_columns(pl.when(pl.col("id") == "a-0003").then(pl.lit("a rewritten note")).otherwise(pl.col("text"))
                      .alias("text")).write_parquet(raw(grown, "text") / "a.parquet")
    launch_ok(env, "text", CURATION)
    assert metadata_of(grown, "embeddings", "text")["embedded_new_rows"] == 1
    assert not subset(grown)["id"].str.starts_with("b-").any()
