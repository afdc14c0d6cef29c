"""Where every artefact of a modality lives under the data root, and the modality's lock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from curation_assets.store.files import confined, data_root


class Layout:
    """Paths of one modality's artefacts (one directory per asset, each with its ``record.json``)::

        raw/<m>/                        files a user drops in
        corpus/<m>/                     corpus.parquet (id, content, label)
        embeddings/<m>/                 shards/part-*.npy, rows.parquet (id, corpus_row)
        deduplicated/<m>/               pool.parquet (id, embedding_row), removed.parquet
        clustering/<m>/level_<t>/       centroids.npy, assignment.npy, distances.npy, sizes.npy
        curated/<m>/                    subset.parquet (id, cluster_level_1 … L)
        benchmarks/<m>/                 scores.parquet (method, metric, value, std, seeds)
        datasets/<m>/                   data/*.parquet shards + README.md (the dataset card)
    """

    def __init__(self, modality: str, root: Path | None = None):
        self.root = root or data_root()
        self.modality = modality

    def raw_dir(self, configured: str | None = None) -> Path:
        return confined(self.root, configured or f"raw/{self.modality}")

    def asset_dir(self, family: str) -> Path:
        return self.root / family / self.modality

    @property
    def corpus_dir(self) -> Path:
        return self.asset_dir("corpus")

    @property
    def embeddings_dir(self) -> Path:
        return self.asset_dir("embeddings")

    @property
    def pool_dir(self) -> Path:
        return self.asset_dir("deduplicated")

    def level_dir(self, t: int) -> Path:
        return self.asset_dir("clustering") / f"level_{t}"

    @property
    def subset_dir(self) -> Path:
        return self.asset_dir("curated")

    @property
    def scores_dir(self) -> Path:
        return self.asset_dir("benchmarks")

    @property
    def dataset_dir(self) -> Path:
        return self.asset_dir("datasets")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock of this modality: two runs of one partition never write at once."""
        lock_dir = self.root / "_locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / f"{self.modality}.lock")):
            yield
