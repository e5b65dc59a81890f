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

from ..autograd import ops
from ..autograd.tensor import Tensor, as_tensors
from ..random import default_rng
from .layers import Dropout
from .module import Module, Parameter


def sinusoidal_encoding(n_positions: int, dim: int, base: float = 10000.0, offset: int = 0,
                        dtype=np.float32) -> np.ndarray:
    """The (n_positions, dim) sinusoidal table for positions offset ... offset + n_positions - 1
    (Exercise 6.3).

    PE[p, 2i] = sin(pos·ω_i), PE[p, 2i+1] = cos(pos·ω_i), pos = offset + p, ω_i = base^(-2i/dim).
    Compute in float64, then cast to `dtype`. An odd `dim` keeps the sine of its last frequency only.
    """
    if n_positions < 0 or dim < 1:
        raise ValueError(f"sinusoidal_encoding needs n_positions >= 0 and dim >= 1; got {n_positions}, {dim}")
    ### BEGIN SOLUTION
    pos = np.arange(offset, offset + n_positions, dtype=np.float64)[:, None]
    two_i = np.arange(0, dim, 2, dtype=np.float64)  # 2i for i = 0 .. ceil(dim/2) - 1
    angles = pos * base ** (-two_i / dim)  # (n, ceil(dim/2))
    pe = np.zeros((n_positions, dim))
    pe[:, 0::2] = np.sin(angles)
    pe[:, 1::2] = np.cos(angles[:, : dim // 2])
    ### END SOLUTION
    return pe.astype(dtype)


def rope_angles(n_positions: int, dim: int, base: float = 10000.0, offset: int = 0) -> np.ndarray:
    """(n_positions, dim // 2) float64 angles pos·θ_i, θ_i = base^(-2i/dim), pos = offset + p."""
    pos = np.arange(offset, offset + n_positions, dtype=np.float64)[:, None]
    return pos * base ** (-np.arange(0, dim // 2, dtype=np.float64) * 2 / dim)


def apply_rope(x, offset: int = 0, base: float = 10000.0) -> Tensor:
    """Rotate each (x_i, x_{i + d/2}) pair of x (..., N, d) by the angle pos·θ_i (Exercise 6.4).

    pos = offset + (index along axis -2); θ_i = base^(-2i/d), i < d/2 (half-split pairing, GPT-NeoX/HF LLaMA):

        out[..., :d/2] = x1·cos - x2·sin        with x1 = x[..., :d/2], x2 = x[..., d/2:]
        out[..., d/2:] = x1·sin + x2·cos        and cos, sin of the (N, d/2) angles (`rope_angles`)

    Differentiable in x; the angles are constants of x's dtype.
    """
    (x,) = as_tensors("apply_rope", (x,))
    if x.ndim < 2 or x.shape[-1] % 2:
        raise ValueError(f"apply_rope needs x of shape (..., N, d) with an even d; got {tuple(x.shape)}")
    n, d = x.shape[-2], x.shape[-1]
    ### BEGIN SOLUTION
    angles = rope_angles(n, d, base, offset)
    cos, sin = np.cos(angles).astype(x.dtype), np.sin(angles).astype(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    out = ops.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    ### END SOLUTION
    return out


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
