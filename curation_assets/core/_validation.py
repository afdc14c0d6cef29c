"""Argument checks shared by the core: every message names the offending value."""

from __future__ import annotations

import numpy as np

_CHECK_CHUNK_ROWS = 65_536  # a boolean chunk × d at a time


def as_float32_matrix(X, name: str = "X") -> np.ndarray:
    """Return ``X`` as a 2-D float32 array (a memmap stays a memmap when already float32)."""
    if not hasattr(X, "ndim"):
        X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (n, d) array, got shape {tuple(X.shape)}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(X.shape)}")
    if X.dtype != np.float32:
        X = np.asarray(X, dtype=np.float32)
    return X


def check_finite(X: np.ndarray, name: str = "X") -> None:
    """Raise naming the first row that holds NaN or inf; streams over memmaps in chunks."""
    for start in range(0, X.shape[0], _CHECK_CHUNK_ROWS):
        block = np.asarray(X[start : start + _CHECK_CHUNK_ROWS])
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = start + int(np.flatnonzero(~finite)[0])
            n_bad = int((~finite).sum())
            raise ValueError(f"{name} has non-finite values (NaN or inf) in row {row} "
                             f"({n_bad} bad rows in rows {start}..{start + len(block) - 1})")
