"""Positional encodings as functions (lesson 06): the sinusoidal table and rotary embeddings (RoPE, half-split
pairing). The modules that apply them, and the conventions in full, are in nn/positional.py."""

from __future__ import annotations

import numpy as np

from ..autograd import ops
from ..autograd.tensor import Tensor, as_tensors


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
