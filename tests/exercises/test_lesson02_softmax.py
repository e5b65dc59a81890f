"""Graded tests for lesson 02, softmax, log-sum-exp and the online normaliser: exercises 2.1-2.4 in
`exercises/lesson02_softmax.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson02_softmax.py
    python -m minitorch_attn grade --lesson 02

References are computed here in float64 with NumPy. Each test checks one exercise: while the
`online_normaliser` tests run, the lesson module's `merge_normalisers` is the graders' reference, so a
mistake in Exercise 2.3 does not cost points in 2.4.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.course.checks import assert_close, fail, gradcheck_op, logsumexp_ref, randn, run_op, softmax_ref

INF = np.inf


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson02_softmax")


def ref_merge(m_a, l_a, m_b, l_b):
    m = np.maximum(m_a, m_b)
    safe = np.where(np.isfinite(m), m, 0)
    return m, l_a * np.exp(m_a - safe) + l_b * np.exp(m_b - safe)


def ref_normaliser(x):
    """(row max, sum(exp(x - max))) along the last axis; an all -inf row gives (-inf, 0)."""
    m = x.max(axis=-1)
    safe = np.where(np.isfinite(m), m, 0.0)
    return m, np.exp(x - safe[..., None]).sum(axis=-1)


HUGE = np.array([[1e4, 1e4 - 1.0, 0.0, 1e4 - 3.0],
                 [-1e4, -1e4 + 2.0, -1e4 + 1.0, -1e4],
                 [0.5, -INF, 1.5, -INF]])  # -inf entries: masked positions


# ---- 2.1 Softmax ----------------------------------------------------------------------------------------
@pytest.mark.exercise("2.1", points=1)
def test_softmax_forward_is_stable_along_any_axis(impl):
    x = randn(3, 5, seed=0)
    out, _ = run_op(impl.Softmax, x, axis=-1)
    assert_close(out, softmax_ref(x), "Softmax.forward on a (3, 5) array, axis=-1",
                 "p = exp(x - max) / sum(exp(x - max)) along the axis, with keepdims=True so it broadcasts",
                 rtol=1e-12)
    with np.errstate(all="ignore"):
        out, _ = run_op(impl.Softmax, HUGE, axis=-1)
    assert_close(out, softmax_ref(HUGE), "Softmax.forward on logits of +-1e4 (and -inf for masked entries)",
                 "subtract the row max before exp: exp(1e4) overflows to inf, and inf / inf is NaN",
                 rtol=1e-12, atol=1e-300)
    x3 = randn(2, 3, 4, seed=1)
    for axis in (0, 1):
        out, _ = run_op(impl.Softmax, x3, axis=axis)
        assert_close(out, softmax_ref(x3, axis=axis), f"Softmax.forward on a (2, 3, 4) array, axis={axis}",
                     "reduce (max and sum) along `axis`, not always the last one", rtol=1e-12)
    x32 = randn(2, 5, seed=2, dtype=np.float32)
    out, _ = run_op(impl.Softmax, x32, axis=-1)
    assert_close(out, softmax_ref(x32), "Softmax.forward on float32", "keep the input's dtype", rtol=1e-5,
                 check_dtype=True)


@pytest.mark.exercise("2.1", points=1)
def test_softmax_backward(impl):
    hint = ("dx = p * (grad - sum(grad * p, axis, keepdims=True)), with p saved in forward and the same axis "
            "(save it too)")
    for shape, axis, seed in (((3, 5), -1, 0), ((4, 3), 0, 1), ((2, 3, 4), 1, 2)):
        x, g = randn(*shape, seed=seed), randn(*shape, seed=seed + 10)
        _, (gx,) = run_op(impl.Softmax, x, grad=g, hint=hint, axis=axis)
        p = softmax_ref(x, axis=axis)
        assert_close(gx, p * (g - (g * p).sum(axis=axis, keepdims=True)),
                     f"Softmax.backward on shape {shape}, axis={axis}", hint, rtol=1e-10, atol=1e-12)
    g = randn(*HUGE.shape, seed=3)
    with np.errstate(all="ignore"):
        _, (gx,) = run_op(impl.Softmax, HUGE, grad=g, hint=hint, axis=-1)
    p = softmax_ref(HUGE)
    assert_close(gx, p * (g - (g * p).sum(axis=-1, keepdims=True)), "Softmax.backward on logits of +-1e4",
                 "compute the gradient from the saved probabilities, never from exp(x)", rtol=1e-10,
                 atol=1e-12)
    gradcheck_op(impl.Softmax, [randn(2, 4, seed=4)], "Softmax", hint, axis=-1)


# ---- 2.2 LogSumExp --------------------------------------------------------------------------------------
ALL_NEG_INF = np.array([[0.3, -1.2, 2.0], [-INF, -INF, -INF], [-INF, 1.0, -INF]])


@pytest.mark.exercise("2.2", points=1)
def test_logsumexp_forward_is_stable(impl):
    hint = "lse = m + log(sum(exp(x - m))) with m = max along the axis (keepdims=True while computing)"
    x = randn(3, 5, seed=0)
    for axis, keepdims in ((-1, False), (-1, True), (0, False), (0, True)):
        out, _ = run_op(impl.LogSumExp, x, axis=axis, keepdims=keepdims)
        assert_close(out, logsumexp_ref(x, axis, keepdims),
                     f"LogSumExp.forward(axis={axis}, keepdims={keepdims})",
                     hint + "; squeeze the axis unless keepdims", rtol=1e-12)
    with np.errstate(all="ignore"):
        out, _ = run_op(impl.LogSumExp, HUGE, axis=-1)
    assert_close(out, logsumexp_ref(HUGE), "LogSumExp.forward on logits of +-1e4",
                 "subtract the max first: log(sum(exp(1e4))) overflows to inf, log(sum(exp(-1e4))) to -inf",
                 rtol=1e-12)
    with np.errstate(all="ignore"):
        out, _ = run_op(impl.LogSumExp, ALL_NEG_INF, axis=-1)
    assert_close(out, logsumexp_ref(ALL_NEG_INF), "LogSumExp.forward on a row of all -inf (expected -inf)",
                 "replace a -inf max by 0 before subtracting it (np.where(np.isfinite(m), m, 0)): "
                 "-inf - (-inf) is NaN, while log(sum(exp(-inf))) = log(0) = -inf is right")


@pytest.mark.exercise("2.2", points=1)
def test_logsumexp_backward_is_softmax(impl):
    hint = ("d lse / dx = softmax(x) = e / sum(e) with e = exp(x - m) from forward; put back grad's reduced "
            "axis (np.expand_dims) when keepdims=False")
    x = randn(3, 5, seed=5)
    for axis, keepdims in ((-1, False), (-1, True), (0, False)):
        g = randn(*logsumexp_ref(x, axis, keepdims).shape, seed=6)
        _, (gx,) = run_op(impl.LogSumExp, x, grad=g, hint=hint, axis=axis, keepdims=keepdims)
        g_b = g if keepdims else np.expand_dims(g, axis)
        assert_close(gx, g_b * softmax_ref(x, axis=axis),
                     f"LogSumExp.backward(axis={axis}, keepdims={keepdims})", hint, rtol=1e-10, atol=1e-12)
    g = randn(3, seed=7)
    with np.errstate(all="ignore"):
        _, (gx,) = run_op(impl.LogSumExp, ALL_NEG_INF, grad=g, hint=hint, axis=-1)
    expected = g[:, None] * np.array([softmax_ref(ALL_NEG_INF[0]), [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    assert_close(gx, expected, "LogSumExp.backward with a row of all -inf (expected a zero gradient there)",
                 "nothing could change that row's output, so its gradient is 0: e = 0 and sum(e) = 0 there, "
                 "so divide by np.where(s > 0, s, 1) (0 / 0 is NaN)")
    gradcheck_op(impl.LogSumExp, [randn(2, 4, seed=8)], "LogSumExp", hint, axis=-1)


# ---- 2.3 merge_normalisers ------------------------------------------------------------------------------
def _merge(impl, *args):
    with np.errstate(all="ignore"):
        out = impl.merge_normalisers(*args)
    if not isinstance(out, tuple) or len(out) != 2:
        fail("merge_normalisers", f"returned {type(out).__name__}, expected the pair (m, l)")
    return out


@pytest.mark.exercise("2.3", points=1)
def test_merge_of_two_halves_is_the_whole(impl):
    hint = ("rescale each part to the common max: m = max(m_a, m_b), "
            "l = l_a * exp(m_a - m) + l_b * exp(m_b - m)")
    for k, (n, cut, shift) in enumerate(((10, 3, 0.0), (9, 5, 1000.0), (7, 1, -800.0))):
        x = randn(4, n, seed=k)
        x[:, cut:] += shift  # the two parts live on very different scales: no overflow allowed
        m_a, l_a = ref_normaliser(x[:, :cut])
        m_b, l_b = ref_normaliser(x[:, cut:])
        m, l = _merge(impl, m_a, l_a, m_b, l_b)
        em, el = ref_normaliser(x)
        what = f"merge_normalisers of the two parts of rows of length {n} (cut at {cut}, shift {shift:g})"
        assert_close(m, em, what + ": m", "the merged max is np.maximum(m_a, m_b)", rtol=1e-12)
        assert_close(l, el, what + ": l", hint, rtol=1e-12)


@pytest.mark.exercise("2.3", points=1)
def test_merge_with_empty_parts_is_exact(impl):
    hint = ("an empty part is (-inf, 0); where the merged max is -inf (both empty) subtract 0 instead "
            "(np.where(np.isfinite(m), m, 0)), because -inf - -inf is NaN")
    m, l = _merge(impl, np.float64(-INF), np.float64(0.0), np.float64(2.5), np.float64(3.0))
    assert_close((m, l), (2.5, 3.0), "merge_normalisers((-inf, 0), (2.5, 3.0)) as (m, l)", hint,
                 rtol=0, atol=0)
    m, l = _merge(impl, np.float64(2.5), np.float64(3.0), np.float64(-INF), np.float64(0.0))
    assert_close((m, l), (2.5, 3.0), "merge_normalisers((2.5, 3.0), (-inf, 0)) as (m, l)", hint,
                 rtol=0, atol=0)
    m, l = _merge(impl, np.float64(-INF), np.float64(0.0), np.float64(-INF), np.float64(0.0))
    assert_close((m, l), (-INF, 0.0), "merge_normalisers((-inf, 0), (-inf, 0)) as (m, l): two empty parts",
                 hint, rtol=0, atol=0)
    m_a, l_a = np.array([-INF, 1.0, -INF, 0.5]), np.array([0.0, 2.0, 0.0, 1.0])
    m_b, l_b = np.array([-INF, -INF, 3.0, 0.5]), np.array([0.0, 0.0, 1.5, 1.0])
    m, l = _merge(impl, m_a, l_a, m_b, l_b)
    assert_close(m, [-INF, 1.0, 3.0, 0.5], "merge_normalisers on arrays mixing empty and full parts: m", hint)
    assert_close(l, [0.0, 2.0, 1.5, 2.0], "merge_normalisers on arrays mixing empty and full parts: l", hint,
                 rtol=1e-12)


@pytest.mark.exercise("2.3", points=1)
def test_merge_is_commutative_associative_and_keeps_dtype(impl):
    parts = [ref_normaliser(randn(3, n, seed=10 + n) + s) for n, s in ((4, 0.0), (2, 3.0), (5, -2.0))]
    (a, b, c) = parts
    left = _merge(impl, *_merge(impl, *a, *b), *c)
    right = _merge(impl, *a, *_merge(impl, *b, *c))
    swapped = _merge(impl, *_merge(impl, *b, *a), *c)
    for name, got in (("(a + b) + c vs a + (b + c)", right), ("(b + a) + c vs (a + b) + c", swapped)):
        assert_close(got[0], left[0], f"merge_normalisers, {name}: m", "merging must not depend on the order",
                     rtol=1e-12)
        assert_close(got[1], left[1], f"merge_normalisers, {name}: l",
                     "merging must not depend on the order: scale BOTH normalisers to the common max",
                     rtol=1e-12)
    a32 = [np.asarray(v, dtype=np.float32) for v in a]
    b32 = [np.asarray(v, dtype=np.float32) for v in b]
    m, l = _merge(impl, *a32, *b32)
    em, el = ref_normaliser(np.concatenate([randn(3, 4, seed=14), randn(3, 2, seed=12) + 3.0], axis=-1))
    assert_close(l, el.astype(np.float32), "merge_normalisers on float32 inputs: l",
                 "keep the inputs' dtype (0 and np.where keep float32; np.float64(...) would not)", rtol=1e-5,
                 check_dtype=True)


# ---- 2.4 online_normaliser ------------------------------------------------------------------------------
@pytest.fixture
def online(impl, monkeypatch):
    """The target's online_normaliser, folding with the reference merge (if it calls merge_normalisers)."""
    monkeypatch.setattr(impl, "merge_normalisers", ref_merge)
    return impl.online_normaliser


@pytest.mark.exercise("2.4", points=1)
def test_online_matches_batch_for_any_block_size(online):
    x = randn(2, 3, 37, seed=0) * 3.0
    em, el = ref_normaliser(x)
    for block in (1, 5, 8, 36, 37, 128):
        m, l = online(x, block_size=block)
        what = f"online_normaliser(x of shape (2, 3, 37), block_size={block})"
        hint = ("fold in every block x[..., s:s + block_size] for s in range(0, n, block_size): the last "
                "block may be shorter")
        assert_close(m, em, what + ": m", hint, rtol=1e-12)
        assert_close(l, el, what + ": l", hint, rtol=1e-12)
        assert_close(m + np.log(l), logsumexp_ref(x), what + ": logsumexp = m + log(l)", hint, rtol=1e-12)


@pytest.mark.exercise("2.4", points=1)
def test_online_handles_masked_and_huge_rows(online):
    x = np.array([
        [-INF, -INF, -INF, -INF, -INF, -INF, -INF],  # all masked: (-inf, 0)
        [-INF, -INF, -INF, 0.5, 2.0, -INF, 1.0],  # the first blocks are all masked
        [1e4, 1e4 - 1.0, -1e4, 0.0, 1e4 - 2.0, 3.0, -INF],  # huge logits
        [-1e4, -1e4 + 1.0, -1e4 + 3.0, -1e4, -1e4, -1e4 + 0.5, -1e4],
    ])
    em, el = ref_normaliser(x)
    for block in (1, 2, 3, 7):
        with np.errstate(all="ignore"):
            m, l = online(x, block_size=block)
        what = f"online_normaliser on masked (-inf) and +-1e4 rows, block_size={block}"
        hint = ("a block that is all -inf has max -inf: exponentiate it against 0 instead (giving "
                "l_b = 0) and let merge_normalisers fold (-inf, 0) in; start from m = -inf, l = 0")
        assert_close(m, em, what + ": m", hint, rtol=1e-12)
        assert_close(l, el, what + ": l", hint, rtol=1e-12)


@pytest.mark.exercise("2.4", points=1)
def test_online_shapes_and_dtypes(online):
    v = randn(10, seed=3)
    m, l = online(v, block_size=4)
    em, el = ref_normaliser(v)
    assert_close(m, em, "online_normaliser(a 1-D row of 10, block_size=4): m",
                 "reduce along the last axis only: the results have shape x.shape[:-1], here ()", rtol=1e-12)
    assert_close(l, el, "online_normaliser(a 1-D row of 10, block_size=4): l",
                 "reduce along the last axis only: the results have shape x.shape[:-1], here ()", rtol=1e-12)
    x32 = randn(4, 9, seed=4, dtype=np.float32)
    m, l = online(x32, block_size=4)
    em, el = ref_normaliser(x32.astype(np.float64))
    assert_close(m, em.astype(np.float32), "online_normaliser on float32: m",
                 "start from np.full(x.shape[:-1], -np.inf, dtype=x.dtype) (and zeros of x.dtype for l)",
                 rtol=1e-6, check_dtype=True)
    assert_close(l, el.astype(np.float32), "online_normaliser on float32: l",
                 "start from np.full(x.shape[:-1], -np.inf, dtype=x.dtype) (and zeros of x.dtype for l)",
                 rtol=1e-5, check_dtype=True)
    m, l = online(randn(3, 5, seed=5), block_size=1000)
    assert_close(l, ref_normaliser(randn(3, 5, seed=5))[1], "online_normaliser with block_size > row length",
                 "a block may be longer than the row: x[..., 0:1000] is just the whole row", rtol=1e-12)
