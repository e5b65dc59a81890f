"""Graded tests for lesson 01, an autograd engine on NumPy: exercises 1.1-1.6 in
`exercises/lesson01_autograd.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson01_autograd.py
    python -m minitorch_attn grade --lesson 01

Each test checks one exercise and uses the rest of the library only as scaffolding: ops are driven
through their own forward and backward (`run_op`), and gradients are summed to an input's shape by the
graders' reference, so a mistake in one exercise does not cost points in another.
"""

from __future__ import annotations

import operator
import sys
import time

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn.course.checks import assert_close, fail, gradcheck_op, randn, run_op, sum_to_shape

try:
    import torch
except ImportError:  # the NumPy transcription of torch's update below stands in
    torch = None


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson01_autograd")


# ---- 1.1 unbroadcast ----------------------------------------------------------------------------------
@pytest.mark.exercise("1.1", points=1)
def test_unbroadcast_sums_over_new_leading_axes(impl):
    cases = [((4, 2, 3), (2, 3)), ((5, 3), (3,)), ((2, 3, 4), (4,)), ((3,), ()), ((2, 2), ())]
    for k, (grad_shape, shape) in enumerate(cases):
        g = randn(*grad_shape, seed=k)
        lead = tuple(range(len(grad_shape) - len(shape)))
        expected = g.sum(axis=lead)
        got = impl.unbroadcast(g.copy(), shape)
        hint = ("sum over the leading axes broadcasting added: "
                "grad.sum(axis=tuple(range(grad.ndim - len(shape))))")
        if got is not None and np.shape(got) == expected.shape and np.allclose(got, g.mean(axis=lead)):
            hint = "sum, do not average: every copy of the input sent its own gradient, and they add up"
        assert_close(got, expected, f"unbroadcast(grad of shape {grad_shape}, {shape})", hint, rtol=1e-12)


@pytest.mark.exercise("1.1", points=1)
def test_unbroadcast_sums_over_size_one_axes_and_keeps_them(impl):
    cases = [((2, 3), (1, 3)), ((2, 3), (2, 1)), ((4, 2, 3), (2, 1)), ((2, 5, 3), (1, 5, 1)),
             ((3, 4), (3, 4)), ((1, 4), (1, 4))]
    for k, (grad_shape, shape) in enumerate(cases):
        g = randn(*grad_shape, seed=10 + k)
        expected = sum_to_shape(g, shape)
        got = impl.unbroadcast(g.copy(), shape)
        assert_close(got, expected, f"unbroadcast(grad of shape {grad_shape}, {shape})",
                     "where `shape` has a 1 and grad does not, sum that axis with keepdims=True: the result "
                     "must have exactly `shape` (e.g. (2, 1), not (2,)); a shape that already matches is "
                     "returned unchanged", rtol=1e-12)
    g32 = randn(4, 2, 3, seed=20, dtype=np.float32)
    assert_close(impl.unbroadcast(g32, (2, 1)), sum_to_shape(g32, (2, 1)),
                 "unbroadcast(float32 grad of shape (4, 2, 3), (2, 1))",
                 "keep the gradient's dtype (sum keeps it; do not build a float64 array)", rtol=1e-5,
                 check_dtype=True)


# ---- 1.2 Mul --------------------------------------------------------------------------------------------
MUL_SHAPES = [((2, 3), (2, 3)), ((2, 3), (3,)), ((4, 1, 3), (2, 1)), ((3,), ())]


@pytest.mark.exercise("1.2", points=0.5)
def test_mul_forward(impl):
    for k, (sa, sb) in enumerate(MUL_SHAPES):
        a, b = randn(*sa, seed=k), randn(*sb, seed=100 + k)
        out, _ = run_op(impl.Mul, a, b)
        assert_close(out, a * b, f"Mul.forward on shapes {sa} and {sb}",
                     "return the elementwise product a * b (NumPy broadcasts the shapes for you)")


@pytest.mark.exercise("1.2", points=0.5)
def test_mul_backward_with_broadcasting(impl):
    for k, (sa, sb) in enumerate(MUL_SHAPES):
        a, b = randn(*sa, seed=k), randn(*sb, seed=100 + k)
        g = randn(*np.broadcast_shapes(sa, sb), seed=200 + k)
        hint = ("d(a*b)/da = b and d(a*b)/db = a, times grad (the chain rule): return (grad * b, grad * a), "
                "with a and b saved in forward by ctx.save(a, b)")
        _, (ga, gb) = run_op(impl.Mul, a, b, grad=g, hint=hint)
        if ga is not None and ga.shape == sa and np.allclose(ga, sum_to_shape(g * a, sa)):
            hint = "the two gradients are swapped: a's gradient is grad * b, b's is grad * a"
        assert_close(ga, sum_to_shape(g * b, sa), f"Mul.backward on shapes {sa}, {sb}: gradient for a", hint)
        assert_close(gb, sum_to_shape(g * a, sb), f"Mul.backward on shapes {sa}, {sb}: gradient for b", hint)
    gradcheck_op(impl.Mul, [randn(2, 3, seed=7), randn(3, seed=8)], "Mul", "backward must be the derivative "
                 "of forward: d(a*b)/da = b")


# ---- 1.3 Tanh -------------------------------------------------------------------------------------------
@pytest.mark.exercise("1.3", points=0.5)
def test_tanh_forward_saturates_without_overflow(impl):
    x = np.array([-800.0, -50.0, -3.0, -0.5, 0.0, 0.5, 3.0, 50.0, 800.0])
    with np.errstate(all="ignore"):
        out, _ = run_op(impl.Tanh, x)
    assert_close(out, np.tanh(x), "Tanh.forward on [-800, ..., 800]",
                 "use np.tanh(a): (exp(a) - exp(-a)) / (exp(a) + exp(-a)) overflows to inf / inf = NaN "
                 "for |a| > 710")
    x32 = randn(2, 3, seed=1, dtype=np.float32)
    out, _ = run_op(impl.Tanh, x32)
    assert_close(out, np.tanh(x32), "Tanh.forward on float32", "keep the input's dtype", rtol=1e-6,
                 check_dtype=True)


@pytest.mark.exercise("1.3", points=0.5)
def test_tanh_backward(impl):
    x = np.concatenate([randn(6, seed=2), [-50.0, 50.0]])
    g = randn(8, seed=3)
    hint = "d tanh(a)/da = 1 - tanh(a)**2: save the output in forward and return grad * (1 - out * out)"
    _, (gx,) = run_op(impl.Tanh, x, grad=g, hint=hint)
    assert_close(gx, g * (1 - np.tanh(x) ** 2), "Tanh.backward", hint, atol=1e-12)
    gradcheck_op(impl.Tanh, [randn(2, 3, seed=4)], "Tanh", hint)


# ---- 1.4 MatMul -----------------------------------------------------------------------------------------
def _check_matmul(impl, sa, sb, seed):
    a, b = randn(*sa, seed=seed), randn(*sb, seed=seed + 1)
    expected = a @ b
    hint = ("dA = grad @ B^T and dB = A^T @ grad, transposing only the last two axes "
            "(np.swapaxes(x, -1, -2); x.T reverses every axis of a 3-D array)")
    out, _ = run_op(impl.MatMul, a, b, hint="return a @ b (np.matmul broadcasts the batch axes)")
    assert_close(out, expected, f"MatMul.forward on shapes {sa} @ {sb}",
                 "return a @ b (np.matmul broadcasts the batch axes)")
    g = randn(*expected.shape, seed=seed + 2)
    _, (ga, gb) = run_op(impl.MatMul, a, b, grad=g, hint=hint)
    assert_close(ga, sum_to_shape(g @ np.swapaxes(b, -1, -2), sa),
                 f"MatMul.backward on shapes {sa} @ {sb}: gradient for a", hint)
    assert_close(gb, sum_to_shape(np.swapaxes(a, -1, -2) @ g, sb),
                 f"MatMul.backward on shapes {sa} @ {sb}: gradient for b", hint)
    gradcheck_op(impl.MatMul, [a, b], f"MatMul on shapes {sa} @ {sb}", hint)


@pytest.mark.exercise("1.4", points=1)
def test_matmul_2d(impl):
    _check_matmul(impl, (3, 4), (4, 2), seed=0)


@pytest.mark.exercise("1.4", points=1)
def test_matmul_batched(impl):
    _check_matmul(impl, (2, 3, 4), (2, 4, 5), seed=10)


@pytest.mark.exercise("1.4", points=1)
def test_matmul_broadcast_batch_axes(impl):
    _check_matmul(impl, (2, 1, 3, 4), (5, 4, 2), seed=20)
    _check_matmul(impl, (3, 4), (2, 4, 5), seed=30)


# ---- 1.5 topological_order ------------------------------------------------------------------------------
def _graph_tensors(root) -> dict[int, object]:
    """Every tensor `root` depends on (the graders' own traversal), keyed by id."""
    seen, stack = {}, [root]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen[id(t)] = t
        if t._node is not None:
            stack.extend(t._node.parents)
    return seen


def _check_order(order, root, what):
    if not isinstance(order, list):
        fail(what, f"returned a {type(order).__name__}, expected a list of tensors")
    counts: dict[int, int] = {}
    for t in order:
        counts[id(t)] = counts.get(id(t), 0) + 1
    repeated = [n for n in counts.values() if n > 1]
    if repeated:
        fail(what, f"{len(repeated)} tensor(s) listed more than once (one of them {max(repeated)} times)",
             "remember which tensors you have visited (a set of id(t)) so a tensor used twice is listed once")
    expected = _graph_tensors(root)
    missing = [t for i, t in expected.items() if i not in counts]
    if missing:
        fail(what, f"{len(missing)} of the {len(expected)} tensors root depends on are missing "
             f"(shapes {[t.shape for t in missing[:3]]} ...)", "list every tensor reachable through "
             "t._node.parents, leaves and constants included")
    extra = [t for t in order if id(t) not in expected]
    if extra:
        fail(what, f"{len(extra)} tensor(s) listed that root does not depend on")
    if order[-1] is not root:
        fail(what, "root is not last", "a tensor is appended only after all of its parents, so root, which "
             "depends on everything, comes last")
    position = {id(t): i for i, t in enumerate(order)}
    for t in order:
        if t._node is not None:
            for p in t._node.parents:
                if position[id(p)] > position[id(t)]:
                    fail(what, f"a tensor of shape {t.shape} (made by {t._node.fn.__name__}) comes before "
                         f"its parent of shape {p.shape}", "append a tensor only once all its parents are "
                         "in the list: push it back as (t, True) before pushing its parents")


@pytest.mark.exercise("1.5", points=1)
def test_topological_order_lists_parents_first(impl):
    x = mta.tensor(randn(2, 3, seed=0), requires_grad=True)
    y = mta.tensor(randn(3, seed=1), requires_grad=True)
    u = x + y
    v = u.exp()
    w = u - x  # u and x are both used twice
    z = (v + w) + 1.0  # the 1.0 becomes a constant leaf
    root = z.sum()
    _check_order(impl.topological_order(root), root, "topological_order on a small graph")
    leaf = mta.tensor(1.0, requires_grad=True)
    order = impl.topological_order(leaf)
    if not isinstance(order, list) or len(order) != 1 or order[0] is not leaf:
        fail("topological_order(leaf)", f"expected [leaf], got {order!r}", "a tensor with no parents "
             "(t._node is None) is its own whole graph")


@pytest.mark.exercise("1.5", points=1)
def test_topological_order_deep_chain_and_shared_subgraphs(impl):
    x = mta.tensor(randn(3, seed=2), requires_grad=True)
    chain = [x]
    for _ in range(2000):
        chain.append(-chain[-1])
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)  # Python's default: a recursive depth-first search cannot go 2000 deep
    try:
        order = impl.topological_order(chain[-1])
    except RecursionError:
        fail("topological_order on a chain of 2000 ops", "hit Python's recursion limit",
             "iterate with an explicit stack instead of recursing")
    finally:
        sys.setrecursionlimit(limit)
    in_order = isinstance(order, list) and len(order) == len(chain) and all(map(operator.is_, order, chain))
    if not in_order:
        got = f"{len(order)} entries" if isinstance(order, list) else repr(order)
        fail("topological_order on a chain of 2000 ops",
             f"expected its {len(chain)} tensors from the leaf to the root (a chain's only order); got {got}")

    t = mta.tensor(randn(2, seed=3), requires_grad=True)
    for _ in range(16):
        t = t + t  # 2**16 paths from the root down to the leaf
    start = time.perf_counter()
    order = impl.topological_order(t)
    seconds = time.perf_counter() - start
    _check_order(order, t, "topological_order on a graph that reuses every tensor twice")
    if seconds > 2.0:
        fail("topological_order on a graph that reuses every tensor twice", f"took {seconds:.1f} s for 17 "
             "tensors", "skip tensors you have already visited instead of walking every path")


# ---- 1.6 SGD --------------------------------------------------------------------------------------------
def reference_sgd(initial, grads, lr, momentum=0.0, weight_decay=0.0, nesterov=False):
    """Parameters after len(grads) steps of torch.optim.SGD (dampening 0); grads[step][i] may be None."""
    if torch is not None:
        params = [torch.tensor(p, requires_grad=True) for p in initial]
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
        for step_grads in grads:
            for p, g in zip(params, step_grads):
                p.grad = None if g is None else torch.tensor(g)
            opt.step()
        return [p.detach().numpy() for p in params]
    # torch's documented update, for learners without torch installed
    params, bufs = [np.array(p) for p in initial], [None] * len(initial)
    for step_grads in grads:
        for i, g in enumerate(step_grads):
            if g is None:
                continue
            d = g + weight_decay * params[i] if weight_decay else g
            if momentum:
                bufs[i] = d.copy() if bufs[i] is None else momentum * bufs[i] + d
                d = d + momentum * bufs[i] if nesterov else bufs[i]
            params[i] = params[i] - lr * d
    return params


def _run_sgd(impl, initial, grads, **hyper):
    params = [mta.tensor(p.copy(), requires_grad=True) for p in initial]
    opt = impl.SGD(params, **hyper)
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = None if g is None else g.copy()
        opt.step()
    return params


def _sgd_case(seed, steps, dtype=np.float64):
    initial = [randn(3, 4, seed=seed, dtype=dtype), randn(5, seed=seed + 1, dtype=dtype),
               randn(2, seed=seed + 2, dtype=dtype)]
    grads = [[randn(3, 4, seed=seed + 10 * s + 3, dtype=dtype), randn(5, seed=seed + 10 * s + 4, dtype=dtype),
              None] for s in range(steps)]  # the third parameter never has a gradient
    return initial, grads


@pytest.mark.exercise("1.6", points=1)
def test_sgd_plain_and_weight_decay(impl):
    for hyper in ({"lr": 0.1}, {"lr": 0.05, "weight_decay": 0.01}):
        initial, grads = _sgd_case(0, steps=3)
        params = _run_sgd(impl, initial, grads, **hyper)
        expected = reference_sgd(initial, grads, **hyper)
        for i, (p, e) in enumerate(zip(params, expected)):
            assert_close(p.data, e, f"SGD({hyper}) after 3 steps: parameter {i}",
                         "p.data -= lr * (grad + weight_decay * p.data); skip parameters whose .grad is None",
                         rtol=1e-10)
    p = mta.tensor(randn(3, 4, seed=5, dtype=np.float32), requires_grad=True)
    g = randn(3, 4, seed=6, dtype=np.float32)
    before, expected = p.data, p.data - np.float32(0.1) * g
    opt = impl.SGD([p], lr=0.1)
    p.grad = g
    opt.step()
    assert_close(p.data, expected, "SGD(lr=0.1).step on a float32 parameter", "keep the parameter's dtype "
                 "(float32 stays float32)", check_dtype=True, rtol=1e-6)
    if p.data is not before:
        fail("SGD.step", "replaced p.data with a new array", "update in place (p.data -= lr * g), so every "
             "view of the parameter sees the step")


@pytest.mark.exercise("1.6", points=1)
def test_sgd_momentum_and_nesterov_match_torch(impl):
    for hyper in ({"lr": 0.1, "momentum": 0.9}, {"lr": 0.05, "momentum": 0.8, "weight_decay": 0.05},
                  {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}):
        initial, grads = _sgd_case(1, steps=4)
        params = _run_sgd(impl, initial, grads, **hyper)
        expected = reference_sgd(initial, grads, **hyper)
        for i, (p, e) in enumerate(zip(params, expected)):
            assert_close(p.data, e, f"SGD({hyper}) after 4 steps: parameter {i}",
                         "buf = g on the first step (a copy), then momentum * buf + g, kept per parameter "
                         "in self.state[i]['momentum_buffer']; step with buf (nesterov: g + momentum * buf)",
                         rtol=1e-10)
