"""Lesson 16's anatomy of attention: compose_attention from named parts reproduces Bahdanau, Luong-general,
Vaswani (F.scaled_dot_product_attention, and torch's) and Galerkin bitwise where the operation order is the
library's, to rounding where it is not; masks, edge cases, errors and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn import nn
from minitorch_attn.functional.additive import additive_attention
from minitorch_attn.functional.anatomy import (
    Factored,
    additive_score,
    compose_attention,
    galerkin_combine,
    galerkin_score,
    identity_normaliser,
    luong_general_score,
    mean_normaliser,
    scaled_dot_score,
    softmax_normaliser,
    weighted_sum,
)
from minitorch_attn.functional.linear_attention import galerkin_attention

VASWANI = compose_attention(scaled_dot_score(), softmax_normaliser, weighted_sum)
GALERKIN = compose_attention(galerkin_score(), mean_normaliser, galerkin_combine())


def qkv(B=2, Nq=5, Nk=7, d=8, dv=4, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(B, Nq, d)) * scale, rng.normal(size=(B, Nk, d)) * scale, rng.normal(size=(B, Nk, dv)))


def padding_mask(B=2, Nk=7):
    pad = np.zeros((B, Nk), dtype=bool)
    pad[0, 4:] = True
    pad[1, :] = True  # every key padded: zero weights, zero context
    return pad


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_bahdanau_bitwise(scale):
    q, k, v = qkv(scale=scale)
    att = nn.AdditiveAttention(8, 8, 16, rng=np.random.default_rng(1), dtype=np.float64)
    pad = padding_mask()
    attend = compose_attention(additive_score(att.W, att.U, att.v), softmax_normaliser, weighted_sum)
    for mask in (None, pad):
        ref, _ = att(mta.tensor(q), mta.tensor(k), mta.tensor(v), mask)
        ours = attend(q, k, v, None if mask is None else ~mask[:, None, :])
        np.testing.assert_array_equal(ours.data, ref.data)
        core, _ = additive_attention(att.W(mta.tensor(q)), att.U(mta.tensor(k)), att.v, mta.tensor(v), mask)
        np.testing.assert_array_equal(ours.data, core.data)
    assert np.all(attend(q, k, v, ~pad[:, None, :]).data[1] == 0)


def test_luong_general_bitwise():
    q, k, v = qkv(d=8)
    att = nn.LuongAttention(8, 8, score="general", rng=np.random.default_rng(2), dtype=np.float64)
    attend = compose_attention(luong_general_score(att.W_a), softmax_normaliser, weighted_sum)
    pad = padding_mask()
    for mask in (None, pad):
        ref, _ = att(mta.tensor(q), mta.tensor(k), mta.tensor(v), mask)
        np.testing.assert_array_equal(attend(q, k, v, None if mask is None else ~mask[:, None, :]).data, ref.data)


@pytest.mark.parametrize("Nq, Nk", [(1, 1), (5, 7), (7, 3)])
def test_vaswani_bitwise_and_torch(Nq, Nk):
    rng = np.random.default_rng(3)
    q, k, v = rng.normal(size=(2, 3, Nq, 8)), rng.normal(size=(2, 3, Nk, 8)), rng.normal(size=(2, 3, Nk, 5))
    causal = np.tril(np.ones((Nq, Nk), dtype=bool))
    for mask in (None, causal):
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, backend="naive")
        ours = VASWANI(q, k, v, mask)
        np.testing.assert_array_equal(ours.data, ref.data)
        tm = None if mask is None else torch.tensor(mask)
        t = torch.nn.functional.scaled_dot_product_attention(*(torch.tensor(x) for x in (q, k, v)), attn_mask=tm)
        np.testing.assert_allclose(ours.data, t.numpy(), rtol=1e-12, atol=1e-13)
    ours = compose_attention(scaled_dot_score(0.3), softmax_normaliser, weighted_sum)(q, k, v)
    np.testing.assert_array_equal(ours.data, F.scaled_dot_product_attention(q, k, v, scale=0.3, backend="naive").data)


def test_vaswani_huge_logits_and_dead_rows():
    q, k, v = qkv(scale=1e3)
    mask = np.ones((2, 5, 7), dtype=bool)
    mask[0, 2] = False  # query 2 of the first sequence may attend to nothing
    ours = VASWANI(q, k, v, mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, backend="naive")
    assert np.all(np.isfinite(ours.data)) and np.all(ours.data[0, 2] == 0)
    np.testing.assert_array_equal(ours.data, ref.data)


def test_galerkin_bitwise_and_regrouped():
    q, k, v = qkv(Nq=6, Nk=9)
    np.testing.assert_array_equal(GALERKIN(q, k, v).data, galerkin_attention(q, k, v).data)
    eps = 1e-3
    ours = compose_attention(galerkin_score(eps), mean_normaliser, galerkin_combine(eps))(q, k, v)
    np.testing.assert_array_equal(ours.data, galerkin_attention(q, k, v, eps=eps).data)
    # the other grouping, (Q LN(K)ᵀ) LN(V) / n: the same mathematics, not the same rounding
    ln_v = F.layer_norm(mta.tensor(v), 4, eps=1e-5)
    qk = compose_attention(galerkin_score(), mean_normaliser, weighted_sum)(q, k, ln_v)
    np.testing.assert_array_equal(qk.data, galerkin_attention(q, k, v, order="qk").data)
    np.testing.assert_allclose(qk.data, GALERKIN(q, k, v).data, rtol=0, atol=1e-12)


def test_factored_scores_and_normalisers():
    q, k, v = qkv()
    s = galerkin_score()(mta.tensor(q), mta.tensor(k))
    assert isinstance(s, Factored) and identity_normaliser(s) is s
    m = mean_normaliser(s)
    assert isinstance(m, Factored) and m.divisor == 7
    np.testing.assert_allclose(m.dense().data, s.dense().data / 7, rtol=1e-14)
    # softmax of a factored score materialises it
    dense = F.softmax(s.dense(), axis=-1)
    np.testing.assert_array_equal(softmax_normaliser(s).data, dense.data)
    # the dense mean normaliser under a mask divides by the number of visible keys
    scores = mta.tensor(np.ones((1, 2, 4)))
    mask = np.array([[[True, True, False, False], [False, False, False, False]]])
    np.testing.assert_array_equal(mean_normaliser(scores, mask).data, [[[0.5, 0.5, 0, 0], [0, 0, 0, 0]]])
    np.testing.assert_array_equal(identity_normaliser(scores, mask).data, [[[1, 1, 0, 0], [0, 0, 0, 0]]])


def test_errors():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="cannot be masked"):
        GALERKIN(q, k, v, np.ones((2, 5, 7), dtype=bool))
    with pytest.raises(ValueError, match="needs factored weights"):
        compose_attention(scaled_dot_score(), softmax_normaliser, galerkin_combine())(q, k, v)
    with pytest.raises(ValueError, match=r"one value per key; got q \(2, 5, 8\), k \(2, 7, 8\), v \(2, 6, 4\)"):
        VASWANI(q, k, v[:, :6])
    with pytest.raises(ValueError, match="does not broadcast"):
        VASWANI(q, k, v, np.ones((5, 6), dtype=bool))
    with pytest.raises(TypeError, match="must be boolean"):
        VASWANI(q, k, v, np.ones((5, 7)))


@pytest.mark.parametrize("parts", [
    ("additive", softmax_normaliser, weighted_sum),
    ("dot", mean_normaliser, weighted_sum),
    ("galerkin", mean_normaliser, "galerkin"),
    ("dot", identity_normaliser, weighted_sum),
])
def test_gradcheck(parts):
    rng = np.random.default_rng(5)
    att = nn.AdditiveAttention(4, 4, 5, rng=rng, dtype=np.float64)
    score = {"additive": additive_score(att.W, att.U, att.v), "dot": scaled_dot_score(),
             "galerkin": galerkin_score()}[parts[0]]
    combine = galerkin_combine() if parts[2] == "galerkin" else parts[2]
    attend = compose_attention(score, parts[1], combine)
    mask = None if parts[0] == "galerkin" else np.array([[[True, True, False], [True, False, False]]])
    ins = [mta.tensor(rng.normal(size=s), requires_grad=True) for s in ((1, 2, 4), (1, 3, 4), (1, 3, 2))]
    assert mta.gradcheck(lambda a, b, c: attend(a, b, c, mask), ins)
