"""`Function`: one differentiable operation, its forward and its backward side by side.

Every op in the library is a subclass with two static methods:

    forward(ctx, *arrays, **options)  -> np.ndarray      # plain NumPy in, plain NumPy out
    backward(ctx, grad)               -> one gradient per array input (or None)

`forward` may stash whatever `backward` needs with `ctx.save(...)`. `backward` receives the gradient
of the loss with respect to the op's output and returns the gradient with respect to each input. It may
return a gradient in the *broadcast* shape (the shape the op computed in): `Tensor.backward` un-broadcasts
it to the input's own shape (with `unbroadcast`, below), so no op has to think about broadcasting in its
backward.

This file is NumPy only and imports nothing else of the library: `Function.apply`, which makes Tensors,
is given to `Function` by `tensor.py` (see the import rule in `autograd/__init__.py`).
"""

from __future__ import annotations

import numpy as np


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` down to `shape`, undoing NumPy broadcasting (Exercise 1.1).

    Broadcasting copies an input along (a) new leading axes and (b) axes where the input has size 1.
    Each copy received its own share of the gradient, so the input's gradient is their sum:

        unbroadcast(np.ones((4, 2, 3)), (2, 1)) -> array of shape (2, 1), every entry 4 * 3 = 12
    """
    if grad.ndim < len(shape):
        raise ValueError(f"unbroadcast: gradient of shape {grad.shape} has fewer axes than shape {shape}")
    ### BEGIN SOLUTION
    if grad.shape == tuple(shape):
        return grad
    lead = grad.ndim - len(shape)
    if lead:
        grad = grad.sum(axis=tuple(range(lead)))
    ones = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if ones:
        grad = grad.sum(axis=ones, keepdims=True)
    ### END SOLUTION
    return grad


class IndexedGrad:
    """A gradient that is zero everywhere except at `index` — what indexing's backward produces.

    The engine adds it into the input's gradient buffer in place, so taking T slices of a sequence
    (an RNN reading `x[:, t]` for every t) costs O(size of the slices) in backward, not T full-size
    arrays of zeros. `dense()` gives the ordinary array when one is needed.
    """

    __slots__ = ("index", "values")

    def __init__(self, index, values: np.ndarray):
        self.index, self.values = index, values

    def add_into(self, buffer: np.ndarray) -> None:
        parts = self.index if isinstance(self.index, tuple) else (self.index,)
        if any(isinstance(i, np.ndarray) for i in parts):
            np.add.at(buffer, self.index, self.values)  # integer arrays may repeat positions
        else:
            buffer[self.index] += self.values

    def dense(self, shape, dtype) -> np.ndarray:
        buffer = np.zeros(shape, dtype=dtype)
        self.add_into(buffer)
        return buffer


class Context:
    """Scratch space a Function's forward fills for its backward."""

    __slots__ = ("saved", "needs_input_grad", "shapes", "__dict__")

    def __init__(self, needs_input_grad: tuple[bool, ...], shapes: tuple[tuple[int, ...], ...]):
        self.saved: tuple = ()
        self.needs_input_grad = needs_input_grad
        self.shapes = shapes

    def save(self, *values) -> None:
        self.saved = values


class Node:
    """The recipe attached to a non-leaf tensor: which Function made it, from which parents."""

    __slots__ = ("fn", "ctx", "parents")

    def __init__(self, fn: type[Function], ctx: Context, parents: tuple):
        self.fn, self.ctx, self.parents = fn, ctx, parents


class Function:
    """Base class of every differentiable op. Call `MyOp.apply(*tensors, **options)`."""

    @staticmethod
    def forward(ctx: Context, *args: np.ndarray, **kwargs) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError

    # `Function.apply(*inputs, **options) -> Tensor` runs forward on the inputs' arrays and records the
    # node; it is defined in tensor.py (`apply`), which attaches it here, because it makes Tensors.
