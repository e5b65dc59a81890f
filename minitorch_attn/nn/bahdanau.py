"""Additive attention (Bahdanau, Cho & Bengio 2015, "Neural machine translation by jointly learning to align
and translate"): the score of query i against key j is a one-hidden-layer network,

    e_ij = vᵀ tanh(W q_i + U k_j),      a_ij = softmax_j(e_ij),      c_i = Σ_j a_ij v_j

with W: (hidden, query_dim), U: (hidden, key_dim), v: (hidden,). In the paper the query is the decoder's
previous state s_{i-1} and the keys (= values) are the encoder's annotations h_j.

`U k_j` does not depend on the query, so a decoder that attends once per output step computes it once per
source sequence (`precompute_keys`) and passes it back in (`projected_keys=`): a step then costs
O(Nk · hidden) instead of O(Nk · key_dim · hidden).

Masks: `key_padding_mask` is a boolean array (B, Nk), True where a key is padding. Masked keys get weight
exactly 0. A query whose keys are *all* masked gets all-zero weights and a zero context (not NaN).
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd.ops import masked_fill, matmul, where
from ..autograd.tensor import Tensor
from .layers import Linear, uniform
from .module import Module


def as_padding_mask(key_padding_mask, batch: int, n_keys: int, who: str):
    """`key_padding_mask` as a bool array (B, Nk), or None; raises naming the shapes when it does not fit."""
    if key_padding_mask is None:
        return None
    mask = key_padding_mask.data if isinstance(key_padding_mask, Tensor) else np.asarray(key_padding_mask)
    if mask.dtype != bool:
        raise TypeError(f"{who}: key_padding_mask must be boolean (True = padding); got dtype {mask.dtype}")
    if mask.shape != (batch, n_keys):
        raise ValueError(f"{who}: key_padding_mask must have shape (B, Nk) = {(batch, n_keys)}; "
                         f"got {mask.shape}")
    return mask


def check_query_keys_values(who: str, query, keys, values, query_dim: int, key_dim: int | None):
    """Validate shapes; returns (query as (B, Nq, q), squeeze) where squeeze says the query was (B, q)."""
    if query.ndim not in (2, 3) or query.shape[-1] != query_dim:
        raise ValueError(f"{who}: query must have shape (B, Nq, {query_dim}) or (B, {query_dim}); "
                         f"got {tuple(query.shape)}")
    if keys is not None and (keys.ndim != 3 or (key_dim is not None and keys.shape[-1] != key_dim)):
        raise ValueError(f"{who}: keys must have shape (B, Nk, {key_dim}); got {tuple(keys.shape)}")
    if values.ndim != 3:
        raise ValueError(f"{who}: values must have shape (B, Nk, dv); got {tuple(values.shape)}")
    if keys is not None and tuple(keys.shape[:2]) != tuple(values.shape[:2]):
        raise ValueError(f"{who}: keys {tuple(keys.shape)} and values {tuple(values.shape)} must agree on "
                         "(B, Nk): one value per key")
    if query.shape[0] != values.shape[0]:
        raise ValueError(f"{who}: query {tuple(query.shape)} and values {tuple(values.shape)} have different "
                         "batch sizes")
    if values.shape[1] == 0:
        raise ValueError(f"{who}: there are no keys (values of shape {tuple(values.shape)})")
    squeeze = query.ndim == 2
    if squeeze:
        query = query.reshape(query.shape[0], 1, query.shape[1])
    return query, squeeze


def masked_softmax(scores, key_padding_mask=None):
    """softmax over the last axis of scores (B, Nq, Nk), with padded keys (mask (B, Nk), True = padding)
    given weight exactly 0; a row whose keys are all padding gets all-zero weights (not NaN).
    `F.masked_softmax` with the opposite convention (True = may attend), for every query alike."""
    if key_padding_mask is None:
        return F.softmax(scores, axis=-1)
    padding = np.asarray(getattr(key_padding_mask, "data", key_padding_mask))
    return F.masked_softmax(scores, ~padding[:, None, :], axis=-1)


def additive_attention(projected_query, projected_keys, v, values, key_padding_mask=None):
    """The core of additive attention (Exercise 3.1), on queries and keys already projected:

        projected_query: W q, shape (B, Nq, H)      projected_keys: U k, shape (B, Nk, H)
        v: (H,)   values: (B, Nk, dv)   key_padding_mask: None or bool (B, Nk), True = padding

    Returns (context (B, Nq, dv), weights (B, Nq, Nk)) with

        e_ij = vᵀ tanh(W q_i + U k_j);   weights = softmax_j(e) with padded keys at exactly 0;
        context_i = Σ_j weights_ij values_j

    A query whose keys are all padding gets zero weights and a zero context.
    """
    ### BEGIN SOLUTION
    hidden = (projected_query[:, :, None, :] + projected_keys[:, None, :, :]).tanh()  # (B, Nq, Nk, H)
    scores = matmul(hidden, v)  # (B, Nq, Nk)
    if key_padding_mask is None:
        weights = F.softmax(scores, axis=-1)
    else:
        mask = key_padding_mask[:, None, :]  # (B, 1, Nk): the same keys are padding for every query
        weights = F.softmax(masked_fill(scores, mask, -np.inf), axis=-1)
        empty = mask.all(axis=-1, keepdims=True)  # every key padded: softmax gave NaN, define it as 0
        if empty.any():
            weights = where(np.broadcast_to(empty, weights.shape), np.zeros((), weights.dtype), weights)
    context = matmul(weights, values)
    ### END SOLUTION
    return context, weights


class AdditiveAttention(Module):
    """Bahdanau's additive attention: `context, weights = attn(query, keys, values, key_padding_mask)`.

    query: (B, Nq, query_dim) or (B, query_dim)    keys: (B, Nk, key_dim)    values: (B, Nk, dv)
    key_padding_mask: None or bool (B, Nk), True = padding
    Returns context (B, Nq, dv) and weights (B, Nq, Nk), or (B, dv) and (B, Nk) for a (B, query_dim) query.

    Parameters (the paper's names): `W` = Linear(query_dim, hidden_dim, bias=False) applied to the query,
    `U` = Linear(key_dim, hidden_dim, bias=False) applied to the keys, `v`: (hidden_dim,).

    For step-by-step decoding, compute `pk = attn.precompute_keys(keys)` once per source sequence and call
    `attn(query, None, values, mask, projected_keys=pk)` at every step.
    """

    def __init__(self, query_dim: int, key_dim: int, hidden_dim: int, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        for name, n in (("query_dim", query_dim), ("key_dim", key_dim), ("hidden_dim", hidden_dim)):
            if int(n) < 1:
                raise ValueError(f"AdditiveAttention: {name} must be positive; got {n}")
        self.query_dim, self.key_dim, self.hidden_dim = query_dim, key_dim, hidden_dim
        self.W = Linear(query_dim, hidden_dim, bias=False, rng=rng, dtype=dtype)
        self.U = Linear(key_dim, hidden_dim, bias=False, rng=rng, dtype=dtype)
        self.v = uniform(rng, 1 / math.sqrt(hidden_dim), (hidden_dim,), dtype)

    def precompute_keys(self, keys) -> Tensor:
        """U k for every key, shape (B, Nk, hidden_dim): compute once per source sequence."""
        if keys.ndim != 3 or keys.shape[-1] != self.key_dim:
            raise ValueError(f"AdditiveAttention.precompute_keys: keys must have shape (B, Nk, {self.key_dim}); "
                             f"got {tuple(keys.shape)}")
        return self.U(keys)

    def forward(self, query, keys, values, key_padding_mask=None, projected_keys=None):
        who = f"AdditiveAttention(query_dim={self.query_dim}, key_dim={self.key_dim})"
        if keys is None and projected_keys is None:
            raise ValueError(f"{who}: pass keys, or projected_keys from precompute_keys(keys)")
        query, squeeze = check_query_keys_values(who, query, keys, values, self.query_dim, self.key_dim)
        if projected_keys is None:
            projected_keys = self.U(keys)
        elif tuple(projected_keys.shape) != (values.shape[0], values.shape[1], self.hidden_dim):
            raise ValueError(f"{who}: projected_keys must have shape (B, Nk, hidden_dim) = "
                             f"{(values.shape[0], values.shape[1], self.hidden_dim)}; got "
                             f"{tuple(projected_keys.shape)}")
        mask = as_padding_mask(key_padding_mask, values.shape[0], values.shape[1], who)
        context, weights = additive_attention(self.W(query), projected_keys, self.v, values, mask)
        if squeeze:
            return context.reshape(context.shape[0], context.shape[2]), weights.reshape(weights.shape[0], -1)
        return context, weights

    def extra_repr(self) -> str:
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, hidden_dim={self.hidden_dim}"
