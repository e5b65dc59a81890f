"""AdditiveAttention (Bahdanau) and LuongAttention (dot / general / concat, local-p): float64 gradchecks,
the exact identities lesson 04 shows, masks, shapes and errors, and the precomputed-keys path."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn.functional.additive import additive_attention
from minitorch_attn.functional.luong import local_p_weights, luong_score
from minitorch_attn.nn import AdditiveAttention, LuongAttention

B, NQ, NK = 2, 3, 5


def data(q_dim=4, k_dim=6, dv=3, seed=0, requires_grad=False, nk=NK):
    rng = np.random.default_rng(seed)
    return [mta.tensor(rng.standard_normal(s), requires_grad=requires_grad)
            for s in ((B, NQ, q_dim), (B, nk, k_dim), (B, nk, dv))]


def luong(score, q_dim=4, k_dim=6, **kw):
    if score == "dot":
        k_dim = q_dim
    return LuongAttention(q_dim, k_dim, score=score, rng=np.random.default_rng(1), dtype=np.float64, **kw), k_dim


MASK = np.array([[False, False, False, True, True], [False, False, False, False, False]])


def test_additive_matches_the_formula_and_gradchecks():
    attn = AdditiveAttention(4, 6, 5, rng=np.random.default_rng(0), dtype=np.float64)
    q, k, v = data(requires_grad=True)
    ctx, w = attn(q, k, v)
    W, U, vv = attn.W.weight.data, attn.U.weight.data, attn.v.data
    e = np.tanh((q.data @ W.T)[:, :, None] + (k.data @ U.T)[:, None]) @ vv
    ref = np.exp(e - e.max(-1, keepdims=True))
    ref /= ref.sum(-1, keepdims=True)
    np.testing.assert_allclose(w.data, ref, rtol=1e-12)
    np.testing.assert_allclose(ctx.data, ref @ v.data, rtol=1e-12)
    params = list(attn.parameters())
    assert mta.gradcheck(lambda q, k, v, *ps: attn(q, k, v, MASK), [q, k, v, *params])


@pytest.mark.parametrize("score", ["dot", "general", "concat"])
@pytest.mark.parametrize("window", [None, 2])
def test_luong_gradcheck(score, window):
    attn, k_dim = luong(score, window=window, hidden_dim=5)
    q, k, v = data(k_dim=k_dim, requires_grad=True, seed=3)
    params = list(attn.parameters())
    assert mta.gradcheck(lambda q, k, v, *ps: attn(q, k, v, MASK), [q, k, v, *params])


def test_general_with_identity_equals_dot():
    dot, _ = luong("dot")
    general, _ = luong("general", k_dim=4)
    general.W_a.data[...] = np.eye(4)
    q, k, v = data(k_dim=4)
    for a, b in zip(dot(q, k, v, MASK), general(q, k, v, MASK)):
        np.testing.assert_allclose(a.data, b.data, atol=1e-12)


def test_concat_is_additive_with_split_weights():
    attn, _ = luong("concat", hidden_dim=5)
    add = AdditiveAttention(4, 6, 5, dtype=np.float64)
    add.W.weight.data[...] = attn.W_a.data[:, :4]
    add.U.weight.data[...] = attn.W_a.data[:, 4:]
    add.v.data[...] = attn.v_a.data
    q, k, v = data()
    np.testing.assert_allclose(attn(q, k, v)[1].data, add(q, k, v)[1].data, atol=1e-12)


@pytest.mark.parametrize("D", [1, 2, 3.5])
def test_local_weights_are_zero_outside_the_window_and_not_renormalised(D):
    attn, k_dim = luong("general", window=D)
    q, k, v = data(k_dim=k_dim, nk=9, seed=4)
    _, w = attn(q, k, v)
    p = attn.positions(q, 9).data
    assert p.shape == (B, NQ) and np.all((p >= 0) & (p <= 8))
    outside = np.abs(np.arange(9) - p[..., None]) > D
    assert np.all(w.data[outside] == 0.0)
    assert np.all(w.data[~outside] > 0)
    assert np.all(w.data.sum(-1) < 1)  # the paper's choice: no renormalisation after the Gaussian
    renorm, _ = luong("general", window=D, renormalize=True)
    np.testing.assert_allclose(renorm(q, k, v)[1].data, w.data / w.data.sum(-1, keepdims=True), rtol=1e-12)


def test_local_becomes_global_as_the_window_grows():
    glob, k_dim = luong("general")
    q, k, v = data(k_dim=k_dim)
    gaps = []
    for D in (10.0, 1e3, 1e6):
        local, _ = luong("general", window=D)
        local.W_a.data[...] = glob.W_a.data
        gaps.append(np.abs(local(q, k, v, MASK)[1].data - glob(q, k, v, MASK)[1].data).max())
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-6


def test_local_positions_count_only_real_keys():
    attn, k_dim = luong("dot", window=1)
    q, k, v = data(k_dim=k_dim)
    p = attn.positions(q, NK, MASK).data
    assert np.all(p[0] <= 2) and np.all(p[1] <= 4)  # batch 0 has 3 real keys
    _, w = attn(q, k, v, MASK)
    assert np.all(w.data[0, :, 3:] == 0)


def test_local_weights_function_handles_empty_windows():
    scores = mta.tensor(np.zeros((1, 1, 4)))
    w = local_p_weights(scores, mta.tensor(np.array([[3.0]])), 1, np.array([[False, False, True, True]]))
    assert np.all(w.data == 0) and np.isfinite(w.data).all()


@pytest.mark.parametrize("make", [
    lambda: AdditiveAttention(4, 6, 5, dtype=np.float64),
    lambda: LuongAttention(4, 6, "general", dtype=np.float64),
    lambda: LuongAttention(4, 6, "concat", hidden_dim=5, dtype=np.float64),
    lambda: LuongAttention(4, 4, "dot", dtype=np.float64),
])
def test_masks_shapes_and_precomputed_keys(make):
    attn = make()
    q, k, v = data(k_dim=attn.key_dim)
    ctx, w = attn(q, k, v, MASK)
    assert ctx.shape == (B, NQ, 3) and w.shape == (B, NQ, NK)
    assert np.all(w.data[0, :, 3:] == 0) and np.allclose(w.data.sum(-1), 1)
    full = np.ones((B, NK), dtype=bool)
    ctx0, w0 = attn(q, k, v, full)  # every key padded: zero weights and context, not NaN
    assert np.all(w0.data == 0) and np.all(ctx0.data == 0)
    pk = attn.precompute_keys(k)
    ctx2, w2 = attn(q, None, v, MASK, projected_keys=pk)
    np.testing.assert_allclose(ctx2.data, ctx.data, atol=1e-12)
    np.testing.assert_allclose(w2.data, w.data, atol=1e-12)
    c1, w1 = attn(q[:, 0], k, v, MASK)  # a (B, q) query gives (B, dv) and (B, Nk)
    assert c1.shape == (B, 3) and w1.shape == (B, NK)
    np.testing.assert_allclose(c1.data, ctx.data[:, 0], atol=1e-12)


def test_errors_name_the_shapes():
    attn = AdditiveAttention(4, 6, 5, dtype=np.float64)
    q, k, v = data()
    with pytest.raises(ValueError, match=r"\(2, 3, 6\)"):
        attn(k[:, :3], k, v)
    with pytest.raises(ValueError, match=r"keys .*\(2, 5, 4\)"):
        attn(q, mta.tensor(np.zeros((2, 5, 4))), v)
    with pytest.raises(ValueError, match="one value per key"):
        attn(q, k, v[:, :4])
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        attn(q, k, v, np.zeros((2, 4), dtype=bool))
    with pytest.raises(TypeError, match="boolean"):
        attn(q, k, v, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="query_dim == key_dim"):
        LuongAttention(4, 6, "dot")
    with pytest.raises(ValueError, match="score must be one of"):
        LuongAttention(4, 6, "cosine")
    with pytest.raises(ValueError, match="score must be one of"):
        luong_score(q, k, "cosine")
    with pytest.raises(ValueError, match="window"):
        LuongAttention(4, 6, window=0)
    with pytest.raises(ValueError, match="projected_keys"):
        attn(q, None, v)
    with pytest.raises(ValueError, match="positions"):
        LuongAttention(4, 6).positions(q, 5)
    assert additive_attention is not None


def test_float32_stays_float32():
    attn = AdditiveAttention(4, 6, 5)
    q, k, v = (mta.tensor(a.data.astype(np.float32)) for a in data())
    ctx, w = attn(q, k, v, MASK)
    assert ctx.dtype == np.float32 and w.dtype == np.float32
