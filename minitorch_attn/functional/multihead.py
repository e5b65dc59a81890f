"""Splitting features into attention heads and merging them back (lesson 06); `nn.MultiheadAttention`
(nn/multihead.py) projects, splits, attends with `F.scaled_dot_product_attention` and merges."""

from __future__ import annotations

from ..autograd.tensor import Tensor


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, N, E) -> (B, H, N, E/H): head h gets features h·E/H ... (h+1)·E/H - 1 (Exercise 6.1).

    Any leading axes are kept: (..., N, E) -> (..., H, N, E/H).
    """
    *lead, n, e = x.shape
    if e % num_heads:
        raise ValueError(f"split_heads: the feature size {e} of shape {tuple(x.shape)} is not divisible by "
                         f"num_heads={num_heads}")
    ### BEGIN SOLUTION
    x = x.reshape(*lead, n, num_heads, e // num_heads)
    out = x.transpose(-3, -2)
    ### END SOLUTION
    return out


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, N, d) -> (B, N, H·d), the inverse of `split_heads` (Exercise 6.2)."""
    if x.ndim < 3:
        raise ValueError(f"merge_heads needs shape (..., H, N, d); got {tuple(x.shape)}")
    *lead, h, n, d = x.shape
    ### BEGIN SOLUTION
    out = x.transpose(-3, -2).reshape(*lead, n, h * d)
    ### END SOLUTION
    return out
