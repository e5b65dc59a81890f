"""The functions of the neural processes of lesson 15: the attentive aggregation of the context
(`cross_attention_aggregate`, Exercise 15.3), the Gaussian negative log-likelihood and softplus. The model,
`nn.ConditionalNP`, is in nn/neural_process.py (its docstring has the whole story); training it:
training/neural_process.py; its errors on the context: evaluation/neural_process.py.
"""

from __future__ import annotations

import math

from ..autograd.ops import matmul
from ..autograd.softplus import Softplus
from ..autograd.tensor import Tensor, to_tensor
from .common import softmax


def softplus(x) -> Tensor:
    """log(1 + e^x), elementwise (differentiable)."""
    return Softplus.apply(to_tensor(x))


def gaussian_nll(mu: Tensor, sigma: Tensor, y) -> Tensor:
    """Mean over all elements of -log N(y; μ, σ²) = log σ + (y - μ)² / (2σ²) + log(2π)/2."""
    y = to_tensor(y, mu.dtype)
    if not mu.shape == sigma.shape == y.shape:
        raise ValueError(f"gaussian_nll: mu, sigma and y must have one shape; got {mu.shape}, {sigma.shape}, "
                         f"{y.shape}")
    return (sigma.log() + (y - mu) ** 2 / (sigma * sigma * 2.0)).mean() + 0.5 * math.log(2 * math.pi)


def cross_attention_aggregate(query: Tensor, keys: Tensor, values: Tensor) -> Tensor:
    """The attentive deterministic path (Exercise 15.3): each target reads the context by dot-product attention.

        query: (B, Nt, d) one per target;  keys: (B, Nc, d) one per context point;  values: (B, Nc, dv) the r_i
        returns (B, Nt, dv) with out[b, t] = Σ_i softmax_i(query[b, t]·keys[b, i] / √d) values[b, i]
    """
    ### BEGIN SOLUTION
    scores = matmul(query, keys.transpose(-2, -1)) / math.sqrt(query.shape[-1])  # (B, Nt, Nc)
    return matmul(softmax(scores, axis=-1), values)
    ### END SOLUTION
