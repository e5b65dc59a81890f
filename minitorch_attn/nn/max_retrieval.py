"""The attention head of lesson 12 that must read out the largest of a set of scalars (data/max_retrieval.py
makes the task; functional/softmax_limits.py has the bound that says why it disperses on longer sets)."""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd import Tensor, no_grad
from ..autograd.tensor import to_tensor
from . import layers, module


class MaxRetrievalHead(module.Module):
    """One attention head that reads out the largest of a set of scalars (lesson 12's experiment).

    Each item's value x_j goes through a key MLP, k_j = W2 tanh(W1 x_j + b1) + b2 (d-dimensional); a
    learned query q scores it, s_j = q · k_j / √d; the output is the attention-weighted value Σ_j p_j x_j
    with p = softmax(s). Trained to output max_j x_j, the head must put all its weight on the largest item.
    x_j is bounded, so the logits are too: their spread is at most the key MLP's range (see `logit_range`).

    forward(values (B, n)) -> (output (B,), weights (B, n), logits (B, n)).
    """

    def __init__(self, hidden: int = 32, dim: int = 16, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng(0)
        self.key1 = layers.Linear(1, hidden, rng=rng, dtype=dtype)
        self.key2 = layers.Linear(hidden, dim, rng=rng, dtype=dtype)
        self.query = module.Parameter(rng.standard_normal(dim).astype(dtype))
        self.dim = dim

    def scores(self, values) -> Tensor:
        """The attention logits s_j, shape (B, n), for values of shape (B, n)."""
        x = to_tensor(values, self.query.dtype)
        if x.ndim != 2:
            raise ValueError(f"MaxRetrievalHead expects values of shape (batch, n_items); got {x.shape}")
        keys = self.key2(self.key1(x.reshape(*x.shape, 1)).tanh())  # (B, n, dim)
        return (keys @ self.query) / math.sqrt(self.dim)

    def forward(self, values):
        x = to_tensor(values, self.query.dtype)
        logits = self.scores(x)
        weights = F.softmax(logits, axis=-1)
        return (weights * x).sum(axis=-1), weights, logits

    def logit_range(self, lo: float = 0.0, hi: float = 1.0, points: int = 4097) -> float:
        """The spread Δ = max − min of the head's logit over values in [lo, hi] (a fine grid): no set of
        items drawn from [lo, hi] can have a larger spread of logits."""
        with no_grad():
            s = self.scores(np.linspace(lo, hi, points)[None, :]).data
        return float(s.max() - s.min())
