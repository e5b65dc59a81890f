"""Graded tests for lesson 09, the transformer: exercises 9.1-9.3 in `exercises/lesson09_transformer.py`
(or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson09_transformer.py
    python -m minitorch_attn grade --lesson 09

References are computed here with NumPy (float64). Each test checks one exercise.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.autograd.tensor import Tensor
from minitorch_attn.course.checks import assert_close, call, fail, randn, softmax_ref


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson09_transformer")


# ---- 9.1 residual -----------------------------------------------------------------------------------------
class Spy:
    """A sublayer (or norm) that records how often it ran: x -> x @ W + c, as a Tensor op."""

    def __init__(self, w, c):
        self.w, self.c, self.calls = w, c, 0

    def __call__(self, t):
        self.calls += 1
        return t @ self.w + self.c


def _np_norm(x):
    return (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)


class Norm:
    def __init__(self):
        self.calls = 0

    def __call__(self, t):
        self.calls += 1
        mu = t.mean(axis=-1, keepdims=True)
        d = t - mu
        return d / ((d * d).mean(axis=-1, keepdims=True) + 1e-5).sqrt()


@pytest.mark.parametrize("norm_first", [True, False], ids=["pre_ln", "post_ln"])
@pytest.mark.exercise("9.1", points=1)
def test_residual(impl, norm_first):
    name = "pre-LN (norm_first=True)" if norm_first else "post-LN (norm_first=False)"
    hint = ("pre-LN: x + sublayer(norm(x)); post-LN: norm(x + sublayer(x)); call sublayer and norm once each"
            if norm_first else "post-LN normalises AFTER the addition: norm(x + sublayer(x))")
    x_np, w, c = randn(2, 3, 4, seed=1), randn(4, 4, seed=2), randn(4, seed=3)
    x = Tensor(x_np, requires_grad=True)
    sub, norm = Spy(w, c), Norm()
    out = call(f"residual({name})", impl.residual, x, sub, norm, norm_first, hint=hint)
    if not isinstance(out, Tensor):
        fail(f"residual({name})", f"returned {type(out).__name__}, not a Tensor", "build it from Tensor operations")
    if sub.calls != 1 or norm.calls != 1:
        fail(f"residual({name})", f"called sublayer {sub.calls} and norm {norm.calls} times (expected 1 and 1)", hint)
    expected = x_np + _np_norm(x_np) @ w + c if norm_first else _np_norm(x_np + x_np @ w + c)
    swapped = _np_norm(x_np + x_np @ w + c) if norm_first else x_np + _np_norm(x_np) @ w + c
    if out.shape == expected.shape and np.allclose(out.data, swapped, atol=1e-9):
        fail(f"residual({name})", "computed the other order", "norm_first=True is pre-LN, x + sublayer(norm(x)); "
             "norm_first=False is post-LN, norm(x + sublayer(x))")
    assert_close(out, expected, f"residual({name})", hint, rtol=1e-9, atol=1e-9)
    out.backward(np.ones_like(expected))
    if x.grad is None:
        fail(f"residual({name}) backward", "no gradient reached x", "use Tensor operations (+, the callables), "
             "not NumPy on .data")
    if norm_first:  # the skip path passes the gradient through unchanged: d out / d x = I + ...
        assert np.all(np.isfinite(x.grad))


# ---- 9.2 cached_attention ---------------------------------------------------------------------------------
def ref_attention(q, k, v, offset):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    nq, nk = s.shape[-2:]
    allowed = np.arange(nk)[None, :] <= np.arange(nq)[:, None] + offset
    s = np.where(allowed, s, -np.inf)
    return softmax_ref(s) @ v


@pytest.mark.exercise("9.2", points=1)
def test_cached_attention_without_cache_is_causal(impl):
    hint = ("with past=None: k and v stay as they are, mask = causal_mask(T, T, offset=0) (True = may attend), "
            "out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)")
    q, k, v = randn(2, 3, 5, 4, seed=4), randn(2, 3, 5, 4, seed=5), randn(2, 3, 5, 4, seed=6)
    res = call("cached_attention(q, k, v)", impl.cached_attention, Tensor(q), Tensor(k), Tensor(v), hint=hint)
    if not isinstance(res, tuple) or len(res) != 2:
        fail("cached_attention(q, k, v)", f"returned {type(res).__name__}, expected (out, (k, v))", hint)
    out, (k_all, v_all) = res
    assert_close(out, ref_attention(q, k, v, 0), "cached_attention(q, k, v, past=None): out", hint, rtol=1e-9,
                 atol=1e-9)
    assert_close(k_all, k, "cached_attention(past=None): the returned keys", "return the keys as they are")
    assert_close(v_all, v, "cached_attention(past=None): the returned values", "return the values as they are")


@pytest.mark.exercise("9.2", points=2)
def test_cached_attention_with_cache_matches_full_attention(impl):
    hint = ("concatenate along the position axis: k = cat([k_past, k], axis=-2), v likewise; the new queries are "
            "the LAST positions, so mask = causal_mask(t_new, t, offset=t - t_new) (bottom-right aligned)")
    B, H, T, d = 2, 2, 7, 4
    q, k, v = randn(B, H, T, d, seed=7), randn(B, H, T, d, seed=8), randn(B, H, T, d, seed=9)
    full = ref_attention(q, k, v, 0)
    for t_past in (6, 4):  # one new token (generation), then three (a chunk)
        past = (Tensor(k[:, :, :t_past]), Tensor(v[:, :, :t_past]))
        what = f"cached_attention({T - t_past} new queries, {t_past} cached positions)"
        res = call(what, impl.cached_attention, Tensor(q[:, :, t_past:]), Tensor(k[:, :, t_past:]),
                   Tensor(v[:, :, t_past:]), past, hint=hint)
        out, (k_all, v_all) = res
        assert_close(k_all, k, f"{what}: the returned keys", "return [k_past; k] concatenated on axis -2 "
                     "(the cache the next call receives)")
        assert_close(v_all, v, f"{what}: the returned values", "return [v_past; v] concatenated on axis -2")
        top_left = ref_attention(q[:, :, t_past:], k, v, 0)
        if out.shape == top_left.shape and np.allclose(out.data, top_left, atol=1e-9):
            fail(what, "the new queries see only the first keys",
                 "the mask is aligned to the top-left corner (offset 0); the new queries are the last positions: "
                 "causal_mask(t_new, t, offset=t - t_new)")
        assert_close(out, full[:, :, t_past:], f"{what}: out (should equal full causal attention's last rows)",
                     hint, rtol=1e-9, atol=1e-9)


# ---- 9.3 next_token_probs ---------------------------------------------------------------------------------
@pytest.mark.exercise("9.3", points=1)
def test_next_token_probs_temperature_and_greedy(impl):
    logits = randn(3, 7, seed=10) * 3
    logits[2, [1, 4]] = 50.0  # a tie at the top, and large logits (a stable softmax needs the max subtracted)
    for t in (1.0, 0.5, 2.0):
        p = call(f"next_token_probs(temperature={t})", impl.next_token_probs, logits, t,
                 hint="divide by the temperature, then a stable softmax along the last axis")
        assert_close(p, softmax_ref(logits / t), f"next_token_probs(logits, temperature={t})",
                     "probs = softmax(logits / temperature) along the vocabulary; subtract the row max first",
                     rtol=1e-9, atol=1e-12)
    g = call("next_token_probs(temperature=0)", impl.next_token_probs, logits, 0.0,
             hint="temperature 0 means greedy: return a one-hot row on the argmax (do not divide by 0)")
    expected = np.zeros_like(logits)
    expected[np.arange(3), logits.argmax(-1)] = 1.0
    assert_close(g, expected, "next_token_probs(temperature=0)", "greedy: one-hot on logits.argmax(axis=-1) "
                 "(the first maximum on ties)")


@pytest.mark.exercise("9.3", points=1)
def test_next_token_probs_top_k(impl):
    hint = ("keep the logits >= the k-th largest of each row: kth = np.sort(z, axis=-1)[:, -k][:, None], "
            "z = np.where(z < kth, -np.inf, z); then softmax; top_k larger than V keeps everything")
    logits = np.array([[1.0, 3.0, 2.0, 3.0, -1.0], [0.5, 0.1, 0.3, 0.2, 0.4]])
    for k, t in ((1, 1.0), (2, 1.0), (3, 0.7), (9, 1.0)):
        p = call(f"next_token_probs(top_k={k})", impl.next_token_probs, logits, t, k, hint=hint)
        z = logits / t
        kth = np.sort(z, axis=-1)[:, -min(k, 5)][:, None]
        expected = softmax_ref(np.where(z < kth, -np.inf, z))
        assert_close(p, expected, f"next_token_probs(logits, temperature={t}, top_k={k})", hint, rtol=1e-9,
                     atol=1e-12)
