"""``embeddings``: one vector per corpus row, as memory-mapped ``.npy`` shards (the embedder's own output:
L2-normalised for the models, the coordinates themselves for 2-D points)."""


import numpy as np
import polars as pl
from dagster import AssetCheckSpec, AssetExecutionContext, MetadataValue, asset

from curation_assets.config import CurationConfig
from curation_assets.core._validation import first_nonfinite_row
from curation_assets.graph import checks, metadata
from curation_assets.graph.resources import EmbedderResource, ExecutionResource
from curation_assets.graph.steps import ProgressLog, Step
from curation_assets.store import Corpus, Embeddings, fingerprint

CODE_VERSION = "embeddings-3"


def embed_corpus(step: Step, corpus: Corpus, embedder: EmbedderResource, execution: ExecutionResource) -> dict:
    """Embed every corpus row task by task into the shards; returns facts for the record and metadata."""
    backend = execution.get(step.config.execution)
    factory = embedder.factory(step.cfg.embedder)
    ids = corpus.column("id")
    writer = Embeddings.writer(step.layout, step.cfg.embedder.storage_dtype)
    failed: list[tuple[int, str]] = []
    progress = ProgressLog(step, "embedded rows", len(ids))
    try:
        for start, stop, result in backend.embed(factory, corpus.path, corpus.content_column, len(ids)):
            positions = start + result.ok_positions(stop - start)
            bad = first_nonfinite_row(result.vectors)
            if bad is not None:
                raise ValueError(f"the embedder returned NaN/inf for row {int(positions[bad])} (id "
                                 f"{ids[int(positions[bad])]!r}); nothing was written")
            writer.append(result.vectors)
            failed += [(start + i, reason) for i, reason in result.failed]
            progress.update(stop, f", {len(failed)} failed")
        keep = np.ones(len(ids), dtype=bool)
        keep[[i for i, _ in failed]] = False
        shards = writer.publish()
    except BaseException:
        writer.abort()
        raise
    corpus_rows = np.flatnonzero(keep)
    Embeddings.save_rows(step.layout, pl.DataFrame({"id": ids.gather(corpus_rows), "corpus_row": corpus_rows}))
    model = factory()
    examples = pl.DataFrame({"row": [i for i, _ in failed[:10]], "id": [ids[i] for i, _ in failed[:10]],
                             "reason": [r for _, r in failed[:10]]}, schema={"row": pl.Int64, "id": pl.Utf8,
                                                                             "reason": pl.Utf8})
    facts = {"rows": writer.rows, "dim": int(writer.dim or 0), "model": model.name, "model_dim": int(model.dim)}
    return facts, {
        "model": model.name, "dagster/row_count": writer.rows, "dim": facts["dim"],
        "storage_dtype": step.cfg.embedder.storage_dtype, "shards": len(writer.paths), "failed_rows": len(failed),
        "failed_examples": metadata.preview(examples) if len(examples) else "none",
        "items_per_second": round(writer.rows / max(progress.elapsed(), 1e-9), 1),
        "path": MetadataValue.path(str(shards)), **backend.run_summary(),
    }


def build_embeddings(curation: CurationConfig, partitions):
    """The embeddings asset, partitioned by modality."""

    @asset(partitions_def=partitions, group_name="embed", kinds={"pytorch", "numpy"}, code_version=CODE_VERSION,
           io_manager_key="store",
           description="Frozen-model embeddings of every corpus row, as sharded .npy memory maps "
                       "(sentence-transformers for text, EfficientNet-Lite0 for images and tiles, the points "
                       "themselves for the 2-D simulation); failed items are listed and left out.",
           check_specs=[AssetCheckSpec("embeddings_finite_and_expected_dim", asset="embeddings")])
    def embeddings(context: AssetExecutionContext, raw_corpus: Corpus, embedder: EmbedderResource,
                   execution: ExecutionResource):
        step = Step.of(context, curation)
        fp = fingerprint(CODE_VERSION, raw_corpus.fingerprint, step.cfg.embedder.model_dump(), embedder.device,
                         embedder.batch_size, step.config.execution.embed_task_rows)
        return step.publish(step.layout.embeddings_dir, fp,
                            lambda: embed_corpus(step, raw_corpus, embedder, execution),
                            lambda: Embeddings.open(step.layout), checks.embeddings_checks,
                            input_fp=raw_corpus.fingerprint)

    return embeddings
