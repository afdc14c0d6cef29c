"""Resume after a crash, skip what is up to date, never lose good output: one record per artefact directory.

An artefact directory ``<family>/<m>`` has its record beside it, ``<family>/.<m>.record.json`` (outside the
folder a user copies): the fingerprint of the inputs and settings that produced it, the facts the store needs
to reopen it (row counts, which level is used, …) and the materialization's metadata (serialized by the
Dagster layer; opaque here). A step whose fingerprint matches the record reuses the directory. Otherwise the
new files are written into a staging directory beside it; only when they are all written is the old record
removed, the staging directory swapped in and the new record written. A failed or killed run therefore
leaves the previous artefact and its record as they were, and a half-written directory never reads as up
to date.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from curation_assets.store.files import read_json, save_json
from curation_assets.store.layout import Layout


def fingerprint(*parts) -> str:
    """Stable short hash of JSON-serialisable parts (settings, upstream fingerprints, code versions)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def record_path(directory: Path) -> Path:
    """Where the record of an artefact directory lives: a hidden file beside it."""
    return directory.with_name(f".{directory.name}.record.json")


def _sibling(directory: Path, role: str) -> Path:
    return directory.with_name(f".{directory.name}.{role}")


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
        raw = read_json(record_path(directory))
        if raw is None or "fingerprint" not in raw or not directory.is_dir():
            return None
        return cls(raw["fingerprint"], raw.get("facts", {}), raw.get("metadata", ""))

    def write(self, directory: Path) -> None:
        save_json(record_path(directory), {"fingerprint": self.fingerprint, "facts": self.facts,
                                           "metadata": self.metadata})


class NotMaterializedError(FileNotFoundError):
    """An artefact was asked for before its asset was materialized."""


def read_record(directory: Path, asset: str) -> Record:
    """The record of ``directory``; raises naming the asset to materialize when there is none."""
    record = Record.read(directory)
    if record is None:
        raise NotMaterializedError(f"{directory} holds no materialized {asset}: materialize {asset} first")
    return record


def _recover(directory: Path) -> None:
    """Finish what a run killed in the middle of a swap left: the previous directory comes back."""
    old = _sibling(directory, "old")
    if old.exists() and not directory.exists():
        old.rename(directory)
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(_sibling(directory, "staging"), ignore_errors=True)


def _swap_in(directory: Path, staging: Path) -> None:
    old = _sibling(directory, "old")
    if directory.exists():
        directory.rename(old)
    staging.rename(directory)
    shutil.rmtree(old, ignore_errors=True)


def materialize(layout: Layout, directory: Path, fp: str,
                compute: Callable[[], tuple[dict, str]]) -> Record:
    """Reuse ``directory`` when its record has fingerprint ``fp``; otherwise run ``compute()``, which writes
    the files through ``layout`` (into a staging directory) and returns ``(facts, metadata)``, then publish
    them and their record last. Holds the modality's lock throughout; paths are checked to be inside the
    data root before anything is written or removed."""
    directory = layout.inside(directory)
    with layout.lock():
        _recover(directory)
        record = Record.read(directory)
        if record is not None and record.fingerprint == fp:
            return replace(record, reused=True)
        staging = layout.inside(_sibling(directory, "staging"))
        staging.mkdir(parents=True)
        try:
            with layout.staged(directory, staging):
                facts, metadata = compute()
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        record_path(directory).unlink(missing_ok=True)
        _swap_in(directory, staging)
        record = Record(fp, facts, metadata)
        record.write(directory)
        return record
