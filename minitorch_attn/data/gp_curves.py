"""1-D curves drawn from a Gaussian process with an RBF kernel, split into context and target points: the toy
regression task of neural processes (Garnelo et al. 2018; Kim et al. 2019's attentive neural processes). Lesson 15.

One batch holds `batch_size` curves. For each curve, `n_points` inputs x are drawn uniformly from `x_range`
and the outputs from the GP prior

    y ~ N(0, K + noise² I),      K_ij = variance · exp(-(x_i - x_j)² / (2 · length_scale²))

(sampled with a Cholesky factor of K + noise² I; `noise` also keeps the factorisation stable). The first
`n_context` points of every curve are its context; the targets are *all* `n_points` points, so the context is
a subset of the targets, as in the ANP paper's training setup. A model that has learned to use its context
should pass through the context points; the context reconstruction error measures exactly that.
Everything comes from `seed`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GPBatch(NamedTuple):
    x_context: np.ndarray  # (B, Nc, 1)
    y_context: np.ndarray  # (B, Nc, 1)
    x_target: np.ndarray  # (B, Nt, 1): all points, the context first
    y_target: np.ndarray  # (B, Nt, 1)


def rbf_kernel(x1: np.ndarray, x2: np.ndarray, length_scale: float = 0.4, variance: float = 1.0) -> np.ndarray:
    """K_ij = variance · exp(-(x1_i - x2_j)² / (2 length_scale²)) for x1 (..., N, 1), x2 (..., M, 1) -> (..., N, M)."""
    if length_scale <= 0 or variance <= 0:
        raise ValueError(f"rbf_kernel: length_scale and variance must be positive; got {length_scale}, {variance}")
    d = x1[..., :, None, 0] - x2[..., None, :, 0]
    return variance * np.exp(-0.5 * (d / length_scale) ** 2)


def gp_curves(batch_size: int, n_points: int = 50, n_context: int = 10, length_scale: float = 0.4,
              variance: float = 1.0, noise: float = 0.02, x_range: tuple[float, float] = (-2.0, 2.0),
              seed: int = 0, dtype=np.float32) -> GPBatch:
    """`batch_size` GP curves of `n_points` points each, the first `n_context` of them the context."""
    if batch_size < 1 or not 1 <= n_context <= n_points:
        raise ValueError(f"gp_curves needs batch_size >= 1 and 1 <= n_context <= n_points; got "
                         f"batch_size={batch_size}, n_context={n_context}, n_points={n_points}")
    if noise <= 0:
        raise ValueError(f"gp_curves: noise must be positive (it keeps the Cholesky factor stable); got {noise}")
    rng = np.random.default_rng(seed)
    x = rng.uniform(x_range[0], x_range[1], size=(batch_size, n_points, 1))
    cov = rbf_kernel(x, x, length_scale, variance) + noise**2 * np.eye(n_points)
    y = np.linalg.cholesky(cov) @ rng.standard_normal((batch_size, n_points, 1))
    x, y = x.astype(dtype), y.astype(dtype)
    return GPBatch(x_context=x[:, :n_context], y_context=y[:, :n_context], x_target=x, y_target=y)
