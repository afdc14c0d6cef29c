"""Read what a run published, as the UI shows it: each step's seconds and metadata, from the records."""

from __future__ import annotations

import json
from pathlib import Path

from dagster import deserialize_value

STEPS = ("raw_corpus", "embeddings", "deduplicated", "clustering_level_1", "clustering_level_2", "clustering_level_3",
         "balanced_subset", "benchmark_scores", "curated_dataset")
FAMILY = {"raw_corpus": "corpus", "embeddings": "embeddings", "deduplicated": "deduplicated",
          "balanced_subset": "curated", "benchmark_scores": "benchmarks", "curated_dataset": "datasets"}


def record_path(root: Path, step: str, modality: str) -> Path:
    if step in FAMILY:
        return root / FAMILY[step] / f".{modality}.record.json"
    return root / "clustering" / modality / f".level_{step.rsplit('_', 1)[1]}.record.json"


def metadata(root: Path, step: str, modality: str) -> dict:
    """The metadata of a step's published artefact (plain values)."""
    meta = deserialize_value(json.loads(record_path(root, step, modality).read_text())["metadata"], dict)
    return {k: getattr(v, "value", v) for k, v in meta.items()}


def step_seconds(root: Path, modality: str) -> dict[str, float]:
    """Seconds each step's computation took (a pass-through level: its own small bookkeeping); a level asset the
    run's graph does not have (its configuration has fewer levels) is left out."""
    return {step: float(metadata(root, step, modality)["seconds"]) for step in STEPS
            if step in FAMILY or record_path(root, step, modality).exists()}
