"""Scaled dot-product attention (Vaswani et al. 2017) with torch's semantics, built from autograd ops.

    out = softmax(q kᵀ · scale + mask) v          scale = 1/√d by default

    scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                   backend="auto", rng=None, return_weights=False)

Shapes: q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv) -> out (..., Nq, dv); the batch axes `...` of
q, k and v broadcast against each other (e.g. one k, v shared by every head).

Masks, exactly as in `torch.nn.functional.scaled_dot_product_attention`:

- a **boolean** `attn_mask` says where attention is *allowed*: True = "this query may attend to this key"
  (careful: `nn.MultiheadAttention`'s boolean masks mean the opposite, True = "masked out");
- a **float** `attn_mask` is *added* to the scaled scores (0 keeps a key, -inf removes it, anything in
  between is a bias such as ALiBi's); it may be a Tensor that requires grad;
- the mask broadcasts to the scores' shape (..., Nq, Nk) and may not enlarge it;
- `is_causal=True` lets query i see keys j <= i: the lower triangle aligned to the **top-left** corner,
  also when Nq != Nk (torch's convention; see `causal_mask` for the bottom-right variant a KV cache needs).
  Combining `is_causal` with `attn_mask` raises, as in torch: fold the causal mask into `attn_mask` yourself.

Fully masked rows. A query row that may attend to no key at all (every entry of its mask False, or -inf)
has no softmax: 0/0. **We define its output to be 0, its attention weights to be 0, and its gradient
to be 0** (it passes nothing back to q, k, v or the mask). We measured torch 2.13 on the CPU: its
`scaled_dot_product_attention` returns exactly this (output 0, gradients 0), so we match it; it is also
what the flash kernels of lesson 10 produce naturally (their running normaliser stays 0, the output
accumulator stays 0). `torch.nn.MultiheadAttention` with `need_weights=True` computes the softmax itself
and returns NaN for such rows instead; our `nn.MultiheadAttention` keeps the 0 convention everywhere.

Backends:
- "naive" composes autograd ops (matmul, where, softmax) and is what lessons 05-06 teach; it
  materialises the (Nq, Nk) weights and supports every option (not to be confused with the kernels' NumPy
  oracle, `mta.kernels.flash_attention(..., backend="reference")`, which has no autograd);
- "tiled" and "numba" run the flash kernels of lesson 10 (`mta.kernels.flash_attention`) as one autograd
  `Function` whose backward is the kernel backward: memory O(N·d), never the (Nq, Nk) matrix. They support
  `is_causal`, no mask, or a boolean key-padding mask of shape (B, 1, 1, Nk) (True = may attend); not float
  masks, general boolean masks, dropout or `return_weights` (asking for those raises);
- "cuda-cpu" and "cupy" run the CUDA C kernels of lesson 11 (`minitorch_attn/kernels/cuda/*.cu`) through the
  same `Function`, with the same options: "cuda-cpu" on the CPU harness (slow: it is there to check the
  kernels, and to run lesson 11 without a GPU), "cupy" on a GPU through CuPy (float32 kernels; NumPy arrays
  are copied to the device and back on each call; without CuPy or a GPU it raises, saying why);
- "auto" takes "numba" when it can (Numba installed, the options above, and enough work to pay for the
  kernel launch: Nq · Nk ≥ AUTO_MIN_SCORES per head, measured in benchmarks/attention_cpu.py) and "naive"
  otherwise; it never picks "cuda-cpu" or "cupy". Results agree to float round-off
  (tests/test_sdpa_backends.py; the CUDA backends: tests/test_cupy_backend.py).
"""

from __future__ import annotations

import math

import numpy as np

from .. import kernels
from ..autograd import ops
from ..autograd.function import Function
from ..autograd.ops import cat
from ..autograd.tensor import Tensor, as_tensors, to_tensor
from ..shapes import shape_of
from .common import dropout, softmax

__all__ = ["BACKENDS", "cached_attention", "causal_mask", "scaled_dot_product_attention"]

BACKENDS = ("auto", "naive", "tiled", "numba", "cuda-cpu", "cupy")


def causal_mask(n_q: int, n_k: int, offset: int = 0) -> np.ndarray:
    """Boolean (n_q, n_k) mask, True where query i may attend to key j, that is where j <= i + offset
    (Exercise 5.2).

    offset = 0 is torch's `is_causal` (top-left aligned: query 0 sees key 0 only, even when n_q != n_k);
    offset = n_k - n_q aligns the diagonal to the bottom-right corner, which is what generation with a KV
    cache needs: the n_q new queries are the *last* n_q positions of the n_k keys.

        causal_mask(2, 4)            causal_mask(2, 4, offset=2)
        [[T, F, F, F],               [[T, T, T, F],
         [T, T, F, F]]                [T, T, T, T]]
    """
    if n_q < 0 or n_k < 0:
        raise ValueError(f"causal_mask needs non-negative sizes; got n_q={n_q}, n_k={n_k}")
    ### BEGIN SOLUTION
    rows = np.arange(n_q)[:, None]
    cols = np.arange(n_k)[None, :]
    mask = cols <= rows + offset
    ### END SOLUTION
    return mask


def attend(q: Tensor, k: Tensor, v: Tensor, mask, scale: float):
    """The heart of attention, on checked inputs (Exercise 5.1). Returns (out, weights).

    q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv) are Tensors of one dtype; `mask` is None, a boolean
    array (True = may attend) or a float Tensor to add, broadcastable to the scores (..., Nq, Nk).

    1. scores = (q @ kᵀ) * scale                      (transpose only the last two axes of k)
    2. a boolean mask puts -inf where it is False; a float mask is added
    3. weights = softmax(scores) along the keys
    4. out = weights @ v
    A row that may attend to nothing (all its scores -inf) gets weights 0 and output 0 without NaN, in the
    forward and in the backward: replace its scores by 0 before the softmax, and its weights by 0 after.
    """
    ### BEGIN SOLUTION
    scores = ops.matmul(q, k.transpose(-2, -1)) * scale
    if mask is not None:
        if isinstance(mask, Tensor):
            scores = scores + mask
        else:
            scores = ops.where(mask, scores, -np.inf)
    dead = np.all(scores.data == -np.inf, axis=-1, keepdims=True)  # rows with no key to attend to
    if dead.any():
        scores = ops.where(dead, 0.0, scores)
    weights = softmax(scores, axis=-1)
    if dead.any():
        weights = ops.where(dead, 0.0, weights)
    out = ops.matmul(weights, v)
    ### END SOLUTION
    return out, weights


def _check(q: Tensor, k: Tensor, v: Tensor):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim < 2:
            raise ValueError(f"scaled_dot_product_attention: {name} needs shape (..., N, features); got {shape_of(t)}")
        if t.dtype.kind != "f":
            raise TypeError(f"scaled_dot_product_attention: {name} must be floating; got dtype {t.dtype}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"scaled_dot_product_attention: q {shape_of(q)} and k {shape_of(k)} must share their last "
                         f"axis (the feature size d); got {q.shape[-1]} and {k.shape[-1]}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"scaled_dot_product_attention: k {shape_of(k)} and v {shape_of(v)} must have the same "
                         f"number of keys Nk (axis -2); got {k.shape[-2]} and {v.shape[-2]}")
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        raise ValueError(f"scaled_dot_product_attention: the batch axes of q {shape_of(q)}, k {shape_of(k)} and "
                         f"v {shape_of(v)} cannot be broadcast together") from None
    return tuple(batch) + (q.shape[-2], k.shape[-2])


def _prepare_mask(attn_mask, scores_shape, dtype):
    """The mask as a boolean ndarray or a float Tensor of `dtype`; errors name the shapes."""
    if attn_mask is None:
        return None
    if isinstance(attn_mask, Tensor):
        data = attn_mask.data
    else:
        data = np.asarray(attn_mask)
    if data.dtype != bool and data.dtype.kind != "f":
        raise TypeError(f"scaled_dot_product_attention: attn_mask must be boolean (True = may attend) or "
                        f"floating (added to the scores); got dtype {data.dtype} of shape {shape_of(data)}. "
                        "Convert 0/1 integers with mask.astype(bool).")
    try:
        fits = np.broadcast_shapes(data.shape, scores_shape) == tuple(scores_shape)
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {shape_of(data)} does not broadcast "
                         f"to the scores' shape {tuple(scores_shape)} (batch..., Nq, Nk)")
    if data.dtype == bool:
        return data
    if isinstance(attn_mask, Tensor):
        if attn_mask.dtype != dtype:
            raise TypeError(f"scaled_dot_product_attention: a float attn_mask must have the dtype of q "
                            f"({dtype}); got {attn_mask.dtype}")
        return attn_mask
    return Tensor(data.astype(dtype, copy=False))


def scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, backend: str = "auto",
                                 rng: np.random.Generator | None = None, return_weights: bool = False):
    """softmax(q kᵀ · scale + mask) v, with torch's shapes and mask conventions (see the module docstring).

    dropout_p > 0 drops attention weights (always, as torch's function does: pass 0.0 at evaluation),
    drawing from `rng` or the library generator. With `return_weights=True` returns (out, weights), the
    weights of shape (..., Nq, Nk) after dropout (the ones that multiplied v); fully masked rows have
    weights 0 and output 0.
    """
    if backend not in BACKENDS:
        raise ValueError(f"scaled_dot_product_attention: unknown backend {backend!r}; "
                         f"choose one of {', '.join(map(repr, BACKENDS))}")
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"scaled_dot_product_attention: dropout_p must be in [0, 1]; got {dropout_p}")
    # arrays keep their dtype (float64 stays float64); Tensors of different float dtypes raise
    q, k, v = (to_tensor(x) for x in (q, k, v))
    q, k, v = as_tensors("scaled_dot_product_attention", (q, k, v))
    scores_shape = _check(q, k, v)
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: an explicit attn_mask cannot be combined with "
                         "is_causal=True (torch raises too); fold the causal mask into attn_mask, e.g. "
                         "attn_mask & causal_mask(Nq, Nk) for a boolean mask")
    mask = _prepare_mask(attn_mask, scores_shape, q.dtype)
    if is_causal:
        mask = causal_mask(q.shape[-2], k.shape[-2])
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1]) if q.shape[-1] > 0 else 1.0
    if k.shape[-2] == 0:  # no keys at all: every row is fully masked
        out = Tensor(np.zeros(scores_shape[:-1] + (v.shape[-1],), dtype=q.dtype))
        return (out, Tensor(np.zeros(scores_shape, dtype=q.dtype))) if return_weights else out
    if backend != "naive":
        padding = _flash_padding(attn_mask, scores_shape, len(scores_shape))
        problem = _flash_unsupported(q, k, v, attn_mask, padding, dropout_p, return_weights)
        if backend == "auto":
            backend = "numba" if problem is None and _numba_pays(scores_shape) else "naive"
        elif problem is not None:
            raise ValueError(f"scaled_dot_product_attention: backend {backend!r} cannot do this call: {problem}; "
                             "use backend='naive' (or 'auto', which falls back to it)")
    if backend != "naive":
        return _flash(q, k, v, is_causal, scale, padding, backend)
    out, weights = attend(q, k, v, mask, scale)
    if dropout_p > 0.0:
        weights = dropout(weights, dropout_p, training=True, rng=rng)
        out = ops.matmul(weights, v)
    return (out, weights) if return_weights else out


# ---- the flash backends ---------------------------------------------------------------------------------
AUTO_MIN_SCORES = 64 * 64  # "auto" uses Numba from this many scores per head up (benchmarks/sdpa_auto_threshold.py)


class FlashAttention(Function):
    """Attention through a flash kernel: forward keeps only (o, lse); backward recomputes the weights
    tile by tile in the kernel backward (`D = rowsum(dO ∘ O)`, `dS = P ∘ (dP − D)`)."""

    @staticmethod
    def forward(ctx, q, k, v, causal=False, scale=None, key_padding_mask=None, backend="numba"):
        o, lse = kernels.flash_attention(q, k, v, causal=causal, scale=scale,
                                         key_padding_mask=key_padding_mask, backend=backend)
        ctx.save(q, k, v, o, lse, causal, scale, key_padding_mask, backend)
        return o

    @staticmethod
    def backward(ctx, grad):
        q, k, v, o, lse, causal, scale, key_padding_mask, backend = ctx.saved
        return kernels.flash_attention_backward(q, k, v, o, lse, np.ascontiguousarray(grad), causal=causal,
                                                scale=scale, key_padding_mask=key_padding_mask, backend=backend)


def _flash_padding(attn_mask, scores_shape, ndim):
    """A boolean attn_mask that only says which keys exist, as the kernels' key_padding_mask (B, Nk) with
    True = padding; None when there is no mask or it is not of that form (4-D scores, mask (B, 1, 1, Nk))."""
    if attn_mask is None or isinstance(attn_mask, Tensor):
        return None
    m = np.asarray(attn_mask)
    if m.dtype != bool or ndim != 4 or m.ndim != 4 or m.shape[1:3] != (1, 1):
        return None
    return ~np.broadcast_to(m, (scores_shape[0], 1, 1, scores_shape[-1]))[:, 0, 0, :]


def _flash_unsupported(q, k, v, attn_mask, padding, dropout_p, return_weights):
    """Why the flash kernels cannot run this call (a phrase), or None when they can."""
    if dropout_p > 0:
        return "dropout_p > 0 (the kernels have no dropout)"
    if return_weights:
        return "return_weights=True (the kernels never form the weights)"
    if attn_mask is not None and padding is None:
        return (f"an attn_mask of shape {shape_of(np.asarray(getattr(attn_mask, 'data', attn_mask)))} (only is_causal "
                "or a boolean key-padding mask of shape (B, 1, 1, Nk) are supported)")
    if q.dtype not in (np.float32, np.float64):
        return f"dtype {q.dtype}"
    return None


def _numba_pays(scores_shape) -> bool:
    if scores_shape[-2] * scores_shape[-1] < AUTO_MIN_SCORES:
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def _flash(q: Tensor, k: Tensor, v: Tensor, causal, scale, key_padding_mask, backend) -> Tensor:
    """Run FlashAttention on (..., N, d) tensors: broadcast the batch axes, view them as (B, H)."""
    batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q, k, v = (x if x.shape[:-2] == batch else _broadcast(x, batch) for x in (q, k, v))
    B, H = (batch[0], int(np.prod(batch[1:]))) if len(batch) >= 2 else (1, int(np.prod(batch)))
    shaped = [x.reshape(B, H, x.shape[-2], x.shape[-1]) for x in (q, k, v)]
    out = FlashAttention.apply(*shaped, causal=bool(causal), scale=scale, key_padding_mask=key_padding_mask,
                               backend=backend)
    return out.reshape(batch + (q.shape[-2], v.shape[-1]))


def _broadcast(x: Tensor, batch) -> Tensor:
    """x expanded to the batch shape `batch` (an autograd op: its gradient sums over the copies)."""
    return x + np.zeros(batch + (1, 1), dtype=x.dtype)


def cached_attention(q: Tensor, k: Tensor, v: Tensor, past=None):
    """Causal attention of new queries against cached and new keys (Exercise 9.2).

    q, k, v: (B, H, T_new, d), the projections of the T_new newest positions.
    past: None, or the (k_past, v_past) pair of Tensors (B, H, T_past, d) that earlier calls returned.
    Returns (out (B, H, T_new, d), (k_all, v_all)) where k_all = [k_past; k] along the position axis (-2).

    The new queries are the last T_new of the T = T_past + T_new positions, so query i (position
    T_past + i) may see keys j <= T_past + i: the causal mask aligned to the bottom-right corner,
    `causal_mask(T_new, T, offset=T - T_new)` (True = may attend, F.scaled_dot_product_attention's
    convention). With past=None this is ordinary causal self-attention.
    """
    ### BEGIN SOLUTION
    if past is not None:
        k = cat([past[0], k], axis=-2)
        v = cat([past[1], v], axis=-2)
    t_new, t = q.shape[-2], k.shape[-2]
    mask = causal_mask(t_new, t, offset=t - t_new)
    out = scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ### END SOLUTION
    return out, (k, v)
