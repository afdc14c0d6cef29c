"""Synthetic pools with known concepts: the five rings, the paper's 2-D mixture, Zipf concepts."""

from __future__ import annotations

import numpy as np

RING_SIZES = (20000, 200, 1000, 500, 8000)
RING_CENTRES = ((-2.2, 1.0), (0.0, 1.0), (2.2, 1.0), (-1.2, 0.2), (1.2, 0.2))


def five_rings(sizes=RING_SIZES, centres=RING_CENTRES, r_min: float = 0.7, r_max: float = 1.0,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points spread evenly over annuli (radius r_min..r_max) of very different sizes; returns (X, ring)."""
    rng = np.random.default_rng(seed)
    parts, labels = [], []
    for i, (n, (cx, cy)) in enumerate(zip(sizes, centres, strict=True)):
        radius = np.sqrt(rng.uniform(r_min**2, r_max**2, n))  # uniform over the annulus' area
        angle = rng.uniform(0, 2 * np.pi, n)
        parts.append(np.stack([cx + radius * np.cos(angle), cy + radius * np.sin(angle)], axis=1))
        labels.append(np.full(n, i))
    return np.concatenate(parts).astype(np.float32), np.concatenate(labels)


def paper_2d_mixture(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The paper's simulation: 7000/1000/500 points of three Gaussians (σ=0.5) + 500 uniform on [-3, 3]²."""
    rng = np.random.default_rng(seed)
    parts = [rng.normal(mean, 0.5, size=(n, 2)) for n, mean in
             ((7000, (-1, -1)), (1000, (1, -1)), (500, (0, 1)))]
    parts.append(rng.uniform(-3, 3, size=(500, 2)))
    labels = np.repeat(np.arange(4), [7000, 1000, 500, 500])
    return np.concatenate(parts).astype(np.float32), labels


def zipf_concepts(n_concepts: int = 50, n_points: int = 20000, dim: int = 64, exponent: float = 1.0,
                  spread: float = 0.35, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Long-tailed concepts: Gaussians around random unit centres, sizes ∝ rank^-exponent.

    Returns (X float32 (n, dim), concept labels); every concept has at least one point.
    """
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_concepts + 1) ** exponent
    sizes = np.maximum(1, np.round(n_points * weights / weights.sum())).astype(int)
    centres = rng.normal(size=(n_concepts, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = np.repeat(np.arange(n_concepts), sizes)
    X = centres[labels] + rng.normal(scale=spread / np.sqrt(dim), size=(len(labels), dim))
    return X.astype(np.float32), labels
