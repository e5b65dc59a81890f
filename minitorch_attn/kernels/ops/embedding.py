"""The embedding's backward in Numba (used by `fused.Embedding` when Numba is installed).

The forward is a gather, weight[indices], which NumPy does well. The backward is the scatter-add

    gweight[indices[i]] += grad[i]          for every position i, in order (a repeated index adds up)

which `np.add.at` does correctly but slowly (~1 ms for the baby GPT's 768 positions × 128 features, a few
per cent of a training step). This loop does the same additions in the same order, so the result is
bit-identical to `np.add.at`. It is serial on purpose: two positions with the same token would race on
the same row if split over threads, and the whole scatter costs tens of microseconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import threads  # noqa: F401  (Numba's vector width is set before any compile)


@njit(cache=True, boundscheck=False)
def _scatter_add_rows(indices, grad, out):
    """out[indices[i], :] += grad[i, :] for i = 0, 1, ... (indices (N,) int64, grad (N, D), out (V, D))."""
    for i in range(indices.shape[0]):
        r = indices[i]
        for j in range(grad.shape[1]):
            out[r, j] += grad[i, j]


def embedding_backward(indices: np.ndarray, grad: np.ndarray, shape: tuple) -> np.ndarray:
    """The gradient of weight[indices] for a weight of `shape` (V, D) given `grad` (indices.shape + (D,))."""
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < -shape[0] or idx.max() >= shape[0]):
        raise IndexError(f"embedding backward: indices must be in [-{shape[0]}, {shape[0]}); got min {idx.min()} "
                         f"and max {idx.max()}")
    idx = np.where(idx < 0, idx + shape[0], idx)  # NumPy's negative indices, as np.add.at reads them
    out = np.zeros(shape, dtype=grad.dtype)
    g2 = np.ascontiguousarray(grad).reshape(-1, shape[1])
    _scatter_add_rows(idx, g2, out)
    return out
