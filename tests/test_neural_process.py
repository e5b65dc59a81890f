"""Conditional neural processes with mean pooling or cross-attention (functional/ and nn/neural_process.py) and
the GP curve sampler (data/gp_curves.py), lesson 15.

Oracles: torch's scaled_dot_product_attention, softplus and gaussian_nll_loss; the RBF formula written out;
float64 finite differences (`mta.gradcheck`) for every backward. Properties: invariance to the order of the
context points, one summary for all targets under mean pooling, σ >= 0.1, clear errors for wrong shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minitorch_attn as mta
from minitorch_attn import nn
from minitorch_attn.data.gp_curves import gp_curves, rbf_kernel
from minitorch_attn.evaluation.neural_process import context_errors
from minitorch_attn.functional import neural_process as NP
from minitorch_attn.training.neural_process import train_neural_process


# ---- the GP sampler ----------------------------------------------------------------------------------------
def test_rbf_kernel_formula():
    x1 = np.array([[0.0], [0.5], [2.0]])
    x2 = np.array([[0.0], [1.0]])
    k = rbf_kernel(x1, x2, length_scale=0.5, variance=2.0)
    expected = 2.0 * np.exp(-((x1 - x2.T) ** 2) / (2 * 0.25))
    np.testing.assert_allclose(k, expected, rtol=1e-14)
    with pytest.raises(ValueError, match="length_scale"):
        rbf_kernel(x1, x2, length_scale=0.0)


def test_gp_curves_shapes_split_and_seed():
    b = gp_curves(4, n_points=30, n_context=7, seed=5)
    assert b.x_context.shape == b.y_context.shape == (4, 7, 1)
    assert b.x_target.shape == b.y_target.shape == (4, 30, 1)
    np.testing.assert_array_equal(b.x_context, b.x_target[:, :7])  # the context is part of the targets
    np.testing.assert_array_equal(b.y_context, b.y_target[:, :7])
    assert b.x_target.min() >= -2 and b.x_target.max() <= 2
    again = gp_curves(4, n_points=30, n_context=7, seed=5)
    assert all(np.array_equal(a, c) for a, c in zip(b, again))
    assert not np.array_equal(b.y_target, gp_curves(4, n_points=30, n_context=7, seed=6).y_target)
    with pytest.raises(ValueError, match="n_context"):
        gp_curves(2, n_points=5, n_context=6)
    with pytest.raises(ValueError, match="n_context"):
        gp_curves(2, n_points=5, n_context=0)


def test_gp_curves_have_the_kernel_covariance():
    """Over many curves at two fixed distances the empirical covariance matches the kernel."""
    b = gp_curves(4000, n_points=40, n_context=1, length_scale=0.4, noise=0.02, seed=1, dtype=np.float64)
    x, y = b.x_target[..., 0], b.y_target[..., 0]
    assert y.var() == pytest.approx(1.0 + 0.02**2, rel=0.05)
    d = np.abs(x[:, 0] - x[:, 1])
    near, far = d < 0.1, d > 1.5
    k = rbf_kernel(np.array([[0.0]]), np.array([[0.05]]), 0.4)[0, 0]
    assert np.mean(y[near, 0] * y[near, 1]) == pytest.approx(k, abs=0.1)
    assert abs(np.mean(y[far, 0] * y[far, 1])) < 0.1


# ---- pieces ------------------------------------------------------------------------------------------------
def test_cross_attention_aggregate_matches_torch_and_gradcheck():
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 6))
    out = NP.cross_attention_aggregate(mta.tensor(q), mta.tensor(k), mta.tensor(v)).data
    ref = torch.nn.functional.scaled_dot_product_attention(*(torch.tensor(a) for a in (q, k, v)))
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-12, atol=1e-14)
    ts = [mta.tensor(a, requires_grad=True) for a in (q, k, v)]
    assert mta.gradcheck(NP.cross_attention_aggregate, ts)
    # one context point: every target reads exactly its value
    one = NP.cross_attention_aggregate(mta.tensor(q), mta.tensor(k[:, :1]), mta.tensor(v[:, :1])).data
    np.testing.assert_allclose(one, np.broadcast_to(v[:, :1], one.shape), rtol=1e-12)
    huge = NP.cross_attention_aggregate(mta.tensor(q * 1e4), mta.tensor(k * 1e4), mta.tensor(v)).data
    assert np.isfinite(huge).all()


def test_softplus_and_gaussian_nll_match_torch():
    x = np.array([-800.0, -30.0, -1.0, 0.0, 2.0, 40.0, 800.0])
    np.testing.assert_allclose(NP.softplus(mta.tensor(x)).data,  # torch switches to x itself above threshold=20
                               torch.nn.functional.softplus(torch.tensor(x)).numpy(), rtol=1e-12)
    rng = np.random.default_rng(1)
    mu, y = rng.standard_normal((3, 4, 1)), rng.standard_normal((3, 4, 1))
    sigma = np.exp(rng.standard_normal((3, 4, 1)) * 0.3)
    ours = NP.gaussian_nll(mta.tensor(mu), mta.tensor(sigma), y).data
    ref = torch.nn.functional.gaussian_nll_loss(torch.tensor(mu), torch.tensor(y), torch.tensor(sigma**2), full=True)
    assert float(ours) == pytest.approx(float(ref), rel=1e-12)
    ts = [mta.tensor(mu, requires_grad=True), mta.tensor(sigma, requires_grad=True)]
    assert mta.gradcheck(lambda m, s: NP.gaussian_nll(m, s, y), ts)
    assert mta.gradcheck(NP.softplus, [mta.tensor(np.array([-3.0, -0.1, 0.2, 5.0]), requires_grad=True)])
    with pytest.raises(ValueError, match="one shape"):
        NP.gaussian_nll(mta.tensor(mu), mta.tensor(sigma), y[:, :2])


# ---- the model ---------------------------------------------------------------------------------------------
def model(aggregation, seed=0):
    return nn.ConditionalNP(hidden=16, aggregation=aggregation, num_heads=2, rng=np.random.default_rng(seed),
                            dtype=np.float64)


@pytest.mark.parametrize("aggregation", nn.neural_process.AGGREGATIONS)
def test_shapes_sigma_floor_and_context_order_invariance(aggregation):
    m = model(aggregation)
    b = gp_curves(3, n_points=9, n_context=4, seed=2, dtype=np.float64)
    mu, sigma = m(b.x_context, b.y_context, b.x_target)
    assert mu.shape == sigma.shape == (3, 9, 1)
    assert (sigma.data >= 0.1).all()
    perm = np.array([2, 0, 3, 1])
    mu_p, sigma_p = m(b.x_context[:, perm], b.y_context[:, perm], b.x_target)
    np.testing.assert_allclose(mu_p.data, mu.data, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(sigma_p.data, sigma.data, rtol=1e-12, atol=1e-14)


def test_mean_pooling_gives_every_target_the_same_summary_and_attention_does_not():
    b = gp_curves(2, n_points=8, n_context=5, seed=3, dtype=np.float64)
    xc, yc, xt = (mta.tensor(a) for a in (b.x_context, b.y_context, b.x_target))
    r_mean = model("mean").representation(xc, yc, xt).data
    np.testing.assert_allclose(r_mean, np.broadcast_to(r_mean[:, :1], r_mean.shape))
    dot = model("dot")
    r_dot = dot.representation(xc, yc, xt).data
    assert np.abs(r_dot - r_dot[:, :1]).max() > 1e-6
    np.testing.assert_allclose(dot.attention.sum(-1), 1.0, rtol=1e-12)
    assert dot.attention.shape == (2, 8, 5)


@pytest.mark.parametrize("aggregation", nn.neural_process.AGGREGATIONS)
def test_model_gradcheck_float64(aggregation):
    m = model(aggregation, seed=4)
    b = gp_curves(2, n_points=5, n_context=3, seed=5, dtype=np.float64)
    xc = mta.tensor(b.x_context, requires_grad=True)
    yc = mta.tensor(b.y_context, requires_grad=True)
    xt = mta.tensor(b.x_target, requires_grad=True)

    def loss(a, c, t):
        mu, sigma = m(a, c, t)
        return NP.gaussian_nll(mu, sigma, b.y_target)

    assert mta.gradcheck(loss, [xc, yc, xt])
    first = m.encoder.layers[0].weight
    assert mta.gradcheck(lambda _w: loss(xc, yc, xt), [first])


def test_wrong_shapes_raise_clear_errors():
    m = model("dot")
    xc, yc, xt = np.zeros((2, 4, 1)), np.zeros((2, 4, 1)), np.zeros((2, 6, 1))
    with pytest.raises(ValueError, match=r"\(2, 3, 1\)"):
        m(xc, yc[:, :3], xt)
    with pytest.raises(ValueError, match=r"\(4, 1\)"):
        m(xc[0], yc[0], xt[0])
    with pytest.raises(ValueError, match=r"\(2, 6, 2\)"):
        m(xc, yc, np.zeros((2, 6, 2)))
    with pytest.raises(ValueError, match="Nc >= 1"):
        m(xc[:, :0], yc[:, :0], xt)
    with pytest.raises(ValueError, match="aggregation"):
        nn.ConditionalNP(aggregation="max")


def test_training_lowers_the_loss_and_attention_fits_the_context_better():
    """A small version of the lesson's claim (few steps): attention reconstructs the context points better."""
    test = gp_curves(32, n_points=30, n_context=10, seed=999)
    errs = {}
    for agg in ("mean", "dot"):
        m = nn.ConditionalNP(hidden=16, aggregation=agg, rng=np.random.default_rng(0))
        losses = train_neural_process(m, steps=150, batch_size=8, n_points=30, seed=0, lr=3e-3)
        assert np.mean(losses[-20:]) < np.mean(losses[:20])
        errs[agg] = context_errors(m, test)["context_mse"]
    assert errs["dot"] < 0.8 * errs["mean"], errs
