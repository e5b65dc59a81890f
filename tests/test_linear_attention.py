"""Linear, Galerkin and Fourier attention and the μP helpers (minitorch_attn/functional/linear_attention.py, lesson 14).

Oracles: the quadratic form in float64 (the same kernel attention through the N×N matrix), and the same
formulas written with torch ops — torch's autograd gives the reference gradients. Backward passes are also
checked by float64 finite differences (`mta.gradcheck`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minitorch_attn as mta
from minitorch_attn.functional import linear_attention as LA
from minitorch_attn.functional import softmax_limits as SL


def qkv(*batch, nq=5, nk=7, d=4, dv=3, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((*batch, nq, d)) * scale, rng.standard_normal((*batch, nk, d)) * scale,
            rng.standard_normal((*batch, nk, dv)))


# ---- torch oracles ---------------------------------------------------------------------------------------
def torch_linear(q, k, v, causal=False, eps=1e-6):
    fq, fk = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    a = fq @ fk.transpose(-2, -1)
    if causal:
        a = a * torch.tril(torch.ones(a.shape[-2:], dtype=a.dtype))
    return (a @ v) / (a.sum(-1, keepdim=True) + eps)


def torch_galerkin(q, k, v):
    ln = torch.nn.functional.layer_norm
    return q @ (ln(k, k.shape[-1:]).transpose(-2, -1) @ ln(v, v.shape[-1:])) / k.shape[-2]


def torch_fourier(q, k, v):
    ln = torch.nn.functional.layer_norm
    return (ln(q, q.shape[-1:]) @ ln(k, k.shape[-1:]).transpose(-2, -1)) @ v / k.shape[-2]


def compare_with_torch(ours, theirs, arrays, rtol=1e-10, **kwargs):
    """Forward and, through a random upstream gradient, the gradients of every input."""
    ts = [mta.tensor(a, requires_grad=True) for a in arrays]
    out = ours(*ts, **kwargs)
    tt = [torch.tensor(a, requires_grad=True) for a in arrays]
    ref = theirs(*tt, **{k: v for k, v in kwargs.items() if k == "causal"})
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=rtol, atol=1e-12)
    g = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(g)
    ref.backward(torch.tensor(g))
    for t, r in zip(ts, tt):
        np.testing.assert_allclose(t.grad, r.grad.numpy(), rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("shape", [((2, 3), 5, 5, 4, 3), ((), 9, 9, 16, 8), ((1,), 1, 1, 2, 5)])
def test_linear_attention_matches_torch(causal, shape):
    batch, nq, nk, d, dv = shape
    compare_with_torch(LA.linear_attention, torch_linear, qkv(*batch, nq=nq, nk=nk, d=d, dv=dv), causal=causal)


def test_noncausal_allows_nq_ne_nk():
    compare_with_torch(LA.linear_attention, torch_linear, qkv(2, nq=3, nk=11, d=5, dv=2))


@pytest.mark.parametrize("fn, oracle", [(LA.galerkin_attention, torch_galerkin),
                                        (LA.fourier_attention, torch_fourier)])
@pytest.mark.parametrize("order", ["kv", "qk"])
def test_galerkin_and_fourier_match_torch(fn, oracle, order):
    compare_with_torch(fn, oracle, qkv(2, 2, nq=6, nk=13, d=5, dv=7), order=order)
    compare_with_torch(fn, oracle, qkv(nq=1, nk=1, d=3, dv=2), order=order)


# ---- the regrouping and the causal forms ---------------------------------------------------------------
@pytest.mark.parametrize("feature_map", ["elu+1", "relu", "identity", lambda x: x * x])
def test_regrouped_equals_quadratic_for_every_feature_map(feature_map):
    q, k, v = qkv(2, 2, nq=37, nk=37, d=8, dv=6, seed=3)
    if feature_map == "identity":  # an identity map can make denominators vanish: keep them positive
        q, k = np.abs(q), np.abs(k)
    for causal in (False, True):
        fast = LA.linear_attention(q, k, v, causal=causal, feature_map=feature_map).data
        slow = LA.linear_attention_quadratic(q, k, v, causal=causal, feature_map=feature_map).data
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_float64_regrouping_is_exact_to_rounding():
    q, k, v = qkv(2, 3, nq=300, nk=300, d=16, dv=8, seed=4)
    for causal in (False, True):
        err = np.abs(LA.linear_attention(q, k, v, causal=causal).data
                     - LA.linear_attention_quadratic(q, k, v, causal=causal).data).max()
        assert err < 1e-12


def test_recurrent_form_equals_prefix_sums_and_is_causal():
    q, k, v = qkv(2, nq=10, nk=10, d=4, dv=3, seed=5)
    rnn = LA.linear_attention_recurrent(q, k, v)
    np.testing.assert_allclose(rnn, LA.linear_attention(q, k, v, causal=True).data, rtol=1e-12, atol=1e-14)
    k2, v2 = k.copy(), v.copy()
    k2[:, 6:] += 5
    v2[:, 6:] -= 2
    out1 = LA.linear_attention(q, k, v, causal=True).data
    out2 = LA.linear_attention(q, k2, v2, causal=True).data
    np.testing.assert_array_equal(out1[:, :6], out2[:, :6])
    assert not np.allclose(out1[:, 6:], out2[:, 6:])
    np.testing.assert_allclose(out1[:, 0], v[:, 0], rtol=1e-5)  # row 0 sees only key 0


def test_float32_stays_float32():
    q, k, v = (a.astype(np.float32) for a in qkv(2, nq=6, nk=6))
    for causal in (False, True):
        assert LA.linear_attention(q, k, v, causal=causal).dtype == np.float32
    assert LA.galerkin_attention(q, k, v).dtype == np.float32
    assert LA.fourier_attention(q, k, v).dtype == np.float32


# ---- gradients by finite differences ---------------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_gradcheck(causal):
    ts = [mta.tensor(a, requires_grad=True) for a in qkv(2, nq=4, nk=4, d=3, dv=2, seed=6)]
    assert mta.gradcheck(lambda a, b, c: LA.linear_attention(a, b, c, causal=causal), ts)


@pytest.mark.parametrize("fn", [LA.galerkin_attention, LA.fourier_attention])
def test_galerkin_fourier_gradcheck(fn):
    ts = [mta.tensor(a, requires_grad=True) for a in qkv(2, nq=3, nk=5, d=4, dv=3, seed=7)]
    for order in ("kv", "qk"):
        assert mta.gradcheck(lambda a, b, c, order=order: fn(a, b, c, order=order), ts)


def test_small_ops_gradcheck():
    x = mta.tensor(np.array([[-3.0, -0.2, 0.3], [1.7, -1e-3, 2.0]]), requires_grad=True)
    assert mta.gradcheck(LA.elu_plus_one, [x])
    for axis in (0, 1, -1):
        assert mta.gradcheck(lambda t, axis=axis: LA.cumsum(t, axis=axis), [x])
    np.testing.assert_allclose(LA.cumsum(x, axis=1).data, np.cumsum(x.data, axis=1))


# ---- edges -----------------------------------------------------------------------------------------------
def test_huge_inputs_stay_finite_and_the_feature_map_positive():
    phi = LA.elu_plus_one(np.array([-700.0, -30.0, 0.0, 1e4, 1e300])).data
    assert np.all(phi > 0) and np.all(np.isfinite(phi))
    np.testing.assert_allclose(phi, [np.exp(-700.0), np.exp(-30.0), 1.0, 1e4 + 1, 1e300], rtol=1e-15)
    assert LA.elu_plus_one(np.array([-1e4])).data[0] == 0  # underflows to exactly 0, never negative or NaN
    q, k, v = qkv(2, nq=8, nk=8, seed=8, scale=1e4)
    for causal in (False, True):
        for feature_map in ("elu+1", "relu"):
            out = LA.linear_attention(q, k, v, causal=causal, feature_map=feature_map)
            assert np.isfinite(out.data).all()
    # every key feature underflows: the eps keeps the denominator positive and the output 0
    out = LA.linear_attention(np.ones((3, 2)), np.full((4, 2), -1e4), np.ones((4, 1)))
    np.testing.assert_array_equal(out.data, 0.0)
    t = [mta.tensor(a, requires_grad=True) for a in qkv(nq=3, nk=3, seed=9, scale=1e4)]
    LA.linear_attention(*t, causal=True).sum().backward()
    assert all(np.isfinite(x.grad).all() for x in t)


def test_errors_name_the_shapes():
    q, k, v = qkv(2, nq=3, nk=5)
    with pytest.raises(ValueError, match=r"same feature size.*q \(2, 3, 4\), k \(2, 5, 3\)"):
        LA.linear_attention(q, k[..., :3], v)
    with pytest.raises(ValueError, match=r"same number of keys.*v \(2, 4, 3\)"):
        LA.galerkin_attention(q, k, v[:, :4])
    with pytest.raises(ValueError, match=r"Nq == Nk.*q \(2, 3, 4\), k \(2, 5, 4\)"):
        LA.linear_attention(q, k, v, causal=True)
    with pytest.raises(ValueError, match="batch axes"):
        LA.fourier_attention(q[None], k, v)
    with pytest.raises(ValueError, match="at least 2 axes"):
        LA.linear_attention(q[0, 0], k, v)
    with pytest.raises(ValueError, match="empty"):
        LA.linear_attention(q[:, :0], k, v)
    with pytest.raises(ValueError, match="feature_map must be one of"):
        LA.linear_attention(q, k, v, feature_map="softmax")
    with pytest.raises(ValueError, match="order must be"):
        LA.galerkin_attention(q, k, v, order="vk")
    with pytest.raises(ValueError, match="out of range"):
        LA.cumsum(np.ones((2, 3)), axis=2)
    with pytest.raises(ValueError, match=r"alignments must .* \[-1, 1\]"):
        LA.correlated_qk(8, [1.5], np.random.default_rng(0))
    with pytest.raises(ValueError, match="kind must be"):
        LA.grid_attention(16, kind="softmax")


# ---- Galerkin / Fourier as integrals -------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["galerkin", "fourier"])
def test_grid_refinement(kind):
    _, z256 = LA.grid_attention(256, kind)
    _, z4096 = LA.grid_attention(4096, kind)
    assert np.abs(z256 - z4096[::16]).max() < 1e-3  # smooth periodic input: spectrally accurate
    assert np.abs(z256).max() > 1  # ... and not because the outputs are tiny
    # a non-periodic input: the rectangle rule converges at first order (error halves per doubling)
    ref = LA.grid_attention(4096, kind, periodic=False)[1]
    errs = [np.abs(LA.grid_attention(n, kind, periodic=False)[1] - ref[:: 4096 // n]).max() for n in (128, 256)]
    assert 1.6 < errs[0] / errs[1] < 2.6


def test_galerkin_regrouping_on_a_large_grid():
    x = np.arange(4096) / 4096
    u = LA.grid_function(x)
    w = np.random.default_rng(0).standard_normal((3, 3, 16))
    q, k, v = (u @ w[i] for i in range(3))
    for fn in (LA.galerkin_attention, LA.fourier_attention):
        assert np.abs(fn(q, k, v, order="kv").data - fn(q, k, v, order="qk").data).max() < 1e-10


# ---- μP --------------------------------------------------------------------------------------------------
def test_correlated_qk_statistics():
    rng = np.random.default_rng(0)
    q, k = LA.correlated_qk(20000, [1.0, 0.0, -1.0, 0.5], rng)
    assert k.shape == (4, 20000) and q.shape == (20000,)
    np.testing.assert_allclose(k.var(axis=1), 1.0, atol=0.05)  # unit-variance entries whatever the alignment
    np.testing.assert_allclose(q.var(), 1.0, atol=0.05)
    np.testing.assert_allclose(k @ q / 20000, [0.5, 0.0, -0.5, 0.25], atol=0.03)


def test_qk_scale_stats_growth():
    corr = LA.qk_scale_stats([64, 4096], alignment=1.0, trials=100, seed=0)
    indep = LA.qk_scale_stats([64, 4096], alignment=0.0, trials=100, seed=1)
    assert 3.5 < corr["sqrt_d"][0] < 4.5 and 28 < corr["sqrt_d"][1] < 36
    np.testing.assert_allclose(corr["d_scaled"], 0.5, atol=0.05)
    assert np.all((indep["sqrt_d"] > 0.6) & (indep["sqrt_d"] < 1.0))
    assert indep["d_scaled"][1] < indep["d_scaled"][0] / 4  # /d shrinks independent logits like 1/√d


def test_softmax_entropy():
    assert SL.softmax_entropy(np.zeros(8)) == pytest.approx(np.log(8))
    assert SL.softmax_entropy(np.array([1e4, 0.0, -1e4])) == pytest.approx(0.0, abs=1e-12)
    assert SL.softmax_entropy(np.array([[0.0, 0.0], [1e4, 0.0]])) == pytest.approx(np.log(2) / 2)


# ---- the course swaps the exercises in ------------------------------------------------------------------
def test_linear_attention_runs_on_the_solutions():
    q, k, v = qkv(2, nq=6, nk=6, seed=10)
    expected = [LA.linear_attention(q, k, v, causal=c).data for c in (False, True)]
    with mta.course.use("solutions", only="14"):
        got = [LA.linear_attention(q, k, v, causal=c).data for c in (False, True)]
        assert LA.causal_linear_attention_prefix.__module__ != "minitorch_attn.functional.linear_attention"
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-12)
