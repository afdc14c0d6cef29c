from dagster import materialize

from curation_assets.config import load_config
from curation_assets.definitions import build_definitions


def curate(config_path, partition: str, selection=None, run_config=None, embedder=None, execution=None):
    """Materialize the graph (or a selection) of one partition in-process; returns the result.

    ``embedder``: an embedder object to use instead of the configured model (fast tests).
    ``execution``: an ``ExecutionResource`` instead of the YAML's backend.
    """
    defs = build_definitions(load_config(config_path))
    resources = dict(defs.resources)
    if embedder is not None:
        resources["embedder"] = fake_embedder_resource(embedder)
    if execution is not None:
        resources["execution"] = execution
    return materialize(list(defs.assets), partition_key=partition, selection=selection, resources=resources,
                       run_config=run_config, raise_on_error=True)


def check_results(result) -> dict[str, bool | str]:
    """Check name → passed (True / False), or "skipped" for a check that could not judge (warning severity)."""
    out = {}
    for e in result.all_events:
        if e.event_type_value == "ASSET_CHECK_EVALUATION":
            data = e.event_specific_data
            out[data.check_name] = "skipped" if "skipped" in data.metadata else data.passed
    return out


QUALITY_CHECK = "published_not_less_balanced_than_random"


def assert_data_checks_pass(result):
    """Every data-integrity check passes; the quality check (published vs random) ran (on a few hundred
    random-vector items its verdict is noise, so it is asserted on labelled corpora, not here)."""
    checks = check_results(result)
    assert QUALITY_CHECK in checks
    assert all(v in (True, "skipped") for k, v in checks.items() if k != QUALITY_CHECK), checks


class HashEmbedder:
    """A fast stand-in model for platform tests: a seeded random unit vector per item content."""

    def __init__(self, dim: int = 16, nan_rows=(), dims=None):
        self.name, self.dim, self.nan_rows, self.dims, self.calls = f"hash-{dim}", dim, set(nan_rows), dims, 0
        self.identity = f"{self.name}|nan{sorted(self.nan_rows)}|dims{dims}"
        self.embedded_items = 0

    def embed(self, items, progress=None):
        import hashlib

        import numpy as np

        from curation_assets.embedders import EmbedResult

        dim = self.dims[self.calls] if self.dims else self.dim
        self.calls += 1
        self.embedded_items += len(items)
        vecs = np.stack([np.random.default_rng(int(hashlib.sha1(str(i).encode()).hexdigest()[:8], 16))
                         .standard_normal(dim) for i in items]).astype(np.float32)
        for r in self.nan_rows:
            vecs[r] = np.nan
        return EmbedResult(vecs / np.linalg.norm(vecs, axis=1, keepdims=True))


def fake_embedder_resource(embedder):
    from curation_assets.graph.resources import EmbedderResource

    class _Fake(EmbedderResource):
        def factory(self, cfg):
            return lambda: embedder

    return _Fake()
