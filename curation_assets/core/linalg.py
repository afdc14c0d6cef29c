"""Row normalisation shared by the core, the embedders and the asset graph."""

from __future__ import annotations

import numpy as np

CHUNK_ROWS = 65_536


def unit_rows(X, inplace: bool = False) -> np.ndarray:
    """Rows of ``X`` (n, d) scaled to unit L2 norm; rows of norm 0 stay 0.

    Returns a float32 array: a new one, or ``X`` itself when ``inplace`` (X must then be float32 and
    writable). Works in chunks of rows, so the temporary norms stay small.
    """
    out = X if inplace else np.array(X, dtype=np.float32, copy=True)
    for start in range(0, len(out), CHUNK_ROWS):
        block = out[start : start + CHUNK_ROWS]
        norms = np.sqrt(np.einsum("ij,ij->i", block, block))[:, None]
        np.divide(block, norms, out=block, where=norms > 0)
    return out


def read_rows(X, rows: np.ndarray, cosine: bool = False) -> np.ndarray:
    """X's rows ``rows`` as a float32 copy (X an array, memory map or shard view; increasing rows read a memory map
    forward), unit rows when ``cosine``."""
    part = np.ascontiguousarray(X[rows], dtype=np.float32)
    return unit_rows(part, inplace=True) if cosine else part
