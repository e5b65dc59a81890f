"""The differentiable ops: elementwise math, matmul, reductions, shapes and indexing.

Each op is a `Function` whose `backward` sits right below its `forward`. Backward receives `grad`,
the gradient of the loss with respect to the op's output, and returns the gradient with respect to
each input (in the broadcast shape is fine: `Tensor.backward` un-broadcasts). Fused ops with their
own hand-derived backward (softmax, logsumexp, layer norm, cross-entropy, ...) live in `fused.py`.
"""

from __future__ import annotations

import numpy as np

from .function import Function, IndexedGrad
from .tensor import Tensor, as_tensors


def _check_broadcast(op: str, a: np.ndarray, b: np.ndarray) -> None:
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None


# ---- elementwise, two inputs ------------------------------------------------------------------
class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("add", a, b)
        return a + b

    @staticmethod
    def backward(ctx, grad):
        return grad, grad


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("sub", a, b)
        return a - b

    @staticmethod
    def backward(ctx, grad):
        return grad, -grad


class Mul(Function):
    """out = a * b, elementwise with broadcasting (Exercise 1.2)."""

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("mul", a, b)
        ### BEGIN SOLUTION
        ctx.save(a, b)
        return a * b
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        a, b = ctx.saved
        return grad * b, grad * a
        ### END SOLUTION


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("div", a, b)
        if a.dtype.kind in "iu" and b.dtype.kind in "iu":  # integer / integer gives float32, as in torch
            a, b = a.astype(np.float32), b.astype(np.float32)
        ctx.save(a, b)
        return a / b

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        ga = grad / b
        return ga, (-ga * a / b if ctx.needs_input_grad[1] else None)


class Pow(Function):
    """a ** b. The gradient for b (a^b log a) is only computed when b requires it."""

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("pow", a, b)
        out = a**b
        ctx.save(a, b, out)
        return out

    @staticmethod
    def backward(ctx, grad):
        a, b, out = ctx.saved
        ga = gb = None
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** negative, log of 0 or of a negative
            if ctx.needs_input_grad[0]:
                ga = grad * np.where(b == 0, 0, b * a ** (b - 1))  # a ** 0 is constant, even at a = 0
            if ctx.needs_input_grad[1]:
                gb = grad * np.where((a == 0) & (b >= 0), 0, out * np.log(a))  # as torch: 0 at 0 ** b
        return ga, gb


class Maximum(Function):
    """Elementwise max(a, b); ties send the gradient half to each side."""

    @staticmethod
    def forward(ctx, a, b):
        _check_broadcast("maximum", a, b)
        ctx.save(a, b)
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx, grad):
        a, b = ctx.saved
        wa = (a > b) + 0.5 * (a == b)
        return grad * wa, grad * (1 - wa)


# ---- elementwise, one input -------------------------------------------------------------------
class Neg(Function):
    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, grad):
        return -grad


class Exp(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.exp(a)
        ctx.save(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * out


class Log(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save(a)
        return np.log(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad / a


class Sqrt(Function):
    @staticmethod
    def forward(ctx, a):
        out = np.sqrt(a)
        ctx.save(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad / (2 * out)


class Abs(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save(a)
        return np.abs(a)

    @staticmethod
    def backward(ctx, grad):
        (a,) = ctx.saved
        return grad * np.sign(a)


class Tanh(Function):
    """out = tanh(a); its derivative is 1 - out² (Exercise 1.3)."""

    @staticmethod
    def forward(ctx, a):
        ### BEGIN SOLUTION
        out = np.tanh(a)
        ctx.save(out)
        return out
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        (out,) = ctx.saved
        return grad * (1 - out * out)
        ### END SOLUTION


class Sigmoid(Function):
    @staticmethod
    def forward(ctx, a):
        # exp of a non-positive number only: no overflow for large |a|
        e = np.exp(-np.abs(a))
        out = np.where(a >= 0, 1 / (1 + e), e / (1 + e)).astype(a.dtype, copy=False)
        ctx.save(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        (out,) = ctx.saved
        return grad * out * (1 - out)


class ReLU(Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save(a > 0)
        return np.maximum(a, 0)

    @staticmethod
    def backward(ctx, grad):
        (positive,) = ctx.saved
        return grad * positive


class Cast(Function):
    @staticmethod
    def forward(ctx, a, dtype):
        ctx.save(a.dtype)
        return a.astype(dtype)

    @staticmethod
    def backward(ctx, grad):
        (dtype,) = ctx.saved
        return grad.astype(dtype)


# ---- matmul -----------------------------------------------------------------------------------
class MatMul(Function):
    """out = a @ b for a: (..., n, k), b: (..., k, m); batch axes broadcast (Exercise 1.4).

    Backward: dA = grad @ Bᵀ and dB = Aᵀ @ grad, transposing the last two axes only. When the batch
    axes were broadcast, the results have the broadcast batch shape; `Tensor.backward` sums them back to
    each input's shape (unbroadcast).
    """

    @staticmethod
    def forward(ctx, a, b):
        if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned (need a[-1] == b[-2])")
        _check_broadcast("matmul (batch axes)", a[..., :1, :1], b[..., :1, :1])
        ### BEGIN SOLUTION
        ctx.save(a, b)
        return a @ b
        ### END SOLUTION

    @staticmethod
    def backward(ctx, grad):
        ### BEGIN SOLUTION
        a, b = ctx.saved
        ga = grad @ np.swapaxes(b, -1, -2) if ctx.needs_input_grad[0] else None
        gb = np.swapaxes(a, -1, -2) @ grad if ctx.needs_input_grad[1] else None
        return ga, gb
        ### END SOLUTION


def matmul(a, b) -> Tensor:
    """`a @ b` with PyTorch's rules for 1-D operands (a vector is promoted, then squeezed)."""
    a, b = as_tensors("matmul", (a, b))
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least one axis; got shapes {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned: "
                         f"{a.shape[-1]} (last axis of the first) != {b.shape[-2 if b.ndim > 1 else 0]}")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: the batch axes of shapes {a.shape} and {b.shape} cannot be broadcast "
                         "together") from None
    squeeze = []
    if a.ndim == 1:
        a, squeeze = a.reshape(1, a.shape[0]), squeeze + [-2]
    if b.ndim == 1:
        b, squeeze = b.reshape(b.shape[0], 1), squeeze + [-1]
    out = MatMul.apply(a, b)
    if squeeze:
        out = out.reshape(tuple(n for i, n in enumerate(out.shape) if i - out.ndim not in squeeze))
    return out


# ---- reductions -------------------------------------------------------------------------------
def normalize_axis(axis, ndim: int):
    """None, an int or a tuple of ints -> None or a sorted tuple of non-negative axes.

    As in PyTorch, a 0-d tensor accepts axis 0 or -1, which reduces over nothing (the axes are ()).
    """
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for ax in axes:
        if not -max(ndim, 1) <= ax < max(ndim, 1):
            raise ValueError(f"axis {ax} is out of range for a tensor with {ndim} axes")
        if ndim:
            out.append(int(ax) % ndim)
    return tuple(sorted(out))


def _expand(grad, shape, axis, keepdims):
    """Put back the reduced axes of `grad` so it broadcasts against an input of `shape`."""
    if axis is None:
        return np.broadcast_to(grad.reshape((1,) * len(shape)), shape)
    if not keepdims:
        grad = np.expand_dims(grad, axis)
    return np.broadcast_to(grad, shape)


class Sum(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        ctx.save(axis, keepdims)
        return np.asarray(a.sum(axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx, grad):
        axis, keepdims = ctx.saved
        return _expand(grad, ctx.shapes[0], axis, keepdims)


class Mean(Function):
    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        count = a.size if axis is None else int(np.prod([a.shape[i] for i in axis]))
        ctx.save(axis, keepdims, count)
        return np.asarray(a.mean(axis=axis, keepdims=keepdims))

    @staticmethod
    def backward(ctx, grad):
        axis, keepdims, count = ctx.saved
        return _expand(grad / count, ctx.shapes[0], axis, keepdims)


class Max(Function):
    """Max over axes; tied maxima share the gradient equally (like torch.amax)."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False):
        if a.size == 0:
            raise ValueError(f"max of an empty tensor of shape {a.shape}")
        out = a.max(axis=axis, keepdims=True)
        ctx.save(a == out, axis, keepdims)
        return out if keepdims else (out.reshape(()) if axis is None else out.squeeze(axis))

    @staticmethod
    def backward(ctx, grad):
        winners, axis, keepdims = ctx.saved
        share = winners / winners.sum(axis=axis, keepdims=True)
        return _expand(grad, ctx.shapes[0], axis, keepdims) * share


class Var(Function):
    """Variance over axes with `correction` (1: unbiased, PyTorch's default; 0: biased)."""

    @staticmethod
    def forward(ctx, a, axis=None, keepdims=False, correction=1):
        count = a.size if axis is None else int(np.prod([a.shape[i] for i in axis]))
        centered = a - a.mean(axis=axis, keepdims=True)
        ctx.save(centered, axis, keepdims, count - correction)
        return np.asarray((centered**2).sum(axis=axis, keepdims=keepdims) / (count - correction))

    @staticmethod
    def backward(ctx, grad):
        centered, axis, keepdims, dof = ctx.saved
        return _expand(grad, ctx.shapes[0], axis, keepdims) * (2 / dof) * centered


# ---- shapes -----------------------------------------------------------------------------------
class Reshape(Function):
    @staticmethod
    def forward(ctx, a, shape):
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                             f"into {shape}") from None

    @staticmethod
    def backward(ctx, grad):
        return grad.reshape(ctx.shapes[0])


class Permute(Function):
    @staticmethod
    def forward(ctx, a, axes):
        ctx.save(axes)
        return a.transpose(axes)

    @staticmethod
    def backward(ctx, grad):
        (axes,) = ctx.saved
        return grad.transpose(np.argsort(axes))


_BASIC_INDEX = (int, slice, type(None), type(Ellipsis))  # what needs no conversion (x[:, t] in an RNN loop)


def normalize_index(index):
    """Turn tensors inside an index into arrays, and check boolean masks are boolean arrays."""
    if isinstance(index, tuple):
        if all(isinstance(i, _BASIC_INDEX) for i in index):
            return index
        return tuple(normalize_index(i) for i in index)
    if isinstance(index, Tensor):
        index = index.data
    if isinstance(index, list):
        index = np.asarray(index)
    if isinstance(index, np.ndarray) and index.dtype.kind not in "biu":
        raise TypeError(f"index arrays must be integer or boolean; got dtype {index.dtype} "
                        f"of shape {index.shape}")
    return index


def _is_advanced(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, np.ndarray) for i in parts)


class Index(Function):
    """a[index] for slices, integers, integer arrays and boolean masks. Backward returns an
    `IndexedGrad`: the engine adds `grad` into the input's gradient at `index` (with `np.add.at`
    when integer arrays may repeat a position)."""

    @staticmethod
    def forward(ctx, a, index):
        try:
            out = a[index]
        except IndexError as e:
            raise IndexError(f"index into a tensor of shape {a.shape}: {e}") from None
        ctx.save(index)
        return np.asarray(out)

    @staticmethod
    def backward(ctx, grad):
        (index,) = ctx.saved
        return IndexedGrad(index, grad)


class Concatenate(Function):
    @staticmethod
    def forward(ctx, *arrays, axis=0):
        if not -arrays[0].ndim <= axis < arrays[0].ndim:
            raise ValueError(f"concatenate: axis {axis} is out of range for shapes "
                             f"{[x.shape for x in arrays]}")
        try:
            out = np.concatenate(arrays, axis=axis)
        except ValueError:
            raise ValueError(f"concatenate along axis {axis}: shapes {[x.shape for x in arrays]} "
                             "do not match off that axis") from None
        ctx.save(axis, np.cumsum([x.shape[axis] for x in arrays])[:-1])
        return out

    @staticmethod
    def backward(ctx, grad):
        axis, cuts = ctx.saved
        return tuple(np.split(grad, cuts, axis=axis))


class Stack(Function):
    @staticmethod
    def forward(ctx, *arrays, axis=0):
        if len({x.shape for x in arrays}) > 1:
            raise ValueError(f"stack needs tensors of one shape; got {[x.shape for x in arrays]}")
        ctx.save(axis)
        return np.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx, grad):
        (axis,) = ctx.saved
        return tuple(np.moveaxis(grad, axis, 0))


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        try:
            np.broadcast_shapes(cond.shape, a.shape, b.shape)
        except ValueError:
            raise ValueError(f"where: shapes {cond.shape} (condition), {a.shape} and {b.shape} "
                             "cannot be broadcast together") from None
        ctx.save(cond)
        return np.where(cond, a, b)

    @staticmethod
    def backward(ctx, grad):
        (cond,) = ctx.saved
        return None, np.where(cond, grad, 0), np.where(cond, 0, grad)


# ---- functional forms -------------------------------------------------------------------------
def concatenate(tensors, axis=0) -> Tensor:
    if len(tensors) == 0:
        raise ValueError("concatenate needs at least one tensor")
    return Concatenate.apply(*tensors, axis=axis)


cat = concatenate


def stack(tensors, axis=0) -> Tensor:
    if len(tensors) == 0:
        raise ValueError("stack needs at least one tensor")
    return Stack.apply(*tensors, axis=axis)


def split(x: Tensor, split_size_or_sections, axis=0) -> list[Tensor]:
    """Split like torch.split: an int gives chunks of that size (the last may be smaller),
    a list gives chunks of those sizes (which must add up to the axis length)."""
    n = x.shape[axis]
    if isinstance(split_size_or_sections, (int, np.integer)):
        if split_size_or_sections <= 0:
            raise ValueError(f"split size must be positive; got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split sizes {sizes} add up to {sum(sizes)} but axis {axis} "
                             f"of shape {x.shape} has {n}")
    out, start = [], 0
    axis = axis % x.ndim
    for s in sizes:
        index = (slice(None),) * axis + (slice(start, start + s),)
        out.append(x[index])
        start += s
    return out


def where(cond, a, b) -> Tensor:
    cond = cond.data if isinstance(cond, Tensor) else np.asarray(cond)
    if cond.dtype != bool:
        raise TypeError(f"where: the condition must be boolean; got dtype {cond.dtype} of shape {cond.shape}")
    a, b = as_tensors("where", (a, b))
    return Where.apply(Tensor(cond), a, b)


def masked_fill(x: Tensor, mask, value) -> Tensor:
    """x with `value` wherever `mask` (boolean, broadcastable to x) is True."""
    mask = mask.data if isinstance(mask, Tensor) else np.asarray(mask)
    if mask.dtype != bool:
        raise TypeError(f"masked_fill: mask must be boolean; got dtype {mask.dtype} of shape {mask.shape}")
    return where(mask, np.asarray(value, dtype=x.dtype), x)


def maximum(a, b) -> Tensor:
    return Maximum.apply(a, b)


# ---- Tensor's operators and methods ----------------------------------------------------------------
class TensorMethods:
    """The differentiable operators and methods of `Tensor`, each forwarding to a Function of this file.

    They live here, not in tensor.py, because this file imports tensor.py (imports go one way, see
    autograd/__init__.py); the loop below copies them onto `Tensor` when ops.py is imported, which
    `import minitorch_attn` always does. Each looks its Function up when called, so swapping `ops.Mul`
    (what `course.use` does) changes `a * b` too.
    """

    def __add__(self, other):
        return Add.apply(self, other)

    def __radd__(self, other):
        return Add.apply(other, self)

    def __sub__(self, other):
        return Sub.apply(self, other)

    def __rsub__(self, other):
        return Sub.apply(other, self)

    def __mul__(self, other):
        return Mul.apply(self, other)

    def __rmul__(self, other):
        return Mul.apply(other, self)

    def __truediv__(self, other):
        return Div.apply(self, other)

    def __rtruediv__(self, other):
        return Div.apply(other, self)

    def __neg__(self):
        return Neg.apply(self)

    def __pow__(self, other):
        return Pow.apply(self, other)

    def __rpow__(self, other):
        return Pow.apply(other, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __getitem__(self, index):
        return Index.apply(self, index=normalize_index(index))

    def exp(self):
        return Exp.apply(self)

    def log(self):
        return Log.apply(self)

    def sqrt(self):
        return Sqrt.apply(self)

    def tanh(self):
        return Tanh.apply(self)

    def sigmoid(self):
        return Sigmoid.apply(self)

    def relu(self):
        return ReLU.apply(self)

    def abs(self):
        return Abs.apply(self)

    def sum(self, axis=None, keepdims=False):
        return Sum.apply(self, axis=normalize_axis(axis, self.ndim), keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return Mean.apply(self, axis=normalize_axis(axis, self.ndim), keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return Max.apply(self, axis=normalize_axis(axis, self.ndim), keepdims=keepdims)

    def var(self, axis=None, keepdims=False, correction=1):
        return Var.apply(
            self, axis=normalize_axis(axis, self.ndim), keepdims=keepdims, correction=correction
        )

    def reshape(self, *shape):
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
        return Reshape.apply(self, shape=tuple(shape))

    view = reshape

    def permute(self, *axes):
        axes = axes[0] if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else axes
        in_range = all(-self.ndim <= a < self.ndim for a in axes)
        if not in_range or sorted(a % self.ndim for a in axes) != list(range(self.ndim)):
            raise ValueError(f"permute: axes {tuple(axes)} are not a permutation of the {self.ndim} axes "
                             f"of shape {self.shape}")
        return Permute.apply(self, axes=tuple(a % self.ndim for a in axes))

    def astype(self, dtype):
        return Cast.apply(self, dtype=np.dtype(dtype))

    def masked_fill(self, mask, value):
        return masked_fill(self, mask, value)


for _name, _method in vars(TensorMethods).items():
    if callable(_method):  # the functions; not __doc__, __module__, ...
        setattr(Tensor, _name, _method)
