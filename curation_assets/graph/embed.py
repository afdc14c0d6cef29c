"""``embeddings``: one vector per corpus row, as memory-mapped ``.npy`` shards (the embedder's own output:
L2-normalised for the models, the coordinates themselves for 2-D points).

A vector is a function of the model and the row's content only (the embedders use batches of a fixed
shape), so the step consults the content cache of the model first (``store.embedding_cache``) and embeds only
rows it has never seen: a new file costs its own rows, a removed file costs nothing, an edited row costs
one row. Without a row to embed, the model is not even loaded.
"""

import sys
import time

import numpy as np
import polars as pl
from dagster import AssetExecutionContext, asset

from curation_assets.config import CurationConfig
from curation_assets.core._validation import first_nonfinite_row
from curation_assets.graph import checks, metadata
from curation_assets.graph.resources import EmbedderResource, ExecutionResource
from curation_assets.graph.steps import ProgressLog, Step
from curation_assets.store import Corpus, Embeddings, fingerprint
from curation_assets.store.embedding_cache import EmbeddingCache, content_keys

CODE_VERSION = "embeddings-4"
GATHER_ROWS = 65_536  # rows copied from the cache into the shards at a time


def corpus_keys(corpus: Corpus) -> np.ndarray:
    """The content key of every corpus row, read one row group at a time."""
    return np.concatenate([content_keys(group.to_list()) for group in corpus.column_groups(corpus.content_column)])


def _checked(result, task: np.ndarray, ids: pl.Series) -> np.ndarray:
    """The corpus rows of a task's vectors; refuses NaN/inf."""
    positions = task[result.ok_positions(len(task))]
    bad = first_nonfinite_row(result.vectors)
    if bad is not None:
        row = int(positions[bad])
        raise ValueError(f"the embedder returned NaN/inf for row {row} (id {ids[row]!r}); nothing was written")
    return positions


class EmbeddingRun:
    """One materialization: the rows to embed, the embedded vectors on their way to the cache or the shards."""

    def __init__(self, step: Step, corpus: Corpus, embedder: EmbedderResource, execution: ExecutionResource):
        self.step, self.corpus = step, corpus
        self.backend = execution.get(step.config.execution)
        self.factory = embedder.factory(step.cfg.embedder)
        self.model = self.factory()  # cheap: models load on first use
        self.ids = corpus.column("id")
        self.failed: list[tuple[int, str]] = []
        self.timings: dict[str, float] = {}
        cache_cfg = step.config.embedding_cache
        self.cache = EmbeddingCache(step.layout.cache_dir("embeddings"), self.model.identity) \
            if cache_cfg.enabled and getattr(self.model, "cache_vectors", True) else None

    def _timed(self, name: str, started: float) -> None:
        self.timings[name] = round(time.perf_counter() - started, 3)

    def run(self, writer) -> tuple[np.ndarray, np.ndarray | None]:
        """Fill ``writer``; returns (corpus rows embedded now, the key of every shard row or None)."""
        if self.cache is None:
            rows = np.arange(len(self.ids))
            for _, vectors in self._embed(rows):
                writer.append(vectors)
            return rows, None
        started = time.perf_counter()
        keys = corpus_keys(self.corpus)
        found, _ = self.cache.lookup(keys)
        self._timed("cache_lookup_seconds", started)
        missing = np.flatnonzero(~found)
        for positions, vectors in self._embed(missing):
            self.cache.add(keys[positions], vectors)  # one committed segment per task: a kill keeps them
        started = time.perf_counter()
        found, location = self.cache.lookup(keys)
        ok = np.flatnonzero(found)
        for start in range(0, len(ok), GATHER_ROWS):
            writer.append(self.cache.gather(location[ok[start : start + GATHER_ROWS]]))
        self._timed("shards_from_cache_seconds", started)
        return missing, keys[ok]

    def _embed(self, rows: np.ndarray):
        """(corpus rows, vectors) of every embedding task over ``rows``; failed items go to ``self.failed``."""
        if len(rows) and hasattr(self.model, "load_model") and self.backend.name == "local":
            started = time.perf_counter()
            self.model.load_model()  # timed apart: the price of a run with anything to embed, whatever its size
            self._timed("model_load_seconds", started)
        started = time.perf_counter()
        progress = ProgressLog(self.step, "embedded new rows", len(rows))
        done = 0
        column = getattr(self.model, "input_column", None) or self.corpus.content_column
        for task, result in self.backend.embed(self.factory, self.corpus.path, column, rows):
            positions = _checked(result, task, self.ids)
            self.failed += [(int(task[i]), reason) for i, reason in result.failed]
            done += len(task)
            progress.update(done, f", {len(self.failed)} failed")
            yield positions, result.vectors
        self._timed("embed_seconds", started)


def embed_corpus(step: Step, corpus: Corpus, embedder: EmbedderResource, execution: ExecutionResource) -> dict:
    """Embed the corpus rows the cache lacks, write every row's vector into the shards; returns the facts for the
    record and the metadata."""
    run = EmbeddingRun(step, corpus, embedder, execution)
    writer = Embeddings.writer(step.layout, step.cfg.embedder.storage_dtype)
    try:
        embedded, keys = run.run(writer)
        shards = writer.publish()
    except BaseException:
        writer.abort()
        raise
    keep = np.ones(len(run.ids), dtype=bool)
    keep[[i for i, _ in run.failed]] = False
    corpus_rows = np.flatnonzero(keep)
    rows = pl.DataFrame({"id": run.ids.gather(corpus_rows), "corpus_row": corpus_rows})
    if keys is not None:
        rows = rows.with_columns(pl.Series("key", keys, dtype=pl.Binary))
    Embeddings.save_rows(step.layout, rows)
    cache_state = run.cache.compact(Embeddings.keys_in_use(step.layout, run.cache.directory.name, keys),
                                    step.config.embedding_cache.max_unused_rows) if run.cache else {}
    step.log(f"embedded {len(embedded)} new rows in {run.timings.get('embed_seconds', 0)} s, reused "
             f"{len(corpus_rows) - len(embedded) + len(run.failed)} from the cache")
    return facts_and_metadata(step, run, writer, shards, embedded, cache_state)


def facts_and_metadata(step: Step, run: EmbeddingRun, writer, shards, embedded: np.ndarray, cache: dict):
    failed = run.failed
    examples = pl.DataFrame({"row": [i for i, _ in failed[:10]], "id": [run.ids[i] for i, _ in failed[:10]],
                             "reason": [r for _, r in failed[:10]]}, schema={"row": pl.Int64, "id": pl.Utf8,
                                                                             "reason": pl.Utf8})
    model_dim = run.cache.dim if run.cache is not None else writer.dim
    reused = writer.rows - (len(embedded) - len(failed))
    facts = {"rows": writer.rows, "dim": int(writer.dim or 0), "model": run.model.name,
             "model_dim": int(model_dim or 0), "cache": run.cache.directory.name if run.cache else None}
    return facts, {
        "model": run.model.name, "model_identity": run.model.identity, "dagster/row_count": writer.rows,
        "dim": facts["dim"], "storage_dtype": step.cfg.embedder.storage_dtype, "shards": len(writer.paths),
        "embedded_new_rows": len(embedded), "reused_from_cache": reused if run.cache else 0,
        "summary": f"embedded {len(embedded)} new rows, reused {reused if run.cache else 0} from the cache",
        **run.timings, "model_loaded": len(embedded) > 0 and run.cache is not None,
        "torch_imported": "torch" in sys.modules,
        "cache": metadata.path_of(step.layout, run.cache.directory) if run.cache else "off",
        **cache, "cache_problems": (run.cache.problems if run.cache else []) or "none",
        "failed_rows": len(failed), "failed_examples": metadata.preview(examples) if len(examples) else "none",
        "items_per_second": round(len(embedded) / max(run.timings.get("embed_seconds", 0), 1e-9), 1)
        if len(embedded) else "nothing embedded",
        "path": metadata.path_of(step.layout, shards), **run.backend.run_summary(),
    }


def build_embeddings(curation: CurationConfig, partitions):
    """The embeddings asset, partitioned by modality."""

    @asset(partitions_def=partitions, group_name="embed", kinds={"pytorch", "numpy"}, code_version=CODE_VERSION,
           io_manager_key="store",
           description="Frozen-model embeddings of every corpus row, as sharded .npy memory maps "
                       "(sentence-transformers for text, EfficientNet-Lite0 for images and tiles, the points "
                       "themselves for the 2-D simulation); failed items are listed and left out.",
           check_specs=[checks.check_spec("embeddings_finite_and_expected_dim", "embeddings", partitions,
                                         "every vector finite, of the model's dimension")])
    def embeddings(context: AssetExecutionContext, raw_corpus: Corpus, embedder: EmbedderResource,
                   execution: ExecutionResource):
        step = Step.of(context, curation)
        fp = fingerprint(CODE_VERSION, raw_corpus.fingerprint, step.cfg.embedder.model_dump(), embedder.device,
                         embedder.batch_size)  # task sizes and the cache change no vector: not in the fingerprint
        return step.publish(step.layout.embeddings_dir, fp,
                            lambda: embed_corpus(step, raw_corpus, embedder, execution),
                            lambda: Embeddings.open(step.layout), checks.embeddings_checks,
                            input_fp=raw_corpus.fingerprint)

    return embeddings
