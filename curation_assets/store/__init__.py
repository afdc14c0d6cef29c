"""The one data-access room: every path, every loader and writer, the resume records and the lock.

No Dagster here. Asset code reads its inputs as the lazy handles of :mod:`.artifacts` (handed to it by
the IO manager) and writes its outputs with their writers inside :func:`.records.materialize`.
"""

from curation_assets.store.artifacts import (
    Corpus,
    Dataset,
    Embeddings,
    Pool,
    Scores,
    StaleInputError,
    Subset,
    Tree,
    open_artifact,
)
from curation_assets.store.files import confined, data_root, load_npy, save_npy, save_parquet
from curation_assets.store.layout import Layout
from curation_assets.store.records import NotMaterializedError, Record, fingerprint, materialize
from curation_assets.store.shards import ShardedArray, ShardWriter

__all__ = [
    "Corpus", "Dataset", "Embeddings", "Layout", "NotMaterializedError", "Pool", "Record", "Scores", "ShardWriter",
    "ShardedArray", "StaleInputError", "Subset", "Tree", "confined", "data_root", "fingerprint", "load_npy",
    "materialize", "open_artifact", "save_npy", "save_parquet",
]
