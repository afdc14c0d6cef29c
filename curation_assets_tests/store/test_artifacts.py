import numpy as np
import polars as pl
import pytest

from curation_assets.core import Level
from curation_assets.store import (
    Corpus,
    Embeddings,
    Layout,
    NotMaterializedError,
    Pool,
    Record,
    StaleInputError,
    Subset,
    Tree,
    open_artifact,
)


def publish(directory, fp, facts=None, input_fp=None):
    directory.mkdir(parents=True, exist_ok=True)
    Record(fp, {**(facts or {}), "input": input_fp}).write(directory)


def build(tmp_path, removed=(1, 4)):
    """A 6-row corpus, 6 embeddings, a pool without ``removed``, a 1-level tree and a subset of 2 rows."""
    layout = Layout("text", tmp_path)
    ids = [f"d{i}" for i in range(6)]
    with Corpus.writer(layout) as corpus:
        corpus.write(pl.DataFrame({"id": ids, "text": [f"t{i}" for i in range(6)], "label": list("aabbcc")}))
    publish(layout.corpus_dir, "c1", {"content_column": "text"})
    writer = Embeddings.writer(layout, "float32")
    writer.append(np.arange(12, dtype=np.float32).reshape(6, 2))
    writer.publish()
    Embeddings.save_rows(layout, pl.DataFrame({"id": ids, "corpus_row": np.arange(6)}))
    publish(layout.embeddings_dir, "e1", input_fp="c1")
    kept = [i for i in range(6) if i not in removed]
    Pool.write(layout, pl.DataFrame({"id": [ids[i] for i in kept], "embedding_row": kept, "corpus_row": kept}),
               pl.DataFrame({"id": [ids[i] for i in removed], "duplicate_of": ["d0"] * len(removed)}))
    publish(layout.pool_dir, "p1", input_fp="e1")
    level = Level(np.zeros((2, 2), np.float32), np.array([0, 0, 1, 1]), np.zeros(4, np.float32))
    Tree.write_level(layout, 1, level, np.array([2, 2]))
    publish(layout.level_dir(1), "l1", {"used": True}, input_fp="p1")
    tree = Tree.open(layout, 1)
    Subset.write(layout, tree, np.array([1, 3]))
    publish(layout.subset_dir, "s1", {"tree_level": 1}, input_fp="l1")
    return layout


def test_the_pool_is_the_one_row_index_from_dedup_to_subset(tmp_path):
    layout = build(tmp_path)
    pool = Pool.open(layout)
    assert pool.ids.to_list() == ["d0", "d2", "d3", "d5"]
    np.testing.assert_array_equal(pool.X[:], np.array([[0, 1], [4, 5], [6, 7], [10, 11]], np.float32))
    assert pool.labels().tolist() == ["a", "b", "b", "c"]
    subset = open_artifact("balanced_subset", layout)
    # pool rows 1 and 3 are d2 and d5: the ids come from the tree's own pool, never from the corpus order
    assert subset.frame["id"].to_list() == ["d2", "d5"] and subset.rows.tolist() == [1, 3]
    assert subset.frame["cluster_level_1"].to_list() == [0, 1]


def test_an_artefact_over_a_changed_input_refuses_to_open(tmp_path):
    layout = build(tmp_path)
    publish(layout.embeddings_dir, "e2", input_fp="c1")  # embeddings re-materialized, dedup not
    with pytest.raises(StaleInputError, match="deduplicated was computed from another version of embeddings"):
        Pool.open(layout)
    with pytest.raises(StaleInputError):
        open_artifact("balanced_subset", layout)


def test_a_tree_over_another_pool_size_refuses_to_open(tmp_path):
    layout = build(tmp_path)
    kept = [0, 2, 3, 4, 5]  # the pool file swapped under an unchanged record: 5 rows, the level assigns 4
    Pool.write(layout, pl.DataFrame({"id": [f"d{i}" for i in kept], "embedding_row": kept, "corpus_row": kept}),
               pl.DataFrame({"id": ["d1"], "duplicate_of": ["d0"]}))
    with pytest.raises(StaleInputError, match="level 1 assigns 4 rows but the pool has 5"):
        Tree.open(layout, 1)


def test_missing_artefacts_name_the_asset_to_materialize(tmp_path):
    with pytest.raises(NotMaterializedError, match="materialize raw_corpus first"):
        Corpus.open(Layout("text", tmp_path))
    with pytest.raises(KeyError, match="no stored artefact"):
        open_artifact("nonsense", Layout("text", tmp_path))


def test_a_corpus_with_a_repeated_id_is_never_published(tmp_path):
    layout = Layout("text", tmp_path)
    with pytest.raises(ValueError, match="duplicate id 'x'"), Corpus.writer(layout) as corpus:
        corpus.write(pl.DataFrame({"id": ["x", "y", "x"], "text": ["a", "b", "c"], "label": [None] * 3},
                                  schema={"id": pl.Utf8, "text": pl.Utf8, "label": pl.Utf8}))
    assert not Corpus.path_of(layout).exists() and not list(layout.corpus_dir.glob(".*tmp"))
