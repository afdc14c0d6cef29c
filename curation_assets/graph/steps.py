"""What every asset body shares: its modality's configuration, reuse-or-compute, launchpad overrides."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Literal, Optional, get_args, get_origin, get_type_hints

from dagster import AssetExecutionContext, Config, DataVersion, MaterializeResult, deserialize_value, serialize_value
from pydantic import TypeAdapter, ValidationError, create_model

from curation_assets.config import ALTERNATIVES, ConfigError, CurationConfig, ModalityConfig
from curation_assets.store import Layout, materialize


@dataclass(frozen=True)
class Step:
    """One asset materialization of one modality partition."""

    context: AssetExecutionContext
    modality: str
    cfg: ModalityConfig
    config: CurationConfig
    layout: Layout

    @classmethod
    def of(cls, context: AssetExecutionContext, config: CurationConfig) -> Step:
        return cls(context, context.partition_key, config.modality(context.partition_key), config,
                   Layout(context.partition_key))

    def log(self, message: str) -> None:
        self.context.log.info(message)

    def publish(self, directory, fp: str, compute: Callable[[], tuple[dict, dict]], value,
                check_results=None, input_fp: str | None = None) -> MaterializeResult:
        """Materialize ``directory`` for fingerprint ``fp``, or reuse it when its record matches.

        ``compute()`` writes the files through the store and returns ``(facts, metadata)``; the record
        also keeps ``input_fp``, the fingerprint of the input it was computed from (the store refuses to
        open an artefact whose input changed since). ``value()`` opens the published artefact for
        downstream assets (what the IO manager passes on); ``check_results(artefact)`` evaluates the
        asset's checks on it.
        """
        def run() -> tuple[dict, str]:
            started = time.perf_counter()
            facts, metadata = compute()
            metadata["seconds"] = round(time.perf_counter() - started, 3)
            return {**facts, "input": input_fp}, serialize_value(metadata)

        record = materialize(self.layout, directory, fp, run)
        if record.reused:
            self.log(f"{directory}: up to date (fingerprint {fp}), reusing it")
        artefact = value()
        results = check_results(artefact) if check_results else None
        return MaterializeResult(value=artefact, metadata=deserialize_value(record.metadata, dict),
                                 data_version=DataVersion(fp), check_results=results or None)


class ProgressLog:
    """Log lines while a long step runs, at most one per ``every_s`` seconds (they appear live in the UI)."""

    def __init__(self, step: Step, what: str, total: int, every_s: float = 5.0):
        self.step, self.what, self.total, self.every_s = step, what, total, every_s
        self.start = self.last = time.perf_counter()
        self.logged = False  # the first ``line`` always goes out

    def update(self, done: int, extra: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < self.every_s and done < self.total:
            return
        self.last, self.logged = now, True
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else float("nan")
        self.step.log(f"{self.what}: {done}/{self.total} ({100 * done / max(self.total, 1):.0f} %), "
                      f"{rate:.1f}/s, ~{left:.0f} s left{extra}")

    def line(self, message: str) -> None:
        """Log ``message`` unless a line went out less than ``every_s`` seconds ago (the core's step log)."""
        now = time.perf_counter()
        if not self.logged or now - self.last >= self.every_s:
            self.last, self.logged = now, True
            self.step.log(f"{self.what}: {message}")

    def of_total(self, done: int, total: int) -> None:
        """The ``progress(done, total)`` callback of the core, for work whose total is known only inside."""
        self.total = total
        self.update(done)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


def _override_type(annotation):
    """The launchpad type of a YAML field: Dagster config knows scalars, not Literal or tuples."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) is Literal or (args and get_origin(args[0]) is Literal):
        return str
    if get_origin(annotation) is tuple or (args and get_origin(args[0]) is tuple):
        return list[int]
    return args[0] if args else annotation


def overrides_of(model, name: str, extra: dict | None = None) -> type[Config]:
    """A launchpad ``Config`` with every field of the YAML model ``model`` (a pydantic model or the core's
    dataclass), all optional: empty means "as in curation.yaml". Derived, so there is no second schema."""
    if is_dataclass(model):
        hints = get_type_hints(model)
        annotations = {f.name: hints[f.name] for f in fields(model)}
    else:
        annotations = {k: f.annotation for k, f in model.model_fields.items()}
    spec = {k: (Optional[_override_type(v)], None) for k, v in annotations.items()}  # noqa: UP045
    spec.update({k: (Optional[t], None) for k, t in (extra or {}).items()})  # noqa: UP045
    return create_model(name, __base__=Config, **spec)


def apply_overrides(base, overrides: Config, skip: tuple[str, ...] = ()):
    """``base`` (a YAML model or core dataclass) with the launchpad's non-empty overrides, validated like the
    YAML (an error names the field). Setting one of two alternative fields (the model's ``ALTERNATIVES``,
    e.g. a level's ``n_clusters`` or ``per_cluster``) clears the other."""
    update = {k: v for k, v in overrides.model_dump().items() if v is not None and k not in skip}
    if not update:
        return base
    data = asdict(base) if is_dataclass(base) else base.model_dump()
    alternatives = ALTERNATIVES.get(type(base), {})
    for key in update:
        if key in alternatives:
            data[alternatives[key]] = None
    try:
        return TypeAdapter(type(base)).validate_python({**data, **update})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid launchpad override: {problems}") from exc
