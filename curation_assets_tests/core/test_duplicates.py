import numpy as np
import pytest

from curation_assets.core.duplicates import deduplicate, near_duplicate_pairs, normalise_text


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def planted(seed=0, n_distinct=200, d=32):
    """Distinct items (pairwise cos well below 0.9), plus near copies and exact copies of some of them."""
    rng = np.random.default_rng(seed)
    base = unit(rng.normal(size=(n_distinct, d)))
    near = unit(base[:20] + 0.02 * rng.normal(size=(20, d)))         # cos ≈ 0.99 to their source
    topic = unit(base[20:40] + 0.6 * unit(rng.normal(size=(20, d))))  # same topic, cos ≈ 0.85: kept
    exact = base[40:50].copy()
    X = np.concatenate([base, near, topic, exact]).astype(np.float32)
    ids = [f"b{i:03d}" for i in range(n_distinct)] + [f"n{i:03d}" for i in range(20)] + \
          [f"t{i:03d}" for i in range(20)] + [f"x{i:03d}" for i in range(10)]
    keys = [f"text {i}" for i in range(n_distinct)] + [f"near {i}" for i in range(20)] + \
           [f"topic {i}" for i in range(20)] + [f"  TEXT   {40 + i} " for i in range(10)]
    return X, ids, keys


def test_planted_duplicates_are_removed_and_similar_topics_kept():
    X, ids, keys = planted()
    res = deduplicate(X, ids, 0.95, content_keys=keys)
    removed = {ids[r]: ids[k] for r, k in zip(res.removed, res.duplicate_of, strict=True)}
    assert {f"n{i:03d}" for i in range(20)} <= set(removed)
    assert all(removed[f"n{i:03d}"] == f"b{i:03d}" for i in range(20))  # the smallest id is kept
    assert all(removed[f"x{i:03d}"] == f"b{40 + i:03d}" for i in range(10))
    assert not any(k.startswith("t") for k in removed)
    rules = dict(zip([ids[r] for r in res.removed], res.rule, strict=True))
    assert rules["x000"] == "exact" and rules["n000"] == "near"
    assert len(res.keep) + len(res.removed) == len(X)
    assert (res.similarity >= 0.95).all()


def test_result_does_not_depend_on_row_order():
    X, ids, keys = planted()
    a = deduplicate(X, ids, 0.95, content_keys=keys)
    perm = np.random.default_rng(1).permutation(len(X))
    b = deduplicate(X[perm], [ids[p] for p in perm], 0.95, content_keys=[keys[p] for p in perm])
    assert sorted(ids[k] for k in a.keep) == sorted(ids[perm[k]] for k in b.keep)


def test_chains_are_grouped():
    d = np.zeros((3, 4), np.float32)
    d[0, :2] = [1, 0.00]
    d[1, :2] = [1, 0.25]
    d[2, :2] = [1, 0.50]   # cos(0,1) ≈ 0.97, cos(1,2) ≈ 0.98, cos(0,2) ≈ 0.89
    res = deduplicate(d, ["a", "b", "c"], 0.95)
    assert res.keep.tolist() == [0] and res.duplicate_of.tolist() == [0, 0]


def test_blocked_search_finds_the_same_pairs_as_exact_search_within_buckets():
    X, ids, keys = planted(n_distinct=400)
    exact = deduplicate(X, ids, 0.95)
    blocked = deduplicate(X, ids, 0.95, block_clusters=8)
    assert set(blocked.removed.tolist()) == set(exact.removed.tolist())
    i, j = near_duplicate_pairs(X, 0.95, block_clusters=8)
    assert (i != j).all()


def test_text_normalisation():
    assert normalise_text("  Hello\u00a0  WORLD\n") == "hello world"
    X = unit(np.random.default_rng(0).normal(size=(2, 8))).astype(np.float32)  # vectors differ: hash decides
    res = deduplicate(X, ["a", "b"], 0.99, content_keys=["Cat  sat", "cat sat "])
    assert res.rule.tolist() == ["exact"]


@pytest.mark.parametrize("kwargs, message", [
    ({"threshold": 0}, "threshold"),
    ({"threshold": 1.5}, "threshold"),
    ({"threshold": 0.9, "ids": ["a", "a", "b"]}, "unique"),
    ({"threshold": 0.9, "ids": ["a", "b"]}, "ids for"),
])
def test_argument_errors(kwargs, message):
    X = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match=message):
        deduplicate(X, kwargs.pop("ids", ["a", "b", "c"]), **kwargs)
