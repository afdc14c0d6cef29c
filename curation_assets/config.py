"""The one configuration tree: ``curation.yaml`` (path overridable by env ``CURATION_CONFIG``).

Per modality it declares the source, the embedder, the hierarchy's levels (the core's own
:class:`~curation_assets.core.LevelSpec`, validated here) and the final sampling. The Definitions
read it once, when they are loaded; the launchpad's overrides are derived from these models
(``curation_assets.graph.run_config``), so there is no second schema.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from curation_assets.core import LevelSpec

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "curation.yaml"

# What a modality without ``levels``/``alpha`` gets: the recipe with the best worst-pool margin over random in the
# leave-one-pool-out study (bench/tune_defaults.py): one level of n/20 clusters with 10 resampling steps, and a
# tempered budget. The paper's deeper shape (n/20, then ÷4, ÷4) is for pools of millions: give it as ``levels``.
DEFAULT_LEVELS = (LevelSpec(per_cluster=20, resampling_steps=10),)
DEFAULT_ALPHA = 0.25


class ConfigError(ValueError):
    """The YAML configuration is missing or invalid; the message names file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where the corpus comes from.

    ``auto``: the files of ``<root>/raw/<modality>/`` when that folder exists (an existing folder with no
    readable file is an error, never a silent fallback), else the bundled demo. ``files``: only that
    folder (or ``path``, relative to the data root). ``demo``: the bundled corpus named ``demo``
    (default: the modality's name). ``simulated``: the paper's 2-D mixture. ``reader`` picks how files
    are read (default: the embedder's own reader).

    ``demo_items`` sizes the bundled demo only (a stratified sample); it never touches a user's files.
    ``max_items`` caps any source, a user's folder included, and only when set: the rows kept are a seeded
    uniform sample (the ``max_items`` smallest hashes of (seed, id), so a growing folder keeps its earlier
    picks), never the first rows in file order; the dropped rows are counted in the metadata and the log.
    Once a partition has published a user's files, ``auto`` refuses to fall back to the demo when the
    folder disappears (set ``kind: demo`` to switch on purpose).
    """

    kind: Literal["auto", "files", "demo", "simulated"] = "auto"
    path: str | None = None
    reader: str | None = None
    demo: str | None = None
    demo_items: int | None = Field(default=None, gt=0)
    max_items: int | None = Field(default=None, gt=0)
    tile_px: int = Field(default=30, gt=3)
    bands: tuple[int, int, int] | None = None

    @field_validator("reader")
    @classmethod
    def _known_reader(cls, value):
        from curation_assets.readers import READERS

        if value is not None and value not in READERS:
            raise ValueError(f"unknown reader {value!r}; known: {sorted(READERS)}")
        return value


class EmbedderConfig(_Strict):
    """Which model turns items into vectors (``points`` for the 2-D simulated points).

    A user's own model (``transformers``, ``transformers_image``, ``timm``, ``open_clip``, ``open_clip_text``):
    ``model`` is its local directory (or a hub id already in the local Hugging Face cache); its preprocessing
    is the model's own (``image_size`` is EfficientNet-Lite0's alone). ``pooling`` (transformers kinds):
    ``mean``, ``cls`` or ``pooler``, default the model's projection for CLIP-like dual encoders, else ``mean``
    for text and ``cls`` for images; ``max_length`` (``transformers``): tokens per text, default the model's.
    """

    kind: str
    model: str | None = None
    batch_size: int | None = Field(default=None, gt=0)  # None: 512 on a GPU, 64 on a CPU (16 texts for user models)
    image_size: int = Field(default=224, ge=32)
    device: str = "auto"  # auto: a CUDA GPU when torch sees one, else the CPU; or cpu, cuda, cuda:N
    storage_dtype: Literal["float32", "float16"] = "float32"  # float16 halves the shards' disk and page cache
    pooling: Literal["mean", "cls", "pooler"] | None = None
    max_length: int | None = Field(default=None, gt=0)
    column: str | None = None  # precomputed: the corpus column holding the vectors (default "embedding")

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value):
        from curation_assets.embedders import EMBEDDERS

        if value not in EMBEDDERS:
            raise ValueError(f"unknown embedder kind {value!r}; known: {sorted(EMBEDDERS)}")
        return value

    @model_validator(mode="after")
    def _options_of_the_kind(self):
        from curation_assets.embedders import EMBEDDERS

        accepted = getattr(EMBEDDERS[self.kind], "config_options", frozenset())
        unused = [f for f in ("pooling", "max_length", "column") if getattr(self, f) is not None and f not in accepted]
        if unused:
            raise ValueError(f"embedder kind {self.kind!r} does not use {', '.join(unused)}")
        return self


class SamplingConfig(_Strict):
    """The balanced subset: an absolute ``target_size`` or a ``fraction`` of the pool (default 0.2)."""

    target_size: int | None = Field(default=None, gt=0)
    fraction: float | None = Field(default=None, gt=0, le=1)
    strategy: Literal["random", "closest"] = "random"
    multiplier: int = Field(default=1, ge=1)
    alpha: float = Field(default=DEFAULT_ALPHA, ge=0.0, le=1.0)  # budget ∝ size^alpha: 0 balanced (paper)
    seed: int = 0

    @model_validator(mode="after")
    def _one_size(self):
        if self.target_size is not None and self.fraction is not None:
            raise ValueError("give either target_size or fraction, not both")
        return self

    def resolve_target(self, pool_size: int) -> int:
        if self.target_size is not None:
            return self.target_size
        return max(1, round(pool_size * (self.fraction if self.fraction is not None else 0.2)))


class DedupConfig(_Strict):
    """Near-duplicate removal before clustering: exact content hashes, then cosine ≥ ``threshold``
    (default: the embedder's own, measured on the demo corpora; see README)."""

    enabled: bool = True
    threshold: float | None = Field(default=None, gt=0, le=1)
    exact: bool = True


class BenchmarkConfig(_Strict):
    """How ``benchmark_scores`` judges the published subset.

    ``study``: ``quick`` (default) scores the published subset against random samples, other draws of the
    published tree and the label oracle, at a fraction of curation's cost; ``full`` also refits the
    baselines (1-level k-means, the hierarchy without resampling, the configured method per seed) and
    scores the whole pool. ``seeds``: seeds of the baselines. ``paper_2d_table``: the simulated partition
    also reproduces the paper's 2-D KL table (refits of 4 configurations per seed). The probes are tested
    on an evaluation split of the labelled pool rows drawn here only: per class at most ``test_per_class``
    rows and at most ``test_max_share`` of the class (a class of fewer than 1 / ``test_max_share`` rows
    gives none); curation still sees every row.
    """

    study: Literal["quick", "full"] = "quick"
    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    paper_2d_table: bool = True
    test_per_class: int = Field(default=40, ge=0)
    test_max_share: float = Field(default=0.2, gt=0, le=0.5)


class ExportConfig(_Strict):
    """The ``curated_dataset``: Parquet shards of at most ``shard_rows`` rows and about ``shard_mb`` MB, and the
    ``license`` written into its card (default: none given, the card asks to fill in the source's). ``formats``:
    ``parquet`` (Hugging Face ``datasets`` reads it) and optionally ``webdataset`` (the same rows as ``.tar``
    shards that ``webdataset.WebDataset`` reads)."""

    license: str | None = None
    formats: list[Literal["parquet", "webdataset"]] = Field(default=["parquet"], min_length=1)

    @field_validator("formats")
    @classmethod
    def _parquet_always(cls, value):
        if "parquet" not in value:
            raise ValueError("the Parquet shards are always written: formats: [parquet] or [parquet, webdataset]")
        return value

    shard_rows: int = Field(default=100_000, gt=0)
    shard_mb: float = Field(default=256.0, gt=0)


class ModalityConfig(_Strict):
    source: SourceConfig = SourceConfig()
    embedder: EmbedderConfig
    metric: Literal["l2", "cosine"] = "l2"
    levels: tuple[LevelSpec, ...] = Field(default=DEFAULT_LEVELS, min_length=1)
    dedup: DedupConfig = DedupConfig()
    sampling: SamplingConfig = SamplingConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    export: ExportConfig = ExportConfig()
    seed: int = 0

    @model_validator(mode="after")
    def _what_the_embedder_cannot_say(self):
        """A model whose similarity scale is the user's (precomputed vectors, a user's model) needs the
        near-duplicate threshold, and precomputed vectors a metric, said in the YAML."""
        from curation_assets.embedders import EMBEDDERS

        embedder = EMBEDDERS[self.embedder.kind]
        if self.dedup.enabled and self.dedup.threshold is None and embedder.dedup_threshold is None:
            raise ValueError(f"embedder kind {self.embedder.kind!r} has no known similarity scale: set "
                             "dedup.threshold (cosine at which two items are copies), or dedup.enabled: false")
        if self.embedder.kind == "precomputed" and "metric" not in self.model_fields_set:
            raise ValueError("precomputed embeddings need metric: cosine or l2 (how your vectors compare)")
        return self


class RayConfig(_Strict):
    """How to reach Ray. ``address``: None starts a local cluster in the process on demand (``num_cpus``
    CPUs, default all); ``"auto"`` joins the cluster ``ray start`` runs on this machine; ``"host:6379"`` or
    ``"ray://host:10001"`` a remote one. Every node must see the data root at the same path."""

    address: str | None = None
    num_cpus: int | None = Field(default=None, gt=0)
    cpus_per_embed_actor: float = Field(default=1.0, gt=0)
    embed_actors: int | None = Field(default=None, gt=0)  # None: the cluster's CPUs / cpus_per_embed_actor
    runtime_env: dict | None = None  # passed to ray.init, e.g. {"pip": [...]} for a remote cluster


class ExecutionConfig(_Strict):
    """Where the data-parallel passes run: embedding, and clustering's full-pool assignments, splits and Lloyd.

    ``backend: local`` runs them in this process; ``ray`` sends each task (``embed_task_rows`` corpus rows,
    ``assign_task_rows`` pool rows, or a group of clusters of that many rows to split) to Ray. A k-means whose
    training sample has more than ``lloyd_task_rows`` rows (1.5 GB of 384-d float32 rows by default) runs Lloyd
    as tasks of that many rows too, each summing its rows' clusters (``curation_assets.core.lloyd_tasks``); a
    seeding sample of more than ``seeding_task_rows`` rows is kept in blocks on the workers (Ray actors), which
    do its distance work (``curation_assets.core.seeding_tasks``). Both backends cut the work into the same
    tasks, so a seed gives the same bytes and the same subset whichever ran; the task sizes are part of the
    assets' fingerprints, the backend is not.

    ``device``: where this process runs clustering's heavy passes (k-means training of every level, and
    the assignments of the ``local`` backend; Ray's assignment tasks use the workers' CPUs). ``auto``: a
    CUDA GPU when torch sees one, else the CPU; ``cpu``: the faiss path; ``cuda``: the GPU, an error
    without one. A GPU's results equal the CPU's up to float rounding (near ties), so a level fitted on
    it has its own fingerprint.
    """

    backend: Literal["local", "ray"] = "local"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    ray: RayConfig = RayConfig()
    embed_task_rows: int = Field(default=1024, gt=0)
    assign_task_rows: int = Field(default=65_536, gt=0)
    lloyd_task_rows: int = Field(default=1_048_576, gt=0)
    seeding_task_rows: int = Field(default=1_048_576, gt=0)


class EmbeddingCacheConfig(_Strict):
    """The content-addressed cache of embeddings under ``<root>/_cache/embeddings/`` (README, "Growing
    corpora"): a row whose content was embedded before by the same model is never embedded again.
    ``max_unused_rows``: rows no published ``embeddings`` artefact uses that the cache keeps (the most
    recent ones; say 0 to keep only what is in use)."""

    enabled: bool = True
    max_unused_rows: int = Field(default=100_000, ge=0)


class CurationConfig(_Strict):
    modalities: dict[str, ModalityConfig] = Field(min_length=1)
    execution: ExecutionConfig = ExecutionConfig()
    embedding_cache: EmbeddingCacheConfig = EmbeddingCacheConfig()

    @field_validator("modalities")
    @classmethod
    def _safe_names(cls, value):
        from curation_assets.store.layout import check_modality_name

        for name in value:
            check_modality_name(name)
        return value

    @property
    def max_levels(self) -> int:
        """N, the number of level assets: the largest level count of any modality."""
        return max(len(m.levels) for m in self.modalities.values())

    def modality(self, name: str) -> ModalityConfig:
        if name not in self.modalities:
            raise ConfigError(f"unknown modality {name!r}; configured: {sorted(self.modalities)}")
        return self.modalities[name]


ALTERNATIVES = {
    LevelSpec: {"n_clusters": "per_cluster", "per_cluster": "n_clusters"},
    SamplingConfig: {"target_size": "fraction", "fraction": "target_size"},
}
"""Fields that are alternatives to each other: setting one (e.g. in the launchpad) clears the other."""


def config_path() -> Path:
    return Path(os.environ.get("CURATION_CONFIG", DEFAULT_CONFIG))


def load_config(path: Path | None = None) -> CurationConfig:
    """Read and validate the YAML; errors name the file and the offending field."""
    path = Path(path) if path is not None else config_path()
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path} (set CURATION_CONFIG or create it)")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return CurationConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: invalid configuration: {problems}") from exc
