"""Helpers for graded tests: run one op's forward and backward, compare arrays, and fail with a message
that teaches (what was expected, what came back, the likely mistake).

The graded tests check one exercise at a time: `run_op` drives a Function's forward and backward itself
and sums broadcast gradients with its own reference `sum_to_shape`, so a mistake in Exercise 1.1
(`unbroadcast`) or 1.5 (`topological_order`) does not cost points in Exercise 1.2.

Every graded test file imports its helpers from here, so that it holds only what it grades:

    call(what, fn, *args, hint=...)        run the learner's function; a crash becomes a failure that teaches
    run_fn(fn, *arrays, what=..., grad=)   the same for a function of Tensors, with its backward
    run_op(Function, *arrays, grad=)       one autograd Function's forward and backward, driven here
    randn(*shape, seed=)                   reproducible inputs
    softmax_ref, logsumexp_ref             the graders' float64 references (a row of all -inf: weights 0)
    assert_close, gradcheck_op, fail       comparisons, and failures that name the likely mistake
    likely_mistake(got, {message: wrong})  the message of the planted mistake `got` reproduces
    ERRORS                                 the exceptions a mistake raises (not NotImplementedError)
"""

from __future__ import annotations

import numpy as np

from ..autograd.tensor import Tensor

#: The exceptions a mistake in an exercise typically raises; a graded test turns them into a failure that
#: teaches. NotImplementedError (an untouched stub) is not among them: it propagates, and the grade table
#: reports the exercise as not started.
ERRORS = (ArithmeticError, AttributeError, IndexError, KeyError, TypeError, ValueError)


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


def randn(*shape, seed: int = 0, scale: float = 1.0, dtype=np.float64) -> np.ndarray:
    """A reproducible standard-normal array of `shape` (times `scale`), from its own `seed`."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def _float_dtype(x: np.ndarray):
    return x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)


def softmax_ref(x, axis: int = -1) -> np.ndarray:
    """The graders' softmax along `axis`, computed in float64 and returned in the input's floating dtype
    (float64 for integers): the row max subtracted before exp, and a row whose entries are all -inf (it
    sees no key) gives weights 0, the library's convention, not 0 / 0 = NaN."""
    x = np.asarray(x)
    x64 = x.astype(np.float64)
    m = x64.max(axis=axis, keepdims=True)
    e = np.exp(x64 - np.where(np.isfinite(m), m, 0.0))
    total = e.sum(axis=axis, keepdims=True)
    return np.where(total > 0, e / np.where(total > 0, total, 1.0), 0.0).astype(_float_dtype(x))


def logsumexp_ref(x, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """The graders' log(sum(exp(x))) along `axis`, in float64 and returned in the input's floating dtype,
    stable (the max taken out first); a row of all -inf gives -inf, not NaN."""
    dtype = _float_dtype(np.asarray(x))
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))
    return (out if keepdims else np.squeeze(out, axis=axis)).astype(dtype)


def call(what: str, fn, *args, hint: str = "", **kwargs):
    """fn(*args, **kwargs) with NumPy's floating-point warnings silenced. An exception a mistake raises
    (`ERRORS`) becomes a failure naming `what`, with `hint`; NotImplementedError (a stub) propagates."""
    try:
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)
    except ERRORS as e:
        fail(what, f"raised {type(e).__name__}: {e}", hint)


def run_fn(fn, *xs, what: str, hint: str = "", grad=None, tensors: bool = True, **kwargs):
    """fn(*inputs) for a function built from Tensor ops: the arrays `xs` become Tensors (that require grad
    when an upstream `grad` is given, which is then back-propagated from the output). Returns (output array,
    [each input's .grad] or None). With tensors=False the arrays are passed as they are, and no Tensor is
    required back. Errors become failures as in `call`."""
    ins = [Tensor(x, requires_grad=grad is not None) if tensors else x for x in xs]
    try:
        out = fn(*ins, **kwargs)
        if tensors and not isinstance(out, Tensor):
            fail(what, f"returned {type(out).__name__}, expected a Tensor",
                 "build the result from Tensor ops (matmul, sum, softmax, where, *, /), not from .data, "
                 "so that autograd can see it")
        if grad is not None:
            out.backward(grad)
    except ERRORS as e:
        fail(what, f"raised {type(e).__name__}: {e}", hint)
    grads = [t.grad for t in ins] if grad is not None else None
    return (out.data if tensors else np.asarray(out)), grads


def likely_mistake(got, mistakes: dict, otherwise: str = "") -> str:
    """The hint for what went wrong: the message of the first plausible wrong answer that `got`
    reproduces, else `otherwise`. `mistakes` maps a message ("the softmax runs over the queries") to the
    wrong answer's value, or to a function computing it (one that raises is skipped), so that a failure
    names the mistake it sees and only that one, instead of restating the recipe."""
    a = _value(got) if got is not None else None
    if a is None or a.dtype.kind not in "fcbiu":
        return otherwise
    for message, wrong in mistakes.items():
        try:
            with np.errstate(all="ignore"):
                w = np.asarray(wrong() if callable(wrong) else wrong)
        except ERRORS:
            continue
        if w.shape == a.shape and np.allclose(a.astype(np.float64), w.astype(np.float64), rtol=1e-6, atol=1e-9,
                                              equal_nan=True):
            return message
    return otherwise


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
    except ERRORS as e:
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
    except ERRORS as e:
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
