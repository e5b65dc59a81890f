"""The functional forms of the elementary ops, in PyTorch's spelling: softmax, masked_softmax, log_softmax,
logsumexp, layer_norm, cross_entropy, embedding, dropout, gelu, relu, sigmoid, tanh, linear.

Learners call them as `F.softmax(...)` (`from minitorch_attn import functional as F`: the package's
__init__.py re-exports them); the files of `functional/` import them from here.
"""

from __future__ import annotations

import numpy as np

from ..autograd import fused, ops
from ..autograd.tensor import Tensor, as_tensors
from ..random import default_rng

__all__ = [
    "softmax", "log_softmax", "logsumexp", "layer_norm", "cross_entropy", "embedding", "dropout",
    "gelu", "relu", "sigmoid", "tanh", "linear",
    "masked_softmax",
]


def _axis(x: Tensor, axis: int):
    if not -max(x.ndim, 1) <= axis < max(x.ndim, 1):
        raise ValueError(f"axis {axis} is out of range for a tensor of shape {x.shape}")
    return axis % x.ndim if x.ndim else ()  # a 0-d tensor takes axis 0 or -1, as in PyTorch


def softmax(x, axis: int = -1, temperature: float = 1.0) -> Tensor:
    """softmax(x / temperature) along `axis`. Temperature → 0 approaches argmax, → ∞ uniform."""
    (x,) = as_tensors("softmax", (x,))
    if temperature != 1.0:
        if temperature <= 0:
            raise ValueError(f"softmax temperature must be positive; got {temperature}")
        x = x / temperature
    return fused.Softmax.apply(x, axis=_axis(x, axis))


def masked_softmax(x, may_attend=None, axis: int = -1) -> Tensor:
    """softmax along `axis` in which only the entries where `may_attend` is True compete; the others get
    weight exactly 0. The one masked softmax of the library (anatomy's softmax_normaliser and
    nn.masked_softmax call it; sdpa's `_attend`, Exercise 5.1, spells the same steps out for the learner).

    `may_attend`: None (every entry may) or a boolean array or Tensor that broadcasts to x's shape without
    enlarging it; True = may attend, torch's scaled_dot_product_attention convention. Scores of -inf count
    as masked too. A row with nothing to attend to gets weights 0 and passes back gradient 0, never NaN:
    its scores are replaced by 0 before the softmax and its weights by 0 after.
    """
    (x,) = as_tensors("masked_softmax", (x,))
    axis = _axis(x, axis)
    if may_attend is not None:
        m = may_attend.data if isinstance(may_attend, Tensor) else np.asarray(may_attend)
        if m.dtype != bool:
            raise TypeError(f"masked_softmax: may_attend must be boolean (True = may attend); got dtype {m.dtype} "
                            f"of shape {m.shape}. Convert 0/1 integers with mask.astype(bool).")
        try:
            fits = np.broadcast_shapes(m.shape, x.shape) == tuple(x.shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"masked_softmax: may_attend of shape {m.shape} does not broadcast to the scores' "
                             f"shape {x.shape}")
        x = ops.where(m, x, -np.inf)
    dead = np.all(x.data == -np.inf, axis=axis, keepdims=True)  # rows with no entry to attend to
    if not dead.any():
        return fused.Softmax.apply(x, axis=axis)
    weights = fused.Softmax.apply(ops.where(dead, 0.0, x), axis=axis)
    return ops.where(dead, 0.0, weights)


def log_softmax(x, axis: int = -1) -> Tensor:
    (x,) = as_tensors("log_softmax", (x,))
    return fused.LogSoftmax.apply(x, axis=_axis(x, axis))


def logsumexp(x, axis: int = -1, keepdims: bool = False) -> Tensor:
    (x,) = as_tensors("logsumexp", (x,))
    return fused.LogSumExp.apply(x, axis=_axis(x, axis), keepdims=keepdims)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing `normalized_shape` axes, then scale and shift (PyTorch's layer_norm)."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    n = len(normalized_shape)
    if n == 0 or n > x.ndim or tuple(x.shape[x.ndim - n :]) != normalized_shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end in "
                         f"normalized_shape {normalized_shape}")
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != normalized_shape:
            raise ValueError(f"layer_norm: {name} has shape {p.shape}, expected {normalized_shape}")
    if weight is None and bias is None:
        return fused.LayerNormNoAffine.apply(x, n=n, eps=eps)
    if weight is None:
        weight = np.ones(normalized_shape, dtype=x.dtype)
    if bias is None:
        return fused.LayerNorm.apply(x, weight, n=n, eps=eps)
    return fused.LayerNorm.apply(x, weight, bias, n=n, eps=eps)


def cross_entropy(logits, target, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean") -> Tensor:
    """PyTorch's cross_entropy for class indices: logits (N, C) or (N, C, d1, ...), target (N,) or
    (N, d1, ...).

    Targets equal to `ignore_index` are skipped (and not counted in the mean). A mean over zero
    counted targets is NaN, as in PyTorch.
    """
    (logits,) = as_tensors("cross_entropy", (logits,))
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: target must hold integer class indices; got dtype {t.dtype} "
                        f"of shape {t.shape}")
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1]; got {label_smoothing}")
    if logits.ndim < 1 or logits.ndim == 1:
        raise ValueError(f"cross_entropy: logits need shape (N, C); got {logits.shape}")
    expected = (logits.shape[0],) + tuple(logits.shape[2:])
    if t.shape != expected:
        raise ValueError(f"cross_entropy: logits of shape {logits.shape} need target of shape {expected}; "
                         f"got {t.shape}")
    c = logits.shape[1]
    if logits.ndim > 2:  # move the class axis last and flatten, as torch does internally
        perm = (0,) + tuple(range(2, logits.ndim)) + (1,)
        logits = logits.permute(*perm).reshape(-1, c)
    flat_t = t.reshape(-1)
    bad = (flat_t != ignore_index) & ((flat_t < 0) | (flat_t >= c))
    if bad.any():
        raise IndexError(f"cross_entropy: target values must be in [0, {c}) or ignore_index={ignore_index}; "
                         f"found {flat_t[bad][:5].tolist()}")
    out = fused.CrossEntropy.apply(logits, target=flat_t, ignore_index=ignore_index,
                                   label_smoothing=label_smoothing, reduction=reduction)
    return out.reshape(t.shape) if reduction == "none" else out


def embedding(indices, weight: Tensor) -> Tensor:
    """Rows of `weight` (num_embeddings, dim) picked by integer `indices` of any shape."""
    idx = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers; got dtype {idx.dtype} of shape {idx.shape}")
    num = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= num):
        raise IndexError(f"embedding: indices must be in [0, {num}); got min {idx.min()} and max {idx.max()}")
    return fused.Embedding.apply(weight, indices=idx)


def dropout(x, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None) -> Tensor:
    """Inverted dropout. Identity when not training or p == 0; `rng` defaults to the library's generator."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1]; got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return fused.Dropout.apply(x, p=p, rng=rng if rng is not None else default_rng())


def gelu(x, approximate: str = "none") -> Tensor:
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh'; got {approximate!r}")
    return fused.GELU.apply(x, approximate=approximate)


def relu(x) -> Tensor:
    return ops.ReLU.apply(x)


def sigmoid(x) -> Tensor:
    return ops.Sigmoid.apply(x)


def tanh(x) -> Tensor:
    return ops.Tanh.apply(x)


def linear(x, weight, bias=None) -> Tensor:
    """x @ weightᵀ + bias, with weight of shape (out_features, in_features) as in PyTorch."""
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input of shape {x.shape} has {x.shape[-1]} features; weight of shape "
                         f"{weight.shape} expects {weight.shape[-1]}")
    if x.ndim >= 1 and weight.ndim == 2 and (bias is None or bias.ndim == 1):
        # one GEMM over all leading axes (fused.Linear); matmul + transpose + add is the same in exact arithmetic
        return fused.Linear.apply(x, weight) if bias is None else fused.Linear.apply(x, weight, bias)
    out = ops.matmul(x, weight.transpose(0, 1))
    return out + bias if bias is not None else out


# Tensor's softmax methods are the functions above (`x.softmax(-1)` is `softmax(x, -1)`); this module attaches
# them because tensor.py cannot import it (imports go one way: see autograd/__init__.py).
Tensor.softmax = softmax
Tensor.log_softmax = log_softmax
Tensor.logsumexp = logsumexp
