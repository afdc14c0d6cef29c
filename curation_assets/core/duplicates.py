"""Exact and near-duplicate removal before clustering (the paper clusters a deduplicated pool).

Exact duplicates are found by hashing content (text after Unicode NFKC + casefold + whitespace
folding, or raw bytes). Near duplicates are pairs with cosine similarity ≥ threshold, found with
faiss range search: over the whole pool when it is small, else inside k-means buckets (SemDeDup's
blocking, so there is no n² step; every row probes its 3 nearest buckets). Groups are the
connected components of the pair graph; each keeps its member with the smallest id, so the result
does not depend on the order of the rows.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curation_assets.core._validation import as_float32_matrix, check_finite
from curation_assets.core.kmeans import NearestCentroid, kmeans, normalize_rows

EXACT_SEARCH_MAX_ROWS = 50_000
ROWS_PER_BUCKET = 2_000
NPROBE = 3


@dataclass(frozen=True)
class DedupResult:
    """Rows kept, rows removed with the kept row each duplicates, the rule and the cosine similarity."""

    keep: np.ndarray
    removed: np.ndarray
    duplicate_of: np.ndarray
    rule: np.ndarray
    similarity: np.ndarray


def normalise_text(text: str) -> str:
    """NFKC, casefold, whitespace folded: 'Hello  World' and 'hello world' are one text."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def content_hash(key: bytes | str) -> bytes:
    data = key if isinstance(key, bytes) else normalise_text(str(key)).encode("utf-8")
    return hashlib.sha1(data).digest()


def _representatives(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """For every row, the smallest row index of its connected component in the graph of pairs (i, j)."""
    graph = coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    first = np.full(component.max() + 1, n, dtype=np.int64)
    np.minimum.at(first, component, np.arange(n))
    return first[component]


def _range_pairs(X: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i < j of unit rows with inner product ≥ threshold (exact, faiss range search)."""
    index = faiss.IndexFlatIP(X.shape[1])
    index.add(X)
    lims, D, Ind = index.range_search(X, float(threshold) - 1e-6)
    rows = np.repeat(np.arange(len(X)), np.diff(lims).astype(np.int64))
    keep = rows < Ind
    return rows[keep], Ind[keep].astype(np.int64), D[keep]


def near_duplicate_pairs(X: np.ndarray, threshold: float, *, block_clusters: int | None = None,
                         seed: int = 0, nprobe: int = NPROBE) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i < j) of rows with cosine ≥ threshold.

    Exact range search for small inputs; above ``EXACT_SEARCH_MAX_ROWS`` (or with ``block_clusters``)
    an inverted file: k-means++-seeded buckets (~2000 rows each), every row stored in its nearest
    bucket and searched (exact, BLAS) in its ``nprobe`` nearest ones, so a pair split by a bucket
    border is still found when both rows lie near it.
    """
    X = normalize_rows(np.asarray(X, dtype=np.float32))
    n, d = X.shape
    if block_clusters is None:
        block_clusters = 1 if n <= EXACT_SEARCH_MAX_ROWS else max(2, n // ROWS_PER_BUCKET)
    if block_clusters <= 1:
        i, j, _ = _range_pairs(X, threshold)
        return i, j
    centroids = kmeans(X, block_clusters, n_iter=10, seed=seed, metric="cosine").centroids
    home = NearestCentroid(centroids, "cosine").search(X)[0]  # each row is stored in its nearest bucket
    probes = min(nprobe, block_clusters)
    _, visit = faiss.knn(X, centroids, probes, metric=faiss.METRIC_INNER_PRODUCT)  # and searches `probes`
    members = _group(home, block_clusters)
    visitors = _group(visit.ravel(), block_clusters, np.repeat(np.arange(n), probes))
    pairs_i, pairs_j = [], []
    for b in range(block_clusters):
        if len(members[b]) == 0 or len(visitors[b]) == 0:
            continue
        index = faiss.IndexFlatIP(d)
        index.add(np.ascontiguousarray(X[members[b]]))
        q = visitors[b]
        lims, _, Ind = index.range_search(np.ascontiguousarray(X[q]), float(threshold) - 1e-6)
        rows = q[np.repeat(np.arange(len(q)), np.diff(lims).astype(np.int64))]
        cols = members[b][Ind]
        keep = rows < cols
        pairs_i.append(rows[keep])
        pairs_j.append(cols[keep])
    if not pairs_i:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pairs = np.unique(np.stack([np.concatenate(pairs_i), np.concatenate(pairs_j)], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def _group(keys: np.ndarray, n_groups: int, values: np.ndarray | None = None) -> list[np.ndarray]:
    """values (default: positions) grouped by key, as a list indexed by key."""
    values = np.arange(len(keys)) if values is None else values
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n_groups + 1))
    return [values[order[bounds[g] : bounds[g + 1]]] for g in range(n_groups)]


def deduplicate(X, ids: Sequence[str], threshold: float, content_keys: Sequence[bytes | str] | None = None, *,
                block_clusters: int | None = None, seed: int = 0) -> DedupResult:
    """Exact duplicates first (by content hash, when ``content_keys`` are given), then near duplicates
    (cosine ≥ ``threshold``) among the survivors. Indices in the result refer to the rows of X."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    X = as_float32_matrix(X)
    check_finite(X)
    n = X.shape[0]
    ids = np.asarray(ids, dtype=object).astype(str)
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} rows")
    if len(np.unique(ids)) != n:
        raise ValueError("ids must be unique")
    if content_keys is not None and len(content_keys) != n:
        raise ValueError(f"{len(content_keys)} content keys for {n} rows")
    canon = np.argsort(ids, kind="stable")  # work in id order: the result cannot depend on the row order
    rep = np.arange(n)
    rule = np.full(n, "", dtype=object)
    if content_keys is not None:
        hashes = np.array([content_hash(content_keys[r]) for r in canon], dtype=object)
        order = np.lexsort((np.arange(n), hashes.astype("S20")))
        same = np.concatenate([[False], hashes[order][1:] == hashes[order][:-1]])
        group_first = np.maximum.accumulate(np.where(~same, np.arange(n), 0))
        rep[order] = order[group_first]
        rule[rep != np.arange(n)] = "exact"
    survivors = np.flatnonzero(rep == np.arange(n))
    Xc = np.asarray(X[canon[survivors]] if len(survivors) < n else X[canon], dtype=np.float32)
    i, j = near_duplicate_pairs(Xc, threshold, block_clusters=block_clusters, seed=seed)
    near_rep = survivors[_representatives(len(survivors), i, j)]
    is_near = near_rep != survivors
    rep[survivors] = near_rep
    rule[survivors[is_near]] = "near"
    rep = rep[rep]  # an exact copy of a near-removed row points at the final representative
    removed_c = np.flatnonzero(rep != np.arange(n))
    unit = normalize_rows(np.asarray(X[canon[np.union1d(removed_c, rep[removed_c])]], dtype=np.float32)) \
        if len(removed_c) else None
    if unit is not None:
        lookup = {r: k for k, r in enumerate(np.union1d(removed_c, rep[removed_c]))}
        sim = np.array([unit[lookup[a]] @ unit[lookup[b]] for a, b in zip(removed_c, rep[removed_c], strict=True)],
                       dtype=np.float32)
        sim[rule[removed_c] == "exact"] = 1.0
    else:
        sim = np.empty(0, np.float32)
    order = np.argsort(canon[removed_c])
    return DedupResult(
        keep=np.sort(canon[rep == np.arange(n)]).astype(np.int64),
        removed=canon[removed_c][order].astype(np.int64),
        duplicate_of=canon[rep[removed_c]][order].astype(np.int64),
        rule=rule[removed_c][order].astype(str),
        similarity=sim[order],
    )
