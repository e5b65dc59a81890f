"""Graded tests for lesson 05, scaled dot-product attention: exercises 5.1-5.2 in
`exercises/lesson05_scaled_dot_product.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson05_scaled_dot_product.py
    python -m minitorch_attn grade --lesson 05

References are computed here in float64 with NumPy. `attend` (5.1) receives its masks ready-made, so a
mistake in `causal_mask` (5.2) does not cost points in 5.1.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.autograd.tensor import Tensor
from minitorch_attn.course.checks import ERRORS, assert_close, fail, likely_mistake, numeric_vjp, randn, softmax_ref

INF = np.inf


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson05_scaled_dot_product")


def ref_attend(q, k, v, mask=None, scale=None):
    """(out, weights) in float64; a bool mask is True where attention is allowed, a float mask is added;
    rows that see no key give 0."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = (q @ np.swapaxes(k, -1, -2)) * scale
    if mask is not None:
        s = np.where(mask, s, -INF) if mask.dtype == bool else s + mask
    w = softmax_ref(s)
    return w @ v, w


ATTEND_HINT = "build it from the library's Tensor ops on q, k and v (ops.matmul, .transpose(-2, -1), F.softmax)"


def attend_mistakes(q, k, v, scale):
    """Plausible wrong (weights, out) of attend, by the message that names each mistake."""
    d = q.shape[-1]
    s = q @ np.swapaxes(k, -1, -2)
    wrong = {
        "the softmax runs over the keys (axis -1), not over the queries (axis -2)": softmax_ref(s * scale, axis=-2),
        "multiply the scores by `scale` (the caller passes 1/sqrt(d) when scale is None)": softmax_ref(s),
        "`scale` is already 1/sqrt(d): multiply by it, do not divide": softmax_ref(s / scale),
        "scale once: the caller already folded 1/sqrt(d) into `scale`": softmax_ref(s * scale / np.sqrt(d)),
    }
    return {message: (w, w @ v) for message, w in wrong.items()}


def run_attend(impl, q, k, v, mask=None, scale=None, hint=ATTEND_HINT, requires_grad=False):
    """Call the target's `attend` on Tensors; return (out, weights, (Q, K, V)) with the inputs as Tensors."""
    scale = 1 / np.sqrt(q.shape[-1]) if scale is None else scale
    Q, K, V = (Tensor(a, requires_grad=requires_grad) for a in (q, k, v))
    m = Tensor(mask) if mask is not None and mask.dtype != bool else mask
    try:
        with np.errstate(all="ignore"):
            result = impl.attend(Q, K, V, m, scale)
    except ERRORS as e:
        fail("attend", f"raised {type(e).__name__}: {e}", hint)
    if not isinstance(result, tuple) or len(result) != 2:
        fail("attend", f"returned {type(result).__name__}, expected the pair (out, weights)", hint)
    out, w = result
    for name, t in (("out", out), ("weights", w)):
        if not isinstance(t, Tensor):
            fail("attend", f"{name} is a {type(t).__name__}, not a Tensor",
                 "build it from autograd ops (ops.matmul, ops.where, F.softmax) so gradients flow")
    return out, w, (Q, K, V)


# ---- 5.1 attend ----------------------------------------------------------------------------------------
@pytest.mark.exercise("5.1", points=1)
def test_attend_without_mask(impl):
    cases = [  # (q shape, k shape, v shape): Nq != Nk, d != dv, broadcast batch axes
        ((3, 4), (5, 4), (5, 2)),
        ((2, 3, 6), (2, 7, 6), (2, 7, 3)),
        ((2, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 6)),  # k and v shared across the first batch axis
    ]
    for i, (qs, ks, vs) in enumerate(cases):
        q, k, v = randn(*qs, seed=i), randn(*ks, seed=10 + i), randn(*vs, seed=20 + i)
        for scale in (None, 0.3):
            out, w, _ = run_attend(impl, q, k, v, scale=scale)
            eo, ew = ref_attend(q, k, v, scale=scale)
            what = f"attend(q {qs}, k {ks}, v {vs}, scale={'1/sqrt(d)' if scale is None else scale})"
            mistakes = attend_mistakes(q, k, v, 1 / np.sqrt(qs[-1]) if scale is None else scale)
            hint = likely_mistake(w, {m: wo[0] for m, wo in mistakes.items()})
            assert_close(w, ew, what + ": weights", hint, rtol=1e-10)
            hint = likely_mistake(out, {m: wo[1] for m, wo in mistakes.items()},
                                  "the weights are right: out = weights @ v")
            assert_close(out, eo, what + ": out", hint, rtol=1e-10)


@pytest.mark.exercise("5.1", points=1)
def test_attend_with_boolean_and_float_masks(impl):
    q, k, v = randn(2, 4, 5, seed=1), randn(2, 6, 5, seed=2), randn(2, 6, 3, seed=3)
    bool_mask = np.random.default_rng(4).random((2, 4, 6)) < 0.6
    bool_mask[..., 0] = True  # every row sees at least one key
    out, w, _ = run_attend(impl, q, k, v, bool_mask)
    eo, ew = ref_attend(q, k, v, bool_mask)
    hint = ("a boolean mask is True where attention is ALLOWED: keep the score there, put -inf where it is "
            "False (ops.where(mask, scores, -np.inf)), before the softmax")
    if w.shape == ew.shape and np.allclose(np.where(bool_mask, w.data, 0), 0):
        hint = "the mask is inverted: True means 'may attend' in scaled_dot_product_attention"
    assert_close(w, ew, "attend with a boolean mask (2, 4, 6): weights", hint, rtol=1e-10)
    assert_close(out, eo, "attend with a boolean mask (2, 4, 6): out", hint, rtol=1e-10)
    pad = np.array([True, True, True, True, False, False])  # broadcasts over batch and queries
    out, w, _ = run_attend(impl, q, k, v, pad)
    eo, ew = ref_attend(q, k, v, pad)
    assert_close(w, ew, "attend with a boolean mask of shape (6,) (broadcast over batch and queries)", hint,
                 rtol=1e-10)
    float_mask = randn(4, 6, seed=5)
    float_mask[1, 2:] = -INF
    out, w, _ = run_attend(impl, q, k, v, float_mask)
    eo, ew = ref_attend(q, k, v, float_mask)
    hint = "a float mask (a Tensor) is ADDED to the scaled scores: scores = scores + mask"
    assert_close(w, ew, "attend with a float mask (4, 6) holding -inf entries: weights", hint, rtol=1e-10)
    assert_close(out, eo, "attend with a float mask (4, 6): out", hint, rtol=1e-10)


@pytest.mark.exercise("5.1", points=1)
def test_attend_fully_masked_rows_give_zero_without_nan(impl):
    q, k, v = randn(2, 3, 4, seed=6), randn(2, 5, 4, seed=7), randn(2, 5, 2, seed=8)
    mask = np.ones((2, 3, 5), dtype=bool)
    mask[0, 1] = False  # query 1 of batch 0 may attend to nothing
    mask[1, :, 3:] = False
    hint = ("a row whose scores are all -inf has no softmax (0/0 = NaN): find those rows with "
            "np.all(scores.data == -np.inf, axis=-1, keepdims=True), replace their scores by 0 before the "
            "softmax and their weights by 0 after it, both with ops.where")
    out, w, (Q, K, V) = run_attend(impl, q, k, v, mask, requires_grad=True)
    eo, ew = ref_attend(q, k, v, mask)
    assert_close(w, ew, "attend with a fully masked row: weights (expected 0 in that row)", hint, rtol=1e-10)
    assert_close(out, eo, "attend with a fully masked row: out (expected 0 in that row)", hint, rtol=1e-10)
    try:
        with np.errstate(all="ignore"):
            (out * randn(*out.shape, seed=9)).sum().backward()
    except ERRORS as e:
        fail("attend backward", f"raised {type(e).__name__}: {e}", hint)
    for name, t in (("q", Q), ("k", K), ("v", V)):
        if t.grad is None or not np.isfinite(t.grad).all():
            fail(f"attend backward with a fully masked row: gradient of {name}",
                 "is missing or not finite (NaN)", hint + "; ops.where passes no gradient to the branch it drops")
    assert_close(Q.grad[0, 1], np.zeros(4), "attend backward: the gradient of a fully masked query",
                 "nothing can change a fully masked row's output (it is 0), so its query gets gradient 0")
    float_mask = np.zeros((3, 5))
    float_mask[2] = -INF
    out, w, _ = run_attend(impl, q, k, v, float_mask)
    eo, ew = ref_attend(q, k, v, float_mask)
    assert_close(out, eo, "attend with a float mask whose row 2 is all -inf: out (expected 0 there)",
                 "decide 'fully masked' after adding the float mask: the row's scores are then all -inf", rtol=1e-10)


@pytest.mark.exercise("5.1", points=1)
def test_attend_backward_matches_finite_differences(impl):
    q, k, v = randn(2, 3, 4, seed=11), randn(2, 5, 4, seed=12), randn(2, 5, 3, seed=13)
    mask = np.random.default_rng(14).random((3, 5)) < 0.7
    mask[:, 0] = True
    g = randn(2, 3, 3, seed=15)
    out, _, (Q, K, V) = run_attend(impl, q, k, v, mask, requires_grad=True)
    if out._node is None:
        fail("attend", "its output records no graph", "use autograd ops on the Tensors (not .data) so backward works")
    out.backward(g)

    def f(q_, k_, v_):
        return ref_attend(q_, k_, v_, mask)[0]

    for name, t, num in zip("qkv", (Q, K, V), numeric_vjp(f, [q, k, v], g)):
        assert_close(t.grad, num, f"attend backward: gradient of {name} against finite differences",
                     "compose differentiable ops only (matmul, where, softmax, *); a NumPy step on .data cuts the "
                     "graph", rtol=1e-5, atol=1e-7)


# ---- 5.2 causal_mask ------------------------------------------------------------------------------------
def ref_causal(n_q, n_k, offset=0):
    return np.array([[j <= i + offset for j in range(n_k)] for i in range(n_q)], dtype=bool).reshape(n_q, n_k)


def causal(impl, *args, **kwargs):
    try:
        return impl.causal_mask(*args, **kwargs)
    except ERRORS as e:
        fail(f"causal_mask{args}", f"raised {type(e).__name__}: {e}",
             "compare np.arange(n_q)[:, None] with np.arange(n_k)[None, :]")


@pytest.mark.exercise("5.2", points=1)
def test_causal_mask_top_left(impl):
    for n_q, n_k in ((4, 4), (1, 1), (3, 5), (5, 3)):
        got = causal(impl, n_q, n_k)
        expected = ref_causal(n_q, n_k)
        hint = "query i may attend to key j exactly when j <= i (the diagonal included)"
        g = np.asarray(got) if got is not None else None
        if g is not None and g.shape == expected.shape and (np.array_equal(g, ~expected) or (
                n_q == n_k and np.array_equal(g, expected.T))):
            hint = "the mask is transposed or inverted: rows are queries, columns keys, True = may attend"
        assert_close(None if g is None else g.astype(float), expected.astype(float), f"causal_mask({n_q}, {n_k})",
                     hint, rtol=0, atol=0)
        if np.asarray(got).dtype != bool:
            fail(f"causal_mask({n_q}, {n_k})", f"has dtype {np.asarray(got).dtype}, expected bool",
                 "a comparison (<=) of index arrays gives booleans directly")


@pytest.mark.exercise("5.2", points=1)
def test_causal_mask_offset_aligns_the_diagonal(impl):
    for n_q, n_k, offset in ((2, 4, 2), (3, 6, 3), (4, 4, -1), (3, 5, 1), (1, 7, 6)):
        got = causal(impl, n_q, n_k, offset=offset)
        assert_close(np.asarray(got, dtype=float) if got is not None else None,
                     ref_causal(n_q, n_k, offset).astype(float), f"causal_mask({n_q}, {n_k}, offset={offset})",
                     "shift the diagonal: key j is allowed when j <= i + offset (offset = n_k - n_q puts the last "
                     "query on the last key: the bottom-right alignment a KV cache needs)", rtol=0, atol=0)
    got = causal(impl, 0, 3)
    if np.shape(got) != (0, 3):
        fail("causal_mask(0, 3)", f"has shape {np.shape(got)}, expected (0, 3)", "build it from np.arange so empty "
             "sizes work too")
