"""Modern Hopfield networks (Ramsauer et al. 2020, "Hopfield Networks is All You Need") as functions
(lessons 07-08); the classical binary network (Hopfield 1982) to compare with is `nn.ClassicalHopfield`
(nn/hopfield.py: it is a model with state, its Hebbian weights), the layers of lesson 08 are in nn/ too.

**Layout convention (used everywhere in this library): stored patterns are the ROWS of X.**

    X   (N, d)  or (..., N, d)     N stored patterns x_1 ... x_N, each a row of d features
    ξ   (d,)    or (..., S, d)     one state pattern, or S of them (rows), batched like X

The paper writes the stored patterns as the *columns* of a (d, N) matrix, so its update ξ ← X softmax(β Xᵀξ)
reads, in our row layout,

    ξ_new = softmax(β ξ Xᵀ) X          scores s_i = x_i · ξ,  p = softmax(β s),  ξ_new = Σ_i p_i x_i

which is attention with the state as the query and the stored patterns as both keys and values.

The energy (the paper's eq. 2, with lse(β, z) = β⁻¹ log Σ_i exp(β z_i)):

    E(ξ) = -lse(β, X ξ) + ½ ξ·ξ + β⁻¹ log N + ½ M²,      M = max_i ‖x_i‖

The update is the concave-convex procedure on E, so **E never increases** under it (the paper's Theorem 1),
whatever β and the patterns; the last two terms are constants that make E ≥ 0.

Every function takes NumPy arrays or `Tensor`s. With Tensors the result is a Tensor in the graph (gradients
flow to X and ξ); with arrays only, the result is an array of the inputs' dtype (float64 stays float64).
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from ..autograd import ops
from ..autograd.tensor import Tensor, as_tensors, no_grad, to_tensor
from ..shapes import shape_of
from .common import logsumexp, softmax
from .sdpa import scaled_dot_product_attention

__all__ = [
    "effective_patterns", "hopfield_association", "hopfield_energy", "hopfield_update", "retrieval_bound",
    "separation",
]


def _grad_mode(tensor_mode: bool):
    """Record a graph only when a Tensor came in (arrays in, arrays out, nothing recorded)."""
    return contextlib.nullcontext() if tensor_mode else no_grad()


def _prepare(name: str, X, xi):
    """(X, ξ as (..., S, d), tensor_mode, squeeze) with the shapes checked; errors name both shapes."""
    tensor_mode = isinstance(X, Tensor) or isinstance(xi, Tensor)
    X = to_tensor(X)
    xi = to_tensor(xi)
    X, xi = as_tensors(name, (X, xi))
    if X.dtype.kind != "f" or xi.dtype.kind != "f":
        X, xi = X.float(), xi.float()
    if X.ndim < 2:
        raise ValueError(f"{name}: the stored patterns X need shape (N, d) (rows are patterns); got {shape_of(X)}")
    if xi.ndim < 1 or xi.shape[-1] != X.shape[-1]:
        raise ValueError(f"{name}: the state xi {shape_of(xi)} must end in the pattern size d = {X.shape[-1]} of "
                         f"X {shape_of(X)} (rows of X are the stored patterns; xi is (d,) or (..., S, d))")
    squeeze = xi.ndim == 1
    if squeeze:
        xi = xi.reshape(1, xi.shape[0])
    return X, xi, tensor_mode, squeeze


def hopfield_update(X, xi, beta: float = 1.0, steps: int | None = 1, tol: float | None = None,
                    return_weights: bool = False):
    """Apply the modern Hopfield update ξ ← softmax(β ξ Xᵀ) X (Exercise 7.1).

    X (N, d) or (..., N, d): stored patterns as rows; xi (d,) or (..., S, d): state(s). `steps` updates, or,
    with `tol`, until the largest change of any entry is below `tol` (at most `steps` updates; steps=None
    means at most 10,000). Returns the new state(s), shaped like xi; with `return_weights=True` returns
    (state, p), p (..., S, N) (or (N,) for one state) the weights of the last update.
    """
    X, xi, tensor_mode, squeeze = _prepare("hopfield_update", X, xi)
    if steps is None:
        steps = 10_000
    if steps < 1:
        raise ValueError(f"hopfield_update: steps must be at least 1; got {steps}")
    with _grad_mode(tensor_mode):
        p = None
        ### BEGIN SOLUTION
        Xt = X.transpose(-2, -1)
        for _ in range(steps):
            p = softmax(ops.matmul(xi, Xt) * beta, axis=-1)  # (..., S, N): one distribution per state
            new = ops.matmul(p, X)  # (..., S, d): the weighted average of the stored patterns
            change = float(np.max(np.abs(new.data - xi.data))) if tol is not None else None
            xi = new
            if tol is not None and change < tol:
                break
        ### END SOLUTION
    if squeeze:
        xi, p = xi.reshape(xi.shape[-1]), p.reshape(p.shape[-1])
    if not tensor_mode:
        xi, p = xi.data, p.data
    return (xi, p) if return_weights else xi


def hopfield_energy(X, xi, beta: float = 1.0):
    """The modern Hopfield energy of state(s) xi (Exercise 7.2):

        E(ξ) = -β⁻¹ log Σ_i exp(β x_i·ξ) + ½ ξ·ξ + β⁻¹ log N + ½ M²,   M = max_i ‖x_i‖

    X (N, d) or (..., N, d) stored patterns as rows; xi (d,) -> a scalar, or (..., S, d) -> (..., S).
    """
    if beta <= 0:
        raise ValueError(f"hopfield_energy: beta must be positive; got {beta}")
    X, xi, tensor_mode, squeeze = _prepare("hopfield_energy", X, xi)
    with _grad_mode(tensor_mode):
        n = X.shape[-2]
        ### BEGIN SOLUTION
        scores = ops.matmul(xi, X.transpose(-2, -1))  # (..., S, N): x_i · ξ
        lse = logsumexp(scores * beta, axis=-1) / beta  # (..., S)
        M2 = (X * X).sum(axis=-1).max(axis=-1, keepdims=True)  # (..., 1): the largest squared norm
        energy = -lse + 0.5 * (xi * xi).sum(axis=-1) + math.log(n) / beta + 0.5 * M2
        ### END SOLUTION
    if squeeze:
        energy = energy.reshape(())
    return energy if tensor_mode else energy.data


def effective_patterns(p, axis: int = -1):
    """How many patterns a distribution p attends to: 1 / Σ_i p_i² (Exercise 7.4).

    Exactly k for a uniform distribution over k patterns, 1 for a one-hot one; in between for anything else
    (the inverse participation ratio). Arrays in, array out; a Tensor in, a Tensor out (differentiable).
    """
    ### BEGIN SOLUTION
    out = 1.0 / (p * p).sum(axis=axis)
    ### END SOLUTION
    return out


def separation(X, index=None) -> np.ndarray:
    """Δ_i = x_i·x_i - max_{j≠i} x_i·x_j: how far pattern i stands out from the others (the paper's
    separation; arrays, rows are patterns). With `index`, only those patterns' Δ."""
    X = np.asarray(getattr(X, "data", X), dtype=np.float64)
    idx = np.arange(len(X)) if index is None else np.atleast_1d(index)
    G = X[idx] @ X.T
    self_ = G[np.arange(len(idx)), idx]
    G[np.arange(len(idx)), idx] = -np.inf
    return self_ - G.max(axis=1)


def retrieval_bound(n_patterns: int, beta: float, M: float) -> float:
    """The separation that guarantees retrieval in one update (the paper's Theorem 3):

        Δ ≥ 2/(βN) + β⁻¹ log(2 (N - 1) N β M²)

    then the update maps a ball around x_i into itself and converges to the fixed point near x_i
    (a sufficient condition: retrieval usually works well below it)."""
    N = n_patterns
    return 2.0 / (beta * N) + math.log(2 * (N - 1) * N * beta * M * M) / beta


def hopfield_association(q: Tensor, k: Tensor, v: Tensor, beta: float, steps: int = 1, tol: float | None = None,
                         attn_mask=None, dropout_p: float = 0.0, rng=None):
    """The association core of a Hopfield layer (Exercise 8.1). Returns (out, weights).

    q (..., S, c) state patterns, k (..., N, c) stored patterns, v (..., N, dv) pattern projections, all
    already projected. Do `steps - 1` Hopfield updates of the state in the association space,
    ξ ← softmax(β ξ kᵀ) k — stopping early when `tol` is given and no entry of ξ changed by more than `tol` —
    then one last association that reads out the values: out = softmax(β ξ kᵀ) v, weights (..., S, N) = that
    softmax. Use `F.scaled_dot_product_attention(..., scale=beta)` for each association, passing `attn_mask`
    (boolean, True = may attend) to every one of them; `dropout_p` and `rng` only to the last.
    """
    if steps < 1:
        raise ValueError(f"hopfield_association: steps must be at least 1; got {steps}")
    ### BEGIN SOLUTION
    xi = q
    for _ in range(steps - 1):
        new = scaled_dot_product_attention(xi, k, k, attn_mask=attn_mask, scale=beta)
        converged = tol is not None and float(np.max(np.abs(new.data - xi.data), initial=0.0)) < tol
        xi = new
        if converged:
            break
    out, weights = scaled_dot_product_attention(xi, k, v, attn_mask=attn_mask, scale=beta, dropout_p=dropout_p,
                                                  rng=rng, return_weights=True)
    ### END SOLUTION
    return out, weights
