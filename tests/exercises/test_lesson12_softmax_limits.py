"""Graded tests for lesson 12, softmax is not enough: exercises 12.1-12.3 in
`exercises/lesson12_softmax_limits.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson12_softmax_limits.py
    python -m minitorch_attn grade --lesson 12

References are written here in float64 NumPy: the bound straight from its definition, the entropy with
0 log 0 = 0, and the paper's adaptive-temperature listing. While the `adaptive_temperature` tests run, the
lesson module's `entropy` is the graders' reference, so a mistake in Exercise 12.2 does not cost points in 12.3.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.course.checks import assert_close, fail, softmax_ref

INF = np.inf
COEFFS = [-0.037, 0.481, -2.3, 4.917, -1.791]  # the paper's fit, highest degree first


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson12_softmax_limits")


def ref_entropy(p, axis=-1):
    p = np.asarray(p, dtype=np.float64)
    return -(p * np.log(np.where(p > 0, p, 1.0))).sum(axis=axis)


def ref_adaptive(z, axis=-1):
    h = ref_entropy(softmax_ref(z, axis), axis)
    beta = np.where(h > 0.5, np.maximum(np.polyval(COEFFS, h), 1.0), 1.0)
    with np.errstate(invalid="ignore"):
        return softmax_ref(np.asarray(z, np.float64) * np.expand_dims(beta, axis), axis), beta


# ---- 12.1 max_weight_bound ------------------------------------------------------------------------------
@pytest.mark.exercise("12.1", points=1)
def test_bound_values_and_tightness(impl):
    delta = np.array([0.0, 0.5, 2.0, 7.5, 30.0])
    n = np.array([[1], [2], [16], [1000]])
    expected = np.exp(delta) / (np.exp(delta) + n - 1)
    hint = "the bound is e^Δ / (e^Δ + n - 1) = 1 / (1 + (n - 1) e^-Δ), broadcast over delta and n"
    assert_close(impl.max_weight_bound(delta, n), expected, "max_weight_bound(delta of shape (5,), n of shape (4, 1))",
                 hint, rtol=1e-12)
    for d, k in [(2.0, 16), (7.5, 1000)]:
        z = np.zeros(k)
        z[3] = d  # one logit at the top, every other at the bottom: the bound is reached exactly
        assert_close(impl.max_weight_bound(d, k), softmax_ref(z).max(),
                     f"max_weight_bound({d}, {k}) vs the max weight of a row with one logit {d} above {k - 1} zeros",
                     "that row attains the bound: e^Δ / (e^Δ + n - 1)", rtol=1e-12)
    assert_close(impl.max_weight_bound(0.0, 8), 1 / 8, "max_weight_bound(0, 8): all logits equal",
                 "with Δ = 0 every weight is 1/n", rtol=1e-12)


@pytest.mark.exercise("12.1", points=1)
def test_bound_is_stable_and_holds_on_random_rows(impl):
    for d, k in [(1e4, 10**6), (INF, 5), (3.0, 1)]:
        with np.errstate(all="ignore"):
            got = impl.max_weight_bound(d, k)
        assert_close(got, 1.0, f"max_weight_bound({d}, {k})",
                     "exp(1e4) overflows to inf and inf / inf is NaN: compute 1 / (1 + (n - 1) * exp(-Δ)); "
                     "n = 1 gives 1 for any Δ", rtol=1e-12)
    rng = np.random.default_rng(0)
    for _ in range(300):
        k = int(rng.integers(1, 200))
        z = rng.uniform(0, rng.uniform(0, 25), k)
        bound = impl.max_weight_bound(z.max() - z.min(), k)
        if not softmax_ref(z).max() <= bound * (1 + 1e-12):
            fail("max_weight_bound", f"a row of {k} logits with spread {z.max() - z.min():.4g} has max weight "
                 f"{softmax_ref(z).max():.6g}, above your bound {float(bound):.6g}",
                 "the bound is e^Δ / (e^Δ + n - 1) with Δ = max - min; check the sign of the exponent")


# ---- 12.2 entropy ---------------------------------------------------------------------------------------
@pytest.mark.exercise("12.2", points=1)
def test_entropy_values_uniform_one_hot_and_axis(impl):
    rng = np.random.default_rng(1)
    p = softmax_ref(rng.standard_normal((3, 4, 9)) * 2)
    hint = "H = -sum(p * log p) along `axis` (natural log: nats)"
    assert_close(impl.entropy(p), ref_entropy(p), "entropy of softmax rows, shape (3, 4, 9), axis=-1", hint,
                 rtol=1e-12)
    q = np.moveaxis(p, -1, 0)
    assert_close(impl.entropy(q, axis=0), ref_entropy(p), "entropy along axis=0 (rows stored down the columns)",
                 "reduce along `axis`", rtol=1e-12)
    assert_close(impl.entropy(np.full(64, 1 / 64)), np.log(64), "entropy of the uniform row over 64 items",
                 "a uniform row over n items has H = log n", rtol=1e-12)
    assert_close(impl.entropy(np.array([1.0])), 0.0, "entropy of a single item", "one certain item: H = 0")


@pytest.mark.exercise("12.2", points=1)
def test_entropy_zero_weights_give_no_nan(impl):
    p = np.array([[0.0, 1.0, 0.0, 0.0], [0.25, 0.0, 0.75, 0.0], [0.5, 0.5, 0.0, 0.0]])
    with np.errstate(all="ignore"):
        got = impl.entropy(p)
    hint = ("0 * log 0 is 0 * -inf = NaN in floating point; the convention is 0 log 0 = 0: take the log of "
            "np.where(p > 0, p, 1.0) (or mask the product)")
    assert_close(got, ref_entropy(p), "entropy of rows with zero weights (masked items)", hint, rtol=1e-12)
    p32 = softmax_ref(np.random.default_rng(2).standard_normal((2, 30))).astype(np.float32)
    got = impl.entropy(p32)
    assert_close(got, ref_entropy(p32).astype(np.float32), "entropy of a float32 array", "keep p's dtype",
                 rtol=1e-5, check_dtype=True)


# ---- 12.3 adaptive_temperature --------------------------------------------------------------------------
@pytest.fixture
def adaptive(impl, monkeypatch):
    """The target's adaptive_temperature, with the reference entropy (if it calls entropy)."""
    monkeypatch.setattr(impl, "entropy", ref_entropy)
    return impl.adaptive_temperature


def _call(fn, z, **kw):
    out = fn(z, **kw)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail("adaptive_temperature", f"returned {type(out).__name__}, expected the pair (probs, beta)")
    return out


@pytest.mark.exercise("12.3", points=1)
def test_adaptive_matches_the_paper(adaptive):
    rng = np.random.default_rng(3)
    z = rng.standard_normal((48, 40)) * np.linspace(0.2, 8, 48)[:, None]  # entropies from ~log 40 down to ~0
    probs, beta = _call(adaptive, z)
    ep, eb = ref_adaptive(z)
    hint = ("H = entropy(softmax(z)); beta = max(np.polyval(POLY_COEFFS, H), 1) if H > 0.5 else 1 "
            "(np.polyval takes the highest degree first); probs = softmax(beta * z)")
    assert_close(beta, eb, "adaptive_temperature(z of shape (48, 40)): beta, one per row", hint, rtol=1e-10)
    assert_close(probs, ep, "adaptive_temperature(z of shape (48, 40)): probs", hint +
                 " -- beta multiplies the logits (it is 1 / temperature), it does not divide them",
                 rtol=1e-9, atol=1e-300)


@pytest.mark.exercise("12.3", points=1)
def test_adaptive_leaves_sharp_rows_alone(adaptive):
    z = np.array([[6.0, 0.0, 0.0, 0.0], [0.0, 9.0, 1.0, -INF], [1e4, 1e4 - 3.0, 0.0, -1e4]])
    assert (ref_entropy(softmax_ref(z)) <= 0.5).all()
    probs, beta = _call(adaptive, z)
    hint = ("rows with entropy H <= 0.5 nats are already sharp: beta = 1 there (the polynomial is below 1 near "
            "H = 0.5 anyway, and beta must never be below 1); subtract the max inside softmax for 1e4 logits")
    assert_close(beta, np.ones(3), "adaptive_temperature on rows with H <= 0.5: beta", hint)
    assert_close(probs, softmax_ref(z), "adaptive_temperature on rows with H <= 0.5: probs (unchanged)", hint,
                 rtol=1e-12, atol=1e-300)


@pytest.mark.exercise("12.3", points=1)
def test_adaptive_is_clamped_to_one_past_the_cutoff(adaptive):
    z = np.random.default_rng(4).standard_normal((6, 2048)) * 0.3  # near uniform: H close to log 2048 = 7.6
    probs, beta = _call(adaptive, z)
    hint = ("past H = 5.94 nats the polynomial is below 1 (negative further out): clamp with max(poly, 1), so "
            "beta = 1 and the softmax is unchanged; a beta below 1 would *raise* the entropy")
    assert_close(beta, np.ones(6), "adaptive_temperature on near-uniform rows of 2048 items: beta", hint)
    assert_close(probs, softmax_ref(z), "adaptive_temperature on near-uniform rows of 2048 items: probs", hint,
                 rtol=1e-12)
    mid = np.random.default_rng(5).standard_normal((4, 64)) * 2.0  # H about 3: poly well above 1
    _, beta = _call(adaptive, mid)
    _, eb = ref_adaptive(mid)
    assert_close(beta, eb, "adaptive_temperature on rows with H around 3: beta", hint, rtol=1e-10)


@pytest.mark.exercise("12.3", points=1)
def test_adaptive_masked_axis_and_dtype(adaptive):
    z = np.array([[0.3, -INF, 0.1, 0.2, -INF, 0.0], [2.0, -INF, -INF, 1.0, 0.5, 1.5]])
    probs, beta = _call(adaptive, z)
    ep, eb = ref_adaptive(z)
    hint = ("a masked logit (-inf) must keep weight 0 and add nothing to the entropy: beta * -inf is -inf for "
            "beta >= 1, and exp(-inf) = 0")
    assert_close(probs, ep, "adaptive_temperature with masked (-inf) logits: probs", hint, rtol=1e-10)
    assert_close(beta, eb, "adaptive_temperature with masked (-inf) logits: beta", hint, rtol=1e-10)
    zt = np.random.default_rng(6).standard_normal((30, 3)) * 1.5
    probs, beta = _call(adaptive, zt, axis=0)
    ep, eb = ref_adaptive(zt, axis=0)
    hint = "reduce along `axis` and put beta back with np.expand_dims(beta, axis) so it scales whole rows"
    assert_close(beta, eb, "adaptive_temperature(z of shape (30, 3), axis=0): beta, one per column", hint,
                 rtol=1e-10)
    assert_close(probs, ep, "adaptive_temperature(z of shape (30, 3), axis=0): probs", hint, rtol=1e-10)
    z32 = np.random.default_rng(7).standard_normal((3, 50)).astype(np.float32) * 2
    probs, beta = _call(adaptive, z32)
    ep, eb = ref_adaptive(z32)
    hint = "keep the logits' dtype: cast beta with .astype(z.dtype) before scaling"
    assert_close(probs, ep.astype(np.float32), "adaptive_temperature on float32 logits: probs", hint, rtol=1e-4,
                 atol=1e-7, check_dtype=True)
    assert_close(beta, eb.astype(np.float32), "adaptive_temperature on float32 logits: beta", hint, rtol=1e-5,
                 check_dtype=True)
