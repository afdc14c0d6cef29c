"""A sensor per deployment: new or changed files under ``<root>/raw/<modality>/`` start that modality's run."""

import hashlib
import json

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from curation_assets.assets._common import current_config
from curation_assets.storage import Layout

SENSOR_INTERVAL_SECONDS = 30


def raw_signature(layout: Layout, configured: str | None = None) -> str | None:
    """Hash of (relative path, size, mtime) of every file under the raw directory; None if empty."""
    raw = layout.raw_dir(configured)
    if not raw.is_dir():
        return None
    files = sorted(p for p in raw.rglob("*") if p.is_file() and not p.name.startswith("."))
    if not files:
        return None
    listing = [(str(p.relative_to(raw)), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]


def build_raw_files_sensor(job):
    @sensor(job=job, minimum_interval_seconds=SENSOR_INTERVAL_SECONDS, default_status=DefaultSensorStatus.RUNNING,
            description="Requests a curation run of a modality when files under <root>/raw/<modality>/ "
                        "appear or change (cursor: one signature per modality, so nothing runs twice).")
    def raw_files_sensor(context: SensorEvaluationContext):
        seen = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for modality, cfg in current_config().modalities.items():
            if cfg.source.kind not in ("auto", "files"):
                continue
            sig = raw_signature(Layout(modality), cfg.source.path)
            if sig is not None and seen.get(modality) != sig:
                requests.append(RunRequest(run_key=f"{modality}:{sig}", partition_key=modality,
                                           tags={"curation/trigger": "raw-files"}))
                seen[modality] = sig
        context.update_cursor(json.dumps(seen, sort_keys=True))
        return requests or SkipReason("no new or changed raw files")

    return raw_files_sensor
