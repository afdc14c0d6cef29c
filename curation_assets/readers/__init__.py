"""Readers that turn a user's directory of files into canonical, streamed ``polars`` batches.

- :func:`iter_text_corpus` -> ``id, text, label``
- :func:`iter_image_corpus` -> ``id, image (encoded bytes), label``
- :func:`iter_satellite_corpus` -> ``id, image (PNG/JPEG bytes), label`` (GeoTIFFs tiled and stretched)

Each returns a :class:`CorpusIterator`: iterate it for DataFrames, then read ``.skipped`` (a
:class:`SkipCounts` dict ``{rule: n}``) for the rows each skip rule dropped. Problems the user must fix raise
:class:`CorpusError` (a ``ValueError``) whose message names the file (and row/line/offset where relevant).
:data:`READERS` names them for ``source.reader`` in ``curation.yaml``; a new file format is one entry here.
No module here imports torch, sentence-transformers or dagster.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from ._common import CorpusError, CorpusIterator, FolderListing, SkipCounts, list_folder
from .images import GEOREF, iter_image_corpus
from .satellite import iter_satellite_corpus
from .text import content_id, iter_text_corpus


@dataclass(frozen=True)
class Reader:
    """A folder format: the corpus column it fills, ``stream(directory, source, root) -> CorpusIterator``
    (``source``: the modality's ``source`` block, for options such as ``tile_px``; ``root``: the data root, no
    link outside it is followed; ``vectors``: a precomputed vector column to carry, text and image readers) and
    the optional columns
    it may add, with their types (null where a row has none)."""

    content_column: str
    stream: Callable[..., CorpusIterator]
    extra_columns: dict = field(default_factory=dict)


READERS = {
    "text": Reader("text", lambda directory, source, root, vectors=None: iter_text_corpus(
        directory, root=root, vectors=vectors)),
    "image": Reader("image", lambda directory, source, root, vectors=None: iter_image_corpus(
        directory, root=root, vectors=vectors)),
    "satellite": Reader("image", lambda directory, source, root, vectors=None: iter_satellite_corpus(
        directory, tile_px=source.tile_px, bands=source.bands, root=root), {"georef": GEOREF}),
}

__all__ = [
    "GEOREF",
    "READERS",
    "CorpusError",
    "CorpusIterator",
    "FolderListing",
    "Reader",
    "SkipCounts",
    "content_id",
    "iter_image_corpus",
    "iter_satellite_corpus",
    "iter_text_corpus",
    "list_folder",
]
