"""The one user-facing configuration: ``curation.yaml`` (path overridable by env ``CURATION_CONFIG``).

Per modality it declares the source, the embedder, the hierarchy's levels and the final
sampling. Omitted fields get automatic defaults derived from the pool size (the paper's
rule of thumb: sample size r ≈ half the mean cluster size of the level).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = REPO_ROOT / "curation.yaml"


class ConfigError(ValueError):
    """The YAML configuration is missing or invalid; the message names file and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where the corpus comes from.

    ``auto``: files dropped in ``<root>/raw/<modality>/`` when there are any, else the bundled demo.
    ``files``: only ``<root>/raw/<modality>/`` (or ``path``, relative to the data root).
    ``demo``: the bundled demo corpus. ``simulated``: the paper's 2-D mixture.
    ``reader`` picks how files are read (default: text for a text embedder, satellite for the
    ``satellite`` modality, image otherwise). ``test_per_class`` rows per label (at most half a
    class) are held out for benchmarks and never enter curation.
    """

    kind: Literal["auto", "files", "demo", "simulated"] = "auto"
    path: str | None = None
    reader: Literal["text", "image", "satellite"] | None = None
    max_items: int | None = Field(default=None, gt=0)
    tile_px: int = Field(default=30, gt=3)
    bands: tuple[int, int, int] | None = None
    test_per_class: int = Field(default=40, ge=0)


class EmbedderConfig(_Strict):
    """Which model turns items into vectors (``none`` for the 2-D simulated points)."""

    kind: Literal["sentence_transformer", "efficientnet_lite0", "none"]
    model: str | None = None
    batch_size: int = Field(default=64, gt=0)
    image_size: int = Field(default=224, ge=32)
    device: str = "cpu"
    storage_dtype: Literal["float32", "float16"] = "float32"  # float16 halves the shards' disk and page cache


class LevelConfig(_Strict):
    """One hierarchy level: k, resampling steps m, sample size r (default: half the mean cluster size)."""

    n_clusters: int = Field(gt=0)
    resampling_steps: int = Field(default=10, ge=0)
    sample_size: int | None = Field(default=None, gt=0)
    resample_strategy: Literal["closest", "random"] = "closest"
    n_splits: int = Field(default=1, gt=0)
    n_iter: int = Field(default=50, gt=0)


class SamplingConfig(_Strict):
    """The balanced subset: an absolute ``target_size`` or a ``fraction`` of the pool."""

    target_size: int | None = Field(default=None, gt=0)
    fraction: float | None = Field(default=None, gt=0, le=1)
    strategy: Literal["random", "closest"] = "random"
    multiplier: int = Field(default=1, ge=1)
    alpha: float = Field(default=0.0, ge=0.0, le=1.0)  # budget ∝ size^alpha: 0 = balanced (paper), 1 = proportional
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


DEFAULT_DEDUP_THRESHOLD = {"sentence_transformer": 0.94, "efficientnet_lite0": 0.93}


class DedupConfig(_Strict):
    """Near-duplicate removal before clustering: exact content hashes, then cosine ≥ ``threshold``.

    ``threshold`` defaults per embedder, from similarities measured on the demo corpora: text 0.94
    (MiniLM: a swapped word scores 0.98–0.99, distinct WordNet glosses at most 0.92), images 0.93
    (EfficientNet-Lite0 at 96 px on 90-px tiles: JPEG q85 re-encodes median 0.96, 10 % resizes 0.98,
    4-px crops 0.91; distinct tiles' 99.9th percentile 0.86).
    """

    enabled: bool = True
    threshold: float | None = Field(default=None, gt=0, le=1)
    exact: bool = True

    def resolved_threshold(self, embedder_kind: str) -> float:
        return self.threshold if self.threshold is not None else DEFAULT_DEDUP_THRESHOLD.get(embedder_kind, 0.99)


class BenchmarkConfig(_Strict):
    """How ``benchmark_scores`` runs: seeds to average over; the paper's 2-D table (simulated only)."""

    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    paper_2d_table: bool = True


class ModalityConfig(_Strict):
    source: SourceConfig = SourceConfig()
    embedder: EmbedderConfig
    metric: Literal["l2", "cosine"] = "l2"
    levels: list[LevelConfig] | None = Field(default=None, min_length=1)
    dedup: DedupConfig = DedupConfig()
    sampling: SamplingConfig = SamplingConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    seed: int = 0


DEFAULT_EMBED_TASK_ROWS = 1024
DEFAULT_ASSIGN_TASK_ROWS = 65_536


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
    """Where the data-parallel passes run: embedding and the full-pool assignments of clustering.

    ``backend: local`` runs them in this process; ``ray`` sends each task (``embed_task_rows`` corpus
    rows, or ``assign_task_rows`` pool rows) to Ray. Both backends cut the work into the same tasks, so
    a seed gives the same bytes and the same subset whichever ran; the task sizes are part of the
    assets' fingerprints, the backend is not.
    """

    backend: Literal["local", "ray"] = "local"
    ray: RayConfig = RayConfig()
    embed_task_rows: int = Field(default=DEFAULT_EMBED_TASK_ROWS, gt=0)
    assign_task_rows: int = Field(default=DEFAULT_ASSIGN_TASK_ROWS, gt=0)


class CurationConfig(_Strict):
    modalities: dict[str, ModalityConfig] = Field(min_length=1)
    execution: ExecutionConfig = ExecutionConfig()

    @property
    def max_levels(self) -> int:
        return max(len(m.levels) if m.levels else AUTO_LEVELS for m in self.modalities.values())

    def modality(self, name: str) -> ModalityConfig:
        if name not in self.modalities:
            raise ConfigError(f"unknown modality {name!r}; configured: {sorted(self.modalities)}")
        return self.modalities[name]


AUTO_LEVELS = 3
AUTO_FIRST_CLUSTER_SIZE = 20
AUTO_LEVEL_RATIO = 4
AUTO_RESAMPLING_STEPS = 0


def auto_levels(pool_size: int) -> list[LevelConfig]:
    """Default hierarchy for a pool of n points: k_1 ≈ n/20, then ÷4 per level, up to 3 levels.

    Without resampling: on the three labelled demo corpora (bench/tune_quality.py, 6 seeds) ten
    resampling steps per level lowered the linear probe below random on pools of a few thousand.
    """
    levels, k = [], max(2, pool_size // AUTO_FIRST_CLUSTER_SIZE)
    while len(levels) < AUTO_LEVELS and k >= 2:
        levels.append(LevelConfig(n_clusters=k, resampling_steps=AUTO_RESAMPLING_STEPS))
        k //= AUTO_LEVEL_RATIO
    return levels or [LevelConfig(n_clusters=1)]


def resolved_sample_size(level: LevelConfig, n_inputs: int) -> int:
    """The paper's rule when r is omitted: r ≈ half the mean cluster size of the level."""
    if level.sample_size is not None:
        return level.sample_size
    return max(1, round(n_inputs / level.n_clusters / 2))


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
