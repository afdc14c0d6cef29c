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


def first_nonfinite_row(X) -> int | None:
    """Index of the first row of X (n, d) holding NaN or inf, or None; streams over memmaps in chunks."""
    for start in range(0, X.shape[0], _CHECK_CHUNK_ROWS):
        finite = np.isfinite(np.asarray(X[start : start + _CHECK_CHUNK_ROWS])).all(axis=1)
        if not finite.all():
            return start + int(np.flatnonzero(~finite)[0])
    return None


def check_finite(X: np.ndarray, name: str = "X") -> None:
    """Raise naming the first row that holds NaN or inf."""
    row = first_nonfinite_row(X)
    if row is not None:
        raise ValueError(f"{name} has non-finite values (NaN or inf) in row {row}")
