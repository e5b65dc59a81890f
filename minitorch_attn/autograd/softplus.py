"""softplus(x) = log(1 + e^x) with its hand-written backward (lesson 15's neural process bounds σ with it);
`functional/neural_process.py` calls it as `softplus(x)`."""

from __future__ import annotations

import numpy as np

from .function import Function


class Softplus(Function):
    """softplus(x) = log(1 + e^x) = np.logaddexp(0, x): never overflows, accurate for very negative x.
    Backward: d softplus / dx = sigmoid(x) = e^-softplus(-x)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save(x)
        return np.logaddexp(0, x).astype(x.dtype, copy=False)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * np.exp(-np.logaddexp(0, -x)).astype(x.dtype, copy=False)
