"""`Tensor`: an `np.ndarray` (`.data`) that remembers how it was made, so that `backward()` can
send gradients back through the graph in reverse topological order.

Rules this file keeps:
- float32 is the default; a NumPy array keeps its float dtype (float64 works everywhere);
- tensors in one op must share a float dtype (mixing float32 and float64 raises, naming both);
- Python numbers and NumPy arrays mixed into an op become constants of the tensor's dtype, and so do
  integer tensors (float32 + int64 is float32, as in PyTorch);
- only leaves (tensors you made, e.g. parameters) keep `.grad`, as in PyTorch; call
  `retain_grad()` on an intermediate tensor to keep its gradient too;
- gradients accumulate: call `zero_grad` (or set `.grad = None`) between steps.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from .function import Context, Function, IndexedGrad, Node, unbroadcast

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Inside this block no graph is recorded (inference, optimizer updates)."""
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


def _as_array(data, dtype=None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.asarray(data, dtype=dtype)
    arr = np.asarray(data)
    if isinstance(data, np.ndarray) or isinstance(data, np.generic):
        return arr
    # Python numbers and lists: floats become float32, ints stay integer (indices), bools stay bool.
    if arr.dtype.kind == "f":
        return arr.astype(np.float32)
    return arr


class Tensor:
    """A node of the computation graph. `.data` is the value, `.grad` the accumulated gradient."""

    __array_priority__ = 100  # so `ndarray + Tensor` calls Tensor.__radd__

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data: np.ndarray = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients; got dtype {self.data.dtype} "
                f"for a tensor of shape {self.data.shape}"
            )
        self.requires_grad = bool(requires_grad)
        self.grad: np.ndarray | None = None
        self._node = None  # set by Function.apply on non-leaf tensors
        self._retain = False

    @classmethod
    def _wrap(cls, data: np.ndarray, requires_grad: bool) -> Tensor:
        """`Tensor(data, requires_grad)` for an ndarray that needs no conversion or check (what `apply` makes
        of a forward's float result), without __init__'s conversions: the hottest constructor."""
        t = cls.__new__(cls)
        t.data, t.requires_grad, t.grad, t._node, t._retain = data, requires_grad, None, None, False
        return t

    # ---- basic facts -------------------------------------------------------------------------
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: self.data.size)
    is_leaf = property(lambda self: self._node is None)

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, precision=4, separator=", ", prefix="tensor(")
        extra = ", requires_grad=True" if self.requires_grad else ""
        if self.data.dtype != np.float32:
            extra = f", dtype={self.data.dtype}" + extra
        return f"tensor({body}{extra})"

    def numpy(self) -> np.ndarray:
        return self.data

    def item(self) -> float:
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element; got shape {self.shape}")
        return self.data.item()

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> Tensor:
        return Tensor(self.data)

    def float(self) -> Tensor:
        return self.astype(np.float32)

    def double(self) -> Tensor:
        return self.astype(np.float64)

    def retain_grad(self) -> Tensor:
        self._retain = True
        return self

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if flag and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require gradients; got {self.data.dtype}")
        self.requires_grad = flag
        return self

    def zero_grad(self) -> None:
        self.grad = None

    # ---- reverse mode ------------------------------------------------------------------------
    def backward(self, grad=None) -> None:
        """Accumulate d(self)/d(leaf) * grad into every leaf's `.grad`.

        `grad` defaults to 1 for a one-element tensor; any other tensor needs an explicit `grad`
        of its own shape (the vector in the vector-Jacobian product).
        """
        if not self.requires_grad:
            raise RuntimeError(
                f"backward() on a tensor of shape {self.shape} that does not require grad: "
                "no input of the computation had requires_grad=True (or it ran under no_grad())"
            )
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() on a non-scalar tensor of shape {self.shape} needs a gradient of that "
                    "shape: pass backward(grad) or reduce first, e.g. loss = out.sum()"
                )
            grad = np.ones_like(self.data)
        else:
            grad = _as_array(grad, self.data.dtype)
            if grad.shape != self.shape:
                raise ValueError(
                    f"backward(grad): grad has shape {grad.shape} but the tensor has shape {self.shape}"
                )
        grads = {id(self): grad}
        owned = set()  # ids whose buffer in `grads` was allocated here, so may be added into in place
        for t in reversed(topological_order(self)):
            g = grads.pop(id(t), None)
            if g is None:
                continue
            if t._node is None or t._retain:
                t.grad = g.copy() if t.grad is None else t.grad + g
            if t._node is None:
                continue
            node = t._node
            in_grads = node.fn.backward(node.ctx, g)
            if not isinstance(in_grads, tuple):
                in_grads = (in_grads,)
            for parent, pg in zip(node.parents, in_grads):
                if pg is None or not parent.requires_grad:
                    continue
                key = id(parent)
                if isinstance(pg, IndexedGrad):  # sparse: add into a buffer we own
                    if key not in owned:
                        buffer = grads.get(key)
                        grads[key] = np.zeros(parent.shape, parent.data.dtype) if buffer is None else buffer.copy()
                        owned.add(key)
                    pg.add_into(grads[key])
                    continue
                if not (type(pg) is np.ndarray and pg.dtype == parent.data.dtype and pg.shape == parent.data.shape):
                    pg = unbroadcast(np.asarray(pg, dtype=parent.data.dtype), parent.shape)
                if key not in grads:
                    grads[key] = pg
                elif key in owned:
                    grads[key] += pg
                else:
                    grads[key] = grads[key] + pg
                    owned.add(key)

    # ---- operators and methods -----------------------------------------------------------------
    # The differentiable ones (+ - * / ** @, indexing, exp, sum, reshape, permute, ...) each forward to a
    # Function of ops.py, which attaches them to Tensor when it is imported (class `TensorMethods` there);
    # softmax, log_softmax and logsumexp come from functional/common.py the same way. Here: what needs no op.

    # comparisons give boolean tensors that carry no gradient
    def _compare(self, other, fn):
        return Tensor(fn(self.data, _as_array(other)))

    def __lt__(self, other):
        return self._compare(other, np.less)

    def __le__(self, other):
        return self._compare(other, np.less_equal)

    def __gt__(self, other):
        return self._compare(other, np.greater)

    def __ge__(self, other):
        return self._compare(other, np.greater_equal)

    def __eq__(self, other):  # noqa: D105 - elementwise, like NumPy and PyTorch
        return self._compare(other, np.equal)

    def __ne__(self, other):
        return self._compare(other, np.not_equal)

    __hash__ = object.__hash__

    def __bool__(self) -> bool:
        # like NumPy and PyTorch: only a one-element tensor has a truth value (so `if a == b:` on
        # whole tensors raises instead of always being true)
        return bool(self.data)

    def min(self, axis=None, keepdims=False):
        return -((-self).max(axis=axis, keepdims=keepdims))

    def transpose(self, dim0=-2, dim1=-1):
        for d in (dim0, dim1):
            if not -self.ndim <= d < self.ndim:
                raise ValueError(f"transpose: axis {d} is out of range for a tensor of shape {self.shape}")
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        return self.transpose(-2, -1)


def topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor `root` depends on, each listed after all of its parents (Exercise 1.5).

    Visit parents before children with a depth-first search, appending a tensor once all its parents
    are in the list; iterate rather than recurse so that long graphs (an RNN over 1,000 steps) do not
    hit Python's recursion limit. `root` comes last.
    """
    ### BEGIN SOLUTION
    order, seen = [], set()
    stack = [(root, False)]
    while stack:
        t, parents_done = stack.pop()
        if parents_done:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        stack.append((t, True))
        if t._node is not None:
            for p in t._node.parents:
                if id(p) not in seen:
                    stack.append((p, False))
    ### END SOLUTION
    return order


def as_tensors(op: str, inputs) -> list[Tensor]:
    """Wrap the inputs of op `op`. Constants (Python numbers, NumPy arrays) and integer tensors take the
    dtype of the floating tensors among them, so float32 stays float32; with no floating tensor, NumPy
    float arrays keep their dtype, Python floats give float32 (the default), and integers alone stay integers."""
    dtype = None
    for x in inputs:  # the common case, first: tensors of one dtype need no wrapping and no casting
        if not isinstance(x, Tensor) or (dtype is not None and x.data.dtype != dtype):
            break
        dtype = x.data.dtype
    else:
        return list(inputs)
    tensors = [x for x in inputs if isinstance(x, Tensor)]
    floats = {t.data.dtype for t in tensors if t.data.dtype.kind == "f"}
    if len(floats) > 1:
        desc = ", ".join(f"{t.data.dtype} {t.shape}" for t in tensors)
        raise TypeError(
            f"{op}: inputs mix float dtypes ({desc}); convert explicitly with .float() or .double()"
        )
    arrays = [x.data if isinstance(x, Tensor) else np.asarray(x) for x in inputs]
    if floats:
        dtype = floats.pop()
    elif any(not isinstance(x, Tensor) and a.dtype.kind == "f" for x, a in zip(inputs, arrays)):
        # no float tensor: NumPy float arrays keep their dtype (as `tensor()` does); Python floats -> float32
        np_floats = [x.dtype for x in inputs if isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind == "f"]
        dtype = np.result_type(*np_floats) if np_floats else np.dtype(np.float32)
    else:
        dtype = None
    out = []
    for x, arr in zip(inputs, arrays):
        if dtype is not None and arr.dtype.kind in "fiu" and arr.dtype != dtype:
            out.append(Tensor(arr.astype(dtype)))  # a constant: integer tensors cannot require grad
        else:
            out.append(x if isinstance(x, Tensor) else Tensor(arr))
    return out


def apply(cls, *inputs, **kwargs) -> Tensor:
    """`Function.apply`: run `cls.forward` on the inputs' arrays and, when a gradient may be needed,
    record how the result was made (a `Node`) so that `backward()` can call `cls.backward` later.

    Defined here rather than in function.py because it makes Tensors (function.py imports nothing of
    ours); the line after this function gives it to `Function`. It is the hottest path of the library:
    every op of every forward pass goes through it, so it does only what it must."""
    tensors = as_tensors(cls.__name__, inputs)
    needs = tuple(t.requires_grad for t in tensors)
    record = is_grad_enabled() and any(needs)
    ctx = Context(needs, tuple(t.data.shape for t in tensors))
    out = cls.forward(ctx, *(t.data for t in tensors), **kwargs)
    if type(out) is np.ndarray and (not record or out.dtype.kind == "f"):
        result = Tensor._wrap(out, record)
    else:  # numbers, NumPy scalars; and __init__'s error for a non-float result that would need a gradient
        result = Tensor(out, requires_grad=record)
    if record:
        result._node = Node(cls, ctx, tensors)
    return result


Function.apply = classmethod(apply)


def to_tensor(x, dtype=None) -> Tensor:
    """The one input conversion of the library's functions and modules: `x` itself if it is a Tensor
    (never copied or cast: its dtype is its own, and a mismatch is the op's error to raise); anything else
    (ndarray, list, number) as a constant Tensor of `dtype`, or without `dtype` of the dtype NumPy gives it
    (an ndarray keeps its dtype; a list of floats is float64, where `tensor([...])` makes float32)."""
    return x if isinstance(x, Tensor) else Tensor(np.asarray(x), dtype=dtype)


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Make a leaf tensor (float32 for Python floats; NumPy arrays keep their dtype)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)
