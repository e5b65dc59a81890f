"""Luong attention (Luong, Pham & Manning 2015, "Effective approaches to attention-based neural machine
translation"): three scores of a query q (the decoder's *current* state h_t) against a key k (an encoder
state h̄_s),

    dot      q · k                       (needs query_dim == key_dim; no parameters)
    general  qᵀ W_a k                    W_a: (query_dim, key_dim)
    concat   v_aᵀ tanh(W_a [q; k])       W_a: (hidden_dim, query_dim + key_dim), v_a: (hidden_dim,)

then a_t = softmax(scores) over the keys ("global" attention) and context c_t = Σ_s a_t(s) v_s.
`concat` is Bahdanau's additive score with W_a split into its query and key columns.

Local-p attention (`window=D`): predict a source position for each query,

    p_t = (S - 1) · sigmoid(v_pᵀ tanh(W_p h_t))        (S = the number of non-padding keys)

and weight only the keys inside the window [p_t - D, p_t + D], favouring those near p_t:

    a_t(s) = align_t(s) · exp(-(s - p_t)² / (2σ²)),   σ = D / 2,    a_t(s) = 0 exactly when |s - p_t| > D

where align_t is the softmax of the scores over the keys inside the window. Positions s count from 0, so
p_t lies in [0, S - 1] (the paper writes S · sigmoid(...) with positions from 1). Like the paper we do NOT
renormalise after the Gaussian by default, so a local row sums to less than 1; `renormalize=True` divides
each row by its sum (so it is a distribution again). Either way, as D grows (σ → ∞) the Gaussian tends to 1
and local attention becomes global attention. The window bounds are not differentiable; the Gaussian is,
so p_t (W_p, v_p) learns through it, as in the paper.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd.ops import matmul, where
from ..autograd.tensor import Tensor
from ..functional.additive import as_padding_mask, check_query_keys_values, padding_to_may_attend
from ..functional.luong import SCORES, local_p_weights, luong_score
from .layers import Linear, uniform
from .module import Module


class LuongAttention(Module):
    """Luong's global (or, with `window=D`, local-p) attention:
    `context, weights = attn(query, keys, values, key_padding_mask)`.

    query: (B, Nq, query_dim) or (B, query_dim)    keys: (B, Nk, key_dim)    values: (B, Nk, dv)
    key_padding_mask: None or bool (B, Nk), True = padding (padding must be at the end of a sequence for
    local-p, whose positions count the keys that are not padding)
    Returns context (B, Nq, dv) and weights (B, Nq, Nk) (or (B, dv), (B, Nk) for a (B, query_dim) query).

    score: "dot" | "general" | "concat" (see the module docstring); parameters `W_a` (general, concat) and
    `v_a` (concat, hidden_dim defaults to query_dim); local-p adds `W_p`: (hidden_dim, query_dim) and
    `v_p`: (hidden_dim,). `renormalize=True` divides local-p rows by their sum (the paper does not).
    """

    def __init__(self, query_dim: int, key_dim: int, score: str = "general", hidden_dim: int | None = None,
                 window: float | None = None, renormalize: bool = False, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"LuongAttention: score must be one of {SCORES}; got {score!r}")
        if score == "dot" and query_dim != key_dim:
            raise ValueError(f"LuongAttention(score='dot') needs query_dim == key_dim; got {query_dim} and "
                             f"{key_dim} (use score='general', which learns a (query_dim, key_dim) matrix)")
        if window is not None and not window > 0:
            raise ValueError(f"LuongAttention: window (the half-width D) must be positive; got {window}")
        self.query_dim, self.key_dim, self.score = query_dim, key_dim, score
        self.hidden_dim = hidden_dim if hidden_dim is not None else query_dim
        self.window, self.renormalize = window, renormalize
        if score == "general":
            self.W_a = uniform(rng, 1 / math.sqrt(key_dim), (query_dim, key_dim), dtype)
        elif score == "concat":
            self.W_a = uniform(rng, 1 / math.sqrt(query_dim + key_dim), (self.hidden_dim, query_dim + key_dim), dtype)
            self.v_a = uniform(rng, 1 / math.sqrt(self.hidden_dim), (self.hidden_dim,), dtype)
        if window is not None:
            self.W_p = Linear(query_dim, self.hidden_dim, bias=False, rng=rng, dtype=dtype)
            self.v_p = uniform(rng, 1 / math.sqrt(self.hidden_dim), (self.hidden_dim,), dtype)

    # ---- pieces -------------------------------------------------------------------------------------
    def precompute_keys(self, keys) -> Tensor:
        """What a decoder can compute once per source sequence: W_a[:, q:] k for "concat" (B, Nk, hidden_dim);
        the keys themselves for "dot" and "general" ("general" projects the query instead, which is cheaper)."""
        if keys.ndim != 3 or keys.shape[-1] != self.key_dim:
            raise ValueError(f"LuongAttention.precompute_keys: keys must have shape (B, Nk, {self.key_dim}); "
                             f"got {tuple(keys.shape)}")
        if self.score == "concat":
            return matmul(keys, self.W_a[:, self.query_dim:].transpose(0, 1))
        return keys

    def scores(self, query, keys, projected_keys=None):
        """Raw scores (B, Nq, Nk) for query (B, Nq, query_dim)."""
        W, v = getattr(self, "W_a", None), getattr(self, "v_a", None)
        if projected_keys is None:
            return luong_score(query, keys, self.score, W, v)
        if self.score != "concat":
            return luong_score(query, projected_keys, self.score, W, v)
        pq = matmul(query, self.W_a[:, : self.query_dim].transpose(0, 1))
        return matmul((pq[:, :, None, :] + projected_keys[:, None, :, :]).tanh(), self.v_a)

    def positions(self, query, n_keys: int, key_padding_mask=None):
        """Local-p's predicted positions p_t = (S - 1) · sigmoid(v_pᵀ tanh(W_p q_t)), shape (B, Nq)."""
        if self.window is None:
            raise ValueError("LuongAttention.positions: only local-p attention (window=D) predicts positions")
        lengths = np.full((query.shape[0], 1), n_keys, dtype=query.dtype)
        if key_padding_mask is not None:
            lengths = (n_keys - key_padding_mask.sum(axis=-1, keepdims=True)).astype(query.dtype)
        gate = matmul(self.W_p(query).tanh(), self.v_p).sigmoid()  # (B, Nq)
        return gate * np.maximum(lengths - 1, 0)

    # ---- forward ------------------------------------------------------------------------------------
    def forward(self, query, keys, values, key_padding_mask=None, projected_keys=None):
        who = f"LuongAttention(query_dim={self.query_dim}, key_dim={self.key_dim}, score={self.score!r})"
        if keys is None and projected_keys is None:
            raise ValueError(f"{who}: pass keys, or projected_keys from precompute_keys(keys)")
        query, squeeze = check_query_keys_values(who, query, keys, values, self.query_dim, self.key_dim)
        B, Nk = values.shape[0], values.shape[1]
        if projected_keys is not None:
            want = (B, Nk, self.hidden_dim if self.score == "concat" else self.key_dim)
            if tuple(projected_keys.shape) != want:
                raise ValueError(f"{who}: projected_keys must have shape {want} (from precompute_keys); "
                                 f"got {tuple(projected_keys.shape)}")
        mask = as_padding_mask(key_padding_mask, B, Nk, who)
        scores = self.scores(query, keys, projected_keys)
        if self.window is None:
            weights = F.masked_softmax(scores, padding_to_may_attend(mask), axis=-1)
        else:
            weights = local_p_weights(scores, self.positions(query, Nk, mask), self.window, mask)
            if self.renormalize:
                total = weights.sum(axis=-1, keepdims=True)
                weights = weights / where(total.data > 0, total, np.ones((), total.dtype))
        context = matmul(weights, values)
        if squeeze:
            return context.reshape(context.shape[0], context.shape[2]), weights.reshape(weights.shape[0], -1)
        return context, weights

    def extra_repr(self) -> str:
        s = f"query_dim={self.query_dim}, key_dim={self.key_dim}, score={self.score!r}"
        if self.score == "concat" or self.window is not None:
            s += f", hidden_dim={self.hidden_dim}"
        if self.window is not None:
            s += f", window={self.window}" + (", renormalize=True" if self.renormalize else "")
        return s
