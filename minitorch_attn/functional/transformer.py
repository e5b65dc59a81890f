"""The stateless pieces of lesson 09's transformers: the residual wiring of a block (pre- or post-norm) and
the next-token distribution and sampling of generation. The modules (nn/transformer.py, nn/gpt.py) call them."""

from __future__ import annotations

import numpy as np

from ..autograd.tensor import Tensor


def residual(x: Tensor, sublayer, norm, norm_first: bool) -> Tensor:
    """One residual sublayer of a transformer block, pre-LN or post-LN (Exercise 9.1).

        norm_first=True  (pre-LN):   x + sublayer(norm(x))
        norm_first=False (post-LN):  norm(x + sublayer(x))

    `sublayer` and `norm` are callables Tensor -> Tensor (e.g. self-attention and a LayerNorm).
    """
    ### BEGIN SOLUTION
    if norm_first:
        out = x + sublayer(norm(x))
    else:
        out = norm(x + sublayer(x))
    ### END SOLUTION
    return out


def next_token_probs(logits, temperature: float = 1.0, top_k: int | None = None) -> np.ndarray:
    """The sampling distribution over the next token, from the last position's logits (Exercise 9.3).

    logits: (B, V) array (or Tensor). Returns float64 probabilities (B, V), each row summing to 1:
      1. divide the logits by `temperature` (> 0; temperature == 0 means greedy: probability 1 on the
         argmax, the first one on ties);
      2. with `top_k`, keep only the logits >= the k-th largest of each row (ties with it survive), the
         others get probability 0 (nanoGPT: logits[logits < v[:, [-1]]] = -inf);
      3. softmax (stable: subtract the row max).
    """
    z = np.asarray(getattr(logits, "data", logits), dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"next_token_probs: logits must be (B, V); got shape {z.shape}")
    if temperature < 0:
        raise ValueError(f"next_token_probs: temperature must be >= 0; got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"next_token_probs: top_k must be a positive integer or None; got {top_k}")
    ### BEGIN SOLUTION
    if temperature == 0:
        probs = np.zeros_like(z)
        probs[np.arange(len(z)), z.argmax(axis=-1)] = 1.0
        return probs
    z = z / temperature
    if top_k is not None:
        k = min(top_k, z.shape[-1])
        kth = np.sort(z, axis=-1)[:, -k][:, None]
        z = np.where(z < kth, -np.inf, z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    probs = e / e.sum(axis=-1, keepdims=True)
    ### END SOLUTION
    return probs


def sample_tokens(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One token per row of `probs` (B, V) by inverse-CDF sampling with one uniform draw per row: the same
    `rng` state gives the same tokens for the same distribution (so cached and uncached generation agree)."""
    u = rng.random(len(probs))
    cdf = np.cumsum(probs, axis=-1)
    idx = (cdf < u[:, None] * cdf[:, -1:]).sum(axis=-1)
    return np.minimum(idx, probs.shape[-1] - 1).astype(np.int64)
