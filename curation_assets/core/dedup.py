"""Near-duplicate removal before clustering, as SemDeDup / NeMo Curator do.

Two passes, both independent of the order of the input rows:

1. exact duplicates: rows whose content keys hash alike (sha1 of the bytes; text is first
   normalised: Unicode NFKC, casefold, whitespace collapsed and stripped);
2. near duplicates among the survivors: pairs of rows with cosine similarity >= threshold, found
   with faiss on L2-normalised rows, by exact range search over the whole pool when it is small,
   else inside k-means buckets (SemDeDup's blocking: no n² step; every row also probes its
   ``nprobe`` nearest buckets, so a pair split by a bucket border is still found when both rows
   lie near it).

Which rows stay is decided greedily in id order (string order), as SemDeDup keeps one row per
epsilon-ball: a row is kept unless it lies within the threshold of a row with a smaller id that is
itself kept, and a removed row points at the most similar such kept row. So a row is only ever removed
as a copy of a kept row it is itself similar to: a chain A~B~C where A and C differ keeps both A and C,
where connected components would have merged all three. All work is done in id order, so permuting
the input rows permutes nothing in the result but the row indices.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

from curation_assets.core._validation import as_float32_matrix, check_finite
from curation_assets.core.clustering import kmeans
from curation_assets.core.linalg import unit_rows

EXACT_SEARCH_MAX_ROWS = 50_000  # above this, near duplicates are searched inside k-means buckets
ROWS_PER_BUCKET = 2_000  # default bucket size of the blocked search (SemDeDup uses a few thousand)
DEFAULT_NPROBE = 3  # buckets every row is compared against in the blocked search
BLOCK_KMEANS_ITER = 10
SIM_TOLERANCE = 1e-6  # float32 rounding: cos >= threshold - 1e-6 counts (threshold=1.0 finds identical rows)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DedupResult:
    """Rows kept and removed; for each removed row the kept row it duplicates, the rule and the cosine.

    keep: sorted int64 row indices kept. removed: sorted int64 row indices removed; duplicate_of,
    rule ("exact" or "near") and similarity (float32 cosine to the kept row, 1.0 for exact copies of
    it) are aligned with ``removed``. ``pairs`` (i, j, cosine; rows of X) are every near pair among the
    rows that took part in the near search (``searched``): pass them back as ``known`` when the pool grows.
    """

    keep: np.ndarray
    removed: np.ndarray
    duplicate_of: np.ndarray
    rule: np.ndarray
    similarity: np.ndarray
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray] = (np.empty(0, np.int64), np.empty(0, np.int64),
                                                        np.empty(0, np.float32))
    searched: np.ndarray | None = None

    @property
    def n_exact(self) -> int:
        return int((self.rule == "exact").sum())

    @property
    def n_near(self) -> int:
        return int((self.rule == "near").sum())


@dataclass(frozen=True)
class KnownPairs:
    """What an earlier search already found: among the rows marked ``searched`` (bool, shape (n,)), every near
    pair is in (i, j, cosine) (rows of X). Only the other rows are searched, against all rows."""

    searched: np.ndarray
    i: np.ndarray
    j: np.ndarray
    similarity: np.ndarray


# --------------------------------------------------------------------------- validation, helpers


def _check_threshold(threshold: float) -> float:
    if not 0 < threshold <= 1:  # also rejects NaN
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    return float(threshold)


def _check_ids(ids: Sequence[str], n: int) -> np.ndarray:
    """ids as a numpy str array; raises unless there are n of them, all distinct."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"ids must be a 1-D sequence, got shape {arr.shape}")
    if arr.dtype.kind != "U":
        arr = arr.astype(str)
    if len(arr) != n:
        raise ValueError(f"got {len(arr)} ids for {n} rows")
    uniq, counts = np.unique(arr, return_counts=True)
    if len(uniq) != n:
        dup = uniq[counts > 1]
        raise ValueError(f"ids must be unique: {len(dup)} repeated, e.g. {dup[0]!r}")
    return arr


def _check_block_params(block_clusters: int | None, nprobe: int) -> None:
    if block_clusters is not None and block_clusters < 1:
        raise ValueError(f"block_clusters must be >= 1 or None, got {block_clusters}")
    if nprobe < 1:
        raise ValueError(f"nprobe must be >= 1, got {nprobe}")


def greedy_keep(n: int, i: np.ndarray, j: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep-smallest-id against kept rows, for rows 0..n-1 in id order and near pairs (i < j, cosine ``sim``).

    Returns (``kept_as``, ``similarity``): ``kept_as[r]`` is r for a kept row, else the kept row with a smaller
    id that r is most similar to (ties: the smaller id), and ``similarity[r]`` that cosine (1.0 when kept).
    """
    kept_as = np.arange(n, dtype=np.int64)
    best = np.ones(n, dtype=np.float32)
    if len(i) == 0:
        return kept_as, best
    order = np.lexsort((j, i))
    i, j, sim = i[order], j[order], np.asarray(sim, dtype=np.float32)[order]
    starts = np.searchsorted(i, np.arange(n + 1))
    best[:] = -np.inf
    removed = np.zeros(n, dtype=bool)
    for row in np.unique(i):  # ascending: a row's own fate is settled before it can remove others
        if removed[row]:
            continue
        later, s = j[starts[row] : starts[row + 1]], sim[starts[row] : starts[row + 1]]
        removed[later] = True
        closer = s > best[later]
        best[later[closer]] = s[closer]
        kept_as[later[closer]] = row
    best[~removed] = 1.0
    return kept_as, best


# --------------------------------------------------------------------------- exact duplicates


def normalise_text(text: str) -> str:
    """NFKC, casefold, whitespace collapsed and stripped: '  Hello\\tWORLD ' -> 'hello world'."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def content_hash(key: bytes | str) -> bytes:
    """sha1 digest (20 bytes) of raw bytes, or of normalised text encoded as UTF-8.

    Bytes are not normalised, so b"hello world" matches "Hello  World" but b"Hello World" does not.
    """
    if isinstance(key, str):
        return hashlib.sha1(normalise_text(key).encode("utf-8")).digest()
    if isinstance(key, bytes | bytearray | memoryview):
        return hashlib.sha1(bytes(key)).digest()
    raise TypeError(f"content keys must be bytes or str, got {type(key).__name__}")


def exact_duplicates(keys: Sequence[bytes | str], ids: Sequence[str]) -> np.ndarray:
    """For every row, the row index of its exact-duplicate group's representative (int64, shape (n,)).

    Rows group by content hash (see ``content_hash``); the representative is the member with the
    smallest id, so the grouping does not depend on the row order. Rows with ``rep[i] == i`` survive.
    """
    n = len(keys)
    ids = _check_ids(ids, n)
    return _exact_rep(keys, np.argsort(ids, kind="stable"))


def _exact_rep(keys: Sequence[bytes | str], canon: np.ndarray) -> np.ndarray:
    hashes = np.array([content_hash(k) for k in keys], dtype="S20")[canon]  # id order
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    rep = np.empty(len(canon), dtype=np.int64)
    rep[canon] = canon[first[inverse.ravel()]]  # first in id order = smallest id
    return rep


# --------------------------------------------------------------------------- near duplicates


def _range_pairs(U: np.ndarray, Q: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query row, base row, inner product) of every pair with inner product > radius (faiss, exact)."""
    index = faiss.IndexFlatIP(U.shape[1])
    index.add(U)
    lims, D, Ind = index.range_search(Q, radius)
    q = np.repeat(np.arange(len(Q), dtype=np.int64), np.diff(lims).astype(np.int64))
    return q, Ind.astype(np.int64), D


def _group_by(keys: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """(order, bounds): positions sorted by key; those with key g are order[bounds[g]:bounds[g+1]]."""
    order = np.argsort(keys, kind="stable")
    return order, np.searchsorted(keys[order], np.arange(n_groups + 1))


def near_duplicate_pairs(U: np.ndarray, threshold: float, *, block_clusters: int | None = None, seed: int = 0,
                         nprobe: int = DEFAULT_NPROBE,
                         progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j, unique) of unit rows of U with cosine >= threshold, and their cosine (float32).

    ``block_clusters`` None: exact range search when n <= ``EXACT_SEARCH_MAX_ROWS``, else
    ~n / ``ROWS_PER_BUCKET`` k-means buckets; 1: always exact. Blocked: spherical k-means (``seed``)
    places every row in its nearest bucket, and every row is compared (exactly) with the rows of its
    ``nprobe`` nearest buckets. U must be C-contiguous float32 with unit (or zero) rows.
    ``progress(done, total)`` is called after every bucket searched.
    """
    threshold = _check_threshold(threshold)
    _check_block_params(block_clusters, nprobe)
    n, d = U.shape
    radius = threshold - SIM_TOLERANCE
    if block_clusters is None:
        block_clusters = 1 if n <= EXACT_SEARCH_MAX_ROWS else max(2, round(n / ROWS_PER_BUCKET))
    block_clusters = min(block_clusters, n)
    if block_clusters <= 1:
        i, j, sim = _range_pairs(U, U, radius)
        keep = i < j
        return i[keep], j[keep], sim[keep]
    centroids = kmeans(U, block_clusters, n_iter=BLOCK_KMEANS_ITER, seed=seed, metric="cosine").centroids
    probes = min(nprobe, block_clusters)
    _, visit = faiss.knn(U, centroids, probes, metric=faiss.METRIC_INNER_PRODUCT)
    home = visit[:, 0]  # stored in the nearest bucket, searched from the `probes` nearest
    m_order, m_bounds = _group_by(home, block_clusters)
    v_order, v_bounds = _group_by(visit.ravel(), block_clusters)
    keys, sims = [], []
    for b in range(block_clusters):
        if progress is not None:
            progress(b, block_clusters)
        members = m_order[m_bounds[b] : m_bounds[b + 1]]
        queries = v_order[v_bounds[b] : v_bounds[b + 1]] // probes  # flat (row, probe) position -> row
        if len(members) == 0 or len(queries) == 0:
            continue
        q, m, sim = _range_pairs(np.ascontiguousarray(U[members]), np.ascontiguousarray(U[queries]), radius)
        a, c = queries[q], members[m]
        lo, hi = np.minimum(a, c), np.maximum(a, c)
        keep = lo < hi
        keys.append(lo[keep] * n + hi[keep])
        sims.append(sim[keep])
    if not keys:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    key, first = np.unique(np.concatenate(keys), return_index=True)  # a pair may be found from both sides
    return key // n, key % n, np.concatenate(sims)[first]


def near_duplicates(X, threshold: float, ids: Sequence[str], *, block_clusters: int | None = None, seed: int = 0,
                    nprobe: int = DEFAULT_NPROBE, exclude: np.ndarray | None = None,
                    progress: Progress | None = None) -> np.ndarray:
    """For every row, the row it is removed as a near duplicate of, or itself when kept (int64, shape (n,)).

    Greedy in id order (module docstring; see ``near_duplicate_pairs`` for the search). ``exclude`` (bool
    mask, shape (n,)) marks rows that take no part (they map to themselves).
    """
    threshold = _check_threshold(threshold)
    _check_block_params(block_clusters, nprobe)
    X = as_float32_matrix(X)
    check_finite(X)
    ids = _check_ids(ids, X.shape[0])
    rep, _, _ = _near_rep(X, np.argsort(ids, kind="stable"), threshold, exclude, block_clusters, seed, nprobe,
                          progress)
    return rep


def _near_rep(X: np.ndarray, canon: np.ndarray, threshold: float, exclude: np.ndarray | None,
              block_clusters: int | None, seed: int, nprobe: int, progress: Progress | None,
              known: KnownPairs | None = None) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(row each row is kept as, cosine to it, the near pairs found (rows of X)) over the rows not excluded,
    greedily in id order."""
    n = X.shape[0]
    rows = canon
    if exclude is not None:
        exclude = np.asarray(exclude, dtype=bool)
        if exclude.shape != (n,):
            raise ValueError(f"exclude must be a bool mask of shape ({n},), got {exclude.shape}")
        rows = canon[~exclude[canon]]
    rep, sim = np.arange(n, dtype=np.int64), np.ones(n, dtype=np.float32)
    if len(rows) < 2:
        return rep, sim, (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    U = unit_rows(np.ascontiguousarray(X[rows], dtype=np.float32), inplace=True)  # fancy index = one copy, id order
    if known is None:
        i, j, pair_sim = near_duplicate_pairs(U, threshold, block_clusters=block_clusters, seed=seed, nprobe=nprobe,
                                              progress=progress)
    else:
        i, j, pair_sim = _pairs_with_known(U, rows, known, threshold)
    del U
    kept_as, best = greedy_keep(len(rows), i, j, pair_sim)
    rep[rows], sim[rows] = rows[kept_as], best
    return rep, sim, (rows[i], rows[j], pair_sim)


def _pairs_with_known(U: np.ndarray, rows: np.ndarray, known: KnownPairs, threshold: float):
    """Near pairs (positions in ``rows``, i < j) from the known ones among searched rows, plus an exact search of
    the rows not searched yet against all rows."""
    position = np.full(len(known.searched), -1, dtype=np.int64)
    position[rows] = np.arange(len(rows))
    a, b = position[known.i], position[known.j]
    old = (a >= 0) & (b >= 0)
    fresh = np.flatnonzero(~np.asarray(known.searched)[rows])
    q, base, found = _range_pairs(U, np.ascontiguousarray(U[fresh]), threshold - SIM_TOLERANCE) if len(fresh) else \
        (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))
    q = fresh[q]
    lo = np.concatenate([np.minimum(a[old], b[old]), np.minimum(q, base)])
    hi = np.concatenate([np.maximum(a[old], b[old]), np.maximum(q, base)])
    sims = np.concatenate([np.asarray(known.similarity, np.float32)[old], found.astype(np.float32)])
    keep = lo < hi
    key, first = np.unique(lo[keep] * len(rows) + hi[keep], return_index=True)  # a new pair is found from both ends
    return key // len(rows), key % len(rows), sims[keep][first]


# --------------------------------------------------------------------------- both passes


def deduplicate(X, ids: Sequence[str], threshold: float, content_keys: Sequence[bytes | str] | None = None, *,
                block_clusters: int | None = None, seed: int = 0, nprobe: int = DEFAULT_NPROBE,
                progress: Progress | None = None, known: KnownPairs | None = None) -> DedupResult:
    """Exact duplicates first (by content hash, when ``content_keys`` are given), then near duplicates
    (cosine >= ``threshold``) among the survivors; indices in the result refer to the rows of X.

    An exact copy of a row that is itself removed as a near duplicate points at the kept row that row
    duplicates (rule "exact", similarity = the cosine of its exact group's representative to that row, so
    every reported similarity is >= threshold). Kept ids do not depend on the order of the rows.
    ``progress(done, total)`` follows the near-duplicate search. ``known``: the pairs an earlier search found
    (a grown pool): only rows not searched then are searched now, exactly, against all rows; with an exact
    search both ways the result equals a search from scratch.
    """
    threshold = _check_threshold(threshold)
    _check_block_params(block_clusters, nprobe)
    X = as_float32_matrix(X)
    check_finite(X)
    n = X.shape[0]
    ids = _check_ids(ids, n)
    canon = np.argsort(ids, kind="stable")
    rows = np.arange(n, dtype=np.int64)
    if content_keys is not None:
        if len(content_keys) != n:
            raise ValueError(f"got {len(content_keys)} content keys for {n} rows")
        exact_rep = _exact_rep(content_keys, canon)
    else:
        exact_rep = rows
    near_rep, near_sim, pairs = _near_rep(X, canon, threshold, exact_rep != rows, block_clusters, seed, nprobe,
                                          progress, known)
    final = near_rep[exact_rep]  # exact_rep is a survivor, near_rep maps it to the kept row it duplicates
    removed = np.flatnonzero(final != rows)
    dup_of = final[removed]
    via = exact_rep[removed]  # the survivor each removed row stands for (itself for near duplicates)
    is_exact = via != removed
    sim = near_sim[via]  # 1.0 for exact copies of a kept row; else the survivor's cosine to its kept row
    return DedupResult(
        keep=np.flatnonzero(final == rows).astype(np.int64),
        removed=removed.astype(np.int64),
        duplicate_of=dup_of.astype(np.int64),
        rule=np.where(is_exact, "exact", "near").astype(str),
        similarity=sim,
        pairs=pairs,
        searched=exact_rep == rows,
    )
