"""Trust: nothing outside the data root is read or written, nothing a user gave is silently dropped or replaced
(issue 21). The cases a user meets at the command line run through ``dg launch``; reader details in-process."""

import gzip
import json
import os
import stat
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from dagster import deserialize_value

from curation_assets.config import ConfigError, load_config
from curation_assets_tests.cli import cli_env, launch, launch_ok
from curation_assets_tests.graph._helpers import HashEmbedder, curate
from curation_assets_tests.test_reliability import edit_config, failure, raw

USER_TEXT = "source: {kind: auto, demo_items: 300}"


def metadata_of(root: Path, family: str, modality: str) -> dict:
    """The metadata of a published artefact, as the UI shows it (read from its record)."""
    record = json.loads((root / family / f".{modality}.record.json").read_text())
    return {k: getattr(v, "value", v) for k, v in deserialize_value(record["metadata"], dict).items()}


def write_docs(folder: Path, n: int = 60, prefix: str = "doc") -> None:
    pl.DataFrame([{"id": f"{prefix}-{i}", "text": f"{prefix} number {i} on subject {i % 5}", "label": f"s{i % 5}"}
                  for i in range(n)]).write_parquet(folder / f"{prefix}.parquet")


@pytest.mark.slow
def test_links_outside_the_root_are_never_read_and_a_failed_rerun_keeps_the_published_artefacts(small_config,
                                                                                                tmp_path):
    root = tmp_path / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("root:x:0:0:secret line\n")
    (outside / "folder").mkdir()
    (outside / "folder" / "more.txt").write_text("another secret line\n")
    folder = raw(root, "text")
    write_docs(folder)
    (folder / "leak.txt").symlink_to(outside / "secret.txt")
    (folder / "leaked_folder").symlink_to(outside / "folder")
    shared = root / "shared"
    shared.mkdir()
    (shared / "inside.txt").write_text("a document kept elsewhere inside the data root\n")
    (folder / "inside.txt").symlink_to(shared / "inside.txt")
    (folder / "notes.md").write_text("# not a corpus file\n")
    env = cli_env(small_config, root, tmp_path / "home")
    os.umask(0o022)
    launch_ok(env, "text")
    texts = pl.read_parquet(root / "corpus/text/corpus.parquet")["text"].to_list()
    assert not any("secret" in t for t in texts)
    assert "a document kept elsewhere inside the data root" in texts  # a link inside the root is followed
    meta = metadata_of(root, "corpus", "text")
    assert meta["links_outside_data_root"] == 2 and set(meta["links_outside_examples"]) == {"leak.txt",
                                                                                         "leaked_folder"}
    assert meta["ignored_files"] == {".md": 1} and meta["source"] == "files"
    for published in (root / "curated/text/subset.parquet", *root.glob("datasets/text/data/*.parquet")):
        assert stat.S_IMODE(published.stat().st_mode) == 0o644  # the user's umask, not 0600
    assert stat.S_IMODE((root / "datasets/text").stat().st_mode) == 0o755
    subset_before = (root / "curated/text/subset.parquet").read_bytes()
    (folder / "broken.parquet").write_bytes(b"not parquet")  # the next run fails in raw_corpus
    assert launch(env, "text").returncode != 0
    assert (root / "curated/text/subset.parquet").read_bytes() == subset_before
    assert (root / "corpus/.text.record.json").exists()  # the failed run kept the previous record
    launch_ok(env, "text", assets="curated_dataset")  # and the published artefacts stay usable
    (folder / "broken.parquet").unlink()
    folder.rename(root / "raw" / "text-renamed")
    switched = launch(env, "text")
    assert switched.returncode != 0 and "refusing to replace them" in switched.stderr
    assert (root / "curated/text/subset.parquet").read_bytes() == subset_before
    assert "datasets" not in [p.name for p in (root / "datasets/text").iterdir()]
    assert not (root / "datasets/text/record.json").exists()  # internal records live outside what a user ships


def test_a_source_switch_to_the_demo_needs_asking_for_it(small_config, data_root):
    write_docs(raw(data_root, "text"))
    curate(small_config, "text", embedder=HashEmbedder(), selection=["raw_corpus"])
    (data_root / "raw/text").rename(data_root / "raw/gone")
    assert "refusing to replace them" in failure(small_config, "text", embedder=HashEmbedder(),
                                                 selection=["raw_corpus"])
    edit_config(small_config, USER_TEXT, "source: {kind: demo, demo_items: 300}")
    result = curate(small_config, "text", embedder=HashEmbedder(), selection=["raw_corpus"])
    meta = result.asset_materializations_for_node("raw_corpus")[0].metadata
    assert meta["source"].value == "demo" and "bundled demo" in meta["source_description"].value


@pytest.mark.parametrize("name", ["../../victim", "my data/../x", "a/b", ".hidden", ""])
def test_a_modality_name_that_is_not_a_plain_folder_name_is_refused_when_the_yaml_loads(tmp_path, name):
    victim = tmp_path / "victim" / "shards"
    victim.mkdir(parents=True)
    (victim / "important.txt").write_text("keep me")
    config = tmp_path / "curation.yaml"
    config.write_text(json.dumps({"modalities": {name: {"source": {"kind": "simulated"}, "embedder": {
        "kind": "points"}}}}))
    with pytest.raises(ConfigError, match="modality name"):
        load_config(config)
    assert (victim / "important.txt").read_text() == "keep me"


def test_the_store_refuses_any_path_outside_the_root(tmp_path):
    from curation_assets.store import Layout
    from curation_assets.store.files import OutsideDataRootError

    with pytest.raises(ValueError, match="modality name"):
        Layout("../../victim", tmp_path)
    layout = Layout("text", tmp_path)
    with pytest.raises(OutsideDataRootError):
        layout.inside(tmp_path / ".." / "elsewhere")
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "text").symlink_to(tmp_path.parent)  # a link planted where an artefact goes
    with pytest.raises(OutsideDataRootError):
        layout.asset_dir("corpus")


def test_max_items_never_caps_a_users_folder_unless_set_and_then_draws_uniformly(small_config, data_root):
    folder = raw(data_root, "text")
    pl.DataFrame([{"id": f"{c}-{i:04d}", "text": f"{c} item {i}", "label": c}
                  for c, n in (("coat", 300), ("shirt", 250), ("bag", 70), ("trouser", 30)) for i in range(n)]
                 ).write_parquet(folder / "sorted_by_class.parquet")
    result = curate(small_config, "text", embedder=HashEmbedder(), selection=["raw_corpus"])
    assert result.asset_materializations_for_node("raw_corpus")[0].metadata["dagster/row_count"].value == 650
    edit_config(small_config, USER_TEXT, "source: {kind: auto, max_items: 600}")
    result = curate(small_config, "text", embedder=HashEmbedder(), selection=["raw_corpus"])
    meta = result.asset_materializations_for_node("raw_corpus")[0].metadata
    assert meta["dagster/row_count"].value == 600 and meta["rows_dropped_by_max_items"].value == 50
    labels = pl.read_parquet(data_root / "corpus/text/corpus.parquet")["label"].value_counts()
    counts = dict(labels.iter_rows())
    assert set(counts) == {"coat", "shirt", "bag", "trouser"} and counts["trouser"] >= 20  # not by file order


@pytest.mark.slow
def test_a_multiplier_subset_is_benchmarked_and_exported_through_the_cli(small_config, tmp_path):
    root = tmp_path / "data"
    write_docs(raw(root, "text"), n=40)
    # 40 look-alike documents leave a pool of about 30 after near-duplicate removal: 50 rows need repeats
    edit_config(small_config, "sampling: {fraction: 0.3, seed: 0}", "sampling: {target_size: 50, multiplier: 2}")
    launch_ok(cli_env(small_config, root, tmp_path / "home"), "text")
    subset = pl.read_parquet(root / "curated/text/subset.parquet")
    pool = pl.read_parquet(root / "deduplicated/text/pool.parquet")
    assert len(subset) == 50 and subset["id"].n_unique() <= len(pool) < 50
    scores = pl.read_parquet(root / "benchmarks/text/scores.parquet")
    assert {"random", "redraw", "oracle_balanced"} <= set(scores["method"])
    assert metadata_of(root, "benchmarks", "text")["failed_methods"] == "none"
    assert sum(len(pl.read_parquet(p)) for p in (root / "datasets/text/data").glob("*.parquet")) == 50


def test_an_unknown_partition_lists_the_configured_ones(small_config, data_root):
    message = failure(small_config, "video")
    assert "video" in message


def test_a_lone_surrogate_names_file_and_line(small_config, data_root):
    (raw(data_root, "text") / "emoji.jsonl").write_text('{"text": "fine"}\n{"text": "half an emoji \\ud83d"}\n')
    assert "emoji.jsonl: line 2: 'text' holds a lone surrogate" in failure(small_config, "text",
                                                                           embedder=HashEmbedder())


def test_csv_problems_name_the_line_and_the_column(small_config, data_root):
    folder = raw(data_root, "text")
    (folder / "ragged.csv").write_text("id,text\na,first\nb,second,extra\nc,third\n")
    assert "ragged.csv: line 3 has 3 fields, the header has 2" in failure(small_config, "text",
                                                                          embedder=HashEmbedder())
    (folder / "ragged.csv").write_text("id,text,text\na,one,two\n")
    assert "column 'text' appears 2 times" in failure(small_config, "text", embedder=HashEmbedder())


def test_a_jsonl_duplicate_id_names_its_line(small_config, data_root):
    lines = [json.dumps({"id": f"r{i}", "text": f"row {i}"}) for i in range(399)] + [json.dumps({"id": "r5",
                                                                                               "text": "again"})]
    (raw(data_root, "text") / "docs.jsonl").write_text("\n".join(lines) + "\n")
    assert "docs.jsonl line 400" in failure(small_config, "text", embedder=HashEmbedder())


def test_more_formats_are_read_and_the_rest_counted_by_extension(small_config, data_root):
    folder = raw(data_root, "text")
    (folder / "records.json").write_text(json.dumps([{"text": f"json record {i}"} for i in range(5)]))
    (folder / "table.tsv").write_text("text\tlabel\n" + "".join(f"tsv row {i}\tt\n" for i in range(4)))
    with gzip.open(folder / "packed.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps({"text": f"gz row {i}"}) + "\n" for i in range(3)))
    (folder / "old_mac.txt").write_bytes(b"line one\rline two\rline three\r")
    for name in ("readme.md", "logo.svg", "anim.gif"):
        (folder / name).write_text("x")
    result = curate(small_config, "text", embedder=HashEmbedder(), selection=["raw_corpus"])
    meta = result.asset_materializations_for_node("raw_corpus")[0].metadata
    assert meta["dagster/row_count"].value == 5 + 4 + 3 + 3  # a CR-only file is three documents, not one
    assert meta["ignored_files"].value == {".gif": 1, ".md": 1, ".svg": 1}


def test_exported_files_follow_the_umask(small_config, data_root):
    os.umask(0o027)
    try:
        curate(small_config, "simulated", selection=["raw_corpus"])
    finally:
        os.umask(0o022)
    corpus = data_root / "corpus/simulated/corpus.parquet"
    assert stat.S_IMODE(corpus.stat().st_mode) == 0o640 and stat.S_IMODE(corpus.parent.stat().st_mode) == 0o750


@pytest.mark.slow
def test_dedup_removes_every_planted_copy_and_no_distinct_text(small_config, data_root):
    """600 distinct WordNet glosses and 200 planted copies (case and whitespace changed: exact after
    normalisation; or a few words appended: near, cosine 0.97-0.98 with MiniLM), through the real model: every
    copy goes, no distinct gloss does, and every reported similarity is >= the threshold (0.94)."""
    from curation_assets.demo import demo_corpus

    glosses = demo_corpus("text", max_items=600, seed=4)["text"].to_list()
    rows = [{"id": f"g{i:04d}", "text": t} for i, t in enumerate(glosses)]
    picks = np.random.default_rng(0).choice(len(glosses), 200, replace=False)
    planted = {f"zcopy{k:03d}": f"g{i:04d}" for k, i in enumerate(picks)}
    rows += [{"id": f"zcopy{k:03d}", "text": f"  {glosses[i].upper()} " if k % 2 else glosses[i] + " (see also)"}
             for k, i in enumerate(picks)]
    pl.DataFrame(rows).write_parquet(raw(data_root, "text") / "glosses.parquet")
    curate(small_config, "text", selection=["raw_corpus", "embeddings", "deduplicated"])
    removed = pl.read_parquet(data_root / "deduplicated/text/removed.parquet")
    assert set(removed["id"].to_list()) == set(planted)
    assert dict(removed.select("id", "duplicate_of").iter_rows()) == planted
    assert (removed["similarity"] >= 0.94).all()


@pytest.mark.slow
def test_bad_inputs_meet_a_user_at_the_command_line(small_config, tmp_path):
    """Items 2, 3, 7, 8 and 9 through ``dg launch``, as a user meets them: each error names what to fix, a cap
    is counted, ignored files are counted, and a hostile modality name writes and deletes nothing."""
    root = tmp_path / "data"
    env = cli_env(small_config, root, tmp_path / "home")
    victim = tmp_path / "victim" / "shards"
    victim.mkdir(parents=True)
    (victim / "important.txt").write_text("keep me")
    hostile = tmp_path / "hostile.yaml"
    hostile.write_text(json.dumps({"modalities": {"../../victim": {"source": {"kind": "simulated"},
                                                                   "embedder": {"kind": "points"}}}}))
    refused = launch({**env, "CURATION_CONFIG": str(hostile)}, "../../victim")
    assert refused.returncode != 0 and "modality name" in refused.stderr
    assert (victim / "important.txt").read_text() == "keep me" and not (tmp_path / "victim" / "corpus").exists()

    unknown = launch(env, "video")
    assert unknown.returncode != 0 and all(name in unknown.stderr for name in ("simulated", "text", "image"))

    folder = raw(root, "text")
    bad_inputs = {
        "emoji.jsonl": ('{"text": "fine"}\n{"text": "half an emoji \\ud83d"}\n',
                        "emoji.jsonl: line 2: 'text' holds a lone surrogate"),
        "ragged.csv": ("id,text\na,first\nb,second,extra\nc,third\n", "ragged.csv: line 3 has 3 fields"),
        "docs.jsonl": ("".join(json.dumps({"id": f"r{i % 399}", "text": f"row {i}"}) + "\n" for i in range(400)),
                       "docs.jsonl line 400"),
    }
    for name, (content, message) in bad_inputs.items():
        (folder / name).write_text(content)
        failed = launch(env, "text", assets="raw_corpus")
        assert failed.returncode != 0 and message in failed.stderr, failed.stderr[-2000:]
        (folder / name).unlink()

    pl.DataFrame([{"id": f"{c}-{i:04d}", "text": f"{c} item {i}", "label": c}
                  for c, n in (("coat", 300), ("shirt", 250), ("bag", 70), ("trouser", 30)) for i in range(n)]
                 ).write_parquet(folder / "sorted_by_class.parquet")
    for name in ("readme.md", "logo.svg"):
        (folder / name).write_text("x")
    launch_ok(env, "text", assets="raw_corpus")
    meta = metadata_of(root, "corpus", "text")
    assert meta["dagster/row_count"] == 650 and meta["ignored_files"] == {".md": 1, ".svg": 1}  # no cap unless set
    edit_config(small_config, USER_TEXT, "source: {kind: auto, max_items: 600}")
    capped = launch_ok(env, "text", assets="raw_corpus")
    meta = metadata_of(root, "corpus", "text")
    assert meta["dagster/row_count"] == 600 and meta["rows_dropped_by_max_items"] == 50
    assert "max_items" in capped.stderr  # and the log says so
    counts = dict(pl.read_parquet(root / "corpus/text/corpus.parquet")["label"].value_counts().iter_rows())
    assert set(counts) == {"coat", "shirt", "bag", "trouser"} and counts["trouser"] >= 20  # drawn, not by file order
