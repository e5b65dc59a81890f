"""Graded tests for lesson 14, attention without softmax: exercises 14.1-14.3 in
`exercises/lesson14_linear_attention.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson14_linear_attention.py
    python -m minitorch_attn grade --lesson 14

The oracles are written here in float64 NumPy through the N×N matrix (the quadratic form), and the gradients
are checked against central differences of the learner's own forward. The exercises take the features
fq = φ(q), fk = φ(k) directly, so a mistake in the feature map cannot cost points here. Shapes are awkward
on purpose: Nq != Nk, N = 1, no batch axes, d != dv.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.autograd.tensor import Tensor
from minitorch_attn.course.checks import assert_close, fail, numeric_vjp, run_fn


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson14_linear_attention")


def arrays(*shapes, seed=0, positive=()):
    """Random float64 arrays; those whose index is in `positive` are made > 0 (feature maps are positive)."""
    rng = np.random.default_rng(seed)
    out = [rng.standard_normal(s) for s in shapes]
    return [np.exp(0.5 * a) if i in positive else a for i, a in enumerate(out)]


def ref_linear(fq, fk, v, eps=1e-6, causal=False):
    a = fq @ np.swapaxes(fk, -1, -2)
    if causal:
        a = a * np.tril(np.ones(a.shape[-2:]))
    return (a @ v) / (a.sum(-1, keepdims=True) + eps)


def ref_ln(x, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps)


def check_grad(fn, xs, what, hint, **kwargs):
    probe = fn(*(Tensor(x) for x in xs), **kwargs)
    upstream = np.random.default_rng(99).standard_normal(probe.shape)
    _, grads = run_fn(fn, *xs, what=what, hint=hint, grad=upstream, **kwargs)
    numeric = numeric_vjp(lambda *a: fn(*(Tensor(x) for x in a), **kwargs).data, list(xs), upstream)
    for name, g, n in zip(("first input", "second input", "third input"), grads, numeric):
        if g is None:
            fail(what, f"no gradient reached the {name}", "use only Tensor ops (no .data, no np.* on Tensors)")
        assert_close(g, n, f"{what}: gradient of the {name}", hint, rtol=1e-5, atol=1e-7)


# ---- 14.1 linear_attention_regrouped ---------------------------------------------------------------------
@pytest.mark.exercise("14.1", points=1)
def test_regrouped_equals_the_quadratic_form(impl):
    hint = ("out = fq (fkᵀ v) / (fq · Σ_j fk_j + eps): kv = fkᵀ v is d×dv, z = fk summed over the keys "
            "(axis -2), the denominator is one number per query row (keepdims=True so it broadcasts)")
    for shapes, seed in ((((2, 3, 4, 5), (2, 3, 9, 5), (2, 3, 9, 3)), 0),  # Nq != Nk, d != dv
                         (((7, 4), (7, 4), (7, 6)), 1),  # no batch axes
                         (((1, 1, 1, 2), (1, 1, 1, 2), (1, 1, 1, 3)), 2)):  # N = 1
        fq, fk, v = arrays(*shapes, seed=seed, positive=(0, 1))
        out, _ = run_fn(impl.linear_attention_regrouped, fq, fk, v, what="linear_attention_regrouped", hint=hint)
        assert_close(out, ref_linear(fq, fk, v), f"linear_attention_regrouped with fq {fq.shape}, fk {fk.shape}, "
                     f"v {v.shape}", hint, rtol=1e-10, atol=1e-12)


@pytest.mark.exercise("14.1", points=1)
def test_regrouped_normaliser_and_eps(impl):
    fq, fk, v = arrays((2, 5, 4), (2, 6, 4), (2, 6, 3), seed=3, positive=(0, 1))
    out, _ = run_fn(impl.linear_attention_regrouped, fq, fk, v, what="linear_attention_regrouped", eps=0.0)
    a = fq @ np.swapaxes(fk, -1, -2)
    if np.allclose(out, a @ v, rtol=1e-8) or np.allclose(out, (fq @ (np.swapaxes(fk, -1, -2) @ v)), rtol=1e-8):
        fail("linear_attention_regrouped", "the output is not normalised",
             "divide by fq · Σ_j fk_j (one number per query): the weights of row i must sum to 1")
    ones = np.ones_like(v[..., :1])
    w, _ = run_fn(impl.linear_attention_regrouped, fq, fk, ones, what="linear_attention_regrouped", eps=0.0)
    assert_close(w, np.ones_like(w), "linear_attention_regrouped with v = 1 and eps = 0 (expected all ones: the "
                 "weights of each query sum to 1)", "the denominator of row i is Σ_j fq_i · fk_j", rtol=1e-12)
    zero_keys = np.zeros_like(fk)
    out, _ = run_fn(impl.linear_attention_regrouped, fq, zero_keys, v, what="linear_attention_regrouped")
    assert_close(out, np.zeros_like(out), "linear_attention_regrouped with fk = 0 (every feature underflowed; "
                 "expected 0, not NaN)", "add eps to the denominator: 0 / (0 + eps) = 0")


@pytest.mark.exercise("14.1", points=1)
def test_regrouped_gradients(impl):
    xs = arrays((2, 4, 3), (2, 5, 3), (2, 5, 2), seed=4, positive=(0, 1))
    check_grad(impl.linear_attention_regrouped, xs, "linear_attention_regrouped backward (float64 finite "
               "differences)", "use Tensor ops only: matmul, .transpose(-2, -1), .sum(axis, keepdims=True), *, /")


# ---- 14.2 causal_linear_attention_prefix -----------------------------------------------------------------
@pytest.mark.exercise("14.2", points=1)
def test_prefix_equals_the_masked_quadratic_form(impl):
    hint = ("S_i = cumsum over the sequence of the outer products fk_j v_jᵀ (shape (..., N, d, dv)), z_i = "
            "cumsum(fk); out_i = fq_iᵀ S_i / (fq_i · z_i + eps)")
    for shapes, seed in ((((2, 3, 7, 5), (2, 3, 7, 5), (2, 3, 7, 3)), 0),
                         (((6, 4), (6, 4), (6, 2)), 1),
                         (((1, 1, 2), (1, 1, 2), (1, 1, 3)), 2)):
        fq, fk, v = arrays(*shapes, seed=seed, positive=(0, 1))
        out, _ = run_fn(impl.causal_linear_attention_prefix, fq, fk, v, what="causal_linear_attention_prefix",
                        hint=hint)
        expected = ref_linear(fq, fk, v, causal=True)
        if fq.shape[-2] > 1 and out.shape == expected.shape and np.allclose(out, ref_linear(fq, fk, v), rtol=1e-8):
            fail("causal_linear_attention_prefix", "the output equals NON-causal linear attention",
                 "row i must only see keys j <= i: use running sums (cumsum along the sequence axis), not totals")
        assert_close(out, expected, f"causal_linear_attention_prefix with fq {fq.shape}, v {v.shape}", hint,
                     rtol=1e-10, atol=1e-12)


@pytest.mark.exercise("14.2", points=1)
def test_prefix_is_causal(impl):
    fq, fk, v = arrays((2, 8, 4), (2, 8, 4), (2, 8, 3), seed=5, positive=(0, 1))
    out, _ = run_fn(impl.causal_linear_attention_prefix, fq, fk, v, what="causal_linear_attention_prefix")
    fk2, v2 = fk.copy(), v.copy()
    fk2[:, 5:] *= 7.0
    v2[:, 5:] += 3.0
    out2, _ = run_fn(impl.causal_linear_attention_prefix, fq, fk2, v2, what="causal_linear_attention_prefix")
    assert_close(out2[:, :5], out[:, :5], "causal_linear_attention_prefix: rows 0-4 after changing keys/values "
                 "5-7 (the future) must not change", "cumsum along axis -3 for the states and -2 for z: the "
                 "sequence axis, not the feature axes", rtol=1e-12)
    assert_close(out[:, 0], v[:, 0] * 1.0, "causal_linear_attention_prefix: row 0 sees only key 0, so it is "
                 "v_0 (up to eps)", "the first state is fk_0 v_0ᵀ alone", rtol=1e-5)


@pytest.mark.exercise("14.2", points=1)
def test_prefix_gradients(impl):
    xs = arrays((2, 5, 3), (2, 5, 3), (2, 5, 2), seed=6, positive=(0, 1))
    check_grad(impl.causal_linear_attention_prefix, xs, "causal_linear_attention_prefix backward (float64 "
               "finite differences)", "use the library's differentiable `cumsum` and Tensor ops (reshape, "
               "matmul, *, /, sum) so autograd can follow")


# ---- 14.3 galerkin_attention ---------------------------------------------------------------------------
@pytest.mark.exercise("14.3", points=1)
def test_galerkin_forward_both_orders(impl):
    hint = ("z = Q (LN(K)ᵀ LN(V)) / N with LN = F.layer_norm over the last axis (no weights, eps=1e-5) on K "
            "and V only, and N = the number of keys")
    q, k, v = arrays((2, 3, 6, 4), (2, 3, 9, 4), (2, 3, 9, 5), seed=7)
    expected = q @ (np.swapaxes(ref_ln(k), -1, -2) @ ref_ln(v)) / 9
    for order in ("kv", "qk"):
        out, _ = run_fn(impl.galerkin_attention, q, k, v, what=f"galerkin_attention(order={order!r})", hint=hint,
                        order=order)
        if out.shape == expected.shape:
            if np.allclose(out, ref_ln(q) @ (np.swapaxes(ref_ln(k), -1, -2) @ v) / 9, rtol=1e-8):
                fail("galerkin_attention", "you normalised Q and K (that is Fourier attention)",
                     "Galerkin normalises K and V; Q is used as it is")
            if np.allclose(out, expected * 9, rtol=1e-8):
                fail("galerkin_attention", "the output is N times too large", "divide by N, the number of keys")
            if np.allclose(out, expected * 9 / 6, rtol=1e-8):
                fail("galerkin_attention", "divided by the number of queries",
                     "N is the number of keys (k.shape[-2]): the sum runs over the keys")
        assert_close(out, expected, f"galerkin_attention(order={order!r}) with q {q.shape}, k {k.shape}, "
                     f"v {v.shape}", hint, rtol=1e-10, atol=1e-12)
    q1, k1, v1 = arrays((1, 3), (1, 3), (1, 2), seed=8)  # N = 1
    out, _ = run_fn(impl.galerkin_attention, q1, k1, v1, what="galerkin_attention with N = 1", hint=hint)
    assert_close(out, q1 @ (ref_ln(k1).T @ ref_ln(v1)), "galerkin_attention with one key", hint, rtol=1e-10)


@pytest.mark.exercise("14.3", points=1)
def test_galerkin_gradients(impl):
    xs = arrays((2, 4, 3), (2, 6, 3), (2, 6, 4), seed=9)
    for order in ("kv", "qk"):
        check_grad(impl.galerkin_attention, xs, f"galerkin_attention(order={order!r}) backward (float64 finite "
                   "differences)", "F.layer_norm and matmul are differentiable: build z from them only",
                   order=order)
