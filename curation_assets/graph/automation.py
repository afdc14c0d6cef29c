"""Automation that does something: runs start when a user's files or a modality's settings change, and
each run says why (tags ``curation/trigger`` and ``curation/reason``, shown on the run in the UI).

- ``raw_files_sensor``: files appear or change under ``raw/<modality>/`` → the whole graph of that partition.
- ``config_sensor``: a section of a modality's block in ``curation.yaml`` changes → exactly the assets it
  affects and everything downstream of them (e.g. ``sampling`` → ``balanced_subset`` and after).
"""

from __future__ import annotations

import hashlib
import json

from dagster import (
    AssetKey,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from curation_assets.config import CurationConfig, ModalityConfig, load_config
from curation_assets.readers import list_folder
from curation_assets.store import Layout

SENSOR_INTERVAL_SECONDS = 30


def first_affected_asset(section: str) -> str:
    """The first asset a changed section of a modality's YAML block feeds (its downstream follows)."""
    if section.startswith("levels"):
        return f"clustering_level_{int(section.split('.')[1]) + 1}"
    return {"source": "raw_corpus", "seed": "raw_corpus", "embedder": "embeddings", "dedup": "deduplicated",
            "metric": "clustering_level_1", "sampling": "balanced_subset", "benchmark": "benchmark_scores",
            "export": "curated_dataset"}[section]


def section_digests(cfg: ModalityConfig) -> dict[str, str]:
    """One digest per section of a modality's block (each level its own section)."""
    data = cfg.model_dump(mode="json")
    levels = data.pop("levels")
    sections = {**data, **{f"levels.{i}": level for i, level in enumerate(levels)}}
    return {k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:12] for k, v in sections.items()}


def raw_signature(layout: Layout, configured: str | None = None) -> str | None:
    """Hash of (relative path, size, mtime) of the files a reader would see under the raw folder."""
    raw = layout.raw_dir(configured)
    files = list_folder(raw, layout.root).files if raw.is_dir() else []
    if not files:
        return None
    listing = [(str(p.relative_to(raw)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


def build_raw_files_sensor(curation: CurationConfig, job):
    @sensor(job=job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=DefaultSensorStatus.RUNNING,
            description="Starts the curation of a modality when files under <root>/raw/<modality>/ appear or "
                        "change (cursor: one signature per modality, so nothing runs twice).")
    def raw_files_sensor(context: SensorEvaluationContext):
        seen = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for modality, cfg in curation.modalities.items():
            if cfg.source.kind not in ("auto", "files"):
                continue
            sig = raw_signature(Layout(modality), cfg.source.path)
            if sig is not None and seen.get(modality) != sig:
                requests.append(RunRequest(run_key=f"{modality}:{sig}", partition_key=modality,
                                           tags={"curation/trigger": "raw-files",
                                                 "curation/reason": f"files under raw/{modality}/ changed"}))
                seen[modality] = sig
        context.update_cursor(json.dumps(seen, sort_keys=True))
        return requests or SkipReason("no new or changed raw files")

    return raw_files_sensor


def build_config_sensor(curation: CurationConfig, job, downstream_of):
    """``downstream_of(asset)``: the asset keys from ``asset`` to the end of the graph."""

    @sensor(job=job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=DefaultSensorStatus.RUNNING,
            description="Re-materializes exactly the assets a change of curation.yaml affects, per modality "
                        "(the first tick only records the current settings).")
    def config_sensor(context: SensorEvaluationContext):
        seen = json.loads(context.cursor) if context.cursor else None
        current = {m: section_digests(cfg) for m, cfg in load_config().modalities.items()}
        context.update_cursor(json.dumps(current, sort_keys=True))
        if seen is None:
            return SkipReason("recorded the current settings of every modality")
        requests = []
        for modality, digests in current.items():
            changed = sorted(k for k, v in digests.items() if seen.get(modality, {}).get(k) != v)
            if not changed or modality not in curation.modalities:
                continue
            keys = set().union(*(downstream_of(first_affected_asset(s)) for s in changed))
            requests.append(RunRequest(
                run_key=f"config:{modality}:{hashlib.sha256(json.dumps(digests).encode()).hexdigest()[:12]}",
                partition_key=modality, asset_selection=sorted(keys, key=AssetKey.to_user_string),
                tags={"curation/trigger": "config", "curation/reason": f"curation.yaml changed: {', '.join(changed)}"}))
        return requests or SkipReason("curation.yaml unchanged")

    return config_sensor

