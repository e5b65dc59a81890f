"""Conditional neural processes, with mean pooling (Garnelo et al. 2018, "Conditional neural processes") or with
cross-attention (the deterministic path of Kim et al. 2019, "Attentive neural processes"). Lesson 15.

A neural process reads a *set* of context points (x_i, y_i) and predicts, for any target input x*, a Gaussian
N(μ(x*), σ(x*)²) over y*. The set is encoded point by point, r_i = MLP([x_i, y_i]) (a permutation-equivariant
step), then aggregated into what each target sees:

    "mean"       r*(x*) = (1/Nc) Σ_i r_i                    the same summary for every target (a CNP)
    "dot"        r*(x*) = Σ_i softmax_i(q·k_i / √d) r_i     q = W_q e(x*), k_i = W_k e(x_i)   (Exercise 15.3)
    "multihead"  the same with nn.MultiheadAttention(query e(x*), key e(x_i), value r_i)

where e is a small MLP shared by queries and keys (the ANP's "mlp" representation of x). A decoder MLP maps
[r*(x*), x*] to μ and σ = 0.1 + 0.9 · softplus(raw) (the lower bound of the ANP code keeps the likelihood
finite). Both aggregations are invariant to the order of the context points.

This is the *deterministic* model (a conditional NP: no latent path, no KL term), trained by the Gaussian
negative log-likelihood of the targets; the full ANP adds a latent path for coherent samples. With mean
pooling every target gets one fixed-size summary of the whole context, so the model underfits the context
(it does not pass through the points it was shown); attention lets a target near x_i read mostly r_i.

Shapes: x_context (B, Nc, x_dim), y_context (B, Nc, y_dim), x_target (B, Nt, x_dim) -> μ, σ (B, Nt, y_dim).
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd.ops import concatenate, matmul
from ..autograd.tensor import Tensor, to_tensor
from ..functional.neural_process import cross_attention_aggregate, softplus
from .layers import Linear
from .module import Module, ModuleList
from .multihead import MultiheadAttention

AGGREGATIONS = ("mean", "dot", "multihead")


class MLP(Module):
    """Linear layers with ReLU between them (none after the last): sizes [in, h1, ..., out]."""

    def __init__(self, sizes, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"MLP needs at least an input and an output size; got {list(sizes)}")
        self.layers = ModuleList([Linear(a, b, rng=rng, dtype=dtype) for a, b in zip(sizes[:-1], sizes[1:])])

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class ConditionalNP(Module):
    """A deterministic neural process whose aggregation is "mean", "dot" or "multihead" (see module docstring).

    forward(x_context, y_context, x_target) -> (mu, sigma), each (B, Nt, y_dim). With attention, the target's
    attention weights over the context (B, Nt, Nc) are kept in `self.attention` for plotting.
    """

    def __init__(self, x_dim: int = 1, y_dim: int = 1, hidden: int = 64, aggregation: str = "mean",
                 num_heads: int = 4, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"ConditionalNP: aggregation must be one of {AGGREGATIONS}; got {aggregation!r}")
        self.x_dim, self.y_dim, self.hidden, self.aggregation = x_dim, y_dim, hidden, aggregation
        self.encoder = MLP([x_dim + y_dim, hidden, hidden, hidden], rng=rng, dtype=dtype)
        if aggregation != "mean":
            self.x_embed = MLP([x_dim, hidden, hidden], rng=rng, dtype=dtype)
        if aggregation == "dot":
            self.q_proj = Linear(hidden, hidden, bias=False, rng=rng, dtype=dtype)
            self.k_proj = Linear(hidden, hidden, bias=False, rng=rng, dtype=dtype)
        if aggregation == "multihead":
            self.attn = MultiheadAttention(hidden, num_heads, batch_first=True, rng=rng, dtype=dtype)
        self.decoder = MLP([hidden + x_dim, hidden, hidden, 2 * y_dim], rng=rng, dtype=dtype)
        self.attention: np.ndarray | None = None

    def _check(self, x_context, y_context, x_target):
        dtype = self.decoder.layers[0].weight.dtype
        xc, yc, xt = (to_tensor(t, dtype) for t in (x_context, y_context, x_target))
        ok = (xc.ndim == yc.ndim == xt.ndim == 3 and xc.shape[0] == yc.shape[0] == xt.shape[0]
              and xc.shape[1] == yc.shape[1] and xc.shape[2] == xt.shape[2] == self.x_dim
              and yc.shape[2] == self.y_dim and xc.shape[1] >= 1)
        if not ok:
            raise ValueError(
                f"ConditionalNP(x_dim={self.x_dim}, y_dim={self.y_dim}) expects x_context (B, Nc, {self.x_dim}), "
                f"y_context (B, Nc, {self.y_dim}) and x_target (B, Nt, {self.x_dim}) with Nc >= 1; got "
                f"{tuple(xc.shape)}, {tuple(yc.shape)} and {tuple(xt.shape)}")
        return xc, yc, xt

    def representation(self, xc: Tensor, yc: Tensor, xt: Tensor) -> Tensor:
        """r*(x*) for every target: (B, Nt, hidden)."""
        r = self.encoder(concatenate([xc, yc], axis=-1))  # (B, Nc, H)
        b, nt = xt.shape[0], xt.shape[1]
        if self.aggregation == "mean":
            return r.mean(axis=1, keepdims=True) * Tensor(np.ones((b, nt, 1), r.dtype))
        eq, ek = self.x_embed(xt), self.x_embed(xc)
        if self.aggregation == "dot":
            q, k = self.q_proj(eq), self.k_proj(ek)
            out = cross_attention_aggregate(q, k, r)
            self.attention = F.softmax(matmul(q, k.transpose(-2, -1)) / math.sqrt(self.hidden), axis=-1).data
            return out
        out, weights = self.attn(eq, ek, r, need_weights=True)
        self.attention = weights.data
        return out

    def forward(self, x_context, y_context, x_target):
        xc, yc, xt = self._check(x_context, y_context, x_target)
        h = self.decoder(concatenate([self.representation(xc, yc, xt), xt], axis=-1))
        mu, raw = h[..., : self.y_dim], h[..., self.y_dim :]
        return mu, softplus(raw) * 0.9 + 0.1


