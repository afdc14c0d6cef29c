import numpy as np
import pytest

from curation_assets.core.dedup import (
    DedupResult,
    KnownPairs,
    content_hash,
    deduplicate,
    exact_duplicates,
    near_duplicate_pairs,
    near_duplicates,
    normalise_text,
)


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def planted(seed=0, n_distinct=200, d=32):
    """Distinct items (pairwise cos well below 0.8), near copies (cos ≈ 0.99), same-topic items (cos ≈ 0.85),
    exact copies (same vector, same text up to case/whitespace)."""
    rng = np.random.default_rng(seed)
    base = unit(rng.normal(size=(n_distinct, d)))
    near = unit(base[:20] + 0.02 * rng.normal(size=(20, d)))
    topic = unit(base[20:40] + 0.6 * unit(rng.normal(size=(20, d))))
    exact = base[40:50].copy()
    X = np.concatenate([base, near, topic, exact]).astype(np.float32)
    ids = ([f"b{i:03d}" for i in range(n_distinct)] + [f"n{i:03d}" for i in range(20)]
           + [f"t{i:03d}" for i in range(20)] + [f"x{i:03d}" for i in range(10)])
    keys = ([f"text {i}" for i in range(n_distinct)] + [f"near {i}" for i in range(20)]
            + [f"topic {i}" for i in range(20)] + [f"  TEXT   {40 + i} " for i in range(10)])
    return X, ids, keys


def removed_map(res: DedupResult, ids):
    return {ids[r]: (ids[k], str(rule)) for r, k, rule in zip(res.removed, res.duplicate_of, res.rule, strict=True)}


def test_planted_duplicates_removed_and_similar_topics_kept():
    X, ids, keys = planted()
    sims = unit(X[220:240]) @ unit(X[20:40]).T
    assert 0.75 < np.diag(sims).min() and np.diag(sims).max() < 0.95  # same topic, not duplicates
    res = deduplicate(X, ids, 0.95, content_keys=keys)
    got = removed_map(res, ids)
    expected = {f"n{i:03d}": (f"b{i:03d}", "near") for i in range(20)}
    expected |= {f"x{i:03d}": (f"b{40 + i:03d}", "exact") for i in range(10)}
    assert got == expected
    assert len(res.keep) == len(X) - 30 and np.all(np.diff(res.keep) > 0)
    assert set(res.keep.tolist()).isdisjoint(res.removed.tolist())
    assert res.n_exact == 10 and res.n_near == 20
    assert res.keep.dtype == res.removed.dtype == res.duplicate_of.dtype == np.int64
    assert res.similarity.dtype == np.float32
    np.testing.assert_array_equal(res.similarity[res.rule == "exact"], 1.0)
    assert res.similarity[res.rule == "near"].min() >= 0.95


def test_without_content_keys_exact_copies_are_near_duplicates():
    X, ids, _ = planted()
    res = deduplicate(X, ids, 0.95)
    assert set(res.rule.tolist()) == {"near"} and len(res.removed) == 30
    np.testing.assert_allclose(res.similarity[-10:], 1.0, atol=1e-5)


def chain(thr_cos=0.96):
    """A~B and B~C above 0.95, A vs C below it (angles 0, θ, 2θ in a plane), plus unrelated rows."""
    theta = np.arccos(thr_cos)
    d = 16
    e0, e1 = np.eye(d)[0], np.eye(d)[1]
    abc = np.stack([np.cos(k * theta) * e0 + np.sin(k * theta) * e1 for k in range(3)])
    others = np.eye(d)[2:]
    return np.concatenate([abc, others]).astype(np.float32)


def test_a_chain_removes_only_rows_similar_to_a_kept_row():
    """A~B~C with A and C distinct and A the smallest id: B goes as A's copy, C stays (connected components would
    have removed C as a copy of A, at a similarity below the threshold)."""
    X = chain()
    ids = ["a", "b", "c"] + [f"z{i}" for i in range(len(X) - 3)]
    res = deduplicate(X, ids, 0.95)
    assert removed_map(res, ids) == {"b": ("a", "near")}
    assert (res.similarity >= 0.95).all()


def test_removed_rows_are_within_the_threshold_of_their_kept_row():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((300, 32)).astype(np.float32)
    walk = [base]
    for _ in range(4):  # chains of small steps: neighbours similar, ends of a chain not
        walk.append(walk[-1] + 0.25 * rng.standard_normal(base.shape).astype(np.float32))
    X = np.concatenate(walk)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = [f"r{i:05d}" for i in range(len(X))]
    res = deduplicate(X, ids, 0.95)
    assert len(res.removed) > 0
    kept = X[res.duplicate_of]
    cos = np.einsum("ij,ij->i", X[res.removed], kept)
    np.testing.assert_allclose(cos, res.similarity, atol=1e-5)
    assert (res.similarity >= 0.95 - 1e-6).all()
    assert not np.isin(res.duplicate_of, res.removed).any()  # every removal points at a kept row
    kept_rows = X[res.keep]
    sims = kept_rows @ kept_rows.T
    np.fill_diagonal(sims, 0)
    assert sims.max() < 0.95  # and no two kept rows are copies of each other


def test_a_middle_row_with_the_smallest_id_removes_both_neighbours():
    X = chain()
    assert X[0] @ X[2] < 0.95
    ids = ["c", "a", "b"] + [f"z{i}" for i in range(len(X) - 3)]  # the middle of the chain has the smallest id
    res = deduplicate(X, ids, 0.95)
    assert removed_map(res, ids) == {"c": ("a", "near"), "b": ("a", "near")}


def test_exact_copy_of_a_near_removed_row_points_at_the_kept_row():
    X = chain()[:2]
    X = np.concatenate([X, X[1:2], np.eye(16, dtype=np.float32)[5:6]])  # rows: a, b, b', other
    ids, keys = ["a", "b", "c", "d"], ["one", "two", "TWO ", "three"]
    res = deduplicate(X, ids, 0.95, content_keys=keys)
    assert removed_map(res, ids) == {"b": ("a", "near"), "c": ("a", "exact")}
    np.testing.assert_allclose(res.similarity, 0.96, atol=1e-5)


def test_result_does_not_depend_on_row_order():
    X, ids, keys = planted(seed=3)
    base = deduplicate(X, ids, 0.95, content_keys=keys)
    ids_arr, keys_arr = np.array(ids), np.array(keys, dtype=object)
    for seed in range(3):
        p = np.random.default_rng(seed).permutation(len(X))
        res = deduplicate(X[p], ids_arr[p], 0.95, content_keys=list(keys_arr[p]))
        assert sorted(ids_arr[p][res.keep]) == sorted(ids_arr[base.keep])
        assert removed_map(res, ids_arr[p]) == removed_map(base, ids)


def clustered(seed=0, k=8, per=150, d=32):
    """k well-separated topics (so k-means buckets follow them), near copies inside each topic."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(k, d))) * 4
    base = unit(np.repeat(centres, per, axis=0) + rng.normal(size=(k * per, d)))
    src = rng.choice(len(base), 60, replace=False)
    near = unit(base[src] + 0.01 * rng.normal(size=(60, d)))
    X = np.concatenate([base, near]).astype(np.float32)
    return X, [f"r{i:05d}" for i in range(len(X))]


@pytest.mark.parametrize("nprobe", [1, 3])
def test_blocked_search_matches_exact_search(nprobe):
    X, ids = clustered()
    exact = deduplicate(X, ids, 0.97, block_clusters=1)
    assert len(exact.removed) >= 60
    blocked = deduplicate(X, ids, 0.97, block_clusters=8, nprobe=nprobe)
    np.testing.assert_array_equal(blocked.keep, exact.keep)
    np.testing.assert_array_equal(blocked.duplicate_of, exact.duplicate_of)
    p = np.random.default_rng(1).permutation(len(X))
    permuted = deduplicate(X[p], np.array(ids)[p], 0.97, block_clusters=8, nprobe=nprobe)
    assert removed_map(permuted, np.array(ids)[p]) == removed_map(exact, ids)


def test_pairs_are_unique_and_ordered():
    X, _ = clustered()
    U = np.ascontiguousarray(unit(X), dtype=np.float32)
    i, j, sim = near_duplicate_pairs(U, 0.97, block_clusters=8, nprobe=3)
    ie, je, _ = near_duplicate_pairs(U, 0.97)
    assert np.all(i < j) and len(set(zip(i.tolist(), j.tolist(), strict=True))) == len(i)
    assert set(zip(i.tolist(), j.tolist(), strict=True)) == set(zip(ie.tolist(), je.tolist(), strict=True))
    np.testing.assert_allclose(sim, np.einsum("ij,ij->i", U[i], U[j]), atol=1e-5)
    assert sim.min() >= 0.97 - 1e-6


def test_threshold_one_finds_identical_vectors_only():
    X, ids, _ = planted()
    res = deduplicate(X, ids, 1.0)
    assert sorted(ids[r] for r in res.removed) == [f"x{i:03d}" for i in range(10)]


def test_text_normalisation_and_exact_groups():
    assert normalise_text("  Hello\t\nWORLD  ") == "hello world"
    assert normalise_text("ｈｅｌｌｏ ﬁle") == "hello file"  # NFKC: full-width letters, ligature
    assert content_hash("Straße") == content_hash("STRASSE")  # casefold
    assert content_hash(b"abc") != content_hash(b"ABC")  # bytes are hashed as they are
    keys = ["Hello World", b"Hello World", "hello   world ", "HELLO\tWORLD", "other", b"abc", b"abc"]
    ids = ["k5", "k1", "k3", "k2", "k0", "k9", "k8"]
    rep = exact_duplicates(keys, ids)
    assert rep.dtype == np.int64
    np.testing.assert_array_equal(rep, [3, 1, 3, 3, 4, 6, 6])  # "k2" < "k3" < "k5"; b"Hello World" hashed raw


def test_near_duplicates_exclude():
    X, ids, _ = planted()
    rep = near_duplicates(X, 0.95, ids)
    assert rep[200] == 0 and rep[0] == 0
    mask = np.zeros(len(X), bool)
    mask[0] = True
    rep = near_duplicates(X, 0.95, ids, exclude=mask)
    assert rep[200] == 200 and rep[0] == 0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"threshold": 0.0}, "threshold"),
    ({"threshold": 1.5}, "threshold"),
    ({"threshold": float("nan")}, "threshold"),
    ({"X": np.zeros(5, np.float32)}, "2-D"),
    ({"X": np.array([[0.0, np.nan], [1.0, 0.0]], np.float32)}, "non-finite"),
    ({"ids": ["a"]}, "ids"),
    ({"ids": ["a", "a"]}, "unique"),
    ({"content_keys": ["x"]}, "content keys"),
    ({"block_clusters": 0}, "block_clusters"),
    ({"nprobe": 0}, "nprobe"),
])
def test_argument_errors(kwargs, match):
    args = {"X": np.eye(2, dtype=np.float32), "ids": ["a", "b"], "threshold": 0.9} | kwargs
    with pytest.raises(ValueError, match=match):
        deduplicate(**args)


def test_bad_content_key_type():
    with pytest.raises(TypeError, match="bytes or str"):
        exact_duplicates([1, 2], ["a", "b"])


def test_a_grown_pool_searched_from_known_pairs_equals_a_search_from_scratch():
    X, ids, keys = planted(seed=5)
    n = len(X)
    order = np.random.default_rng(1).permutation(n)
    first = np.sort(order[: int(0.7 * n)])  # yesterday's rows; today every row
    before = deduplicate(X[first], [ids[r] for r in first], 0.95, content_keys=[keys[r] for r in first])
    searched = np.zeros(n, dtype=bool)
    searched[first[before.searched]] = True
    i, j, sim = before.pairs
    known = KnownPairs(searched, first[i], first[j], sim)
    grown = deduplicate(X, ids, 0.95, content_keys=keys, known=known)
    scratch = deduplicate(X, ids, 0.95, content_keys=keys)
    for name in ("keep", "removed", "duplicate_of", "rule"):
        np.testing.assert_array_equal(getattr(grown, name), getattr(scratch, name))
    np.testing.assert_allclose(grown.similarity, scratch.similarity, atol=1e-6)
