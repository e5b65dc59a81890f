"""Lesson 12, softmax is not enough: the dispersion bound, entropy, adaptive temperature (against torch and a
float64 reference of the paper's JAX listing), the max-retrieval task and head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import minitorch_attn as mta
from minitorch_attn.data.max_retrieval import max_retrieval
from minitorch_attn.functional.softmax_limits import (
    ENTROPY_THRESHOLD,
    POLY_COEFFS,
    adaptive_temperature,
    beta_curve,
    beta_cutoff_entropy,
    entropy,
    max_weight_bound,
)
from minitorch_attn.nn import MaxRetrievalHead

INF = np.inf


def ref_softmax(z, axis=-1):
    return torch.softmax(torch.as_tensor(np.asarray(z, dtype=np.float64)), dim=axis).numpy()


def ref_adaptive(z):
    """The paper's listing in float64 via torch (entropy with 0 log 0 = 0, as Categorical does)."""
    zt = torch.as_tensor(np.asarray(z, dtype=np.float64))
    h = torch.distributions.Categorical(logits=zt).entropy().numpy()
    poly = np.polyval(POLY_COEFFS, h)
    beta = np.where(h > 0.5, np.maximum(poly, 1.0), 1.0)
    return torch.softmax(zt * torch.as_tensor(beta)[..., None], dim=-1).numpy(), beta


# ---- max_weight_bound -----------------------------------------------------------------------------------
def test_bound_formula_and_edges():
    d = np.array([0.0, 0.5, 3.0, 20.0])
    for n in (1, 2, 16, 1024):
        np.testing.assert_allclose(max_weight_bound(d, n), np.exp(d) / (np.exp(d) + n - 1), rtol=1e-13)
    assert max_weight_bound(0.0, 8) == pytest.approx(1 / 8)  # all logits equal: uniform
    assert max_weight_bound(1e4, 10**6) == 1.0 and max_weight_bound(INF, 5) == 1.0  # no inf / inf
    assert max_weight_bound(3.0, 1) == 1.0
    assert isinstance(max_weight_bound(1.0, 4), float)
    assert max_weight_bound(np.zeros((3, 1)), np.array([1, 2, 4])).shape == (3, 3)
    ns = 2 ** np.arange(1, 30)
    assert np.all(np.diff(max_weight_bound(5.0, ns)) < 0) and max_weight_bound(5.0, 2**40) < 1e-9


def test_bound_is_attained_by_one_top_logit_and_the_rest_at_the_bottom():
    for delta, n in [(0.0, 5), (2.0, 16), (7.5, 1000), (30.0, 3)]:
        z = np.zeros(n)
        z[n // 2] = delta
        assert ref_softmax(z).max() == pytest.approx(max_weight_bound(delta, n), rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 300), delta=st.floats(0, 40), seed=st.integers(0, 10**6))
def test_bound_holds_for_random_logits_with_spread_delta(n, delta, seed):
    rng = np.random.default_rng(seed)
    z = rng.uniform(0, delta, n) + rng.normal() * 100  # any offset: softmax does not see it
    spread = z.max() - z.min()
    assert ref_softmax(z).max() <= max_weight_bound(spread, n) * (1 + 1e-12)


def test_bound_rejects_bad_arguments():
    with pytest.raises(ValueError, match="delta"):
        max_weight_bound(-0.1, 4)
    with pytest.raises(ValueError, match="delta"):
        max_weight_bound(np.nan, 4)
    with pytest.raises(ValueError, match="n \\(the number of items\\) must be >= 1; got 0"):
        max_weight_bound(1.0, 0)


# ---- entropy --------------------------------------------------------------------------------------------
def test_entropy_matches_torch_categorical():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 7, 33)) * 3
    p = ref_softmax(z)
    expected = torch.distributions.Categorical(logits=torch.as_tensor(z)).entropy().numpy()
    np.testing.assert_allclose(entropy(p), expected, rtol=1e-12)
    np.testing.assert_allclose(entropy(np.moveaxis(p, -1, 0), axis=0), expected, rtol=1e-12)


def test_entropy_edges_masked_one_hot_uniform_single():
    z = np.array([[0.5, -INF, 1.5, -INF], [3.0, 3.0, 3.0, 3.0], [1e4, 0.0, -1e4, 2.0]])
    p = ref_softmax(z)
    h = entropy(p)
    expected = torch.distributions.Categorical(logits=torch.as_tensor(z)).entropy().numpy()
    assert np.isfinite(h).all()
    np.testing.assert_allclose(h, expected, rtol=1e-12, atol=1e-300)
    assert h[1] == pytest.approx(np.log(4)) and h[2] == 0.0  # uniform: log n; one-hot: exactly 0
    assert entropy(np.array([1.0])) == 0.0  # n = 1
    assert entropy(np.full((2, 1000), 1e-3, np.float32)).dtype == np.float32
    with np.errstate(invalid="ignore"):
        assert np.isnan(entropy(np.array([[np.nan, np.nan], [0.5, 0.5]]))[0])  # an all-masked row's softmax


def test_entropy_rejects_logits_and_bad_axes():
    with pytest.raises(ValueError, match="negative entries.*Did you pass logits"):
        entropy(np.array([0.5, -0.2, 0.7]))
    with pytest.raises(ValueError, match="summing to 1.*row sums from 1 to 3"):
        entropy(np.array([[1.0, 2.0], [0.5, 0.5]]))
    with pytest.raises(ValueError, match="out of range for an array of shape \\(2, 3\\)"):
        entropy(np.full((2, 3), 1 / 3), axis=2)
    with pytest.raises(ValueError, match="0-d"):
        entropy(np.float64(1.0))
    with pytest.raises(ValueError, match="empty"):
        entropy(np.zeros((2, 0)))


# ---- adaptive temperature -------------------------------------------------------------------------------
def test_poly_order_and_cutoff():
    # highest degree first: beta(2) = -0.037*16 + 0.481*8 - 2.3*4 + 4.917*2 - 1.791
    assert beta_curve(2.0) == pytest.approx(-0.592 + 3.848 - 9.2 + 9.834 - 1.791)
    cut = beta_cutoff_entropy()
    assert 5.9 < cut < 6.0
    assert np.polyval(POLY_COEFFS, cut) == pytest.approx(1.0, abs=1e-12)
    h = np.linspace(cut + 1e-6, 30, 500)
    assert np.all(np.polyval(POLY_COEFFS, h) < 1) and np.all(beta_curve(h) == 1.0)
    assert np.all(beta_curve(np.linspace(0, ENTROPY_THRESHOLD, 50)) == 1.0)
    assert beta_curve(np.linspace(0, 12, 1000)).min() == 1.0


def test_adaptive_matches_float64_reference():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((64, 50)) * np.linspace(0.1, 8, 64)[:, None]  # from near-uniform to near-one-hot
    probs, beta = adaptive_temperature(z)
    ep, eb = ref_adaptive(z)
    assert beta.shape == (64,) and probs.shape == z.shape
    np.testing.assert_allclose(beta, eb, rtol=1e-12)
    np.testing.assert_allclose(probs, ep, rtol=1e-10, atol=1e-300)
    assert (beta > 1).any() and (beta == 1).any()  # both branches exercised
    h0, h1 = entropy(ref_softmax(z)), entropy(probs)
    assert np.all(h1 <= h0 + 1e-12), "beta >= 1 must never raise the entropy"
    p3, b3 = adaptive_temperature(z.T, axis=0)
    np.testing.assert_allclose(p3.T, probs, rtol=1e-12)
    np.testing.assert_allclose(b3, beta, rtol=0)


def test_adaptive_no_op_below_threshold_and_clamped_past_cutoff():
    z = np.array([[6.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, -INF]])  # H well below 0.5? first row: yes
    p0 = ref_softmax(z)
    assert entropy(p0)[0] <= ENTROPY_THRESHOLD
    probs, beta = adaptive_temperature(z)
    assert beta[0] == 1.0 and np.array_equal(probs[0], p0[0])
    flat = np.random.default_rng(2).standard_normal((8, 1024)) * 0.3  # H about log 1024 = 6.9 > cutoff
    assert entropy(ref_softmax(flat)).min() > beta_cutoff_entropy()
    probs, beta = adaptive_temperature(flat)
    assert np.all(beta == 1.0)
    np.testing.assert_allclose(probs, ref_softmax(flat), rtol=1e-12)


def test_adaptive_edges_masked_huge_single_equal_dtype_tensor():
    z = np.array([[0.3, -INF, 0.1, 0.2, -INF], [1e4, 1e4 - 0.5, -1e4, 0.0, 1e4 - 1.0],
                  [-INF, -INF, -INF, -INF, -INF], [2.0, 2.0, 2.0, 2.0, 2.0]])
    with np.errstate(invalid="ignore"):
        probs, beta = adaptive_temperature(z)
    assert probs[0, 1] == 0.0 and probs[0, 4] == 0.0  # masked entries stay at 0
    ep, eb = ref_adaptive(z[[0, 1, 3]])
    np.testing.assert_allclose(probs[[0, 1, 3]], ep, rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(beta[[0, 1, 3]], eb, rtol=1e-12)
    assert np.isnan(probs[2]).all() and beta[2] == 1.0  # all masked: no softmax, no temperature
    np.testing.assert_allclose(probs[3], 0.2)  # equal logits stay uniform whatever beta is
    p1, b1 = adaptive_temperature(np.array([[3.0]]))
    assert p1[0, 0] == 1.0 and b1[0] == 1.0
    z32 = np.random.default_rng(3).standard_normal((3, 40)).astype(np.float32)
    p32, b32 = adaptive_temperature(mta.tensor(z32))
    assert p32.dtype == np.float32 and b32.dtype == np.float32
    np.testing.assert_allclose(p32, ref_adaptive(z32)[0], rtol=1e-4, atol=1e-7)


def test_adaptive_rejects_nan_and_plus_inf():
    with pytest.raises(ValueError, match="finite or -inf.*index \\(0, 1\\)"):
        adaptive_temperature(np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match="finite or -inf"):
        adaptive_temperature(np.array([0.0, INF]))
    with pytest.raises(ValueError, match="out of range"):
        adaptive_temperature(np.zeros((2, 3)), axis=-3)


# ---- the task and the head ------------------------------------------------------------------------------
def test_max_retrieval_task():
    b = max_retrieval(5, 9, seed=4)
    assert b.values.shape == (5, 9) and b.values.dtype == np.float32
    assert np.array_equal(b.argmax, b.values.argmax(1)) and np.array_equal(b.target, b.values.max(1))
    assert np.array_equal(max_retrieval(5, 9, seed=4).values, b.values)
    assert not np.array_equal(max_retrieval(5, 9, seed=5).values, b.values)
    assert ((b.values >= 0) & (b.values < 1)).all()
    with pytest.raises(ValueError, match="n_items=0"):
        max_retrieval(3, 0)


def test_head_shapes_gradcheck_and_logit_range():
    head = MaxRetrievalHead(hidden=5, dim=3, rng=np.random.default_rng(0), dtype=np.float64)
    x = max_retrieval(4, 6, seed=0, dtype=np.float64).values
    out, w, s = head(x)
    assert out.shape == (4,) and w.shape == (4, 6) and s.shape == (4, 6)
    np.testing.assert_allclose(w.data, ref_softmax(s.data), rtol=1e-12)
    np.testing.assert_allclose(out.data, (w.data * x).sum(1), rtol=1e-12)
    params = list(head.parameters())
    xt = mta.tensor(x, requires_grad=True)

    def loss(values, *ps):
        return head(values)[0]

    assert mta.gradcheck(loss, [xt, *params])
    delta = head.logit_range()
    spread = (s.data.max(1) - s.data.min(1))
    assert np.all(spread <= delta + 1e-9)
    assert np.all(w.data.max(1) <= max_weight_bound(delta, 6) + 1e-12)
    with pytest.raises(ValueError, match="\\(batch, n_items\\); got \\(6,\\)"):
        head(x[0])
