"""Where every artefact of a modality lives under the data root, and the modality's lock."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock

from curation_assets.store.files import OutsideDataRootError, confined, data_root

MODALITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
"""A modality (partition) name: letters, digits, ``_`` and ``-``, at most 64 characters; it names folders."""


def check_modality_name(name: str) -> str:
    """``name`` when it is a safe folder name (:data:`MODALITY_NAME`); else a ValueError naming it."""
    if not isinstance(name, str) or not MODALITY_NAME.fullmatch(name):
        raise ValueError(f"modality name {name!r} is not allowed: use letters, digits, '_' and '-' only "
                         "(it names folders under the data root), e.g. 'text' or 'web-images'")
    return name


class Layout:
    """Paths of one modality's artefacts (one directory per asset; its record beside it, see ``records``)::

        raw/<m>/                        files a user drops in
        corpus/<m>/                     corpus.parquet (id, content, label)
        embeddings/<m>/                 shards/part-*.npy, rows.parquet (id, corpus_row, key)
        deduplicated/<m>/               pool.parquet (id, embedding_row), removed.parquet
        clustering/<m>/level_<t>/       centroids.npy, assignment.npy, distances.npy, sizes.npy
        curated/<m>/                    subset.parquet (id, cluster_level_1 … L)
        benchmarks/<m>/                 scores.parquet (method, metric, value, std, seeds)
        datasets/<m>/                   data/*.parquet shards + README.md (the dataset card)

    Every path is checked to lie inside the data root. While an asset is being computed, its directory is
    redirected to a staging directory (:meth:`staged`), so a failed run never touches the published one.
    """

    def __init__(self, modality: str, root: Path | None = None):
        self.root = (root or data_root()).resolve()
        self.modality = check_modality_name(modality)
        self._staged: dict[Path, Path] = {}

    def raw_dir(self, configured: str | None = None) -> Path:
        return confined(self.root, configured or f"raw/{self.modality}")

    def inside(self, path: Path) -> Path:
        """``path`` resolved, refused unless it lies inside the data root (checked before any write or delete)."""
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(self.root):
            raise OutsideDataRootError(f"{path} resolves to {resolved}, outside the data root {self.root}")
        return resolved

    def _published(self, path: Path) -> Path:
        path = self.inside(path)
        return self._staged.get(path, path)

    def asset_dir(self, family: str) -> Path:
        return self._published(self.root / family / self.modality)

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
        return self._published(self.root / "clustering" / self.modality / f"level_{t}")

    @property
    def subset_dir(self) -> Path:
        return self.asset_dir("curated")

    @property
    def scores_dir(self) -> Path:
        return self.asset_dir("benchmarks")

    @property
    def dataset_dir(self) -> Path:
        return self.asset_dir("datasets")

    def cache_dir(self, name: str) -> Path:
        """``<root>/_cache/<name>``: caches shared by the modalities (content-addressed, never published)."""
        return self.inside(self.root / "_cache" / name)

    def published(self, path: Path) -> Path:
        """Where ``path`` (possibly inside a staging directory) will be once its asset is published."""
        path = Path(path)
        for final, staging in self._staged.items():
            if path.is_relative_to(staging):
                return final / path.relative_to(staging)
        return path

    @contextlib.contextmanager
    def staged(self, directory: Path, staging: Path) -> Iterator[None]:
        """Inside the block, this layout names ``staging`` wherever it would name ``directory``."""
        self._staged[self.inside(directory)] = self.inside(staging)
        try:
            yield
        finally:
            del self._staged[self.inside(directory)]

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive lock of this modality: two runs of one partition never write at once."""
        lock_dir = self.inside(self.root / "_locks")
        lock_dir.mkdir(parents=True, exist_ok=True)
        with FileLock(str(lock_dir / f"{self.modality}.lock")):
            yield
