"""Balance metrics: cluster-size statistics, label balance of a subset, the paper's 2-D KL."""

from __future__ import annotations

import numpy as np


def _distribution(counts) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total <= 0:
        raise ValueError("counts must contain at least one positive value")
    return counts / total


def normalized_entropy(counts, n_categories: int | None = None) -> float:
    """Shannon entropy of the count distribution divided by log(C); 1 = perfectly even."""
    p = _distribution(counts)
    c = len(p) if n_categories is None else n_categories
    if c <= 1:
        return 1.0
    nz = p[p > 0]
    return float(-(nz * np.log(nz)).sum() / np.log(c))


def kl_to_uniform(counts, n_categories: int | None = None) -> float:
    """KL(p ‖ uniform over C categories) in nats; 0 = perfectly even."""
    p = _distribution(counts)
    c = len(p) if n_categories is None else n_categories
    nz = p[p > 0]
    return float((nz * np.log(nz * c)).sum())


def gini(counts) -> float:
    """Gini coefficient of the counts: 0 = all equal, → 1 = one holds everything."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * x.sum()))


def cluster_size_stats(sizes) -> dict[str, float]:
    """min / median / max size, normalised entropy and Gini of one level's cluster sizes."""
    sizes = np.asarray(sizes)
    return {
        "n_clusters": int(len(sizes)),
        "min": int(sizes.min()),
        "median": float(np.median(sizes)),
        "max": int(sizes.max()),
        "normalized_entropy": normalized_entropy(sizes),
        "gini": gini(sizes),
    }


def label_balance(subset_labels, pool_labels) -> dict[str, float]:
    """Balance of a subset's labels against the classes of the pool.

    Parameters
    ----------
    subset_labels : (m,) array
        The label of every selected row (repeats count).
    pool_labels : (n,) array
        The label of every pool row; its classes are the C categories.

    Returns
    -------
    dict
        ``normalized_entropy`` and ``kl_to_uniform`` over all C pool classes, ``coverage`` = share of the
        pool's classes present, ``rare_half_share`` = share of the subset drawn from the rarest ⌊C/2⌋
        classes of the pool.
    """
    classes, pool_counts = np.unique(np.asarray(pool_labels), return_counts=True)
    sub = np.asarray(subset_labels)
    if len(sub) == 0:
        raise ValueError("the subset is empty")
    pos = np.searchsorted(classes, sub)
    if (pos >= len(classes)).any() or (classes[np.minimum(pos, len(classes) - 1)] != sub).any():
        raise ValueError("the subset holds labels that are not in the pool")
    counts = np.bincount(pos, minlength=len(classes))
    rare = np.argsort(pool_counts, kind="stable")[: len(classes) // 2]
    return {
        "normalized_entropy": normalized_entropy(counts, len(classes)),
        "kl_to_uniform": kl_to_uniform(counts, len(classes)),
        "coverage": float((counts > 0).mean()),
        "rare_half_share": float(counts[rare].sum() / len(sub)),
    }


def kde_kl_to_uniform(points: np.ndarray, bandwidth: float = 0.5, low: float = -3.0, high: float = 3.0,
                      step: float = 0.02) -> float:
    """The paper's 2-D uniformity metric: KL(Gaussian KDE of the points ‖ uniform on the square).

    The KDE (isotropic, std = bandwidth) is evaluated on a grid over [low, high]² with the
    given step and normalised over the grid; lower is more uniform.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must be (n, 2), got shape {points.shape}")
    axis = np.arange(low, high + step / 2, step)
    # The Gaussian kernel factorises over the two axes: density = Σ_i kx[i, gx] * ky[i, gy].
    kx = np.exp(-0.5 * ((points[:, 0:1] - axis[None, :]) / bandwidth) ** 2)
    ky = np.exp(-0.5 * ((points[:, 1:2] - axis[None, :]) / bandwidth) ** 2)
    density = kx.T @ ky
    p = density.ravel() / density.sum()
    nz = p[p > 0]
    return float((nz * np.log(nz * p.size)).sum())
