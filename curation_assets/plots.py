"""Small PNG plots embedded as markdown (``![...](data:image/png;base64,...)``) in asset metadata."""

from __future__ import annotations

import base64
import io

import numpy as np


def _figure(width=6.0, height=3.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.subplots(figsize=(width, height), dpi=80)


def _to_markdown(plt, fig, title: str) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def size_histogram_md(sizes, title: str) -> str:
    """Histogram of cluster sizes (log-spaced bins when sizes span decades)."""
    plt, (fig, ax) = _figure()
    sizes = np.asarray(sizes)
    top = max(2, int(sizes.max()))
    bins = np.unique(np.geomspace(1, top + 1, 30).astype(int)) if top > 50 else np.arange(1, top + 2)
    ax.hist(sizes, bins=bins, color="#4c72b0")
    if top > 50:
        ax.set_xscale("log")
    ax.set_xlabel("points per cluster")
    ax.set_ylabel("clusters")
    ax.set_title(title)
    return _to_markdown(plt, fig, title)


def share_bars_md(categories, pool_share, subset_share, title: str, pool_label="pool",
                  subset_label="subset") -> str:
    """Side-by-side bars: share of each category (cluster or label) in the pool vs the subset."""
    plt, (fig, ax) = _figure(7.0, 3.2)
    x = np.arange(len(categories))
    ax.bar(x - 0.2, pool_share, 0.4, label=pool_label, color="#c0c0c0")
    ax.bar(x + 0.2, subset_share, 0.4, label=subset_label, color="#4c72b0")
    ax.axhline(1.0 / max(1, len(categories)), color="#dd8452", lw=1, ls="--", label="uniform")
    if len(categories) <= 20:
        ax.set_xticks(x, [str(c)[:14] for c in categories], rotation=45, ha="right", fontsize=7)
    else:
        ax.set_xlabel(f"{len(categories)} categories, largest in the pool first")
    ax.set_ylabel("share")
    ax.set_title(title)
    ax.legend(fontsize=7)
    return _to_markdown(plt, fig, title)


def method_bars_md(table: dict[str, dict[str, float]], title: str) -> str:
    """Grouped bars: one group per metric, one bar per method (value ± std when given)."""
    plt, (fig, ax) = _figure(9.0, 3.6)
    metrics = list(next(iter(table.values())).keys())
    methods = list(table)
    width = 0.8 / len(methods)
    for i, method in enumerate(methods):
        vals = [table[method].get(m, (np.nan, 0.0)) for m in metrics]
        ax.bar(np.arange(len(metrics)) + i * width, [v[0] for v in vals], width, yerr=[v[1] for v in vals],
               label=method)
    ax.set_xticks(np.arange(len(metrics)) + 0.4 - width / 2, metrics, rotation=20, ha="right", fontsize=7)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _to_markdown(plt, fig, title)


def scatter_md(points, highlight, title: str) -> str:
    """2-D pool in grey with the selected points (or centroids) on top."""
    plt, (fig, ax) = _figure(4.0, 4.0)
    ax.scatter(points[:, 0], points[:, 1], s=1, color="#c0c0c0")
    ax.scatter(highlight[:, 0], highlight[:, 1], s=3, color="#4c72b0")
    ax.set_aspect("equal")
    ax.set_title(title)
    return _to_markdown(plt, fig, title)


def markdown_table(rows: list[dict], max_rows: int = 10, max_chars: int = 60) -> str:
    """A small markdown table (the UI renders it) of the first rows."""
    if not rows:
        return "_empty_"
    cols = list(rows[0])
    def cell(v):
        s = f"{v:.4g}" if isinstance(v, float) else str(v)
        return s.replace("|", "\\|").replace("\n", " ")[:max_chars]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows[:max_rows]]
    return "\n".join(lines)
