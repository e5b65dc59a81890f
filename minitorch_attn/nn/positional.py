"""Positional information for attention, which on its own cannot tell positions apart (it is
permutation equivariant over the keys): sinusoidal encodings, learned embeddings, rotary embeddings.

    pe = sinusoidal_encoding(n_positions, dim)        # (n, dim) array (Vaswani et al. 2017)
    x = SinusoidalPositionalEncoding(dim)(x)          # x + pe, for x of shape (B, N, dim)
    x = LearnedPositionalEmbedding(max_len, dim)(x)   # x + a trained table (GPT-2's `wpe`)
    q, k = RotaryEmbedding(head_dim)(q, k)            # RoPE (Su et al. 2021) on (..., N, head_dim)

Every module takes `offset`, the position of the first element of x: generating with a KV cache feeds
one new token at position `offset = tokens so far`, and it must be encoded as that position, not as 0.

Sinusoidal layout (the paper's): PE[pos, 2i] = sin(pos·ω_i), PE[pos, 2i+1] = cos(pos·ω_i), with
ω_i = base^(-2i/dim). Because sin and cos of pos + k are a rotation of those of pos, PE(pos + k) = M_k PE(pos)
for a fixed matrix M_k (block-diagonal 2×2 rotations) whatever pos is.

RoPE pairing convention: **half-split** ("rotate_half"): feature i is paired with feature i + d/2 and the
pair is rotated by the angle pos·θ_i, θ_i = base^(-2i/d), i < d/2. This is the layout of GPT-NeoX and of the
Hugging Face LLaMA/Mistral code. The RoFormer paper and Meta's original LLaMA code pair *adjacent* features
(2i, 2i+1) instead ("interleaved"); the two differ only by a fixed permutation of the features (which a
learned projection absorbs), but weights trained with one do not work with the other unpermuted.
With rotated q and k, q_m · k_n depends on the positions only through n - m.
"""

from __future__ import annotations

import numpy as np

from ..functional.positional import apply_rope, sinusoidal_encoding
from ..random import default_rng
from .layers import Dropout
from .module import Module, Parameter


class SinusoidalPositionalEncoding(Module):
    """x + PE[offset : offset + N] for x of shape (B, N, dim), then dropout (the paper uses 0.1).

    The table (max_len, dim) is a non-persistent buffer: it is a formula, not state, so it is not saved.
    """

    def __init__(self, dim: int, max_len: int = 5000, base: float = 10000.0, dropout: float = 0.0,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.dim, self.max_len, self.base = dim, max_len, base
        self.register_buffer("pe", sinusoidal_encoding(max_len, dim, base, dtype=dtype), persistent=False)
        self.drop = Dropout(dropout, rng=rng)

    def forward(self, x, offset: int = 0):
        n = x.shape[-2]
        if x.shape[-1] != self.dim:
            raise ValueError(f"SinusoidalPositionalEncoding(dim={self.dim}): input of shape {tuple(x.shape)} has "
                             f"{x.shape[-1]} features")
        if offset < 0 or offset + n > self.max_len:
            raise ValueError(f"SinusoidalPositionalEncoding: positions {offset} .. {offset + n - 1} exceed "
                             f"max_len={self.max_len}")
        return self.drop(x + self.pe[offset : offset + n])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, max_len={self.max_len}, base={self.base:g}"


class LearnedPositionalEmbedding(Module):
    """x + weight[offset : offset + N], with `weight` (max_len, dim) trained (GPT-2's `wpe`).

    Initialised N(0, 0.02²) as in GPT-2 (torch's nn.Embedding would use N(0, 1)). Cannot encode positions
    beyond max_len - 1: unlike the sinusoidal table it has never seen them.
    """

    def __init__(self, max_len: int, dim: int, std: float = 0.02, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else default_rng()
        self.max_len, self.dim = max_len, dim
        self.weight = Parameter((rng.standard_normal((max_len, dim)) * std).astype(dtype))

    def forward(self, x, offset: int = 0):
        n = x.shape[-2]
        if x.shape[-1] != self.dim:
            raise ValueError(f"LearnedPositionalEmbedding(dim={self.dim}): input of shape {tuple(x.shape)} has "
                             f"{x.shape[-1]} features")
        if offset < 0 or offset + n > self.max_len:
            raise ValueError(f"LearnedPositionalEmbedding: positions {offset} .. {offset + n - 1} exceed "
                             f"max_len={self.max_len} (a learned table has no row for them)")
        return x + self.weight[offset : offset + n]

    def extra_repr(self) -> str:
        return f"max_len={self.max_len}, dim={self.dim}"


class RotaryEmbedding(Module):
    """RoPE for queries and keys of shape (..., N, dim): `q, k = rope(q, k, offset=0)`.

    No parameters. Apply it per head, after the q/k projections and before the scores (values are not
    rotated). With a KV cache, rotate the new queries and keys with offset = number of cached tokens; the
    cached keys keep the rotation they got at their own positions.
    """

    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"RotaryEmbedding needs an even dim (features are rotated in pairs); got {dim}")
        self.dim, self.base = dim, base

    def forward(self, q, k=None, offset: int = 0):
        for name, t in (("q", q), ("k", k)):
            if t is not None and t.shape[-1] != self.dim:
                raise ValueError(f"RotaryEmbedding(dim={self.dim}): {name} of shape {tuple(t.shape)} has "
                                 f"{t.shape[-1]} features")
        q = apply_rope(q, offset, self.base)
        return q if k is None else (q, apply_rope(k, offset, self.base))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, base={self.base:g}"
