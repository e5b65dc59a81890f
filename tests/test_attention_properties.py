"""The property battery every attention variant of the course must pass (variants: tests/attention_variants.py).

rows of weights sum to 1 · masked keys have no effect · permutation equivariance over keys (where the
variant says so) · batch independence · finite at logits of ±1e4 · length-1 inputs · float64 gradcheck.
"""

from __future__ import annotations

import numpy as np
import pytest
from attention_variants import VARIANTS, Variant

import minitorch_attn as mta

B, NQ, NK = 3, 4, 6

if not VARIANTS:  # pragma: no cover - the registry is filled by the lessons' helpers
    pytest.skip("no attention variants registered", allow_module_level=True)

by_name = pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])


def _where(flag: str, value: bool = True):
    chosen = [v for v in VARIANTS if getattr(v, flag) == value]
    return pytest.mark.parametrize("variant", chosen, ids=[v.name for v in chosen])


def inputs(variant: Variant, seed=0, dtype=np.float32, b=B, nq=NQ, nk=NK):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((b, nq, variant.q_dim)).astype(dtype)
    k = rng.standard_normal((b, nk, variant.k_dim)).astype(dtype)
    v = rng.standard_normal((b, nk, variant.v_dim)).astype(dtype)
    return q, k, v


def run(attend, q, k, v, kpm=None):
    with mta.no_grad():
        out, w = attend(mta.tensor(q), mta.tensor(k), mta.tensor(v), kpm)
    return out.data, w.data


def padding(nk=NK):
    kpm = np.zeros((B, nk), dtype=bool)
    kpm[0, 4:] = True
    kpm[1, :2] = True
    kpm[2, 1::2] = True
    return kpm


@by_name
def test_weights_are_distributions(variant):
    attend = variant.make(np.random.default_rng(0), np.float64)
    q, k, v = inputs(variant, dtype=np.float64)
    out, w = run(attend, q, k, v)
    assert out.shape[:2] == (B, NQ) and w.shape == (B, NQ, NK)
    assert np.all(w >= 0)
    np.testing.assert_allclose(w.sum(-1), 1, rtol=1e-12)
    if variant.supports_padding_mask:
        kpm = padding()
        _, w = run(attend, q, k, v, kpm)
        np.testing.assert_allclose(w.sum(-1), 1, rtol=1e-12)
        assert np.all(np.where(kpm[:, None, :], w, 0) == 0), "padded keys must get weight exactly 0"


@_where("supports_padding_mask")
def test_masked_keys_have_no_effect(variant):
    attend = variant.make(np.random.default_rng(0), np.float64)
    q, k, v = inputs(variant, dtype=np.float64)
    kpm = padding()
    out, w = run(attend, q, k, v, kpm)
    k2, v2 = k.copy(), v.copy()
    noise = np.random.default_rng(9)
    k2[kpm] = noise.standard_normal(k2[kpm].shape) * 100
    v2[kpm] = noise.standard_normal(v2[kpm].shape) * 100
    out2, w2 = run(attend, q, k2, v2, kpm)
    np.testing.assert_allclose(out2, out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(w2, w, rtol=1e-12, atol=1e-12)


@_where("permutation_equivariant", False)
def test_position_dependent_variants_really_depend_on_key_order(variant):
    """The flag is honest: a variant that claims to use key positions changes when the keys move."""
    attend = variant.make(np.random.default_rng(0), np.float64)
    q, k, v = inputs(variant, dtype=np.float64)
    perm = np.random.default_rng(1).permutation(NK)
    out, w = run(attend, q, k, v)
    out_p, w_p = run(attend, q, k[:, perm], v[:, perm])
    assert not np.allclose(w_p, w[..., perm], atol=1e-6), (
        f"{variant.name} is flagged position dependent, yet permuting the keys only permuted its weights")


@_where("permutation_equivariant")
def test_permutation_equivariance_over_keys(variant):
    attend = variant.make(np.random.default_rng(0), np.float64)
    q, k, v = inputs(variant, dtype=np.float64)
    perm = np.random.default_rng(1).permutation(NK)
    out, w = run(attend, q, k, v)
    out_p, w_p = run(attend, q, k[:, perm], v[:, perm])
    np.testing.assert_allclose(out_p, out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(w_p, w[..., perm], rtol=1e-10, atol=1e-12)


@by_name
def test_batch_elements_are_independent(variant):
    attend = variant.make(np.random.default_rng(0), np.float64)
    q, k, v = inputs(variant, dtype=np.float64)
    out, w = run(attend, q, k, v)
    q2, k2, v2 = (a.copy() for a in (q, k, v))
    rng = np.random.default_rng(5)
    for a in (q2, k2, v2):
        a[1] = rng.standard_normal(a[1].shape) * 10
    out2, w2 = run(attend, q2, k2, v2)
    np.testing.assert_array_equal(out2[0], out[0])
    np.testing.assert_array_equal(w2[0], w[0])
    assert not np.allclose(out2[1], out[1])


@by_name
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_finite_at_huge_logits(variant, sign):
    attend = variant.make(np.random.default_rng(0), np.float32)
    q, k, v = inputs(variant)
    # inputs are O(1), so q·1e4 puts the (scaled) scores at about ±1e4
    with np.errstate(over="raise", invalid="raise"):
        out, w = run(attend, q * np.float32(sign * 1e4), k, v)
    assert np.isfinite(out).all() and np.isfinite(w).all()
    np.testing.assert_allclose(w.sum(-1), 1, rtol=1e-5)
    if variant.supports_padding_mask:
        out, w = run(attend, q * np.float32(sign * 1e4), k, v, padding())
        assert np.isfinite(out).all() and np.isfinite(w).all()


@by_name
def test_a_single_key_gets_all_the_weight(variant):
    attend = variant.make(np.random.default_rng(0), np.float64)
    q, k, v = inputs(variant, dtype=np.float64, nk=1)
    out, w = run(attend, q, k, v)
    assert w.shape == (B, NQ, 1)
    assert np.all(w == 1.0), "with one key the softmax is exactly 1"
    q1, k1, v1 = inputs(variant, dtype=np.float64, nq=1, nk=1)
    out1, w1 = run(attend, q1, k1, v1)
    assert out1.shape[:2] == (B, 1) and np.all(w1 == 1.0)


@by_name
def test_gradcheck_float64(variant):
    attend = variant.make(np.random.default_rng(0), np.float64)
    q, k, v = (mta.tensor(a, requires_grad=True) for a in inputs(variant, dtype=np.float64, b=2, nq=2, nk=3))
    params = list(variant.params(attend))
    kpm = np.array([[False, False, True], [False, False, False]]) if variant.supports_padding_mask else None
    assert mta.gradcheck(lambda q, k, v, *ps: attend(q, k, v, kpm), [q, k, v, *params])
