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

from ..autograd.tensor import Tensor
from ..functional.additive import additive_attention, as_padding_mask, check_query_keys_values
from .layers import Linear, uniform
from .module import Module


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
