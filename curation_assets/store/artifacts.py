"""The artefacts assets hand each other, as lazy handles: every loader and writer of the data flow.

Each handle is opened from its directory's record (see :mod:`records`) and knows the fingerprint of
the artefact it was computed from, so a handle over stale inputs fails loudly instead of mixing rows.
There is one row index after dedup: :class:`Pool` (row i = ``ids[i]`` = ``X[i]``). Levels are fitted on
it, :class:`Tree` carries it, and a subset's ids are gathered from exactly those rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from curation_assets.core import HierarchicalClustering, Level
from curation_assets.store.dataset import DATA_DIR, DatasetWriter
from curation_assets.store.embedding_cache import KEY_BYTES
from curation_assets.store.files import atomic_path, load_npy, save_npy, save_parquet
from curation_assets.store.layout import Layout
from curation_assets.store.records import Record, read_record
from curation_assets.store.shards import ShardedArray, ShardWriter
from curation_assets.store.webdataset import WebDatasetWriter

LEVEL_FILES = ("centroids", "assignment", "distances", "sizes")


class StaleInputError(RuntimeError):
    """An artefact was computed from an older version of its input: materialize it again."""


def _check_input(record: Record, upstream: Record, asset: str, upstream_asset: str) -> None:
    if record.facts.get("input") != upstream.fingerprint:
        raise StaleInputError(f"{asset} was computed from another version of {upstream_asset} than the one on "
                              f"disk: materialize {asset} again")


@dataclass(frozen=True)
class _Recorded:
    """What every handle shares: the record of its directory, and the fingerprint in it."""

    record: Record
    ASSET: ClassVar[str]

    @property
    def fingerprint(self) -> str:
        return self.record.fingerprint

    @classmethod
    def _record_over(cls, directory: Path, upstream: _Recorded) -> Record:
        """The record of ``directory``, refused when it was computed from another version of ``upstream``."""
        record = read_record(directory, cls.ASSET)
        _check_input(record, upstream.record, cls.ASSET, upstream.ASSET)
        return record


@dataclass(frozen=True)
class _Stored(_Recorded):
    """A handle on one artefact directory of a modality, by its record."""

    layout: Layout


@dataclass(frozen=True)
class Corpus(_Stored):
    """``raw_corpus``: the modality's items as one Parquet table: ``id``, the content column, ``label``."""

    ASSET = "raw_corpus"

    @classmethod
    def open(cls, layout: Layout) -> Corpus:
        return cls(read_record(layout.corpus_dir, cls.ASSET), layout)

    @staticmethod
    def path_of(layout: Layout) -> Path:
        return layout.corpus_dir / "corpus.parquet"

    @staticmethod
    @contextlib.contextmanager
    def writer(layout: Layout, row_group_rows: int = 8192) -> Iterator[CorpusWriter]:
        """Stream batches into the corpus (bounded row groups, so a task reads only the groups holding its
        rows); it replaces the corpus when the block succeeds and every id is unique."""
        with atomic_path(Corpus.path_of(layout)) as tmp:
            writer = CorpusWriter(tmp, row_group_rows)
            try:
                yield writer
            finally:
                writer.close()
            writer.check()

    def head(self, n: int = 5) -> pl.DataFrame:
        return pl.read_parquet(self.path, n_rows=n)

    @property
    def path(self) -> Path:
        return self.path_of(self.layout)

    @property
    def content_column(self) -> str:
        return self.record.facts["content_column"]

    @property
    def columns(self) -> list[str]:
        return pq.read_schema(self.path).names

    def column(self, name: str, rows: np.ndarray | None = None) -> pl.Series:
        """One column, for all corpus rows or the given row numbers (in that order)."""
        series = pl.read_parquet(self.path, columns=[name])[name]
        return series if rows is None else series.gather(rows)

    def column_groups(self, name: str) -> Iterator[pl.Series]:
        """One column, one Parquet row group at a time (bounded memory)."""
        parquet = pq.ParquetFile(self.path)
        for g in range(parquet.num_row_groups):
            yield pl.from_arrow(parquet.read_row_group(g, columns=[name]))[name]

    def keep_rows(self, keep: np.ndarray, row_group_rows: int = 8192) -> None:
        """Rewrite the corpus with only the rows where ``keep`` (bool, one per row) is set, group by group."""
        parquet, start = pq.ParquetFile(self.path), 0
        with Corpus.writer(self.layout, row_group_rows) as corpus:
            for g in range(parquet.num_row_groups):
                group = pl.from_arrow(parquet.read_row_group(g))
                corpus.write(group.filter(pl.Series(keep[start : start + len(group)])))
                start += len(group)

    def batches(self, rows: np.ndarray, columns: list[str]) -> Iterator[pl.DataFrame]:
        """The given corpus rows (sorted row numbers, repeats allowed), in order, one Parquet row group at a
        time: memory stays bounded by a row group whatever the corpus size."""
        parquet = pq.ParquetFile(self.path)
        ends = np.cumsum([parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
        group_of = np.searchsorted(ends, rows, side="right")
        for g in np.unique(group_of):
            local = rows[group_of == g] - (ends[g - 1] if g else 0)
            yield pl.from_arrow(parquet.read_row_group(int(g), columns=columns)).select(columns)[local]

    def take(self, rows: np.ndarray, columns: list[str]) -> pl.DataFrame:
        """A few corpus rows (any order) without reading more than the row groups holding them."""
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        frame = pl.concat(list(self.batches(rows[order], columns)))
        return frame[np.argsort(order, kind="stable")]


class CorpusWriter:
    """Appends canonical batches (id, content, label) to one Parquet file."""

    def __init__(self, path: Path, row_group_rows: int):
        self.path, self.row_group_rows, self.rows, self._writer = path, row_group_rows, 0, None

    def write(self, frame: pl.DataFrame) -> None:
        table = frame.to_arrow()
        self._writer = self._writer or pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table, row_group_size=self.row_group_rows)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()

    def check(self) -> None:
        """Refuse an empty corpus or a repeated id (named)."""
        if self.rows == 0:
            raise ValueError("the corpus is empty: no rows to curate")
        ids = pl.read_parquet(self.path, columns=["id"])["id"]
        if ids.n_unique() != self.rows:
            raise ValueError(f"duplicate id {ids.filter(ids.is_duplicated())[0]!r} in the corpus: ids must be unique")


@dataclass(frozen=True)
class Embeddings(_Stored):
    """``embeddings``: one vector per embedded corpus row, as memory-mapped ``.npy`` shards."""

    ASSET = "embeddings"

    @classmethod
    def open(cls, layout: Layout) -> Embeddings:
        return cls(cls._record_over(layout.embeddings_dir, Corpus.open(layout)), layout)

    @staticmethod
    def writer(layout: Layout, dtype: str) -> ShardWriter:
        return ShardWriter(layout.embeddings_dir, dtype=dtype)

    @staticmethod
    def save_rows(layout: Layout, rows: pl.DataFrame) -> None:
        """``id, corpus_row`` (and the content ``key`` when the vectors came through the cache) of every shard
        row, in shard order."""
        save_parquet(layout.embeddings_dir / "rows.parquet", rows.select("id", "corpus_row", *(
            ["key"] if "key" in rows.columns else [])))

    @staticmethod
    def keys_in_use(layout: Layout, cache: str, current: np.ndarray | None) -> np.ndarray:
        """Content keys of every published ``embeddings`` artefact (any modality) whose vectors live in the model
        cache ``cache``, plus ``current`` (the artefact of ``layout``'s modality being written, which replaces its
        published one): what cache eviction must keep."""
        keys = [] if current is None else [current]
        for record_file in (layout.root / "embeddings").glob(".*.record.json"):
            modality = record_file.name[1 : -len(".record.json")]
            if modality == layout.modality:
                continue
            record = Record.read(record_file.parent / modality)
            rows = record_file.parent / modality / "rows.parquet"
            if record is not None and record.facts.get("cache") == cache and "key" in pq.read_schema(rows).names:
                keys.append(pl.read_parquet(rows, columns=["key"])["key"].to_numpy().astype(f"S{KEY_BYTES}"))
        return np.concatenate(keys) if keys else np.empty(0, dtype=f"S{KEY_BYTES}")

    @cached_property
    def X(self) -> ShardedArray:
        return ShardedArray.open(self.layout.embeddings_dir)

    @cached_property
    def rows(self) -> pl.DataFrame:
        return pl.read_parquet(self.layout.embeddings_dir / "rows.parquet")

    @cached_property
    def corpus(self) -> Corpus:
        return Corpus.open(self.layout)


@dataclass(frozen=True)
class Pool(_Stored):
    """``deduplicated``: the pool every later step curates, the one row index after dedup.

    Row i of the pool is ``ids[i]``, its vector ``X[i]`` (row ``embedding_row[i]`` of the shards) and
    row ``corpus_row[i]`` of the corpus. Nothing downstream derives the pool another way.
    """

    table: pl.DataFrame
    ASSET = "deduplicated"

    @classmethod
    def open(cls, layout: Layout) -> Pool:
        record = cls._record_over(layout.pool_dir, Embeddings.open(layout))
        return cls(record, layout, pl.read_parquet(layout.pool_dir / "pool.parquet"))

    @staticmethod
    def write(layout: Layout, table: pl.DataFrame, removed: pl.DataFrame) -> None:
        """``table``: id, embedding_row, corpus_row of every kept row; ``removed``: the audit of the rest."""
        save_parquet(layout.pool_dir / "pool.parquet", table.select("id", "embedding_row", "corpus_row"))
        save_parquet(layout.pool_dir / "removed.parquet", removed)

    @staticmethod
    def write_search(layout: Layout, pairs: pl.DataFrame, searched: pl.DataFrame) -> None:
        """The near pairs found (key_a, key_b, similarity) and the content keys searched, for the next run."""
        save_parquet(layout.pool_dir / "near_pairs.parquet", pairs)
        save_parquet(layout.pool_dir / "searched.parquet", searched)

    @staticmethod
    def read_search(directory: Path) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """(near pairs, searched keys) a published pool directory holds, or None."""
        pairs, searched = directory / "near_pairs.parquet", directory / "searched.parquet"
        if not (pairs.is_file() and searched.is_file()):
            return None
        return pl.read_parquet(pairs), pl.read_parquet(searched)

    @staticmethod
    def published_ids(directory: Path) -> pl.Series:
        """The ids of the pool published in ``directory`` (the previous one, while a new one is computed)."""
        return pl.read_parquet(directory / "pool.parquet", columns=["id"])["id"]

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ids(self) -> pl.Series:
        return self.table["id"]

    @cached_property
    def embeddings(self) -> Embeddings:
        return Embeddings.open(self.layout)

    @cached_property
    def X(self) -> ShardedArray:
        """The pool's vectors, a memory-mapped view (nothing copied)."""
        rows = self.table["embedding_row"].to_numpy()
        full = self.embeddings.X
        return full if np.array_equal(rows, np.arange(len(full))) else full.subset(rows)

    @property
    def corpus(self) -> Corpus:
        return self.embeddings.corpus

    def labels(self) -> np.ndarray | None:
        """The label of every pool row (None where a row has none), or None when no row has one."""
        labels = self.corpus.column("label", self.table["corpus_row"].to_numpy())
        return None if labels.null_count() == len(labels) else labels.to_numpy()

    @cached_property
    def removed(self) -> pl.DataFrame:
        return pl.read_parquet(self.layout.pool_dir / "removed.parquet")


@dataclass(frozen=True)
class Tree:
    """``clustering_level_t``: the hierarchy fitted up to level t, on exactly the rows of ``pool``.

    ``levels`` holds the levels in use (a modality configured with fewer levels passes the upper level
    assets through); ``ids`` are the pool ids the tree was fitted on, in the order of its rows.
    """

    pool: Pool
    levels: tuple[Level, ...]
    records: tuple[Record, ...]

    @classmethod
    def of_pool(cls, pool: Pool) -> Tree:
        """The tree before level 1: no level yet, the pool's vectors to cluster."""
        return cls(pool, (), ())

    @classmethod
    def open(cls, layout: Layout, t: int, pool: Pool | None = None) -> Tree:
        pool = pool or Pool.open(layout)
        upstream, upstream_asset, levels, records = pool.record, Pool.ASSET, [], []
        for s in range(1, t + 1):
            asset = f"clustering_level_{s}"
            record = read_record(layout.level_dir(s), asset)
            _check_input(record, upstream, asset, upstream_asset)
            if record.facts.get("used"):
                d = layout.level_dir(s)
                levels.append(Level(*(load_npy(d / f"{name}.npy", mmap=False) for name in LEVEL_FILES[:3])))
            records.append(record)
            upstream, upstream_asset = record, asset
        if levels and len(levels[0].assignment) != len(pool):
            raise StaleInputError(f"level 1 assigns {len(levels[0].assignment)} rows but the pool has {len(pool)}: "
                                  "materialize clustering_level_1 again")
        return cls(pool, tuple(levels), tuple(records))

    @staticmethod
    def write_level(layout: Layout, t: int, level: Level | None, sizes: np.ndarray | None = None) -> None:
        """Level t's files; ``level`` None marks a pass-through level (its old files are removed)."""
        d = layout.level_dir(t)
        if level is None:
            for name in LEVEL_FILES:
                (d / f"{name}.npy").unlink(missing_ok=True)
            return
        for name, array in zip(LEVEL_FILES, (level.centroids, level.assignment, level.distances, sizes), strict=True):
            save_npy(d / f"{name}.npy", array)

    @property
    def fingerprint(self) -> str:
        return self.records[-1].fingerprint if self.records else self.pool.fingerprint

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def ids(self) -> pl.Series:
        return self.pool.ids

    @cached_property
    def hierarchy(self) -> HierarchicalClustering:
        return HierarchicalClustering(self.levels, n_points=len(self.pool))

    def next_input(self):
        """What the next level clusters: the pool's vectors, or the centroids of the top level."""
        return self.pool.X if not self.levels else self.levels[-1].centroids

    def cluster_sizes(self, t: int) -> np.ndarray:
        """Pool points under every cluster of level t."""
        return self.hierarchy.cluster_sizes(t)


@dataclass(frozen=True)
class Subset(_Recorded):
    """``balanced_subset``: the published subset, ``subset.parquet`` (id, cluster_level_1 … L)."""

    tree: Tree
    frame: pl.DataFrame
    ASSET = "balanced_subset"

    @classmethod
    def open(cls, layout: Layout) -> Subset:
        record = read_record(layout.subset_dir, cls.ASSET)
        tree = Tree.open(layout, record.facts["tree_level"])
        _check_input(record, tree.records[-1], cls.ASSET, f"clustering_level_{record.facts['tree_level']}")
        return cls(record, tree, pl.read_parquet(cls.path_of(layout)))

    @staticmethod
    def path_of(layout: Layout) -> Path:
        return layout.subset_dir / "subset.parquet"

    @staticmethod
    def published_ids(path: Path) -> pl.Series | None:
        """The distinct ids of a published ``subset.parquet`` (the previous one, while a new one is drawn)."""
        return pl.read_parquet(path, columns=["id"])["id"].unique() if path.is_file() else None

    @staticmethod
    def write(layout: Layout, tree: Tree, rows: np.ndarray) -> pl.DataFrame:
        """Publish the pool rows ``rows`` the sampler chose: their ids (gathered from the tree's own pool)
        and their cluster at every level. Returns the written frame."""
        columns = {"id": tree.ids.gather(rows)}
        for t in range(1, tree.n_levels + 1):
            columns[f"cluster_level_{t}"] = pl.Series(tree.hierarchy.labels(t)[rows], dtype=pl.Int64)
        frame = pl.DataFrame(columns)
        save_parquet(Subset.path_of(layout), frame)
        return frame

    def __len__(self) -> int:
        return len(self.frame)

    @cached_property
    def rows(self) -> np.ndarray:
        """The pool row of every published id, in file order (a repeated id repeats its row)."""
        position = self.tree.pool.table.select("id", pl.int_range(pl.len(), dtype=pl.Int64).alias("row"))
        joined = self.frame.select("id").join(position, on="id", how="left", maintain_order="left")
        if joined["row"].null_count():
            missing = joined.filter(pl.col("row").is_null())["id"][0]
            raise StaleInputError(f"published id {missing!r} is not a row of the pool")
        return joined["row"].to_numpy()


@dataclass(frozen=True)
class Scores(_Recorded):
    """``benchmark_scores``: long-form scores (method, metric, value, std, seeds) of the published subset
    and the baselines."""

    subset: Subset
    frame: pl.DataFrame
    ASSET = "benchmark_scores"

    @classmethod
    def open(cls, layout: Layout) -> Scores:
        subset = Subset.open(layout)
        return cls(cls._record_over(layout.scores_dir, subset), subset, pl.read_parquet(cls.path_of(layout)))

    @staticmethod
    def path_of(layout: Layout) -> Path:
        return layout.scores_dir / "scores.parquet"

    @staticmethod
    def write(layout: Layout, frame: pl.DataFrame) -> None:
        save_parquet(Scores.path_of(layout), frame)

    def value(self, method: str, metric: str) -> float | None:
        hit = self.frame.filter((pl.col("method") == method) & (pl.col("metric") == metric))
        return None if hit.is_empty() else float(hit["value"][0])


@dataclass(frozen=True)
class Dataset(_Recorded):
    """``curated_dataset``: the published subset with its content, as Parquet shards ``datasets`` reads
    (see :mod:`curation_assets.store.dataset`)."""

    subset: Subset
    ASSET = "curated_dataset"

    @classmethod
    def open(cls, layout: Layout) -> Dataset:
        subset = Subset.open(layout)
        return cls(cls._record_over(layout.dataset_dir, subset), subset)

    @staticmethod
    def writer(layout: Layout, shard_rows: int, shard_bytes: int) -> DatasetWriter:
        return DatasetWriter(layout.dataset_dir, shard_rows, shard_bytes)

    @staticmethod
    def webdataset_writer(layout: Layout, shard_rows: int, shard_bytes: int) -> WebDatasetWriter:
        """The same rows as WebDataset ``.tar`` shards, in ``webdataset/`` beside ``data/``."""
        return WebDatasetWriter(layout.dataset_dir, shard_rows, shard_bytes)

    @property
    def directory(self) -> Path:
        return self.subset.tree.pool.layout.dataset_dir

    @property
    def shards(self) -> list[Path]:
        return sorted((self.directory / DATA_DIR).glob("train-*.parquet"))


def open_artifact(asset: str, layout: Layout):
    """The handle of an asset's output by asset name (what the IO manager hands downstream assets)."""
    if asset.startswith("clustering_level_"):
        return Tree.open(layout, int(asset.rsplit("_", 1)[1]))
    handles = {cls.ASSET: cls for cls in (Corpus, Embeddings, Pool, Subset, Scores, Dataset)}
    if asset not in handles:
        raise KeyError(f"no stored artefact for asset {asset!r}")
    return handles[asset].open(layout)
