"""Bad input gets a clear error (or a documented, counted skip) and never replaces good output."""

import hashlib
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from curation_assets_tests.cli import HANG_LIMIT_S, cli_env, popen
from curation_assets_tests.graph._helpers import HashEmbedder, curate

REPO = Path(__file__).resolve().parents[1]


def failure(config, partition, **kwargs) -> str:
    """Run and return the user error's message (Dagster wraps it)."""
    with pytest.raises(Exception) as info:
        curate(config, partition, **kwargs)
    err = info.value
    return f"{err} {getattr(err, 'user_exception', '') or ''} {err.__cause__ or ''}"


def edit_config(config: Path, old: str, new: str) -> None:
    text = config.read_text()
    assert old in text
    config.write_text(text.replace(old, new, 1))


def raw(data_root: Path, modality: str) -> Path:
    path = data_root / "raw" / modality
    path.mkdir(parents=True, exist_ok=True)
    return path


def text_rows(n=120):
    return [{"id": f"doc-{i}", "text": f"document number {i} about topic {i % 7}", "label": f"t{i % 7}"}
            for i in range(n)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_empty_corpus(small_config, data_root):
    (raw(data_root, "text") / "empty.txt").write_text("\n\n   \n")
    assert "corpus is empty" in failure(small_config, "text", embedder=HashEmbedder())


def test_missing_text_column_names_the_file(small_config, data_root):
    pl.DataFrame({"body": ["a", "b"]}).write_parquet(raw(data_root, "text") / "docs.parquet")
    msg = failure(small_config, "text", embedder=HashEmbedder())
    assert "docs.parquet" in msg and "text" in msg


def test_duplicate_ids_name_the_id(small_config, data_root):
    pl.DataFrame([{"id": "x1", "text": "one"}, {"id": "x1", "text": "two"}]).write_parquet(
        raw(data_root, "text") / "dup.parquet")
    assert "x1" in failure(small_config, "text", embedder=HashEmbedder())


def test_non_utf8_bytes_name_the_file(small_config, data_root):
    (raw(data_root, "text") / "latin1.txt").write_bytes("caf\xe9 au lait\n".encode("latin-1"))
    msg = failure(small_config, "text", embedder=HashEmbedder())
    assert "latin1.txt" in msg and "UTF-8" in msg


def test_empty_strings_are_skipped_and_counted(small_config, data_root):
    rows = text_rows() + [{"id": "blank-1", "text": "   ", "label": "t0"}, {"id": "blank-2", "text": "", "label": "t0"}]
    pl.DataFrame(rows).write_parquet(raw(data_root, "text") / "docs.parquet")
    result = curate(small_config, "text", embedder=HashEmbedder())
    meta = result.asset_materializations_for_node("raw_corpus")[0].metadata
    assert meta["skipped_rows"].value == 2 and meta["dagster/row_count"].value == 120


def test_a_users_folder_never_silently_becomes_the_demo(small_config, data_root):
    folder = raw(data_root, "text")
    (folder / ".docs.jsonl").write_text('{"id": "a", "text": "hidden"}\n')
    (folder / ".cache").mkdir()
    (folder / ".cache" / "b.txt").write_text("also hidden\n")
    (folder / "notes.md").write_text("not a corpus format\n")
    msg = failure(small_config, "text", embedder=HashEmbedder())
    assert "no readable file under" in msg and str(folder) in msg
    assert ".docs.jsonl" in msg and ".cache" in msg and "notes.md" in msg
    assert not (data_root / "corpus/text/corpus.parquet").exists()


def test_jsonl_ids_are_all_the_users_or_an_error_names_the_first_row_without_one(small_config, data_root):
    (raw(data_root, "text") / "docs.jsonl").write_text(
        '{"text": "first record has no id"}\n{"id": "u-2", "text": "second"}\n{"id": "u-3", "text": "third"}\n')
    msg = failure(small_config, "text", embedder=HashEmbedder())
    assert "docs.jsonl: line 1 has no 'id'" in msg
    (raw(data_root, "text") / "docs.jsonl").write_text('{"id": "u-1", "text": "one"}\n{"text": "two"}\n')
    assert "docs.jsonl: line 2 has no 'id'" in failure(small_config, "text", embedder=HashEmbedder())


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_a_non_text_text_column_names_file_and_type(small_config, data_root, fmt):
    folder = raw(data_root, "text")
    if fmt == "parquet":
        pl.DataFrame({"id": ["a", "b"], "text": [12, 34]}).write_parquet(folder / "numbers.parquet")
        expected = "numbers.parquet: column 'text' must hold strings, found type int64"
    else:
        (folder / "numbers.jsonl").write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": 1234}\n')
        expected = "numbers.jsonl: line 2: 'text' must be a string, got int"
    assert expected in failure(small_config, "text", embedder=HashEmbedder())


def test_a_killed_embedding_runs_temporary_shards_are_cleaned_by_the_next_run(small_config, data_root):
    pl.DataFrame(text_rows()).write_parquet(raw(data_root, "text") / "docs.parquet")
    leftover = data_root / "embeddings/text/.shards-k1ll3d"
    leftover.mkdir(parents=True)
    np.save(leftover / "part-00000.npy", np.zeros((3, 16), np.float32))
    curate(small_config, "text", embedder=HashEmbedder(), selection=["raw_corpus", "embeddings"])
    assert not list((data_root / "embeddings/text").glob(".shards-*"))
    assert (data_root / "embeddings/text/shards/part-00000.npy").exists()


def test_geotiff_with_unexpected_bands(small_config, data_root):
    import tifffile

    tifffile.imwrite(raw(data_root, "satellite") / "scene.tif", np.zeros((2, 200, 200), np.uint16) + 7)
    msg = failure(small_config, "satellite", embedder=HashEmbedder())
    assert "scene.tif" in msg and "band" in msg


def test_nan_embeddings_name_the_row(small_config, data_root):
    pl.DataFrame(text_rows()).write_parquet(raw(data_root, "text") / "docs.parquet")
    msg = failure(small_config, "text", embedder=HashEmbedder(nan_rows=[5]))
    assert "NaN" in msg and "doc-5" in msg
    assert not (data_root / "embeddings/text/shards").exists()
    assert not list((data_root / "embeddings/text").glob(".shards-*"))


def test_embedding_dimension_change_between_batches(small_config, data_root):
    small_config.write_text(small_config.read_text() + "execution: {embed_task_rows: 50}\n")
    pl.DataFrame(text_rows()).write_parquet(raw(data_root, "text") / "docs.parquet")
    assert "32-d vectors but its cache holds 16-d" in failure(small_config, "text",
                                                             embedder=HashEmbedder(dims=[16, 16, 32]))


def test_a_level_larger_than_its_input_gives_fewer_levels_not_a_failed_run(small_config, data_root):
    edit_config(small_config, "{n_clusters: 100, resampling_steps: 3, sample_size: 2}",
                "{n_clusters: 50000, resampling_steps: 3, sample_size: 2}")
    result = curate(small_config, "simulated")
    level_2 = result.asset_materializations_for_node("clustering_level_2")[0].metadata
    assert level_2["used"].value is False
    assert "level 2 asks for k=50000 clusters but its input has only 300 points" in level_2["note"].value
    subset = pl.read_parquet(data_root / "curated/simulated/subset.parquet")
    assert subset.columns == ["id", "cluster_level_1"] and len(subset) == 300
    notes = result.asset_materializations_for_node("balanced_subset")[0].metadata["level_notes"].value
    assert "stops at level 1" in str(notes)


def test_a_new_users_400_documents_with_the_demo_recipe(small_config, data_root):
    edit_config(small_config, "{per_cluster: 10, resampling_steps: 3}", "{n_clusters: 525, resampling_steps: 3}")
    edit_config(small_config, "source: {kind: auto, demo_items: 300}", "source: {kind: auto}")
    pl.DataFrame(text_rows(400)).write_parquet(raw(data_root, "text") / "docs.parquet")
    result = curate(small_config, "text", embedder=HashEmbedder())
    level_1 = result.asset_materializations_for_node("clustering_level_1")[0].metadata
    assert level_1["n_clusters"].value == 200 and "using k=200" in level_1["note"].value
    assert len(pl.read_parquet(data_root / "curated/text/subset.parquet")) == 120


def test_target_larger_than_the_pool(small_config, data_root):
    edit_config(small_config, "sampling: {target_size: 300, seed: 0}", "sampling: {target_size: 100000, seed: 0}")
    assert "exceeds the pool" in failure(small_config, "simulated")


def test_unknown_modality_partition(small_config, data_root):
    assert "video" in failure(small_config, "video")


def test_model_missing_offline(small_config, data_root):
    edit_config(small_config, "embedder: {kind: sentence_transformer, batch_size: 64}",
                "embedder: {kind: sentence_transformer, batch_size: 64, model: no-such-org/no-such-model}")
    pl.DataFrame(text_rows()).write_parquet(raw(data_root, "text") / "docs.parquet")
    msg = failure(small_config, "text")
    assert "no-such-model" in msg and "offline" in msg


def test_configured_path_outside_the_data_root(small_config, data_root):
    edit_config(small_config, "source: {kind: auto, demo_items: 300}", "source: {kind: files, path: ../../etc}")
    assert "outside the data root" in failure(small_config, "text", embedder=HashEmbedder())


def test_pickled_npy_is_refused(small_config, data_root):
    curate(small_config, "simulated", selection=["raw_corpus", "embeddings", "deduplicated"])
    np.save(data_root / "embeddings/simulated/shards/part-00000.npy", np.array([{"a": 1}], dtype=object),
            allow_pickle=True)
    assert "pickle" in failure(small_config, "simulated", selection=["clustering_level_1"])


def test_bad_input_never_replaces_the_previous_good_output(small_config, data_root):
    docs = raw(data_root, "text") / "docs.parquet"
    pl.DataFrame(text_rows()).write_parquet(docs)
    curate(small_config, "text", embedder=HashEmbedder())
    outputs = [data_root / p for p in ("corpus/text/corpus.parquet", "embeddings/text/shards/part-00000.npy",
                                       "curated/text/subset.parquet")]
    before = [digest(p) for p in outputs]
    pl.DataFrame([{"id": "x", "body": "no text column"}]).write_parquet(docs)
    failure(small_config, "text", embedder=HashEmbedder())
    pl.DataFrame(text_rows() + [{"id": "doc-1", "text": "a duplicate id", "label": "t1"}]).write_parquet(docs)
    failure(small_config, "text", embedder=HashEmbedder())
    assert [digest(p) for p in outputs] == before
    assert not list((data_root / "corpus/text").glob(".*tmp"))


def test_no_pickle_anywhere_in_the_package():
    for path in (REPO / "curation_assets").rglob("*.py"):
        text = path.read_text()
        assert "import pickle" not in text and "allow_pickle=True" not in text, path


# -- crash safety and concurrency, through the real CLI -------------------------------------------------

SLOW_LEVEL_2 = "{n_clusters: 100, resampling_steps: 3, sample_size: 2}"


def cli(env: dict) -> subprocess.Popen:
    return popen(env, "simulated")


def wait_for_line(proc: subprocess.Popen, marker: str, timeout: float) -> bool:
    """Read the run's event log (stderr) until a line holds ``marker``; False if the run ends or time is up."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if marker in lines.get(timeout=0.5):
                return True
        except queue.Empty:
            if proc.poll() is not None:
                return False
    return False


@pytest.mark.slow
def test_sigkill_mid_level_resumes_without_recomputing_finished_levels(small_config, tmp_path):
    # level 2 runs long enough (many resampling steps on level 1's 1500 centroids) to be killed in its middle:
    # the kill comes as soon as the run's event log says the step started, whatever the machine's speed
    edit_config(small_config, "{n_clusters: 300, resampling_steps: 3", "{n_clusters: 1500, resampling_steps: 3")
    edit_config(small_config, SLOW_LEVEL_2, "{n_clusters: 250, resampling_steps: 400, sample_size: 2}")
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    env = cli_env(small_config, killed_root, tmp_path / "home1")
    proc = cli(env)
    # the console shows INFO lines: level 2 logs its first k-means before its 400 resampling steps
    assert wait_for_line(proc, "clustering_level_2 - level 2: k-means", timeout=HANG_LIMIT_S), "level 2 never began"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (killed_root / "clustering/simulated/.level_1.record.json").exists()
    assert not (killed_root / "clustering/simulated/.level_2.record.json").exists(), "level 2 finished before the kill"
    assert not (killed_root / "curated/simulated/subset.parquet").exists()
    stamp = (killed_root / "clustering/simulated/level_1/centroids.npy").stat().st_mtime_ns
    resumed = cli(env)
    assert resumed.wait(timeout=HANG_LIMIT_S) == 0, resumed.stderr.read()[-2000:]
    assert (killed_root / "clustering/simulated/level_1/centroids.npy").stat().st_mtime_ns == stamp
    clean = cli(cli_env(small_config, clean_root, tmp_path / "home2"))
    assert clean.wait(timeout=HANG_LIMIT_S) == 0
    subset = "curated/simulated/subset.parquet"
    assert digest(killed_root / subset) == digest(clean_root / subset)


@pytest.mark.slow
def test_two_concurrent_runs_of_one_partition_do_not_corrupt_outputs(small_config, tmp_path):
    root = tmp_path / "shared"
    runs = [cli(cli_env(small_config, root, tmp_path / f"home{i}")) for i in range(2)]
    assert [r.wait(timeout=HANG_LIMIT_S) for r in runs] == [0, 0], [r.stderr.read()[-1500:] for r in runs]
    reference = tmp_path / "reference"
    assert cli(cli_env(small_config, reference, tmp_path / "home3")).wait(timeout=HANG_LIMIT_S) == 0
    for rel in ("curated/simulated/subset.parquet", "clustering/simulated/level_3/assignment.npy"):
        assert digest(root / rel) == digest(reference / rel)
    assert not list(root.rglob("*.tmp"))
