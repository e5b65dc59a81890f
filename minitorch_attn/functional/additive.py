"""Additive (Bahdanau) attention as functions (lesson 03): the score of query i against key j is a
one-hidden-layer network, e_ij = vᵀ tanh(W q_i + U k_j), a_ij = softmax_j(e_ij), c_i = Σ_j a_ij v_j.

`additive_attention` takes the query and keys already projected (W q, U k); `nn.AdditiveAttention` holds
W, U and v. `as_padding_mask` and `check_query_keys_values` check the arguments of both attention modules
of lessons 03-04 (`nn.AdditiveAttention`, `nn.LuongAttention`).

Masks: `key_padding_mask` is a boolean array (B, Nk), True where a key is padding (torch's
nn.MultiheadAttention convention). Masked keys get weight exactly 0. A query whose keys are *all* masked
gets all-zero weights and a zero context (not NaN). `padding_to_may_attend` turns such a mask into the
(B, 1, Nk) "True = may attend" mask of `F.masked_softmax` and `F.scaled_dot_product_attention`.
"""

from __future__ import annotations

import numpy as np

from ..autograd.ops import masked_fill, matmul, where
from ..autograd.tensor import Tensor
from .common import softmax


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
        weights = softmax(scores, axis=-1)
    else:
        mask = key_padding_mask[:, None, :]  # (B, 1, Nk): the same keys are padding for every query
        weights = softmax(masked_fill(scores, mask, -np.inf), axis=-1)
        empty = mask.all(axis=-1, keepdims=True)  # every key padded: softmax gave NaN, define it as 0
        if empty.any():
            weights = where(np.broadcast_to(empty, weights.shape), np.zeros((), weights.dtype), weights)
    context = matmul(weights, values)
    ### END SOLUTION
    return context, weights



def padding_to_may_attend(key_padding_mask):
    """A key-padding mask (B, Nk), True = padding, as the (B, 1, Nk) mask of `F.masked_softmax` (True = may
    attend), the same keys for every query; None stays None."""
    if key_padding_mask is None:
        return None
    return ~np.asarray(getattr(key_padding_mask, "data", key_padding_mask))[:, None, :]
