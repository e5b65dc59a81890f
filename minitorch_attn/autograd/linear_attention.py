"""Two differentiable ops of linear attention (lesson 14), each with its hand-written backward:
EluPlusOne (the feature map φ(x) = elu(x) + 1) and CumSum (the running sums of causal linear attention).
`functional/linear_attention.py` calls them as `elu_plus_one(x)` and `cumsum(x, axis)`."""

from __future__ import annotations

import numpy as np

from .function import Function


class EluPlusOne(Function):
    """φ(x) = elu(x) + 1 = x + 1 for x > 0, exp(x) otherwise: positive, smooth, no overflow for huge x.

    Backward: dφ/dx = 1 for x > 0, exp(x) otherwise (exp only ever sees x <= 0)."""

    @staticmethod
    def forward(ctx, x):
        e = np.exp(np.minimum(x, 0))
        ctx.save(x > 0, e)
        return np.where(x > 0, x + 1, e).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        positive, e = ctx.saved
        return grad * np.where(positive, 1, e)



class CumSum(Function):
    """Running sum along `axis`. Backward: each input feeds every later output, so the gradient is the
    running sum of `grad` taken from the end (reverse cumsum)."""

    @staticmethod
    def forward(ctx, x, axis):
        ctx.save(axis)
        return np.cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        (axis,) = ctx.saved
        return np.flip(np.cumsum(np.flip(grad, axis), axis=axis), axis)
