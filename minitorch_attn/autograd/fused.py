"""Fused ops: one Function for what would otherwise be many small ones, with a hand-derived
backward that is both faster and numerically safer than differentiating the pieces.

Stability rules kept here:
- softmax / log_softmax / logsumexp subtract the row max before `exp`, so logits of ±1e4 stay finite;
- a row that is entirely -inf has logsumexp -inf and softmax NaN, exactly as in PyTorch, and its
  gradient is 0 rather than NaN (nothing could have changed its value);
- cross-entropy is computed from log_softmax, never from log(softmax).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from .function import Function


class Softmax(Function):
    """p = exp(x - max) / sum(exp(x - max)) along `axis` (Exercise 2.1).

    Backward (the softmax Jacobian applied to `grad`, without building it):
        dx = p * (grad - sum(grad * p, axis))
    """

    @staticmethod
    def forward(ctx, x, axis=-1):
        ### BEGIN SOLUTION
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        e = np.exp(x - m)
        with np.errstate(invalid="ignore"):  # an all -inf row is 0 / 0 = NaN, as in PyTorch
            p = e / e.sum(axis=axis, keepdims=True)
        ctx.save(p, axis)
        return p
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        p, axis = ctx.saved
        return p * (grad - (grad * p).sum(axis=axis, keepdims=True))
        ### END SOLUTION


class LogSumExp(Function):
    """lse = m + log(sum(exp(x - m))) with m = max(x) along `axis` (Exercise 2.2).

    Finite for logits of ±1e4; a row of all -inf gives -inf (and a zero gradient).
    Backward: d lse / dx = softmax(x) = e / sum(e) with e = exp(x - m) kept from the forward
    (exp(x - lse) is the same in exact arithmetic, but lse ≈ 1e4 rounds in float32 and costs 4 digits).
    """

    @staticmethod
    def forward(ctx, x, axis=-1, keepdims=False):
        ### BEGIN SOLUTION
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        e = np.exp(x - m)
        s = e.sum(axis=axis, keepdims=True)
        with np.errstate(divide="ignore"):
            lse = m + np.log(s)
        ctx.save(e, s, axis, keepdims)
        return lse if keepdims else np.squeeze(lse, axis=axis)
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        e, s, axis, keepdims = ctx.saved
        if not keepdims:
            grad = np.expand_dims(grad, axis)
        p = e / np.where(s > 0, s, 1)  # an all -inf row has e = 0 and s = 0: gradient 0
        return grad * p
        ### END SOLUTION


class LogSoftmax(Function):
    """log p = x - logsumexp(x). Backward: dx = grad - p * sum(grad)."""

    @staticmethod
    def forward(ctx, x, axis=-1):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        shifted = x - m
        with np.errstate(divide="ignore", invalid="ignore"):  # an all -inf row gives NaN, as in PyTorch
            out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save(out, axis)
        return out

    @staticmethod
    def backward(ctx, grad):
        out, axis = ctx.saved
        return grad - np.exp(out) * grad.sum(axis=axis, keepdims=True)


_KERNELS: dict = {}


def _kernel(name: str):
    """The Numba kernel module `kernels/ops/<name>.py` ("gelu", "layernorm", "embedding"), or None without
    Numba; imported on first use."""
    if name not in _KERNELS:
        try:
            import importlib

            _KERNELS[name] = importlib.import_module(f"minitorch_attn.kernels.ops.{name}")
        except ImportError:
            _KERNELS[name] = None
    return _KERNELS[name]


class LayerNorm(Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last `n` axes (biased variance).

    Over the last axis alone (n == 1, float32 or float64, C-contiguous) this runs `kernels/ops/layernorm.py`
    (Numba: one or two passes per row, the rows of large inputs split over the threads) when Numba is installed. It
    makes the same operations in the same order as the NumPy lines below (NumPy's pairwise sums included), so
    both give the same bits; those lines are the reference and the fallback."""

    @staticmethod
    def forward(ctx, x, weight=None, bias=None, n=1, eps=1e-5):
        kernel = _kernel("layernorm") if n == 1 and x.dtype in (np.float32, np.float64) else None
        if kernel is not None and x.size and x.flags.c_contiguous:
            out, xhat, rstd = kernel.layer_norm_forward(x, weight, bias, eps)
            ctx.save(xhat, rstd, weight, None)
            return out
        axes = tuple(range(x.ndim - n, x.ndim))
        mu = x.mean(axis=axes, keepdims=True)
        xc = x - mu
        rstd = 1.0 / np.sqrt((xc * xc).mean(axis=axes, keepdims=True) + eps)
        xhat = xc * rstd
        ctx.save(xhat, rstd, weight, axes)
        out = xhat
        if weight is not None:
            out = out * weight
        if bias is not None:
            out = out + bias
        return out

    @staticmethod
    def backward(ctx, grad):
        xhat, rstd, weight, axes = ctx.saved
        if axes is None:  # the Numba forward ran (rstd without the kept axis)
            if grad.flags.c_contiguous:  # the kernel computes all three gradients, in NumPy's order of sums
                gx, gw, gb = _kernel("layernorm").layer_norm_backward(grad, xhat, rstd, weight)
                return (gx, gw, gb)[: len(ctx.needs_input_grad)]
            rstd, axes = rstd[..., None], (xhat.ndim - 1,)  # NumPy sums a strided grad in its own order
        lead = tuple(range(xhat.ndim - len(axes)))
        gw = (grad * xhat).sum(axis=lead) if weight is not None and ctx.needs_input_grad[1] else None
        gb = grad.sum(axis=lead) if len(ctx.needs_input_grad) > 2 and ctx.needs_input_grad[2] else None
        g = grad * weight if weight is not None else grad
        # dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
        gx = rstd * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
        return (gx, gw, gb)[: len(ctx.needs_input_grad)]


class LayerNormNoAffine(LayerNorm):
    """LayerNorm without weight and bias (a separate class so `apply` sees exactly one input)."""

    @staticmethod
    def forward(ctx, x, n=1, eps=1e-5):
        return LayerNorm.forward(ctx, x, None, None, n=n, eps=eps)


class CrossEntropy(Function):
    """Mean (or summed, or per-item) cross-entropy of `logits` (N, C) against integer `target` (N,).

    Targets equal to `ignore_index` contribute nothing and are not counted in the mean. With label
    smoothing ε, the target distribution is (1 - ε) one-hot + ε / C uniform. Backward is
    (softmax - target distribution) scaled by the reduction.
    """

    @staticmethod
    def forward(ctx, logits, target=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
        n, c = logits.shape
        keep = target != ignore_index
        safe_t = np.where(keep, target, 0)
        m = logits.max(axis=1, keepdims=True)
        shifted = logits - m
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        nll = -logp[np.arange(n), safe_t]
        loss = (1 - label_smoothing) * nll - label_smoothing * logp.mean(axis=1)
        loss = np.where(keep, loss, 0).astype(logits.dtype)
        count = keep.sum()
        ctx.save(logp, safe_t, keep, label_smoothing, reduction, count)
        if reduction == "none":
            return loss
        if reduction == "sum":
            return np.asarray(loss.sum())
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(loss.sum() / count, dtype=logits.dtype)  # NaN when all are ignored, as in torch

    @staticmethod
    def backward(ctx, grad):
        logp, t, keep, eps, reduction, count = ctx.saved
        n, c = logp.shape
        g = np.exp(logp) - eps / c
        g[np.arange(n), t] -= 1 - eps
        g *= keep[:, None]
        if reduction == "none":
            g *= grad[:, None]
        elif reduction == "sum":
            g *= grad
        else:
            g *= grad / max(count, 1)
        return g


class Embedding(Function):
    """weight[indices]; backward scatters the rows of `grad` back with `np.add.at` (repeats add up), or, for a
    2-D weight with Numba installed, with `kernels/ops/embedding.py` (the same additions in the same order)."""

    @staticmethod
    def forward(ctx, weight, indices=None):
        ctx.save(indices)
        return weight[indices]

    @staticmethod
    def backward(ctx, grad):
        (indices,) = ctx.saved
        shape = ctx.shapes[0]
        kernel = _kernel("embedding") if len(shape) == 2 else None
        if kernel is not None:
            return kernel.embedding_backward(indices, grad, shape)
        gw = np.zeros(shape, dtype=grad.dtype)
        np.add.at(gw, indices, grad)
        return gw


class Dropout(Function):
    """Zero each element with probability p and scale the survivors by 1 / (1 - p)."""

    @staticmethod
    def forward(ctx, x, p=0.5, rng=None):
        keep = rng.random(x.shape) >= p
        scale = np.asarray(1.0 / (1.0 - p), dtype=x.dtype)
        mask = keep * scale
        ctx.save(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved
        return grad * mask


class Linear(Function):
    """out = x @ Wᵀ (+ b) for x (..., in), W (out, in), b (out,), as ONE matrix product over all the leading
    axes: x is viewed as (N, in), so the forward is one GEMM (N, in) @ (in, out) and the backward is two,

        dx = grad @ W          (N, out) @ (out, in)
        dW = gradᵀ @ x         (out, N) @ (N, in)       (the sum over every leading position in the GEMM)
        db = grad.sum(0)

    instead of a batched matmul per leading index whose dW comes back in the broadcast shape (B, in, out)
    and must then be summed (what `matmul(x, W.transpose(0, 1))` costs, plus the transpose's own node)."""

    @staticmethod
    def forward(ctx, x, w, b=None):
        x2 = x.reshape(-1, x.shape[-1])
        out = x2 @ w.T
        if b is not None:
            out += b
        ctx.save(x2, w, x.shape, b is not None)
        return out.reshape(*x.shape[:-1], w.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x2, w, shape, has_bias = ctx.saved
        g2 = grad.reshape(-1, grad.shape[-1])
        need = ctx.needs_input_grad
        gx = (g2 @ w).reshape(shape).astype(x2.dtype, copy=False) if need[0] else None
        gw = (g2.T @ x2).astype(w.dtype, copy=False) if need[1] else None
        if not has_bias:
            return gx, gw
        return gx, gw, (g2.sum(axis=0) if need[2] else None)


class GELU(Function):
    """x * Φ(x) with the exact normal CDF (`approximate="none"`) or the tanh form (`"tanh"`).

    Exact GELU of a float32 array runs through `kernels/ops/gelu.py` (Numba, vectorised, large arrays split
    over the threads; erf from fitted polynomials, within float32 round-off of scipy.special.erf) when Numba is
    installed, else through scipy.special.erf."""

    @staticmethod
    def forward(ctx, x, approximate="none"):
        if approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            inner = k * (x + 0.044715 * (x * x * x))  # x * x * x as torch's kernel (x**3 is a slow pow call)
            t = np.tanh(inner)
            ctx.save(x, t, approximate)
            return 0.5 * x * (1 + t)
        if x.dtype == np.float32 and _kernel("gelu") is not None:  # one Numba pass, ~14x faster than scipy
            # keeps only the derivative Φ(x) + x·φ(x): the backward is grad * deriv (reads 2 arrays, not 4)
            out, deriv = _kernel("gelu").gelu_forward_deriv(x)
            ctx.save(None, deriv, (approximate, None))
            return out
        cdf = 0.5 * (1 + erf(x / math.sqrt(2)))
        ctx.save(x, cdf, approximate)
        return (x * cdf).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        x, s, approximate = ctx.saved
        if isinstance(approximate, tuple):  # the Numba forward kept the derivative
            return grad * s
        if approximate == "tanh":
            k = math.sqrt(2 / math.pi)
            dinner = k * (1 + 3 * 0.044715 * x**2)
            return grad * (0.5 * (1 + s) + 0.5 * x * (1 - s * s) * dinner)
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return (grad * (s + x * pdf)).astype(x.dtype, copy=False)
