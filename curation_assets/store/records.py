"""Resume after a crash, skip what is up to date: one record per artefact directory, written last.

``record.json`` holds the fingerprint of the inputs and settings that produced the directory, the
facts the store needs to reopen it (row counts, which level is used, …) and the materialization's
metadata (serialized by the Dagster layer; opaque here). A step whose fingerprint matches the record
reuses the directory; otherwise the record is removed first, the files are rewritten, and the new
record is written after them, so a half-written directory never reads as up to date.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from curation_assets.store.files import read_json, save_json
from curation_assets.store.layout import Layout

RECORD_FILE = "record.json"


def fingerprint(*parts) -> str:
    """Stable short hash of JSON-serialisable parts (settings, upstream fingerprints, code versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Record:
    """What produced an artefact directory (``fingerprint``), what the store needs to reopen it (``facts``)
    and the metadata shown in the UI (``metadata``, a string the Dagster layer serialized)."""

    fingerprint: str
    facts: dict = field(default_factory=dict)
    metadata: str = ""
    reused: bool = False

    @classmethod
    def read(cls, directory: Path) -> Record | None:
        raw = read_json(directory / RECORD_FILE)
        if raw is None or "fingerprint" not in raw:
            return None
        return cls(raw["fingerprint"], raw.get("facts", {}), raw.get("metadata", ""))

    def write(self, directory: Path) -> None:
        save_json(directory / RECORD_FILE, {"fingerprint": self.fingerprint, "facts": self.facts,
                                            "metadata": self.metadata})


class NotMaterializedError(FileNotFoundError):
    """An artefact was asked for before its asset was materialized."""


def read_record(directory: Path, asset: str) -> Record:
    """The record of ``directory``; raises naming the asset to materialize when there is none."""
    record = Record.read(directory)
    if record is None:
        raise NotMaterializedError(f"{directory} holds no materialized {asset}: materialize {asset} first")
    return record


def materialize(layout: Layout, directory: Path, fp: str,
                compute: Callable[[], tuple[dict, str]]) -> Record:
    """Reuse ``directory`` when its record has fingerprint ``fp``; otherwise run ``compute()``, which writes
    the files and returns ``(facts, metadata)``, and record it last. Holds the modality's lock throughout."""
    with layout.lock():
        record = Record.read(directory)
        if record is not None and record.fingerprint == fp:
            return replace(record, reused=True)
        (directory / RECORD_FILE).unlink(missing_ok=True)
        directory.mkdir(parents=True, exist_ok=True)
        facts, metadata = compute()
        record = Record(fp, facts, metadata)
        record.write(directory)
        return record
