"""Numerical stability of the fused ops: huge logits, -inf rows, saturated sigmoids, constant rows.

References are float64 NumPy written the stable way (subtract the max first); torch, when installed,
is the oracle for the NaN / -inf conventions of fully masked rows.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import functional as F

try:
    import torch
except ImportError:  # pragma: no cover - torch is the optional parity oracle
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch (the parity oracle) is not installed")

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
RTOL = {np.float32: 1e-6, np.float64: 1e-13}

BIG = np.array([
    [1e4, 1e4 - 1, 1e4 - 5, 1e4 - 0.5],      # all large positive
    [-1e4, -1e4 + 2, -1e4 - 3, -1e4 + 0.25],  # all large negative
    [1e4, -1e4, 0.0, 1e4 - 2],               # mixed ±1e4
    [-1e4, 1e4, -1e4, -1e4],                 # one winner
])


def ref_logsumexp(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True)))[..., 0]


def ref_log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def ref_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture
def no_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow / invalid-value RuntimeWarning fails the test
        yield


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_family_at_huge_logits(dtype, no_warnings):
    g = np.random.default_rng(0).standard_normal(BIG.shape).astype(dtype)
    # the gradients of lse, softmax and log_softmax for upstream g, in float64
    p = ref_softmax(BIG)
    expected = {
        "softmax": (p, p * (g - (g * p).sum(-1, keepdims=True))),
        "log_softmax": (ref_log_softmax(BIG), g - p * g.sum(-1, keepdims=True)),
        "logsumexp": (ref_logsumexp(BIG), g[:, :1] * p),
    }
    for name, fn in [("softmax", F.softmax), ("log_softmax", F.log_softmax), ("logsumexp", F.logsumexp)]:
        x = mta.tensor(BIG.astype(dtype), requires_grad=True)
        out = fn(x, axis=-1)
        assert np.isfinite(out.data).all(), name
        value, grad = expected[name]
        np.testing.assert_allclose(out.data, value, rtol=RTOL[dtype], atol=1e-30, err_msg=name)
        out.backward(g if name != "logsumexp" else g[:, 0])
        assert np.isfinite(x.grad).all(), name
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(x.grad, grad, rtol=rtol, atol=1e-6, err_msg=name)


def test_softmax_of_huge_logits_is_one_hot():
    p = F.softmax(mta.tensor(BIG), axis=-1).data
    np.testing.assert_array_equal(p[3], [0, 1, 0, 0])
    assert p[2, 0] == pytest.approx(1 / (1 + np.exp(-2.0)))
    np.testing.assert_allclose(F.softmax(mta.tensor(BIG), temperature=1e-3).data.sum(-1), 1, rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fully_masked_rows(dtype, no_warnings):
    x = np.array([[-np.inf] * 3, [0.0, 1.0, -np.inf]], dtype=dtype)
    g = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], dtype=dtype)
    p_row1 = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()

    t = mta.tensor(x, requires_grad=True)
    lse = F.logsumexp(t, axis=-1)
    assert lse.data[0] == -np.inf
    assert lse.data[1] == pytest.approx(np.log(np.exp(0) + np.exp(1)), rel=1e-6)
    lse.backward(np.array([1.0, 1.0], dtype=dtype))
    np.testing.assert_array_equal(t.grad[0], 0.0)  # nothing could change a -inf row: gradient 0, not NaN
    np.testing.assert_allclose(t.grad[1], [*p_row1, 0.0], rtol=1e-6)

    t = mta.tensor(x, requires_grad=True)
    p = F.softmax(t, axis=-1)
    assert np.isnan(p.data[0]).all()  # like torch: 0 / 0
    np.testing.assert_allclose(p.data[1], [*p_row1, 0.0], rtol=1e-6)
    p.backward(g)
    assert np.isfinite(t.grad[1]).all() and t.grad[1, 2] == 0

    t = mta.tensor(x, requires_grad=True)
    logp = F.log_softmax(t, axis=-1)
    assert np.isnan(logp.data[0]).all()
    assert logp.data[1, 2] == -np.inf and np.isfinite(logp.data[1, :2]).all()
    logp.backward(g)
    assert np.isfinite(t.grad[1]).all()


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_masked_rows_match_torch(name, dtype):
    """Forward values (NaN and -inf included) and gradients as torch, except logsumexp's gradient on an
    all -inf row, which is 0 here where torch gives NaN (documented in fused.py)."""
    x = np.array([[-np.inf] * 4, [0.0, -np.inf, 3.0, -np.inf], [2.0, -1.0, 0.5, 1.0]], dtype=dtype)
    g = np.random.default_rng(1).standard_normal((3, 4) if name != "logsumexp" else (3,)).astype(dtype)
    ours = {"softmax": F.softmax, "log_softmax": F.log_softmax, "logsumexp": F.logsumexp}[name]
    theirs = {"softmax": torch.softmax, "log_softmax": torch.log_softmax, "logsumexp": torch.logsumexp}[name]
    a, b = mta.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, ref = ours(a, axis=-1), theirs(b, -1)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-6, equal_nan=True)
    out.backward(g)
    ref.backward(torch.tensor(g))
    expected = b.grad.numpy().copy()
    if name == "logsumexp":
        expected[0] = 0.0
    np.testing.assert_allclose(a.grad, expected, rtol=1e-6, atol=1e-7, equal_nan=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_at_huge_logits(dtype, no_warnings):
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4], [-1e4, -1e4, -1e4 + 3]], dtype=dtype)
    target = np.array([2, 0, 2])
    expected = -ref_log_softmax(logits)[np.arange(3), target]
    for smoothing in (0.0, 0.1):
        z = mta.tensor(logits, requires_grad=True)
        loss = F.cross_entropy(z, target, label_smoothing=smoothing, reduction="none")
        assert np.isfinite(loss.data).all()
        if smoothing == 0:
            np.testing.assert_allclose(loss.data, expected, rtol=RTOL[dtype])
        loss.sum().backward()
        assert np.isfinite(z.grad).all()
        np.testing.assert_allclose(z.grad.sum(axis=1), 0, atol=1e-6)  # softmax - target sums to 0


@needs_torch
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_at_huge_logits_matches_torch(dtype, smoothing):
    logits = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4], [-1e4, -1e4, -1e4 + 3], [5e3, -5e3, 1.0]],
                      dtype=dtype)
    target = np.array([2, 0, 2, -100])
    z, zt = mta.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    loss = F.cross_entropy(z, target, label_smoothing=smoothing)
    ref = torch.nn.functional.cross_entropy(zt, torch.tensor(target), label_smoothing=smoothing)
    np.testing.assert_allclose(loss.data, ref.detach().numpy(), rtol=1e-6)
    loss.backward()
    ref.backward()
    np.testing.assert_allclose(z.grad, zt.grad.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("smoothing", [0.0, 0.3])
def test_cross_entropy_with_every_target_ignored(smoothing):
    z = mta.tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    target = np.full(3, -100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = F.cross_entropy(z, target, label_smoothing=smoothing)
    assert np.isnan(loss.item())  # a mean over nothing, as in torch
    loss.backward()
    np.testing.assert_array_equal(z.grad, 0.0)  # as in torch: ignored targets send no gradient
    assert F.cross_entropy(z, target, reduction="sum").item() == 0.0
    np.testing.assert_array_equal(F.cross_entropy(z, target, reduction="none").data, 0.0)
    if torch is not None:
        ref = torch.nn.functional.cross_entropy(torch.tensor(z.data), torch.tensor(target),
                                                label_smoothing=smoothing)
        assert torch.isnan(ref)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_saturates_without_overflow(dtype, no_warnings):
    x = mta.tensor(np.array([-1e4, -100.0, -20.0, 0.0, 20.0, 100.0, 1e4], dtype=dtype), requires_grad=True)
    s = x.sigmoid()
    assert s.dtype == dtype
    expected = np.array([0.0, np.exp(-100.0), 1 / (1 + np.exp(20.0)), 0.5, 1 / (1 + np.exp(-20.0)), 1.0, 1.0])
    np.testing.assert_allclose(s.data, expected, rtol=1e-6, atol=1e-38)  # exp(-100) is subnormal in float32
    s.sum().backward()
    assert np.isfinite(x.grad).all() and x.grad[0] == 0 and x.grad[-1] == 0
    np.testing.assert_allclose(F.sigmoid(x).data, s.data)


ACTIVATIONS = {  # name: (fn, its derivative at -1e4 and at +1e4)
    "tanh": (F.tanh, (0.0, 0.0)),
    "relu": (F.relu, (0.0, 1.0)),
    "gelu": (F.gelu, (0.0, 1.0)),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), (0.0, 1.0)),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_other_activations_at_huge_inputs(name, dtype, no_warnings):
    fn, (d_lo, d_hi) = ACTIVATIONS[name]
    x = mta.tensor(np.array([-1e4, -50.0, 0.5, 50.0, 1e4], dtype=dtype), requires_grad=True)
    out = fn(x)
    assert np.isfinite(out.data).all()
    out.sum().backward()
    assert np.isfinite(x.grad).all()
    assert (x.grad[0], x.grad[-1]) == (pytest.approx(d_lo), pytest.approx(d_hi))


@pytest.mark.parametrize("dtype", DTYPES)
def test_layer_norm_of_constant_rows(dtype, no_warnings):
    rows = [[3.0, 3.0, 3.0, 3.0], [1.0, 2.0, 3.0, 4.0], [-7.0] * 4]
    x = mta.tensor(np.array(rows, dtype=dtype), requires_grad=True)
    w = mta.tensor(np.array([1.0, 2.0, 3.0, 4.0], dtype=dtype), requires_grad=True)
    b = mta.tensor(np.array([0.1, 0.2, 0.3, 0.4], dtype=dtype), requires_grad=True)
    out = F.layer_norm(x, 4, w, b)
    assert np.isfinite(out.data).all()
    np.testing.assert_allclose(out.data[0], b.data)  # var 0: x̂ = 0, the output is the bias
    np.testing.assert_allclose(out.data[2], b.data)
    g = np.random.default_rng(0).standard_normal((3, 4)).astype(dtype)
    out.backward(g)
    for p in (x, w, b):
        assert np.isfinite(p.grad).all()
    # var 0 and xhat 0: dx = rstd * (g*w - mean(g*w)), with rstd = 1/sqrt(eps)
    gw = g[0] * w.data
    np.testing.assert_allclose(x.grad[0], (gw - gw.mean()) / np.sqrt(1e-5), rtol=1e-4)
    if torch is not None:
        xt, wt, bt = (torch.tensor(p.data, requires_grad=True) for p in (x, w, b))
        ref = torch.nn.functional.layer_norm(xt, (4,), wt, bt)
        ref.backward(torch.tensor(g))
        np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-5, atol=1e-6)
        for ours, theirs in [(x, xt), (w, wt), (b, bt)]:
            np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-4, atol=1e-5)


def test_var_and_mean_are_float32_accurate_on_offset_data():
    x = np.random.default_rng(0).standard_normal(1000) * 1e-2 + 1e3
    t = mta.tensor(x.astype(np.float32))
    assert t.mean().dtype == np.float32
    assert t.var().item() == pytest.approx(x.astype(np.float32).astype(np.float64).var(ddof=1), rel=1e-2)


def test_logsumexp_is_monotone_and_bounded_by_max_plus_log_n():
    x = np.random.default_rng(0).standard_normal((5, 7)) * 1e3
    lse = F.logsumexp(mta.tensor(x), axis=-1).data
    assert (lse >= x.max(-1)).all() and (lse <= x.max(-1) + np.log(7) + 1e-9).all()
