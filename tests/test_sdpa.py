"""F.scaled_dot_product_attention against torch's function: values and gradients of q, k, v (float32 to
1e-5, float64 to 1e-12), for rectangular shapes, broadcast batch axes, boolean, float and causal masks,
custom scales; the fully-masked-row convention; errors that name the shapes."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn.functional.sdpa import causal_mask

torch = pytest.importorskip("torch")
TF = torch.nn.functional

TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


def randn(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def both(q, k, v, grad, attn_mask=None, **kw):
    """(ours, torch's): each a tuple (out, dq, dk, dv) as arrays."""
    Q, K, V = (mta.tensor(a, requires_grad=True) for a in (q, k, v))
    out = F.scaled_dot_product_attention(Q, K, V, attn_mask=attn_mask, **kw)
    out.backward(grad)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    tm = None if attn_mask is None else torch.tensor(attn_mask)
    tout = TF.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm, **kw)
    tout.backward(torch.tensor(grad))
    return ((out.data, Q.grad, K.grad, V.grad),
            (tout.detach().numpy(), tq.grad.numpy(), tk.grad.numpy(), tv.grad.numpy()))


def assert_parity(ours, theirs, dtype):
    for name, a, b in zip(("out", "dq", "dk", "dv"), ours, theirs):
        assert a.dtype == dtype, f"{name} has dtype {a.dtype}, expected {dtype}"
        np.testing.assert_allclose(a, b, err_msg=name, **TOL[dtype])


SHAPES = [  # q, k, v
    ((3, 4), (5, 4), (5, 2)),  # unbatched, Nq != Nk, d != dv
    ((2, 6, 8), (2, 9, 8), (2, 9, 5)),
    ((2, 3, 7, 16), (2, 3, 4, 16), (2, 3, 4, 16)),
    ((2, 3, 5, 8), (1, 3, 6, 8), (2, 1, 6, 4)),  # broadcast batch axes
    ((4, 2, 8), (2, 8), (2, 3)),  # one k, v for every batch element
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", SHAPES, ids=lambda s: "x".join(map(str, s[0])) + "-" + "x".join(map(str, s[1])))
def test_parity_without_mask(shapes, dtype):
    qs, ks, vs = shapes
    q, k, v = randn(qs, 0, dtype), randn(ks, 1, dtype), randn(vs, 2, dtype)
    out_shape = np.broadcast_shapes(qs[:-2], ks[:-2], vs[:-2]) + (qs[-2], vs[-1])
    g = randn(out_shape, 3, dtype)
    assert_parity(*both(q, k, v, g), dtype)
    assert_parity(*both(q, k, v, g, scale=0.37), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parity_boolean_masks(dtype):
    q, k, v = randn((2, 3, 5, 8), 0, dtype), randn((2, 3, 7, 8), 1, dtype), randn((2, 3, 7, 4), 2, dtype)
    g = randn((2, 3, 5, 4), 3, dtype)
    rng = np.random.default_rng(4)
    for shape in ((5, 7), (2, 1, 5, 7), (2, 3, 5, 7), (1, 7), (2, 1, 1, 7)):
        mask = rng.random(shape) < 0.6
        mask[..., 0] = True  # no fully masked rows here (torch's function agrees on those, tested below)
        assert_parity(*both(q, k, v, g, attn_mask=mask), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parity_float_masks(dtype):
    q, k, v = randn((2, 4, 6), 0, dtype), randn((2, 5, 6), 1, dtype), randn((2, 5, 3), 2, dtype)
    g = randn((2, 4, 3), 3, dtype)
    bias = randn((4, 5), 4, dtype)
    assert_parity(*both(q, k, v, g, attn_mask=bias), dtype)
    bias[1, 3:] = -np.inf
    bias[2, 0] = -np.inf
    assert_parity(*both(q, k, v, g, attn_mask=bias), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("nq,nk", [(6, 6), (4, 7), (7, 4), (1, 5)])
def test_parity_causal(nq, nk, dtype):
    q, k, v = randn((2, 2, nq, 8), 0, dtype), randn((2, 2, nk, 8), 1, dtype), randn((2, 2, nk, 3), 2, dtype)
    g = randn((2, 2, nq, 3), 3, dtype)
    assert_parity(*both(q, k, v, g, is_causal=True), dtype)


def test_causal_mask_is_torchs_top_left_alignment():
    for nq, nk in ((3, 3), (2, 5), (5, 2)):
        expected = torch.ones(nq, nk, dtype=torch.bool).tril(diagonal=0).numpy()
        np.testing.assert_array_equal(causal_mask(nq, nk), expected)
    np.testing.assert_array_equal(causal_mask(2, 4, offset=2), [[True, True, True, False], [True] * 4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fully_masked_rows_give_zero_output_and_zero_gradient_like_torch(dtype):
    q, k, v = randn((2, 3, 4), 0, dtype), randn((2, 5, 4), 1, dtype), randn((2, 5, 2), 2, dtype)
    g = randn((2, 3, 2), 3, dtype)
    mask = np.ones((2, 3, 5), dtype=bool)
    mask[0, 1] = False
    mask[1, 2] = False
    ours, theirs = both(q, k, v, g, attn_mask=mask)
    assert_parity(ours, theirs, dtype)  # torch 2.13 on the CPU: 0 output, 0 gradient; so do we
    out, dq, dk, dv = ours
    assert np.all(out[0, 1] == 0) and np.all(out[1, 2] == 0)
    assert np.all(dq[0, 1] == 0) and np.all(dq[1, 2] == 0)
    assert all(np.isfinite(a).all() for a in ours)
    float_mask = np.where(mask, 0.0, -np.inf).astype(dtype)
    assert_parity(*both(q, k, v, g, attn_mask=float_mask), dtype)
    with np.errstate(all="raise"):  # no 0/0 or inf - inf anywhere on the way
        out, w = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=True)
    assert np.all(w.data[0, 1] == 0) and np.all(w.data[1, 2] == 0)
    rows = w.data.sum(-1)
    np.testing.assert_allclose(rows[mask.any(-1)], 1, rtol=1e-6)


def test_return_weights_and_float_mask_gradient():
    q, k, v = randn((3, 4), 0), randn((5, 4), 1), randn((5, 2), 2)
    bias = mta.tensor(randn((3, 5), 3), requires_grad=True)  # a trainable additive bias (ALiBi-like)
    out, w = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, return_weights=True)
    s = q @ k.T / 2 + bias.data
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(w.data, p, rtol=1e-12)
    np.testing.assert_allclose(out.data, p @ v, rtol=1e-12)
    assert mta.gradcheck(lambda b: F.scaled_dot_product_attention(q, k, v, attn_mask=b), [bias])


def test_gradcheck_float64_with_mask_and_causal():
    q, k, v = (mta.tensor(randn(s, i), requires_grad=True) for i, s in enumerate(((2, 3, 4), (2, 5, 4), (2, 5, 3))))
    mask = np.random.default_rng(0).random((3, 5)) < 0.6
    mask[1] = False  # a fully masked row too
    assert mta.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=mask), [q, k, v])
    assert mta.gradcheck(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), [q, k, v])


def test_dropout_is_seeded_and_scales_survivors():
    q, k, v = randn((4, 8), 0), randn((6, 8), 1), randn((6, 3), 2)
    a, wa = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, rng=np.random.default_rng(7), return_weights=True)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.data, b.data)
    _, w = F.scaled_dot_product_attention(q, k, v, return_weights=True)
    kept = wa.data != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(wa.data[kept], 2 * w.data[kept], rtol=1e-12)
    np.testing.assert_allclose(a.data, wa.data @ v, rtol=1e-12)


def test_no_keys_gives_zeros():
    out = F.scaled_dot_product_attention(randn((2, 3, 4), 0), randn((2, 0, 4), 1), randn((2, 0, 5), 2))
    assert out.shape == (2, 3, 5) and np.all(out.data == 0)


def test_errors_name_the_shapes():
    q, k, v = randn((2, 3, 4), 0), randn((2, 5, 4), 1), randn((2, 5, 2), 2)
    with pytest.raises(ValueError, match=r"q \(2, 3, 4\) and k \(2, 5, 6\)"):
        F.scaled_dot_product_attention(q, randn((2, 5, 6), 1), v)
    with pytest.raises(ValueError, match=r"k \(2, 5, 4\) and v \(2, 6, 2\)"):
        F.scaled_dot_product_attention(q, k, randn((2, 6, 2), 2))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(3, 4\) does not broadcast.*\(2, 3, 5\)"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 4), bool))
    with pytest.raises(ValueError, match=r"attn_mask of shape \(4, 3, 5\)"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((4, 3, 5), bool))  # may not enlarge the batch
    with pytest.raises(TypeError, match="boolean .* or floating .* int64"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 5), np.int64))
    with pytest.raises(ValueError, match="is_causal"):
        F.scaled_dot_product_attention(q, k, v, attn_mask=np.ones((3, 5), bool), is_causal=True)
    with pytest.raises(ValueError, match="batch axes"):
        F.scaled_dot_product_attention(randn((2, 3, 4), 0), randn((3, 5, 4), 1), randn((3, 5, 2), 2))
    with pytest.raises(ValueError, match="unknown backend"):
        F.scaled_dot_product_attention(q, k, v, backend="fast")
    with pytest.raises(TypeError, match="mix float dtypes"):
        F.scaled_dot_product_attention(mta.tensor(q.astype(np.float32)), mta.tensor(k), mta.tensor(v))
    # torch raises for attn_mask + is_causal as well
    with pytest.raises(RuntimeError):
        TF.scaled_dot_product_attention(torch.tensor(q), torch.tensor(k), torch.tensor(v),
                                        attn_mask=torch.ones(3, 5, dtype=torch.bool), is_causal=True)
