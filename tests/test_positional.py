"""Positional encodings: the sinusoidal table against its formula and its shift property, learned
embeddings, and RoPE's relative-position property and offset consistency."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn import nn
from minitorch_attn.functional.positional import apply_rope, rope_angles, sinusoidal_encoding


def test_sinusoidal_matches_the_formula():
    n, d = 20, 10
    pe = sinusoidal_encoding(n, d, dtype=np.float64)
    for pos in range(n):
        for i in range(d // 2):
            w = 1 / 10000 ** (2 * i / d)
            assert pe[pos, 2 * i] == pytest.approx(np.sin(pos * w), abs=1e-12)
            assert pe[pos, 2 * i + 1] == pytest.approx(np.cos(pos * w), abs=1e-12)
    assert sinusoidal_encoding(4, 6).dtype == np.float32
    np.testing.assert_allclose(sinusoidal_encoding(3, 8, offset=5), sinusoidal_encoding(8, 8)[5:], atol=1e-6)


@pytest.mark.parametrize("k", [1, 5, 37])
def test_sinusoidal_shift_is_a_fixed_linear_map(k):
    d, n = 16, 200
    pe = sinusoidal_encoding(n + k, d, dtype=np.float64)
    X, Y = pe[:n], pe[k : n + k]
    M, *_ = np.linalg.lstsq(X, Y, rcond=None)  # Y ≈ X M for one M, whatever the position
    assert np.abs(X @ M - Y).max() < 1e-10
    # and it is the block-diagonal rotation by k·ω_i: (sin, cos)(a + kω) = [[c, s], [-s, c]] (sin a, cos a)
    w = 1 / 10000 ** (np.arange(0, d, 2) / d)
    R = np.zeros((d, d))
    for i, wi in enumerate(w):
        c, s = np.cos(k * wi), np.sin(k * wi)
        R[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = [[c, s], [-s, c]]
    np.testing.assert_allclose(Y, X @ R.T, atol=1e-12)


def test_modules_add_positions_with_offset():
    x = mta.tensor(np.zeros((2, 5, 8), np.float32))
    sin = nn.SinusoidalPositionalEncoding(8, max_len=32)
    np.testing.assert_allclose(sin(x, offset=3).data[0], sinusoidal_encoding(8, 8)[3:8], atol=1e-6)
    assert "pe" not in sin.state_dict() and list(sin.parameters()) == []
    learned = nn.LearnedPositionalEmbedding(16, 8, rng=np.random.default_rng(0))
    out = learned(x, offset=2)
    np.testing.assert_array_equal(out.data[1], learned.weight.data[2:7])
    out.sum().backward()
    assert np.all(learned.weight.grad[2:7] == 2) and np.all(learned.weight.grad[:2] == 0)
    with pytest.raises(ValueError, match="exceed max_len=16"):
        learned(x, offset=12)
    with pytest.raises(ValueError, match="max_len=32"):
        sin(x, offset=30)


def test_rope_is_a_rotation_of_half_split_pairs():
    x = np.random.default_rng(0).standard_normal((3, 6, 8))
    out = apply_rope(mta.tensor(x), offset=2).data
    a = rope_angles(6, 8, offset=2)
    x1, x2 = x[..., :4], x[..., 4:]
    np.testing.assert_allclose(out[..., :4], x1 * np.cos(a) - x2 * np.sin(a), atol=1e-12)
    np.testing.assert_allclose(out[..., 4:], x1 * np.sin(a) + x2 * np.cos(a), atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(apply_rope(mta.tensor(x)).data[:, 0], x[:, 0])  # position 0: no rotation


def test_rope_scores_depend_only_on_relative_position():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal(16), rng.standard_normal(16)
    n = 40
    Q = apply_rope(mta.tensor(np.tile(q, (n, 1)))).data
    K = apply_rope(mta.tensor(np.tile(k, (n, 1)))).data
    S = Q @ K.T
    for delta in range(-n + 1, n):
        diag = np.diagonal(S, offset=delta)
        np.testing.assert_allclose(diag, diag[0], atol=1e-10)
    assert np.ptp([S[0, 1], S[0, 5], S[0, 20]]) > 1e-3  # ... but it does depend on the offset


def test_rope_offset_matches_a_kv_cache_step():
    rng = np.random.default_rng(2)
    q, k, v = rng.standard_normal((2, 9, 8)), rng.standard_normal((2, 9, 8)), rng.standard_normal((2, 9, 4))
    rope = nn.RotaryEmbedding(8)
    Qr, Kr = rope(mta.tensor(q), mta.tensor(k))
    full = F.scaled_dot_product_attention(Qr, Kr, v, is_causal=True).data
    # generation: 6 cached keys, then one new token at a time with offset = tokens so far
    cache = [rope(mta.tensor(k[:, :6])).data]
    for t in range(6, 9):
        qt, kt = rope(mta.tensor(q[:, t : t + 1]), mta.tensor(k[:, t : t + 1]), offset=t)
        cache.append(kt.data)
        K = np.concatenate(cache, axis=1)
        out = F.scaled_dot_product_attention(qt, K, v[:, : t + 1]).data
        np.testing.assert_allclose(out[:, 0], full[:, t], atol=1e-12)


def test_rope_gradcheck_and_errors():
    x = mta.tensor(np.random.default_rng(3).standard_normal((2, 3, 4)), requires_grad=True)
    assert mta.gradcheck(lambda t: apply_rope(t, offset=5, base=100.0), [x])
    with pytest.raises(ValueError, match="even d"):
        apply_rope(mta.tensor(np.zeros((3, 5))))
    with pytest.raises(ValueError, match="even dim"):
        nn.RotaryEmbedding(7)
