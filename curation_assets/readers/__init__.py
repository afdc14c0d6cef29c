"""Readers that turn a user's directory of files into canonical, streamed ``polars`` batches.

- :func:`iter_text_corpus` -> ``id, text, label``
- :func:`iter_image_corpus` -> ``id, image (encoded bytes), label``
- :func:`iter_satellite_corpus` -> ``id, image (PNG/JPEG bytes), label`` (GeoTIFFs tiled and stretched)

Each returns a :class:`CorpusIterator`: iterate it for DataFrames, then read ``.skipped`` (a
:class:`SkipCounts` dict ``{rule: n}``) for the rows each skip rule dropped. Problems the user must fix raise
:class:`CorpusError` (a ``ValueError``) whose message names the file (and row/line/offset where relevant).
No module here imports torch, sentence-transformers or dagster.
"""

from ._common import CorpusError, CorpusIterator, SkipCounts
from .images import iter_image_corpus
from .satellite import iter_satellite_corpus
from .text import content_id, iter_text_corpus

__all__ = [
    "CorpusError",
    "CorpusIterator",
    "SkipCounts",
    "content_id",
    "iter_image_corpus",
    "iter_satellite_corpus",
    "iter_text_corpus",
]
