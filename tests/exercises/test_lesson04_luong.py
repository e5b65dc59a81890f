"""Graded tests for lesson 04, Luong attention: exercises 4.1-4.2 in `exercises/lesson04_luong.py`
(or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson04_luong.py
    python -m minitorch_attn grade --lesson 04

References are computed here in float64 with NumPy; each test checks one exercise.
"""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn.course.checks import assert_close, fail, randn, softmax_ref


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson04_luong")


def T(a, requires_grad=False):
    return mta.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


def ref_scores(q, k, score, W=None, v=None):
    if score == "dot":
        return q @ np.swapaxes(k, -1, -2)
    if score == "general":
        return q @ W @ np.swapaxes(k, -1, -2)
    qd = q.shape[-1]
    h = np.tanh((q @ W[:, :qd].T)[:, :, None, :] + (k @ W[:, qd:].T)[:, None, :, :])
    return h @ v


def ref_local(scores, p, D, mask=None):
    s = np.arange(scores.shape[-1])
    outside = np.abs(s - p[..., None]) > D
    if mask is not None:
        outside = outside | mask[:, None, :]
    x = np.where(outside, -np.inf, scores)
    align = softmax_ref(x)
    sigma = D / 2
    return align * np.exp(-((s - p[..., None]) ** 2) / (2 * sigma**2))


# ---- 4.1 luong_score ------------------------------------------------------------------------------------
@pytest.mark.exercise("4.1", points=1)
def test_dot_and_general_scores(impl):
    q, k = randn(2, 3, 4, seed=0), randn(2, 5, 4, seed=1)
    got = impl.luong_score(T(q), T(k), "dot")
    assert_close(got, ref_scores(q, k, "dot"), "luong_score(score='dot') on q (2, 3, 4), k (2, 5, 4)",
                 "scores[b, i, j] = q[b, i] . k[b, j]: matmul(query, keys.transpose(-2, -1))", rtol=1e-10)
    k6 = randn(2, 5, 6, seed=2)
    W = randn(4, 6, seed=3)
    got = impl.luong_score(T(q), T(k6), "general", T(W))
    assert_close(got, ref_scores(q, k6, "general", W), "luong_score(score='general') with W (4, 6), keys of 6",
                 "scores = q W k^T: matmul(matmul(query, W), keys.transpose(-2, -1))", rtol=1e-10)
    got = impl.luong_score(T(q), T(k), "general", T(np.eye(4)))
    assert_close(got, ref_scores(q, k, "dot"), "luong_score(score='general') with W = I",
                 "with the identity matrix, general must equal dot exactly", rtol=1e-12)


@pytest.mark.exercise("4.1", points=1)
def test_concat_score(impl):
    q, k = randn(2, 3, 4, seed=4), randn(2, 5, 6, seed=5)
    W, v = randn(7, 10, seed=6), randn(7, seed=7)
    got = impl.luong_score(T(q), T(k), "concat", T(W), T(v))
    assert_close(got, ref_scores(q, k, "concat", W, v), "luong_score(score='concat'), W (7, 4 + 6), v (7,)",
                 "v . tanh(W [q; k]) = v . tanh(W[:, :q_dim] q + W[:, q_dim:] k): the first q_dim columns of W "
                 "act on the query, the rest on the key; broadcast to (B, Nq, Nk, H) before tanh", rtol=1e-10)
    with pytest.raises(ValueError):
        impl.luong_score(T(q), T(k), "cosine")


@pytest.mark.exercise("4.1", points=1)
def test_score_gradients(impl):
    q, k = randn(1, 2, 3, seed=8), randn(1, 4, 3, seed=9)
    W, v = randn(3, 3, seed=10), randn(5, seed=11)
    Wc = randn(5, 6, seed=12)
    for score, extra in (("dot", []), ("general", [W]), ("concat", [Wc, v])):
        inputs = [T(a, requires_grad=True) for a in (q, k, *extra)]
        try:
            mta.gradcheck(lambda *ts, score=score: impl.luong_score(*ts[:2], score, *ts[2:]), inputs)
        except mta.GradcheckError as e:
            fail(f"luong_score(score={score!r}): gradient against finite differences", str(e).splitlines()[0],
                 "use Tensor ops (matmul, transpose, indexing, tanh) so the gradient reaches W and v")


# ---- 4.2 local_p_weights --------------------------------------------------------------------------------
@pytest.mark.exercise("4.2", points=1)
def test_local_weights_follow_the_window(impl):
    scores = randn(2, 3, 9, seed=0)
    p = np.array([[0.0, 3.3, 8.0], [4.5, 6.9, 1.2]])
    got = impl.local_p_weights(T(scores), T(p), 2)
    expected = ref_local(scores, p, 2)
    assert_close(got, expected, "local_p_weights(D=2) on 9 keys",
                 "align = softmax over the keys with |s - p| <= D only, then times exp(-(s - p)^2 / (2 sigma^2)) "
                 "with sigma = D / 2; do not renormalise afterwards", rtol=1e-9, atol=1e-12)
    outside = np.abs(np.arange(9) - p[..., None]) > 2
    if np.any(np.asarray(got.data)[outside] != 0):
        fail("local_p_weights(D=2)", "weights outside [p - D, p + D] are not exactly 0",
             "mask the scores outside the window with -inf BEFORE the softmax")


@pytest.mark.exercise("4.2", points=1)
def test_local_weights_with_padding_and_empty_windows(impl):
    scores = randn(2, 2, 6, seed=1)
    p = np.array([[1.0, 4.0], [2.5, 0.0]])
    mask = np.zeros((2, 6), dtype=bool)
    mask[1, 2:] = True
    with np.errstate(all="ignore"):
        got = impl.local_p_weights(T(scores), T(p), 1, key_padding_mask=mask)
    assert_close(got, ref_local(scores, p, 1, mask), "local_p_weights(D=1) with key_padding_mask "
                 "(batch 1 has 2 real keys; its first query's window holds only padding)",
                 "or the padding mask into the outside-the-window mask; a row with no key left must be all "
                 "zeros (where(...)), not NaN", rtol=1e-9, atol=1e-12)


@pytest.mark.exercise("4.2", points=1)
def test_local_weights_gradient_reaches_the_position(impl):
    scores, p = randn(1, 2, 7, seed=2), np.array([[2.2, 4.6]])
    inputs = [T(scores, requires_grad=True), T(p, requires_grad=True)]
    try:
        mta.gradcheck(lambda s, q: impl.local_p_weights(s, q, 3), inputs)
    except mta.GradcheckError as e:
        fail("local_p_weights: gradient against finite differences", str(e).splitlines()[0],
             "build the Gaussian from the Tensor `positions` (s - positions[..., None]), so that the predicted "
             "position learns; only the window's bounds use positions.data")
    big = impl.local_p_weights(T(scores), T(p), 1e6).data
    assert_close(big, softmax_ref(scores), "local_p_weights with D = 1e6 (sigma -> infinity)",
                 "with a huge window every key is inside and the Gaussian is ~1: local becomes global softmax",
                 rtol=1e-6)
