"""Graded tests for lesson 07, modern Hopfield networks: exercises 7.1-7.4 in `exercises/lesson07_hopfield.py`
(or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson07_hopfield.py
    python -m minitorch_attn grade --lesson 07

References are computed here with NumPy (float64). Stored patterns are the ROWS of X. Each test checks one
exercise.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.autograd.tensor import Tensor
from minitorch_attn.course.checks import (
    assert_close,
    call,
    fail,
    likely_mistake,
    logsumexp_ref,
    numeric_vjp,
    randn,
    softmax_ref,
)


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson07_hopfield")


def ref_update(X, xi, beta, steps=1, tol=None):
    p = None
    for _ in range(steps):
        p = softmax_ref(beta * xi @ np.swapaxes(X, -1, -2))
        new = p @ X
        done = tol is not None and np.abs(new - xi).max() < tol
        xi = new
        if done:
            break
    return xi, p


def update_mistakes(X, xi, beta, steps):
    """Plausible wrong answers of hopfield_update, by the message naming each mistake."""
    Xt = np.swapaxes(X, -1, -2)
    wrong = {
        "the softmax runs over the N patterns (the last axis of xi @ Xᵀ), not over the states":
            lambda: softmax_ref(beta * xi @ Xt, axis=-2) @ X,
        "multiply the scores by beta BEFORE the softmax (beta sets how sharp the retrieval is)":
            lambda: softmax_ref(xi @ Xt) @ X,
    }
    if steps > 1:
        wrong["repeat the update `steps` times, feeding each new state into the next update"] = \
            lambda: ref_update(X, xi, beta, 1)[0]
    return wrong


# ---- 7.1 hopfield_update --------------------------------------------------------------------------------
@pytest.mark.exercise("7.1", points=2)
def test_update_matches_the_formula(impl):
    for (n, d, s), beta, steps in (((6, 4, 3), 1.0, 1), ((9, 5, 2), 0.3, 1), ((7, 3, 4), 2.0, 3)):
        X, xi = randn(n, d, seed=n), randn(s, d, seed=d)
        got = call(f"hopfield_update(X {X.shape}, xi {xi.shape}, beta={beta}, steps={steps})", impl.hopfield_update,
                   X, xi, beta, steps)
        hint = likely_mistake(got, update_mistakes(X, xi, beta, steps))
        assert_close(got, ref_update(X, xi, beta, steps)[0], f"hopfield_update(X {X.shape}, xi {xi.shape}, "
                     f"beta={beta}, steps={steps})", hint, rtol=1e-9, atol=1e-12)
    X, xi = randn(2, 5, 3, seed=1), randn(2, 4, 3, seed=2)  # batched patterns and states
    got = call("hopfield_update(X (2, 5, 3), xi (2, 4, 3))", impl.hopfield_update, X, xi, 0.5)
    assert_close(got, ref_update(X, xi, 0.5)[0], "hopfield_update with batched X (2, 5, 3) and xi (2, 4, 3)",
                 "transpose only the last two axes of X (X.transpose(-2, -1)), so batches stay apart",
                 rtol=1e-9, atol=1e-12)
    got, p = call("hopfield_update(..., return_weights=True)", impl.hopfield_update, X[0], xi[0, 0], 0.5,
                  return_weights=True)
    assert_close(p, ref_update(X[0], xi[0, :1], 0.5)[1][0], "hopfield_update(X, one state, return_weights=True): "
                 "the weights p", "keep the softmax of the last update in `p`", rtol=1e-9, atol=1e-12)


@pytest.mark.exercise("7.1", points=1)
def test_update_tolerance_and_gradients(impl):
    X = np.where(randn(12, 16, seed=4) > 0, 1.0, -1.0)
    xi = X[:3] * np.where(randn(3, 16, seed=5) > 1.2, -1.0, 1.0)
    got = call("hopfield_update(X, xi, 1.0, steps=50, tol=1e-10)", impl.hopfield_update, X, xi, 1.0, 50, 1e-10)
    ref, _ = ref_update(X, xi, 1.0, 50, 1e-10)
    assert_close(got, ref, "hopfield_update(X, xi, beta=1, steps=50, tol=1e-10)",
                 "with tol, stop once the largest change |new - xi| of an update is below tol", rtol=1e-9,
                 atol=1e-12)
    Xt, xt = Tensor(randn(5, 3, seed=6), requires_grad=True), Tensor(randn(2, 3, seed=7), requires_grad=True)
    out = call("hopfield_update on Tensors", impl.hopfield_update, Xt, xt, 0.8, 2)
    if not isinstance(out, Tensor) or out._node is None:
        fail("hopfield_update on Tensors", "the result records no graph",
             "use ops.matmul and F.softmax on the Tensors (not NumPy on .data) so gradients flow")
    g = randn(2, 3, seed=8)
    out.backward(g)
    num = numeric_vjp(lambda a, b: ref_update(a, b, 0.8, 2)[0], [Xt.data, xt.data], g)
    assert_close(Xt.grad, num[0], "hopfield_update: gradient with respect to X", "differentiable ops only",
                 rtol=1e-5, atol=1e-7)
    assert_close(xt.grad, num[1], "hopfield_update: gradient with respect to xi", "differentiable ops only",
                 rtol=1e-5, atol=1e-7)


# ---- 7.2 hopfield_energy --------------------------------------------------------------------------------
def ref_energy(X, xi, beta):
    s = beta * xi @ np.swapaxes(X, -1, -2)
    lse = logsumexp_ref(s) / beta
    M2 = (X * X).sum(-1).max(-1)[..., None]
    return -lse + 0.5 * (xi * xi).sum(-1) + np.log(X.shape[-2]) / beta + 0.5 * M2


def energy_mistakes(X, xi, beta):
    """Plausible wrong answers of hopfield_energy, by the message naming each mistake."""
    expected = ref_energy(X, xi, beta)
    lse = logsumexp_ref(beta * xi @ np.swapaxes(X, -1, -2))
    M2 = (X * X).sum(-1).max(-1)[..., None]
    return {
        "the paper's lse includes 1/beta: lse(beta, z) = log(sum exp(beta z)) / beta": expected + lse * (1 - 1 / beta),
        "M is the largest NORM of a stored pattern, and the term is M^2 / 2": expected - 0.5 * M2 + 0.5 * np.sqrt(M2),
        "the energy has the constant log(N) / beta (N stored patterns)": expected - np.log(X.shape[-2]) / beta,
        "the quadratic term is xi . xi / 2 (half the squared norm of the state)": expected + 0.5 * (xi * xi).sum(-1),
    }


@pytest.mark.exercise("7.2", points=1)
def test_energy_matches_the_formula(impl):
    for (n, d, s), beta in (((6, 4, 3), 1.0), ((9, 5, 2), 0.25), ((3, 7, 1), 4.0)):
        X, xi = randn(n, d, seed=n) * 1.5, randn(s, d, seed=d)
        got = call(f"hopfield_energy(X {X.shape}, xi {xi.shape}, beta={beta})", impl.hopfield_energy, X, xi, beta)
        expected = ref_energy(X, xi, beta)
        hint = likely_mistake(got, energy_mistakes(X, xi, beta))
        assert_close(got, expected, f"hopfield_energy(X {X.shape}, xi {xi.shape}, beta={beta})", hint,
                     rtol=1e-9, atol=1e-10)


@pytest.mark.exercise("7.2", points=1)
def test_energy_is_stable_batched_and_decreases(impl):
    X, xi = randn(2, 5, 3, seed=1) * 30, randn(2, 4, 3, seed=2) * 30  # beta * scores ~ 1e3: exp overflows
    got = call("hopfield_energy(large patterns)", impl.hopfield_energy, X, xi, 2.0)
    assert_close(got, ref_energy(X, xi, 2.0), "hopfield_energy with scores around 1e3 (batched X (2, 5, 3))",
                 "exp(1000) overflows: use F.logsumexp (it subtracts the max), and transpose only the last two "
                 "axes of X", rtol=1e-9, atol=1e-8)
    X, xi = randn(8, 4, seed=3), randn(4, seed=4) * 3
    E0 = call("hopfield_energy(X, xi (4,))", impl.hopfield_energy, X, xi, 1.0)
    assert_close(E0, ref_energy(X, xi[None], 1.0)[0], "hopfield_energy with a single state xi of shape (4,)",
                 "a (d,) state gives a scalar", rtol=1e-9, atol=1e-10)


# ---- 7.3 ClassicalHopfield ------------------------------------------------------------------------------
def pm1(*shape, seed=0):
    return np.where(randn(*shape, seed=seed) > 0, 1.0, -1.0)


@pytest.mark.exercise("7.3", points=1)
def test_classical_hebbian_weights(impl):
    X = pm1(5, 12, seed=1)
    net = call("ClassicalHopfield(X (5, 12))", impl.ClassicalHopfield, X)
    expected = X.T @ X / 12
    np.fill_diagonal(expected, 0)
    hint = "W = X^T X / d (d = 12, the pattern size), then zero the diagonal"
    if net is not None and np.allclose(np.diag(getattr(net, "W", np.zeros((12, 12)))), 5 / 12):
        hint = "zero the diagonal: np.fill_diagonal(W, 0.0) (a unit must not drive itself)"
    assert_close(getattr(net, "W", None), expected, "ClassicalHopfield(X (5, 12)).W", hint, rtol=1e-12, atol=1e-12)


@pytest.mark.exercise("7.3", points=1)
def test_classical_sign_update(impl):
    X = pm1(3, 40, seed=2)
    net = call("ClassicalHopfield(X (3, 40))", impl.ClassicalHopfield, X)
    W = X.T @ X / 40
    np.fill_diagonal(W, 0)
    xi = pm1(4, 40, seed=3)
    xi[0, :] = X[0]
    xi[0, :6] *= -1  # a noisy copy of pattern 0
    expected = xi.copy()
    for _ in range(2):
        h = expected @ W
        expected = np.where(h > 0, 1.0, np.where(h < 0, -1.0, expected))
    got = call("ClassicalHopfield.update(xi (4, 40), steps=2)", net.update, xi, steps=2)
    assert_close(got, expected, "ClassicalHopfield.update(xi (4, 40), steps=2)",
                 "synchronous update: xi <- sign(xi @ W) for all units at once, `steps` times", rtol=0, atol=0)
    assert_close(got[0], X[0], "ClassicalHopfield.update: a copy of a stored pattern with 6 of 40 bits flipped",
                 "three patterns in 40 units is well under capacity: one update must restore it", rtol=0, atol=0)
    two = pm1(2, 40, seed=4)  # with two patterns, W_ij = (a_i a_j + b_i b_j) / 40 is exactly 0 where they cancel
    net2 = call("ClassicalHopfield(X (2, 40))", impl.ClassicalHopfield, two)
    W2 = two.T @ two / 40
    np.fill_diagonal(W2, 0)
    zero = np.zeros((1, 40))
    zero[0, 0] = 1.0
    h = zero @ W2
    assert (h == 0).sum() > 5
    ties = call("ClassicalHopfield.update", net2.update, zero)
    assert_close(ties, np.where(h > 0, 1.0, np.where(h < 0, -1.0, zero)), "ClassicalHopfield.update where W xi "
                 "is exactly 0", "keep the unit's old value where the field h is exactly 0 (np.sign would give 0)",
                 rtol=0, atol=0)


# ---- 7.4 effective_patterns -----------------------------------------------------------------------------
@pytest.mark.exercise("7.4", points=1)
def test_effective_patterns(impl):
    hint = "1 / sum_i p_i^2 along the axis: k for a uniform distribution over k patterns, 1 for a one-hot"
    p = np.array([[0.25, 0.25, 0.25, 0.25], [1.0, 0, 0, 0], [0.5, 0.3, 0.2, 0.0]])
    got = call("effective_patterns(p (3, 4))", impl.effective_patterns, p, hint=hint)
    assert_close(got, 1 / (p * p).sum(-1), "effective_patterns(p (3, 4))", hint, rtol=1e-12)
    got = call("effective_patterns(p.T, axis=0)", impl.effective_patterns, p.T, axis=0, hint=hint)
    assert_close(got, 1 / (p * p).sum(-1), "effective_patterns(p.T, axis=0)", "sum along `axis`", rtol=1e-12)
    t = Tensor(p[2:], requires_grad=True)
    out = call("effective_patterns(Tensor)", impl.effective_patterns, t, hint=hint)
    if not isinstance(out, Tensor):
        fail("effective_patterns(Tensor)", f"returned {type(out).__name__}", "use * and .sum, which Tensors have too")
    out.backward(np.ones(out.shape))
    q = p[2]
    assert_close(t.grad[0], -2 * q / (q @ q) ** 2, "effective_patterns: gradient", hint, rtol=1e-9)
