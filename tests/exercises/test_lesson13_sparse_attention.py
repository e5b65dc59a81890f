"""Graded tests for lesson 13, sparse attention: exercises 13.1-13.3 in `exercises/lesson13_sparse_attention.py`
(or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson13_sparse_attention.py
    python -m minitorch_attn grade --lesson 13

The references are computed here in float64 with NumPy, one row at a time, by a long bisection on τ (so
they share no code with the exercises); each test checks one exercise.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.course.checks import assert_close, fail, gradcheck_op, likely_mistake, randn, run_op, softmax_ref

INF = np.inf


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson13_sparse_attention")


def ref_entmax_row(z, alpha):
    """α-entmax of one row by 200 bisection steps on τ; NaN for a row of all -inf."""
    z = np.asarray(z, dtype=np.float64)
    if not np.isfinite(z).any():
        return np.full(z.shape, np.nan)
    az = (alpha - 1) * (z - z[np.isfinite(z)].max())
    lo, hi = -1.0, 0.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if (np.maximum(az - mid, 0) ** (1 / (alpha - 1))).sum() >= 1:
            lo = mid
        else:
            hi = mid
    p = np.maximum(az - lo, 0) ** (1 / (alpha - 1))
    return p / p.sum()


def ref_entmax(x, alpha, axis=-1):
    return np.apply_along_axis(ref_entmax_row, axis, np.asarray(x, dtype=np.float64), alpha)


def ref_backward(p, g, alpha, axis=-1):
    on = np.nan_to_num(p) > 0
    s = np.where(on, np.nan_to_num(p) ** (2 - alpha), 0)
    total = s.sum(axis=axis, keepdims=True)
    return s * (g - (s * g).sum(axis=axis, keepdims=True) / np.where(total > 0, total, 1))


EDGES = np.array([[1e4, 1e4 - 0.5, -1e4, 0.0, 1e4 - 3.0],   # huge scores
                  [0.5, -INF, 1.5, -INF, 0.9],               # -inf entries: masked keys
                  [1.0, 1.0, 1.0, 0.0, 0.0],                 # ties
                  [2.0, 0.0, 0.0, 0.0, 0.0],                 # a gap that lands exactly on the threshold
                  [-INF, -INF, -INF, -INF, -INF]])           # every key masked


def forward_mistakes(x, alpha, axis):
    """Plausible wrong outputs of Sparsemax / Entmax15's forward, by the message naming each mistake."""
    wrong = {"this is a softmax: the weights below the threshold must be exactly 0": lambda: softmax_ref(x, axis)}
    if axis not in (-1, x.ndim - 1):
        wrong["work along `axis` (np.moveaxis it to the end and back), not along the last axis"] = \
            lambda: ref_entmax(x, alpha, -1)
    if alpha == 1.5:
        wrong["that is sparsemax (alpha = 2): 1.5-entmax squares max(z/2 - tau, 0)"] = lambda: ref_entmax(x, 2.0, axis)
    return wrong


def check_forward(impl, cls, alpha):
    for shape, axis, seed, scale in (((3, 7), -1, 0, 2.0), ((6, 4), 0, 1, 1.0), ((2, 5, 6), 1, 2, 3.0)):
        x = randn(*shape, seed=seed, scale=scale)
        out, _ = run_op(cls, x, axis=axis)
        assert_close(out, ref_entmax(x, alpha, axis), f"{cls.__name__}.forward on shape {shape}, axis={axis}",
                     likely_mistake(out, forward_mistakes(x, alpha, axis)), rtol=1e-9, atol=1e-12)
        if not (out == 0).any():
            fail(f"{cls.__name__}.forward", "no entry is exactly 0 on scores that must give a sparse result",
                 "p = max(..., 0): clip at zero, do not add a small epsilon")
    x32 = randn(4, 6, seed=3, scale=2.0, dtype=np.float32)
    out, _ = run_op(cls, x32, axis=-1)
    assert_close(out, ref_entmax(x32, alpha).astype(np.float32), f"{cls.__name__}.forward on float32",
                 "keep the input's dtype", rtol=1e-4, atol=1e-6, check_dtype=True)


def check_edges(impl, cls, alpha):
    with np.errstate(all="ignore"):
        out, _ = run_op(cls, EDGES, axis=-1)
    what = f"{cls.__name__}.forward on edge rows (scores of 1e4, -inf entries, ties, a gap on the threshold)"
    assert_close(out[:4], ref_entmax(EDGES[:4], alpha), what,
                 "subtract the row max first (1e4 loses every digit otherwise); an -inf score must give 0 "
                 "and must not enter the cumulative sums as -inf (replace it by 0 there)", rtol=1e-9, atol=1e-12)
    if out[3, 0] != 1.0 or (out[3, 1:] != 0).any():
        fail(what, f"the row [2, 0, 0, 0, 0] gave {out[3]}, expected exactly [1, 0, 0, 0, 0]",
             "the entries exactly at the threshold get weight 0: compute tau from the support before them")
    if not np.isnan(out[4]).all():
        fail(what, f"a row where every score is -inf gave {out[4]}, expected NaN (as softmax does)",
             "flag rows whose max is -inf and set their output to NaN")
    out, _ = run_op(cls, np.array([[3.0], [-2.0]]), axis=-1)
    assert_close(out, np.ones((2, 1)), f"{cls.__name__}.forward on rows of length 1",
                 "one entry takes all the weight", rtol=0, atol=0)


def check_backward(impl, cls, alpha, hint):
    for shape, axis, seed in (((3, 7), -1, 0), ((6, 4), 0, 1), ((2, 5, 6), 1, 2)):
        x, g = randn(*shape, seed=seed, scale=2.0), randn(*shape, seed=seed + 10)
        _, (gx,) = run_op(cls, x, grad=g, hint=hint, axis=axis)
        p = ref_entmax(x, alpha, axis)
        assert_close(gx, ref_backward(p, g, alpha, axis), f"{cls.__name__}.backward on shape {shape}, axis={axis}",
                     hint, rtol=1e-8, atol=1e-10)
    g = randn(*EDGES.shape, seed=4)
    with np.errstate(all="ignore"):
        _, (gx,) = run_op(cls, EDGES, grad=g, hint=hint, axis=-1)
    if not np.isfinite(gx).all():
        fail(f"{cls.__name__}.backward", "returned NaN or inf on rows with -inf entries or every entry -inf",
             "use s = 0 off the support (p > 0 is False for NaN), and divide by sum(s) only where it is > 0")
    assert_close(gx, ref_backward(ref_entmax(EDGES, alpha), g, alpha), f"{cls.__name__}.backward on edge rows",
                 "masked entries and fully masked rows get gradient exactly 0", rtol=1e-8, atol=1e-10)
    gradcheck_op(cls, [randn(3, 6, seed=5, scale=2.0)], cls.__name__, hint, axis=-1)


# ---- 13.1 Sparsemax -------------------------------------------------------------------------------------
@pytest.mark.exercise("13.1", points=1)
def test_sparsemax_forward(impl):
    check_forward(impl, impl.Sparsemax, 2.0)


@pytest.mark.exercise("13.1", points=1)
def test_sparsemax_forward_at_the_edges(impl):
    check_edges(impl, impl.Sparsemax, 2.0)


@pytest.mark.exercise("13.1", points=1)
def test_sparsemax_backward(impl):
    check_backward(impl, impl.Sparsemax, 2.0,
                   "dz = s * (g - sum(s * g) / sum(s)) with s = 1 on the support (p > 0) and 0 elsewhere")


# ---- 13.2 Entmax15 --------------------------------------------------------------------------------------
@pytest.mark.exercise("13.2", points=1)
def test_entmax15_forward(impl):
    check_forward(impl, impl.Entmax15, 1.5)


@pytest.mark.exercise("13.2", points=1)
def test_entmax15_forward_at_the_edges(impl):
    check_edges(impl, impl.Entmax15, 1.5)
    n = 65536
    z = np.zeros((1, n))
    z[0, 7] = 2.0  # gap 1/(alpha - 1) = 2: exactly one key, at any length
    out, _ = run_op(impl.Entmax15, z, axis=-1)
    if out[0, 7] != 1.0 or np.count_nonzero(out) != 1:
        fail("Entmax15.forward on one score 2.0 above 65,535 zeros",
             f"top weight {out[0, 7]!r} with {np.count_nonzero(out)} nonzero entries; expected exactly 1.0 and 1",
             "the zeros sit exactly on the threshold: stop the support at the first k where tau_k < u_(k) fails "
             "(np.cumprod of the test), so tau comes from the top entry alone")


@pytest.mark.exercise("13.2", points=1)
def test_entmax15_backward(impl):
    check_backward(impl, impl.Entmax15, 1.5,
                   "dz = s * (g - sum(s * g) / sum(s)) with s = sqrt(p) on the support and 0 elsewhere")


# ---- 13.3 bisect_threshold ------------------------------------------------------------------------------
def ref_bisect(z, alpha, n_iter):
    lo = np.full(z.shape[:-1] + (1,), -1.0)
    width = 1.0 - (1.0 / z.shape[-1]) ** (alpha - 1)
    for _ in range(n_iter):
        width /= 2
        f = (np.maximum((alpha - 1) * z - (lo + width), 0) ** (1 / (alpha - 1))).sum(-1, keepdims=True)
        lo = np.where(f >= 1, lo + width, lo)
    return lo


def shifted(*shape, seed):
    z = randn(*shape, seed=seed, scale=2.0)
    return z - z.max(axis=-1, keepdims=True)


@pytest.mark.exercise("13.3", points=1)
def test_bisect_threshold_solves_sum_p_equals_one(impl):
    for alpha, shape, seed in ((1.5, (3, 8), 0), (2.0, (2, 3, 5), 1), (1.2, (4, 1), 2), (3.0, (2, 40), 3)):
        z = shifted(*shape, seed=seed)
        try:
            tau = impl.bisect_threshold(z, alpha)
        except (ArithmeticError, TypeError, ValueError, IndexError) as e:
            fail("bisect_threshold", f"raised {type(e).__name__}: {e}", "")
        tau = np.asarray(tau)
        if tau.shape != shape[:-1] + (1,):
            fail("bisect_threshold", f"returned shape {tau.shape} for z of shape {shape}",
                 f"keep the last axis with size 1 (keepdims=True): expected {shape[:-1] + (1,)}")
        total = (np.maximum((alpha - 1) * z - tau, 0) ** (1 / (alpha - 1))).sum(-1)
        assert_close(total, np.ones(shape[:-1]), f"sum of [(alpha-1) z - tau]_+^(1/(alpha-1)) at alpha={alpha}",
                     "bisect on [-1, -(1/n)^(alpha-1)] for the default 50 steps: the sum must be 1 to ~1e-12",
                     rtol=0, atol=1e-11)
    z = np.zeros((1, 65536))
    z[0, 0] = 0.0
    z[0, 1:] = -1 / 0.3  # a gap of 1/(alpha - 1) at alpha = 1.3
    tau = np.asarray(impl.bisect_threshold(z, 1.3))
    assert_close(tau, [[-1.0]], "bisect_threshold for one key 1/(alpha-1) above 65,535 others",
                 "tau must come out as -1 (exactly, or within 1e-14)", rtol=0, atol=1e-14)


@pytest.mark.exercise("13.3", points=1)
def test_bisect_threshold_follows_the_bracket(impl):
    z = shifted(3, 6, seed=4)
    for n_iter in (1, 2, 5, 20):
        tau = np.asarray(impl.bisect_threshold(z, 1.5, n_iter=n_iter))
        assert_close(tau, ref_bisect(z, 1.5, n_iter), f"bisect_threshold(z, 1.5, n_iter={n_iter})",
                     "start at lo = -1, width = 1 - (1/n)**(alpha-1); each step halve the width, test mid = lo + "
                     "width, and move lo there when the sum at mid is still >= 1; return lo (a lower bound)",
                     rtol=0, atol=1e-15)
