"""Naive attention in NumPy: the oracle every other kernel is tested against.

It materialises the whole (Nq, Nk) score matrix per head, so it needs O(B·H·Nq·Nk) memory: simple and
obviously right, and hopeless for long sequences (that is the point of lesson 10). It computes in the
dtype of its inputs; the tests call it in float64.

Conventions (causal alignment, key padding, fully masked rows): see `minitorch_attn.kernels.common`.
"""

from __future__ import annotations

import numpy as np

from .common import allowed_mask, check_backward_inputs, check_inputs


def _scores(q, k, causal, scale, key_padding_mask):
    """S = q kᵀ · scale with the masked pairs set to -inf; shape (B, H, Nq, Nk)."""
    S = (q @ np.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    mask = allowed_mask(q.shape[2], k.shape[2], causal, key_padding_mask)
    if mask is not None:
        S = np.where(mask, S, -np.inf)
    return S


def attention_forward(q, k, v, causal=False, scale=None, key_padding_mask=None):
    """o = softmax(q kᵀ · scale) v and lse = logsumexp(q kᵀ · scale) over the keys. Returns (o, lse)."""
    q, k, v, scale, key_padding_mask = check_inputs(q, k, v, scale, key_padding_mask)
    S = _scores(q, k, causal, scale, key_padding_mask)
    if S.shape[-1] == 0:  # no keys at all: every row is fully masked
        return np.zeros(q.shape[:3] + v.shape[3:], q.dtype), np.full(q.shape[:3], -np.inf, q.dtype)
    m = S.max(axis=-1)
    m_safe = np.where(np.isfinite(m), m, 0)  # fully masked row: exp(-inf - 0) = 0 below, not NaN
    P = np.exp(S - m_safe[..., None])
    l = P.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        o = (P @ v) / l[..., None]
        lse = m_safe + np.log(l)  # log(0) = -inf for a fully masked row
    o = np.where(l[..., None] > 0, o, 0)
    return o.astype(q.dtype, copy=False), lse.astype(q.dtype, copy=False)


def attention_backward(q, k, v, o, lse, do, causal=False, scale=None, key_padding_mask=None):
    """Gradients of sum(o * do) with respect to q, k, v, given the forward's o and lse.

    P = exp(S - lse);  dv = Pᵀ do;  dP = do vᵀ;  D = rowsum(do ∘ o);  dS = P ∘ (dP - D);
    dq = dS k · scale;  dk = dSᵀ q · scale.   Returns (dq, dk, dv).
    """
    q, k, v, o, lse, do, scale, key_padding_mask = check_backward_inputs(
        q, k, v, o, lse, do, scale, key_padding_mask)
    S = _scores(q, k, causal, scale, key_padding_mask)
    lse_safe = np.where(np.isfinite(lse), lse, 0)  # fully masked row: S = -inf there, so P = 0
    P = np.exp(S - lse_safe[..., None])
    dv = np.swapaxes(P, -1, -2) @ do
    dP = do @ np.swapaxes(v, -1, -2)
    D = np.sum(do * o, axis=-1, keepdims=True)
    dS = P * (dP - D)
    dq = (dS @ k) * q.dtype.type(scale)
    dk = (np.swapaxes(dS, -1, -2) @ q) * q.dtype.type(scale)
    return dq, dk, dv
