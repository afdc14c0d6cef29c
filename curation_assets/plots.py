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


def method_bars_md(rows: list[dict], metrics: list[str], title: str) -> str:
    """Grouped bars from long-form score rows (method, metric, value, std): one group per metric, one bar
    per method (value ± std)."""
    cell = {(r["method"], r["metric"]): (r["value"], r["std"]) for r in rows if r["metric"] in metrics}
    methods = list(dict.fromkeys(m for m, _ in cell))
    plt, (fig, ax) = _figure(9.0, 3.6)
    width = 0.8 / max(1, len(methods))
    for i, method in enumerate(methods):
        vals = [cell.get((method, m), (np.nan, 0.0)) for m in metrics]
        ax.bar(np.arange(len(metrics)) + i * width, [v[0] for v in vals], width, yerr=[v[1] for v in vals],
               label=method)
    ax.set_xticks(np.arange(len(metrics)) + 0.4 - width / 2, metrics, rotation=20, ha="right", fontsize=7)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _to_markdown(plt, fig, title)


def scores_markdown(rows: list[dict]) -> str:
    """Long-form score rows as a metric × method markdown table of "value ± std"."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    cell = {(r["method"], r["metric"]): f"{r['value']:.3f} ± {r['std']:.3f}" for r in rows}
    return markdown_table([{"metric": m, **{meth: cell.get((meth, m), "") for meth in methods}} for m in metrics],
                          max_rows=len(metrics), max_chars=40)


def scatter_md(points, highlight, title: str, equal_axes: bool = True) -> str:
    """2-D pool in grey with the selected points (or centroids) on top."""
    plt, (fig, ax) = _figure(4.5, 4.5)
    ax.scatter(points[:, 0], points[:, 1], s=1, color="#c0c0c0", label="pool")
    ax.scatter(highlight[:, 0], highlight[:, 1], s=3, color="#4c72b0", label="subset")
    if equal_axes:
        ax.set_aspect("equal")
    ax.legend(fontsize=7, markerscale=4)
    ax.set_title(title, fontsize=9)
    return _to_markdown(plt, fig, title)


def project_2d(X: np.ndarray, fit_rows: np.ndarray) -> np.ndarray:
    """A 2-D view of the rows of X: themselves when d = 2, else their first two principal components,
    fitted on ``fit_rows`` of X (a seeded randomized range finder: a few products with a thin matrix
    instead of a full SVD of an n × d matrix)."""
    X = np.asarray(X, dtype=np.float64)
    if X.shape[1] <= 2:
        return X[:, :2]
    fit = X[fit_rows]
    mean = fit.mean(axis=0)
    centred = fit - mean
    basis = np.random.default_rng(0).standard_normal((X.shape[1], 8))
    for _ in range(4):  # power iterations sharpen the top of the spectrum
        basis, _ = np.linalg.qr(centred.T @ (centred @ basis))
    _, _, vt = np.linalg.svd(centred @ basis, full_matrices=False)
    return (X - mean) @ (basis @ vt[:2].T)


def map_md(X, rows: np.ndarray, max_points: int, seed: int, title: str) -> str:
    """The pool (a random sample of at most ``max_points`` rows) and the subset rows ``rows`` (at most as
    many) on one 2-D map (PCA of the sampled pool for d > 2)."""
    rng = np.random.default_rng(seed)
    pool = np.arange(len(X)) if len(X) <= max_points else np.sort(rng.choice(len(X), max_points, replace=False))
    chosen = np.unique(rows)
    chosen = chosen if len(chosen) <= max_points else np.sort(rng.choice(chosen, max_points, replace=False))
    both = np.concatenate([pool, chosen])
    xy = project_2d(X[both], np.arange(len(pool)))
    return scatter_md(xy[: len(pool)], xy[len(pool):], title, equal_axes=X.shape[1] <= 2)


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


def thumbnail_png(blob: bytes, px: int = 48, upscale: bool = False) -> bytes:
    """A PNG thumbnail (at most ``px`` × ``px``; small images enlarged to it when ``upscale``) of encoded image
    bytes; empty bytes when they cannot be decoded."""
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(blob))
        if upscale and max(img.size) < px:
            scale = px / max(img.size)
            img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.NEAREST)
        img.thumbnail((px, px))
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="PNG")
        return buf.getvalue()
    except Exception:  # a preview must never fail the asset
        return b""


def preview_html(item, px: int = 48, chars: int = 80) -> str:
    """An inline preview for a markdown table cell: an ``<img>`` of image bytes, else the text, cut."""
    if isinstance(item, bytes):
        return f'<img src="data:image/png;base64,{base64.b64encode(thumbnail_png(item, px)).decode()}" width="{px}"/>'
    return str(item)[:chars]


def gallery_png_md(rows: list[tuple[str, list[bytes]]], title: str, px: int = 56) -> str:
    """A grid of thumbnails: one row per cluster (its caption, then its images), as markdown."""
    from PIL import Image, ImageDraw

    width = max(len(images) for _, images in rows)
    caption_w = 150
    grid = Image.new("RGB", (caption_w + width * (px + 4), len(rows) * (px + 6) + 22), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((4, 4), title, fill="black")
    for r, (caption, images) in enumerate(rows):
        y = 22 + r * (px + 6)
        draw.text((4, y + px // 2 - 12), caption, fill="black")
        for c, blob in enumerate(images):
            thumb = thumbnail_png(blob, px, upscale=True)
            if thumb:
                grid.paste(Image.open(io.BytesIO(thumb)).convert("RGB"), (caption_w + c * (px + 4), y))
    buf = io.BytesIO()
    grid.save(buf, format="PNG")
    return f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"
