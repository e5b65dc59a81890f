"""Luong attention's scores and local-p weights as functions (lesson 04); `nn.LuongAttention` holds the
parameters. The three scores of a query q against a key k:

    dot      q · k                       (needs query_dim == key_dim; no parameters)
    general  qᵀ W_a k                    W_a: (query_dim, key_dim)
    concat   v_aᵀ tanh(W_a [q; k])       W_a: (hidden_dim, query_dim + key_dim), v_a: (hidden_dim,)

Local-p weights: the softmax of the scores inside the window [p_t - D, p_t + D] times the Gaussian
exp(-(s - p_t)² / (2σ²)), σ = D / 2 (nn/luong.py's docstring has the whole story).
"""

from __future__ import annotations

import numpy as np

from ..autograd.ops import masked_fill, matmul, where
from .common import softmax

SCORES = ("dot", "general", "concat")



def luong_score(query, keys, score, W=None, v=None):
    """Luong's alignment scores (Exercise 4.1): query (B, Nq, q), keys (B, Nk, k) -> scores (B, Nq, Nk).

        "dot":      q_i · k_j                                    (q == k)
        "general":  q_iᵀ W k_j               W: (q, k)
        "concat":   vᵀ tanh(W [q_i; k_j])    W: (H, q + k), v: (H,); W [q; k] = W[:, :q] q + W[:, q:] k

    Any other `score` raises ValueError naming the three.
    """
    ### BEGIN SOLUTION
    if score == "dot":
        return matmul(query, keys.transpose(-2, -1))
    if score == "general":
        return matmul(matmul(query, W), keys.transpose(-2, -1))  # (q W) kᵀ: project the query, not the keys
    if score == "concat":
        q_dim = query.shape[-1]
        pq = matmul(query, W[:, :q_dim].transpose(0, 1))  # (B, Nq, H)
        pk = matmul(keys, W[:, q_dim:].transpose(0, 1))  # (B, Nk, H)
        return matmul((pq[:, :, None, :] + pk[:, None, :, :]).tanh(), v)
    ### END SOLUTION
    raise ValueError(f"luong_score: score must be one of {SCORES}; got {score!r}")



def local_p_weights(scores, positions, D, key_padding_mask=None):
    """Local-p weights (Exercise 4.2): scores (B, Nq, Nk), predicted positions p (B, Nq) (Tensors),
    half-width D > 0, optional key_padding_mask (B, Nk) (bool, True = padding). Returns (B, Nq, Nk):

        inside_ts = |s - p_t| <= D  (and key s is not padding), for key positions s = 0, 1, ..., Nk - 1
        align_t   = softmax of scores_t over the keys inside the window (0 outside it)
        weights   = align_t(s) · exp(-(s - p_t)² / (2σ²)),   σ = D / 2     (not renormalised)

    Weights outside the window are exactly 0; a row with no key inside its window is all zeros.
    """
    ### BEGIN SOLUTION
    n_keys = scores.shape[-1]
    s = np.arange(n_keys, dtype=scores.dtype)  # key positions
    outside = np.abs(s - positions.data[..., None]) > D  # (B, Nq, Nk): a constant, not differentiated
    if key_padding_mask is not None:
        outside = outside | key_padding_mask[:, None, :]
    align = softmax(masked_fill(scores, outside, -np.inf), axis=-1)
    empty = outside.all(axis=-1, keepdims=True)
    if empty.any():  # no key in the window: softmax gave NaN there; define the row as zeros
        align = where(np.broadcast_to(empty, align.shape), np.zeros((), align.dtype), align)
    sigma = D / 2
    distance = s - positions[..., None]  # (B, Nq, Nk), differentiable in p
    weights = align * (-(distance * distance) / (2 * sigma * sigma)).exp()
    ### END SOLUTION
    return weights
