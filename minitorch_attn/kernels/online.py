"""The online softmax normaliser (Milakov & Gimelshein 2018), the idea flash attention is built on.

A softmax over a row needs two numbers: the row max `m` (for stability) and the normaliser
`l = sum(exp(x - m))`. Both can be computed in one streaming pass: after seeing a new block whose
own max and normaliser are (m_b, l_b),

    m' = max(m, m_b)
    l' = l * exp(m - m') + l_b * exp(m_b - m')

so a row of any length is handled a block at a time, and two halves computed on different workers merge
with the same rule. `logsumexp = m + log(l)`; `softmax = exp(x - m) / l`.
Conventions: an empty prefix is (m, l) = (-inf, 0); a row of all -inf ends as (-inf, 0).
"""

from __future__ import annotations

import numpy as np


def merge_normalisers(m_a, l_a, m_b, l_b):
    """Combine the (max, normaliser) of two disjoint parts of a row (Exercise 2.3).

    Must be exact when either part is empty or all -inf: (-inf, 0) merged with (m, l) gives (m, l),
    without NaN (note that -inf - -inf is NaN, so never subtract two maxima that may both be -inf).
    """
    ### BEGIN SOLUTION
    m = np.maximum(m_a, m_b)
    safe = np.where(np.isfinite(m), m, 0)  # both parts empty: scale factors below become exp(-inf) = 0
    l = l_a * np.exp(m_a - safe) + l_b * np.exp(m_b - safe)
    ### END SOLUTION
    return m, l


def online_normaliser(x, block_size: int = 128):
    """Row max `m` and normaliser `l = sum(exp(x - m))` along the last axis, reading `block_size`
    columns at a time and folding each block in with `merge_normalisers` (Exercise 2.4).

    Only O(rows) numbers are kept between blocks: never the whole row's exponentials.
    Returns (m, l), each of shape x.shape[:-1].
    """
    x = np.asarray(x)
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1; got {block_size}")
    ### BEGIN SOLUTION
    m = np.full(x.shape[:-1], -np.inf, dtype=x.dtype)
    l = np.zeros(x.shape[:-1], dtype=x.dtype)
    for start in range(0, x.shape[-1], block_size):
        block = x[..., start : start + block_size]
        m_b = block.max(axis=-1)
        safe = np.where(np.isfinite(m_b), m_b, 0)
        l_b = np.exp(block - safe[..., None]).sum(axis=-1)
        m, l = merge_normalisers(m, l, m_b, l_b)
    ### END SOLUTION
    return m, l


def online_softmax(x, block_size: int = 128):
    """Softmax along the last axis from the streamed (m, l): exp(x - m) / l."""
    x = np.asarray(x)
    m, l = online_normaliser(x, block_size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.exp(x - m[..., None]) / l[..., None]
