"""The anatomy of attention (Khatri et al. 2024, "On the anatomy of attention"): every attention mechanism of
the course is three parts composed,

    scores  = score(q, k)              how well each query matches each key, (..., Nq, Nk)
    weights = normaliser(scores, mask) turn scores into weights (softmax, or nothing at all, or 1/n)
    out     = combine(weights, v)      mix the values with the weights (a weighted sum, or a regrouped product)

    attend = compose_attention(score, normaliser, combine);   out = attend(q, k, v, mask=None)

Named parts (each reuses the library's own code for its formula where the library has it as a function):

    scores       additive_score(W, U, v)   Bahdanau:       vᵀ tanh(W q_i + U k_j)        (W, U: Linear modules)
                 luong_general_score(W)    Luong general:  q_iᵀ W k_j                    (`functional/luong.py`)
                 scaled_dot_score(scale)   Vaswani:        q_i · k_j · scale, scale = 1/√d by default
                 galerkin_score(eps)       Galerkin:       q_i · LN(k_j), kept FACTORED as (Q, LN(K))
    normalisers  softmax_normaliser        softmax over the keys; masked keys get weight 0, a row with no key 0
                 identity_normaliser       the scores themselves (masked ones 0)
                 mean_normaliser           the scores divided by n, the number of keys (Galerkin's 1/n)
    combines     weighted_sum              Σ_j w_ij v_j = W V
                 galerkin_combine(eps)     the Galerkin grouping Q (LN(K)ᵀ LN(V)) / n: needs factored weights

A FACTORED score `Factored(left, right, divisor)` stands for the matrix left @ rightᵀ / divisor without
computing it: a bilinear score followed by a linear normaliser can then be combined in the other order,
left @ (rightᵀ @ v) / divisor, O(N d²) instead of O(N² d) — linear attention's trick. Softmax is not linear, so
it needs the N×N matrix (it materialises a factored score); `galerkin_combine` refuses a dense one.

`mask`: None or a boolean array broadcastable to the scores, True = may attend (as F.scaled_dot_product_
attention's attn_mask). A factored score cannot be masked (ValueError): masking needs the entries.

What "reproduces" means (lesson 16): with the parts composed in the library's own order of operations the
results are bitwise equal (np.testing.assert_array_equal): Bahdanau's `additive_attention`, Luong's
`LuongAttention(score="general")`, scaled_dot_product_attention(backend="naive") and
`galerkin_attention(order="kv")`. Other groupings of the same products (the "qk" Galerkin order, dividing by n
before instead of after the product, a flash backend's tiled online softmax) agree to rounding only.

`attention_maps(model, idx)` (evaluation/anatomy.py) reads the attention weights of every layer and head of a
trained `nn.GPT`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ..autograd import ops
from ..autograd.tensor import Tensor, as_tensors
from .common import layer_norm, masked_softmax
from .luong import luong_score

__all__ = ["Factored", "additive_score", "compose_attention", "galerkin_combine", "galerkin_score",
           "identity_normaliser", "luong_general_score", "mean_normaliser", "scaled_dot_score", "softmax_normaliser",
           "weighted_sum"]


class Factored(NamedTuple):
    """The score matrix left @ rightᵀ / divisor, not computed: left (..., Nq, r), right (..., Nk, r)."""

    left: Tensor
    right: Tensor
    divisor: float = 1

    def dense(self) -> Tensor:
        s = ops.matmul(self.left, self.right.transpose(-2, -1))
        return s if self.divisor == 1 else s / self.divisor


# ---- scores --------------------------------------------------------------------------------------------
def additive_score(W, U, v):
    """Bahdanau's score vᵀ tanh(W q_i + U k_j) for q (B, Nq, q_dim), k (B, Nk, k_dim): W, U callables such as
    `AdditiveAttention`'s Linear modules, v (H,). Returns a function (q, k) -> scores (B, Nq, Nk) (Exercise 16.3)."""

    def score(q, k):
        ### BEGIN SOLUTION
        hidden = (W(q)[:, :, None, :] + U(k)[:, None, :, :]).tanh()  # (B, Nq, Nk, H)
        return ops.matmul(hidden, v)
        ### END SOLUTION

    return score


def luong_general_score(W):
    """Luong's "general" score q_iᵀ W k_j (W: (q_dim, k_dim)), through `luong_score` (functional/luong.py)."""
    return lambda q, k: luong_score(q, k, "general", W)


def scaled_dot_score(scale: float | None = None):
    """Vaswani's score (q · k) · scale with scale = 1/√d (d = q's last axis) when None."""

    def score(q, k):
        s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        return ops.matmul(q, k.transpose(-2, -1)) * s

    return score


def galerkin_score(eps: float = 1e-5):
    """Galerkin's score q_i · LN(k_j) (LN over features, no affine weights), kept factored as (Q, LN(K))."""

    def score(q, k):
        return Factored(q, layer_norm(k, k.shape[-1], eps=eps))

    return score


# ---- normalisers ---------------------------------------------------------------------------------------
def _mask(mask, scores_shape):
    if mask is None:
        return None
    m = np.asarray(getattr(mask, "data", mask))
    if m.dtype != bool:
        raise TypeError(f"compose_attention: mask must be boolean (True = may attend); got dtype {m.dtype}")
    try:
        fits = np.broadcast_shapes(m.shape, tuple(scores_shape)) == tuple(scores_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"compose_attention: mask of shape {m.shape} does not broadcast to the scores' shape "
                         f"{tuple(scores_shape)}")
    return np.broadcast_to(m, tuple(scores_shape))


def _dense(scores, mask, who: str):
    if isinstance(scores, Factored):
        if mask is not None:
            raise ValueError(f"{who}: a factored score (Galerkin's) cannot be masked: masking needs the N×N "
                             "entries; use a dense score")
        return scores.dense()
    return scores


def softmax_normaliser(scores, mask=None):
    """softmax over the keys (last axis). Masked keys get weight exactly 0; a row with no key it may attend to
    gets weights 0 (not NaN), forward and backward (`F.masked_softmax`). A factored score is materialised first."""
    scores = _dense(scores, mask, "softmax_normaliser")
    return masked_softmax(scores, _mask(mask, scores.shape), axis=-1)


def identity_normaliser(scores, mask=None):
    """No normaliser: the weights are the scores (masked ones 0). A factored score stays factored."""
    if isinstance(scores, Factored) and mask is None:
        return scores
    scores = _dense(scores, mask, "identity_normaliser")
    m = _mask(mask, scores.shape)
    return scores if m is None else ops.where(m, scores, 0.0)


def mean_normaliser(scores, mask=None):
    """The scores divided by n (Galerkin's 1/n): n = the number of keys, or with a mask the number of keys
    each query may attend to (masked weights 0; a row with none all 0). A factored score keeps its factors
    and records n as its divisor, so the combine can divide at the end."""
    if isinstance(scores, Factored) and mask is None:
        return Factored(scores.left, scores.right, scores.divisor * scores.right.shape[-2])
    scores = _dense(scores, mask, "mean_normaliser")
    m = _mask(mask, scores.shape)
    if m is None:
        return scores / scores.shape[-1]
    n = np.maximum(m.sum(axis=-1, keepdims=True), 1).astype(scores.dtype)
    return ops.where(m, scores, 0.0) / n


# ---- combines ------------------------------------------------------------------------------------------
def weighted_sum(weights, v):
    """Σ_j w_ij v_j: weights (..., Nq, Nk) @ v (..., Nk, dv). Factored weights are materialised first:
    (left @ rightᵀ) @ v / divisor."""
    if isinstance(weights, Factored):
        out = ops.matmul(ops.matmul(weights.left, weights.right.transpose(-2, -1)), v)
        return out if weights.divisor == 1 else out / weights.divisor
    return ops.matmul(weights, v)


def galerkin_combine(eps: float = 1e-5):
    """The Galerkin grouping: left @ (rightᵀ @ LN(v)) / divisor, from FACTORED weights (a bilinear score and a
    linear normaliser); LN over v's features, no affine weights."""

    def combine(weights, v):
        if not isinstance(weights, Factored):
            raise ValueError("galerkin_combine: needs factored weights (a bilinear score such as galerkin_score, "
                             "then identity_normaliser or mean_normaliser); a softmax or a mask materialises "
                             "the N×N weights, and then only weighted_sum applies")
        v_n = layer_norm(v, v.shape[-1], eps=eps)
        out = ops.matmul(weights.left, ops.matmul(weights.right.transpose(-2, -1), v_n))
        return out if weights.divisor == 1 else out / weights.divisor

    return combine


# ---- composition ---------------------------------------------------------------------------------------
def compose_attention(score, normaliser, combine):
    """attend(q, k, v, mask=None) = combine(normaliser(score(q, k), mask), v) (Exercise 16.2).

    q (..., Nq, dq), k (..., Nk, dk), v (..., Nk, dv): arrays are wrapped as Tensors (their dtype kept).
    Raises ValueError naming the shapes when k and v disagree on Nk or q and k on their batch axes."""

    def attend(q, k, v, mask=None):
        q, k, v = as_tensors("compose_attention", (q, k, v))
        if k.ndim < 2 or v.ndim < 2 or q.ndim < 2 or k.shape[-2] != v.shape[-2] or q.shape[:-2] != k.shape[:-2]:
            raise ValueError(f"compose_attention: need q (..., Nq, dq), k (..., Nk, dk), v (..., Nk, dv) with the "
                             f"same batch axes and one value per key; got q {q.shape}, k {k.shape}, v {v.shape}")
        ### BEGIN SOLUTION
        return combine(normaliser(score(q, k), mask), v)
        ### END SOLUTION

    return attend


