"""The training-ready curated dataset: Parquet shards Hugging Face ``datasets`` reads, and a dataset card.

Layout of ``datasets/<modality>/``::

    data/train-00000-of-00003.parquet …   bounded shards (rows and bytes), images as {bytes, path} structs
    README.md                             the dataset card (YAML front matter + what, where from, how curated)

``datasets.load_dataset("parquet", data_dir="datasets/<modality>")`` (or ``load_dataset("datasets/<modality>")``)
returns the rows, with images decoded as PIL images: every shard's schema carries the ``huggingface``
features metadata ``datasets`` itself writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curation_assets.store.files import atomic_path, make_temp_dir, publish_shards

DATA_DIR = "data"
CARD = "README.md"
_TEMP_PREFIX = ".export-"
VALUE_DTYPES = {pa.string(): "string", pa.large_string(): "string", pa.string_view(): "string", pa.int64(): "int64",
                pa.int32(): "int32", pa.float32(): "float32", pa.float64(): "float64", pa.bool_(): "bool",
                pa.binary(): "binary", pa.large_binary(): "binary"}


def hf_feature(arrow_type: pa.DataType, name: str) -> dict:
    """The ``datasets`` feature (as its ``to_dict`` writes it) of one exported column."""
    if name == "image":
        return {"_type": "Image"}
    if pa.types.is_struct(arrow_type):
        return {f.name: hf_feature(f.type, f.name) for f in arrow_type}
    if pa.types.is_fixed_size_list(arrow_type):
        return {"feature": hf_feature(arrow_type.value_type, ""), "length": arrow_type.list_size, "_type": "List"}
    return {"dtype": VALUE_DTYPES[arrow_type], "_type": "Value"}


def _plain(arrow_type: pa.DataType) -> pa.DataType:
    """string/binary for their large and view variants (what ``datasets`` calls ``string``/``binary``)."""
    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return pa.string()
    if pa.types.is_large_binary(arrow_type) or pa.types.is_binary_view(arrow_type):
        return pa.binary()
    if pa.types.is_struct(arrow_type):
        return pa.struct([pa.field(f.name, _plain(f.type)) for f in arrow_type])
    return arrow_type


def with_hf_features(schema: pa.Schema) -> pa.Schema:
    features = {f.name: hf_feature(f.type, f.name) for f in schema}
    return schema.with_metadata({b"huggingface": json.dumps({"info": {"features": features}}).encode()})


class DatasetWriter:
    """Writes batches into shards of at most ``shard_rows`` rows and about ``shard_bytes`` bytes, in a temp
    directory; :meth:`publish` names them ``train-XXXXX-of-NNNNN.parquet`` and swaps them in with the card."""

    def __init__(self, directory: Path, shard_rows: int, shard_bytes: int):
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob(f"{_TEMP_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
        self.directory, self.shard_rows, self.shard_bytes = directory, shard_rows, shard_bytes
        self.tmp = make_temp_dir(directory, _TEMP_PREFIX)
        self.paths: list[Path] = []
        self.rows = self.bytes = 0
        self._writer: pq.ParquetWriter | None = None
        self._shard_rows = self._shard_bytes = 0

    def write(self, table: pa.Table) -> None:
        table = table.cast(pa.schema([pa.field(f.name, _plain(f.type)) for f in table.schema]))
        start = 0
        while start < table.num_rows:
            if self._writer is None:
                self.paths.append(self.tmp / f"part-{len(self.paths):05d}.parquet")
                self._writer = pq.ParquetWriter(self.paths[-1], with_hf_features(table.schema), compression="zstd")
                self._shard_rows = self._shard_bytes = 0
            room = self.shard_rows - self._shard_rows
            piece = table.slice(start, room)
            self._writer.write_table(piece.replace_schema_metadata(self._writer.schema.metadata))
            self._shard_rows += piece.num_rows
            self._shard_bytes += piece.nbytes
            self.rows += piece.num_rows
            start += piece.num_rows
            if self._shard_rows >= self.shard_rows or self._shard_bytes >= self.shard_bytes:
                self._close_shard()

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self.bytes += self.paths[-1].stat().st_size
            self._writer = None

    def publish(self, card: str) -> list[Path]:
        """Name the shards, write the card, and replace the previous dataset; returns the shard paths."""
        self._close_shard()
        shards = publish_shards(self.tmp, self.paths, self.directory, DATA_DIR, ".parquet")
        with atomic_path(self.directory / CARD) as tmp:
            tmp.write_text(card)
        return shards

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
