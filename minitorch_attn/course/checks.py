"""Helpers for graded tests: run one op's forward and backward, compare arrays, and fail with a message
that teaches (what was expected, what came back, the likely mistake).

The graded tests check one exercise at a time: `run_op` drives a Function's forward and backward itself
and sums broadcast gradients with its own reference `sum_to_shape`, so a mistake in Exercise 1.1
(`unbroadcast`) or 1.5 (`topological_order`) does not cost points in Exercise 1.2.
"""

from __future__ import annotations

import numpy as np

from ..autograd.tensor import Tensor

_ERRORS = (ArithmeticError, AttributeError, IndexError, KeyError, TypeError, ValueError)


def fail(what: str, problem: str, hint: str = "", details: str = ""):
    """Raise AssertionError("<what>: <problem> -- <hint>" + details): the first line is what the grade
    table shows, so it names the function, the symptom and the likely mistake."""
    first = f"{what}: {problem}" + (f" -- {hint}" if hint else "")
    raise AssertionError(first + (f"\n{details}" if details else ""))


def _fmt(x) -> str:
    return np.array2string(np.asarray(x), precision=6, threshold=40, edgeitems=3, separator=", ")


def _value(x) -> np.ndarray:
    """A plain ndarray (never a subclass, whose ufuncs the learner could have redefined to compare equal)."""
    return np.asarray(x.data if isinstance(x, Tensor) else x)


def assert_close(actual, expected, what: str, hint: str = "", rtol: float = 1e-7, atol: float = 1e-10,
                 check_dtype: bool = False) -> None:
    """`actual` equals `expected` in shape (and dtype if asked) and values; infinities must match exactly,
    NaN only where NaN is expected."""
    if actual is None:
        fail(what, "got None", hint or "did you forget to return the result?")
    a, e = _value(actual), np.asarray(expected)
    if a.shape != e.shape:
        fail(what, f"expected shape {e.shape}, got shape {a.shape}", hint,
             f"  expected: {_fmt(e)}\n  got:      {_fmt(a)}")
    if check_dtype and a.dtype != e.dtype:
        fail(what, f"expected dtype {e.dtype}, got {a.dtype}", hint or "keep the input's dtype")
    if a.dtype.kind not in "fcbiu":
        fail(what, f"expected numbers, got an array of dtype {a.dtype}", hint)
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    bad_nan = np.isnan(a64) & ~np.isnan(e64)
    if bad_nan.any():
        idx = tuple(int(i) for i in np.argwhere(bad_nan)[0])
        fail(what, f"got NaN at index {idx} where {e64[idx]:.6g} was expected", hint,
             f"  expected: {_fmt(e)}\n  got:      {_fmt(a)}")
    mismatch = ~np.isclose(a64, e64, rtol=rtol, atol=atol, equal_nan=True)
    if mismatch.any():
        idx = tuple(int(i) for i in np.argwhere(mismatch)[0])
        with np.errstate(invalid="ignore"):
            err = np.where(mismatch, np.abs(a64 - e64), 0)
        worst = float(np.nanmax(err)) if np.isfinite(err).any() else float("inf")
        fail(what, f"wrong value at index {idx}: expected {e64[idx]:.10g}, got {a64[idx]:.10g} "
             f"({int(mismatch.sum())} of {mismatch.size} entries differ, largest error {worst:.3g})", hint,
             f"  expected: {_fmt(e)}\n  got:      {_fmt(a)}")


def sum_to_shape(grad, shape, what: str = "gradient") -> np.ndarray:
    """The graders' own un-broadcast: sum `grad` down to `shape` (independent of Exercise 1.1)."""
    grad = np.asarray(grad)
    shape = tuple(shape)
    try:
        target = np.broadcast_shapes(grad.shape, shape)
    except ValueError:
        target = None
    if target != grad.shape:
        fail(what, f"shape {grad.shape} cannot be the gradient of an input of shape {shape}",
             "backward must return, for each input, an array of that input's shape or of the broadcast shape "
             "the op computed in")
    lead = grad.ndim - len(shape)
    if lead:
        grad = grad.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def run_op(fn, *inputs, grad=None, requires_grad=None, hint: str = "", **kwargs):
    """Apply Function `fn` to `inputs` (arrays; floating ones become tensors that require grad) and, if
    `grad` is given, call its backward once. Returns (output array, [gradient per input or None]), the
    gradients summed to each input's shape. An exception other than NotImplementedError inside forward
    or backward becomes a failure naming it (with `hint`)."""
    name = fn.__name__
    tensors = []
    for i, x in enumerate(inputs):
        x = np.asarray(x)
        rg = x.dtype.kind == "f" if requires_grad is None else requires_grad[i]
        tensors.append(Tensor(x, requires_grad=rg))
    try:
        out = fn.apply(*tensors, **kwargs)
    except _ERRORS as e:
        fail(f"{name}.forward", f"raised {type(e).__name__}: {e}", hint)
    if not isinstance(out, Tensor):
        fail(f"{name}.apply", f"returned a {type(out).__name__}, not a Tensor")
    if out.data.dtype == object:
        fail(f"{name}.forward", "returned something that is not a NumPy array of numbers",
             "did the forward return a tuple or None? It must return one array")
    if grad is None:
        return out.data, None
    if out._node is None:  # pragma: no cover - Function.apply always records when an input requires grad
        fail(f"{name}.apply", "recorded no graph node")
    try:
        raw = fn.backward(out._node.ctx, np.asarray(grad, dtype=out.data.dtype))
    except _ERRORS as e:
        fail(f"{name}.backward", f"raised {type(e).__name__}: {e}", hint)
    raw = raw if isinstance(raw, tuple) else (raw,)
    if len(raw) != len(tensors):
        fail(f"{name}.backward", f"returned {len(raw)} value(s) for {len(tensors)} input(s)",
             "return one gradient per input of forward, in order (a tuple for two or more)")
    grads = []
    for i, (g, t) in enumerate(zip(raw, tensors)):
        if g is None or not t.requires_grad:
            grads.append(None if g is None else np.asarray(g))
            continue
        grads.append(sum_to_shape(g, t.shape, f"{name}.backward: gradient {i}"))
    return out.data, grads


def numeric_vjp(f, arrays, grad, eps: float = 1e-6) -> list[np.ndarray]:
    """Central differences of sum(grad * f(*arrays)) with respect to each array (float64)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grad = np.asarray(grad, dtype=np.float64)
    out = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            plus = float(np.sum(grad * f(*arrays)))
            a[idx] = old - eps
            minus = float(np.sum(grad * f(*arrays)))
            a[idx] = old
            g[idx] = (plus - minus) / (2 * eps)
        out.append(g)
    return out


def gradcheck_op(fn, arrays, what: str, hint: str = "", seed: int = 0, atol: float = 1e-6,
                 rtol: float = 1e-5, **kwargs) -> None:
    """The op's backward against central differences of its own forward, in float64, with a random
    upstream gradient (ones would hide mistakes that only cancel on average)."""
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    out, _ = run_op(fn, *arrays, hint=hint, **kwargs)
    upstream = np.random.default_rng(seed).standard_normal(out.shape)
    _, grads = run_op(fn, *arrays, grad=upstream, hint=hint, **kwargs)

    def forward(*xs):
        return fn.apply(*(Tensor(x) for x in xs), **kwargs).data

    numeric = numeric_vjp(forward, arrays, upstream)
    for i, (g, n) in enumerate(zip(grads, numeric)):
        assert_close(g, n, f"{what}: gradient of input {i} against finite differences", hint,
                     rtol=rtol, atol=atol)
