"""Sparse probability mappings: sparsemax and α-entmax (Martins & Astudillo 2016; Peters et al. 2019).

α-entmax maps scores z to the probabilities

    p_i = [(α - 1) z_i - τ]₊ ^ (1 / (α - 1)),      τ chosen so that Σ_i p_i = 1,

with [·]₊ = max(·, 0). At α = 2 it is **sparsemax**, p = [z - τ]₊, the Euclidean projection of z onto the
probability simplex; as α → 1 it tends to softmax. Every score below the threshold gets weight exactly 0.

Three ways to find τ, forward and backward side by side:
- `Sparsemax` (α = 2): exact, by sorting (Exercise 13.1);
- `Entmax15` (α = 1.5): exact, by sorting (Exercise 13.2);
- `EntmaxBisect` (any α > 1): bisection on τ (`bisect_threshold`, Exercise 13.3).

Backward (Peters et al. 2019): with s_i = p_i^(2 - α) on the support S = {i : p_i > 0} and 0 off it,

    dz = s ∘ (g - ⟨s, g⟩ / Σ s)           (sparsemax: s = 1 on S; 1.5-entmax: s = √p)

so only the support moves: entries with p_i = 0 get gradient exactly 0.

Rules at the edges, the same as the library's softmax (autograd/fused.py):
- every mapping is shift invariant, so the row max is subtracted first: scores of ±1e4 are fine;
- -inf entries (masked keys) get weight exactly 0 and gradient exactly 0;
- a row that is entirely -inf has no distribution: its output is NaN (as softmax's, as PyTorch's) and its
  gradient is 0;
- float32 in, float32 out (the bisection runs in float64 and casts back).
"""

from __future__ import annotations

import numpy as np

from .function import Function
from .tensor import Tensor, as_tensors

BISECT_ITERATIONS = 50  # halves the bracket (width < 1) 50 times: τ to ~1e-15, float64 round-off


def check_alpha(alpha) -> float:
    """alpha as a float, or a ValueError: α-entmax needs a finite α > 1 (α = 1 is softmax: use F.softmax)."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"entmax: alpha must be a number > 1; got {alpha!r}") from None
    if not np.isfinite(a) or a <= 1:
        raise ValueError(f"entmax: alpha must be finite and > 1 (alpha = 1 is softmax); got {alpha!r}")
    return a


def _shifted(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(x with `axis` moved last and its row max subtracted, mask of rows that are entirely -inf)."""
    z = np.moveaxis(x, axis, -1)
    m = z.max(axis=-1, keepdims=True) if z.shape[-1] else np.zeros(z.shape[:-1] + (1,), z.dtype)
    empty = ~np.isfinite(m)
    return z - np.where(empty, 0, m), empty[..., 0]


def _support_backward(p: np.ndarray, grad: np.ndarray, axis: int, power: float) -> np.ndarray:
    """dz = s ∘ (g - ⟨s, g⟩ / Σ s) with s = p^power on the support (p > 0) and 0 elsewhere."""
    with np.errstate(invalid="ignore"):
        on = p > 0  # NaN (a fully masked row) compares False: its gradient is 0
    if power == 0:
        s = on.astype(p.dtype)
    else:
        s = np.where(on, np.abs(np.where(on, p, 1)) ** power, 0).astype(p.dtype)
    total = s.sum(axis=axis, keepdims=True)
    q = (s * grad).sum(axis=axis, keepdims=True) / np.where(total > 0, total, 1)
    return s * (grad - q)


class Sparsemax(Function):
    """p = [z - τ]₊ along `axis`, the Euclidean projection of z onto the simplex (Exercise 13.1).

    Forward, per row (after subtracting the row max): sort z descending to z_(1) ≥ z_(2) ≥ ...; the
    support size is k* = max{k : 1 + k z_(k) > Σ_{j≤k} z_(j)}; then τ = (Σ_{j≤k*} z_(j) - 1) / k*.
    -inf entries never pass the test (they get 0); a row of all -inf (k* = 0) gives NaN.
    Backward: dz = s ∘ (g - mean of g over the support), s = 1 on the support and 0 off it.
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        ### BEGIN SOLUTION
        z, empty = _shifted(x, axis)
        zs = -np.sort(-z, axis=-1)  # descending; -inf entries last
        k = np.arange(1, z.shape[-1] + 1, dtype=z.dtype)
        csum = np.cumsum(np.where(np.isfinite(zs), zs, 0), axis=-1)
        with np.errstate(invalid="ignore"):
            support = 1 + k * zs > csum  # True for k = 1..k*, False after (and at every -inf)
        kstar = support.sum(axis=-1, keepdims=True)
        tau = (np.take_along_axis(csum, np.maximum(kstar - 1, 0), axis=-1) - 1) / np.maximum(kstar, 1).astype(z.dtype)
        p = np.maximum(z - tau, 0)
        p[empty] = np.nan  # no finite score: no distribution, as softmax
        p = np.moveaxis(p, -1, axis)
        ctx.save(p, axis)
        return p
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        p, axis = ctx.saved
        with np.errstate(invalid="ignore"):
            s = (p > 0).astype(grad.dtype)  # the support; a NaN row has none
        size = s.sum(axis=axis, keepdims=True)
        return s * (grad - (s * grad).sum(axis=axis, keepdims=True) / np.where(size > 0, size, 1))
        ### END SOLUTION


class Entmax15(Function):
    """1.5-entmax, p = [z/2 - τ]₊², along `axis`, exact by sorting (Exercise 13.2).

    Forward, per row: u = (z - max) / 2 sorted descending to u_(1) ≥ u_(2) ≥ ...; for each k the threshold
    that would make the top k sum to one is

        τ_k = μ_k - √δ_k,   μ_k = mean of u_(1..k),   δ_k = (1 - k (mean of u_(1..k)² - μ_k²)) / k

    (δ_k clipped at 0); the support is the longest prefix with τ_k < u_(k), of length k*, and τ = τ_{k*}.
    Backward: s = √p, dz = s ∘ (g - ⟨s, g⟩ / Σ s).
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        ### BEGIN SOLUTION
        z, empty = _shifted(x, axis)
        u = z / 2
        us = -np.sort(-u, axis=-1)
        finite = np.isfinite(us)
        k = np.arange(1, u.shape[-1] + 1, dtype=u.dtype)
        mean = np.cumsum(np.where(finite, us, 0), axis=-1) / k
        mean_sq = np.cumsum(np.where(finite, us * us, 0), axis=-1) / k
        delta = (1 - k * (mean_sq - mean * mean)) / k
        tau = mean - np.sqrt(np.maximum(delta, 0))
        # k* = the length of the prefix where τ_k < u_(k): a score exactly at the threshold gets weight 0
        # either way, and stopping before it keeps τ exact when a gap lands on the threshold (ties)
        kstar = np.cumprod(tau < us, axis=-1).sum(axis=-1, keepdims=True)  # -inf entries never count
        tau_star = np.take_along_axis(tau, np.maximum(kstar - 1, 0), axis=-1)
        p = np.maximum(u - tau_star, 0) ** 2
        p[empty] = np.nan
        p = np.moveaxis(p, -1, axis)
        ctx.save(p, axis)
        return p
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        p, axis = ctx.saved
        with np.errstate(invalid="ignore"):
            s = np.sqrt(np.where(p > 0, p, 0)).astype(grad.dtype)  # 0 off the support and on a NaN row
        total = s.sum(axis=axis, keepdims=True)
        return s * (grad - (s * grad).sum(axis=axis, keepdims=True) / np.where(total > 0, total, 1))
        ### END SOLUTION


def bisect_threshold(z: np.ndarray, alpha: float, n_iter: int = BISECT_ITERATIONS) -> np.ndarray:
    """τ (shape z.shape[:-1] + (1,)) with Σ_i [(α-1) z_i - τ]₊^(1/(α-1)) = 1 along the last axis, by
    bisection (Exercise 13.3).

    `z` is float64 with its row max already 0 (so max (α-1) z = 0) and no row entirely -inf. The sum
    f(τ) = Σ_i [(α-1) z_i - τ]₊^(1/(α-1)) decreases in τ; f(-1) ≥ 1 (the top entry alone gives 1), and
    f(-(1/n)^(α-1)) ≤ 1 (every entry gives at most 1/n), so τ lies in [-1, -(1/n)^(α-1)]. Halve that bracket
    `n_iter` times, keeping the half where f - 1 changes sign, and return the lower end (f ≥ 1 there, so the
    support is never lost).
    """
    ### BEGIN SOLUTION
    n = z.shape[-1]
    az = (alpha - 1) * z
    lo = np.full(z.shape[:-1] + (1,), -1.0)
    width = 1.0 - (1.0 / n) ** (alpha - 1)
    for _ in range(n_iter):
        width /= 2
        mid = lo + width
        f = (np.maximum(az - mid, 0) ** (1 / (alpha - 1))).sum(axis=-1, keepdims=True)
        lo = np.where(f >= 1, mid, lo)
    return lo
    ### END SOLUTION


class EntmaxBisect(Function):
    """α-entmax for any α > 1 along `axis`: τ by `bisect_threshold`, then p = [(α-1) z - τ]₊^(1/(α-1)),
    renormalised to sum to one (the bisection leaves a relative error of ~1e-15). Computed in float64,
    returned in the input's dtype. Backward: s = p^(2-α), dz = s ∘ (g - ⟨s, g⟩ / Σ s)."""

    @staticmethod
    def forward(ctx, x, alpha=1.5, axis=-1, n_iter=BISECT_ITERATIONS):
        alpha = check_alpha(alpha)
        z, empty = _shifted(x.astype(np.float64), axis)
        z = np.where(empty[..., None], 0.0, z)  # fully masked rows: any finite stand-in, made NaN below
        tau = bisect_threshold(z, alpha, n_iter)
        p = np.maximum((alpha - 1) * z - tau, 0) ** (1 / (alpha - 1))
        p /= p.sum(axis=-1, keepdims=True)
        p[empty] = np.nan
        p = np.moveaxis(p, -1, axis).astype(x.dtype, copy=False)
        ctx.save(p, axis, alpha)
        return p

    @staticmethod
    def backward(ctx, grad):
        p, axis, alpha = ctx.saved
        return _support_backward(p, grad, axis, 2 - alpha)


def _axis(x: Tensor, axis: int) -> int:
    if x.ndim == 0:
        raise ValueError("entmax: needs at least one axis; got a 0-d tensor")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"entmax: axis {axis} is out of range for a tensor of shape {x.shape}")
    return axis % x.ndim


def sparsemax(x, axis: int = -1) -> Tensor:
    """Sparsemax (α = 2) along `axis`: exact, by sorting."""
    (x,) = as_tensors("sparsemax", (x,))
    return Sparsemax.apply(x, axis=_axis(x, axis))


def entmax15(x, axis: int = -1) -> Tensor:
    """1.5-entmax along `axis`: exact, by sorting."""
    (x,) = as_tensors("entmax15", (x,))
    return Entmax15.apply(x, axis=_axis(x, axis))


def entmax(x, alpha: float = 1.5, axis: int = -1, n_iter: int = BISECT_ITERATIONS, exact: bool = True) -> Tensor:
    """α-entmax along `axis` for any α > 1. With `exact` (the default), α = 2 and α = 1.5 use the exact
    sort-based `sparsemax` / `entmax15`; every other α (or exact=False) uses bisection with `n_iter` steps."""
    alpha = check_alpha(alpha)
    (x,) = as_tensors("entmax", (x,))
    if int(n_iter) != n_iter or n_iter < 1:
        raise ValueError(f"entmax: n_iter must be a positive integer; got {n_iter!r}")
    axis = _axis(x, axis)
    if exact and alpha == 2:
        return Sparsemax.apply(x, axis=axis)
    if exact and alpha == 1.5:
        return Entmax15.apply(x, axis=axis)
    return EntmaxBisect.apply(x, alpha=alpha, axis=axis, n_iter=int(n_iter))
