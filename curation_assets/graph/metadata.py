"""Metadata in Dagster's own types: row counts, column schemas, table previews, paths; PNG plots as markdown."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from curation_assets.plots import gallery_png_md, markdown_table, preview_html, share_bars_md
from curation_assets.store import Layout

PREVIEW_CHARS = 80


def _column_type(arrow_type) -> str:
    return str(arrow_type).replace("large_", "")


def path_of(layout: Layout, path: Path) -> MetadataValue:
    """The published location of an output file (not the staging directory it is written to)."""
    return MetadataValue.path(str(layout.published(path)))


def table_facts(path: Path, rows: int) -> dict:
    """``dagster/row_count`` and ``dagster/column_schema`` of a Parquet output."""
    schema = pq.read_schema(path)
    columns = [TableColumn(name, _column_type(schema.field(name).type)) for name in schema.names]
    return {"dagster/row_count": rows, "dagster/column_schema": TableSchema(columns=columns)}


def _cell(value):
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, float | int | bool) or value is None:
        return value
    return str(value)[:PREVIEW_CHARS]


def preview(frame: pl.DataFrame, max_rows: int = 10) -> MetadataValue:
    """The first rows as a Dagster table (bytes shown as their size, long text cut)."""
    head = frame.head(max_rows)
    records = [TableRecord({k: _cell(v) for k, v in row.items()}) for row in head.to_dicts()]
    schema = TableSchema(columns=[TableColumn(c, str(t)) for c, t in head.schema.items()])
    return MetadataValue.table(records=records, schema=schema)


def label_distribution(labels: pl.Series) -> dict:
    """Class count and a share plot of the labels present (labels serve benchmarks only)."""
    present = labels.drop_nulls()
    if present.is_empty():
        return {"labelled_rows": 0}
    counts = present.value_counts(sort=True)
    share = (counts["count"] / counts["count"].sum()).to_list()
    return {"labelled_rows": len(present), "classes": len(counts),
            "label_distribution": MetadataValue.md(share_bars_md(counts[present.name].to_list(), share, share,
                                                                 "label share (benchmarks only)",
                                                                 subset_label="corpus"))}


def duplicate_examples(removed: pl.DataFrame, rows: pl.DataFrame, keys: list | None):
    """A few removed rows beside the kept row each duplicates (text snippets or thumbnails)."""
    if keys is None or removed.is_empty():
        return "none"
    position = rows.select("id", pl.int_range(pl.len()).alias("row"))
    kept = position.rename({"id": "duplicate_of", "row": "kept_row"})
    pairs = (removed.join(position, on="id", maintain_order="left")
             .join(kept, on="duplicate_of", maintain_order="left"))
    table = [{"removed": preview_html(keys[r]), "kept": preview_html(keys[k]), "removed_id": i, "kept_id": d,
              "rule": rule, "cosine": round(float(sim), 3)}
             for r, k, i, d, rule, sim in pairs.select("row", "kept_row", "id", "duplicate_of", "rule",
                                                        "similarity").iter_rows()]
    return MetadataValue.md(markdown_table(table, max_chars=4000))


def gallery(title: str, clusters: list[tuple[int, int, list]]) -> MetadataValue:
    """Clusters (id, pool points under it, content of its members closest to the centroid): a thumbnail grid
    for images, a table of snippets otherwise."""
    if clusters and clusters[0][2] and isinstance(clusters[0][2][0], bytes):
        return MetadataValue.md(gallery_png_md([(f"cluster {c}\n{n} point{'s' * (n != 1)}", items)
                                                for c, n, items in clusters], title))
    table = [{"cluster": c, "points": n, "closest members": " · ".join(preview_html(i, chars=70) for i in items)}
             for c, n, items in clusters]
    return MetadataValue.md(f"**{title}**\n\n" + markdown_table(table, max_rows=len(table), max_chars=600))
