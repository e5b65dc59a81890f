"""The basic layers, with torch's names, shapes and default initialisation, so a torch `state_dict()`
loads into them and gives the same outputs.

Randomness: every layer with random initialisation (or dropout) takes an optional
`rng: np.random.Generator`; without one it draws from `minitorch_attn.random.default_rng()`, which
`mta.manual_seed(seed)` resets. Global `np.random` state is never used.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..random import default_rng
from .module import Module, Parameter


def uniform(rng: np.random.Generator | None, bound: float, shape, dtype) -> Parameter:
    """A parameter drawn from U(-bound, bound): torch's default for Linear and recurrent layers."""
    rng = rng if rng is not None else default_rng()
    return Parameter(rng.uniform(-bound, bound, size=shape).astype(dtype))


class Linear(Module):
    """y = x @ weightᵀ + bias, for x of shape (..., in_features).

    weight: (out_features, in_features), bias: (out_features,), both U(-1/√in, 1/√in)
    (what torch's kaiming-uniform default amounts to).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.weight = uniform(rng, bound, (out_features, in_features), dtype)
        self.bias = uniform(rng, bound, (out_features,), dtype) if bias else None

    def forward(self, x):
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(
                f"Linear(in_features={self.in_features}, out_features={self.out_features}) expects input of "
                f"shape (..., {self.in_features}); got shape {tuple(x.shape)}. Did you pass the features on "
                "another axis, or size the layer for a different input?"
            )
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        bias = self.bias is not None
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={bias}"


class Embedding(Module):
    """A lookup table: integer indices of any shape (...) -> vectors of shape (..., embedding_dim).
    weight: (num_embeddings, embedding_dim), N(0, 1) as in torch."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        rng = rng if rng is not None else default_rng()
        self.weight = Parameter(rng.standard_normal((num_embeddings, embedding_dim)).astype(dtype))

    def forward(self, indices):
        return F.embedding(indices, self.weight)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalise over the trailing `normalized_shape` axes (mean 0, biased variance 1), then scale by
    `weight` (ones) and shift by `bias` (zeros) when `elementwise_affine`; `bias=False` drops the shift."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=np.float32):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.weight = Parameter(np.ones(shape, dtype=dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(shape, dtype=dtype)) if elementwise_affine and bias else None

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class Dropout(Module):
    """Zero each element with probability p and scale the rest by 1/(1-p) while `training`;
    the identity after `eval()`. Draws from `rng`, or the library generator at each call."""

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1]; got {p}")
        self.p, self.rng = p, rng

    def forward(self, x):
        if not self.training:
            return x
        return F.dropout(x, self.p, training=True, rng=self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class GELU(Module):
    """x·Φ(x); `approximate="tanh"` uses the tanh formula (GPT-2's)."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh'; got {approximate!r}")
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Identity(Module):
    """Returns its input unchanged (a placeholder, e.g. for an optional projection)."""

    def forward(self, x):
        return x
