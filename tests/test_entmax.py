"""Sparsemax and α-entmax (minitorch_attn/autograd/entmax.py) against the `entmax` package (deep-spin, the
authors' PyTorch code: the oracle), against float64 finite differences, and at the edges: -inf (masked)
entries, fully masked rows, ties at the threshold, scores of 1e4, length 1, float32, bad alpha."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minitorch_attn as mta
from minitorch_attn.autograd.entmax import bisect_threshold, entmax, entmax15, sparsemax


def _oracle_modules():
    """torch and the entmax package (the `parity` extra); tests that need them skip without them."""
    return pytest.importorskip("torch"), pytest.importorskip("entmax")

INF = np.inf


def ours(name):
    return {
        "sparsemax": lambda x, axis=-1: sparsemax(x, axis=axis),
        "entmax15": lambda x, axis=-1: entmax15(x, axis=axis),
        "bisect15": lambda x, axis=-1: entmax(x, 1.5, axis=axis, exact=False),
        "bisect2": lambda x, axis=-1: entmax(x, 2.0, axis=axis, exact=False),
        "bisect13": lambda x, axis=-1: entmax(x, 1.3, axis=axis),
        "bisect17": lambda x, axis=-1: entmax(x, 1.7, axis=axis),
    }[name]


def theirs(name):
    _, E = _oracle_modules()
    return {
        "sparsemax": lambda t, dim: E.sparsemax(t, dim=dim),
        "entmax15": lambda t, dim: E.entmax15(t, dim=dim),
        "bisect15": lambda t, dim: E.entmax_bisect(t, 1.5, dim=dim, n_iter=60),
        "bisect2": lambda t, dim: E.entmax_bisect(t, 2.0, dim=dim, n_iter=60),
        "bisect13": lambda t, dim: E.entmax_bisect(t, 1.3, dim=dim, n_iter=60),
        "bisect17": lambda t, dim: E.entmax_bisect(t, 1.7, dim=dim, n_iter=60),
    }[name]


NAMES = ["sparsemax", "entmax15", "bisect15", "bisect2", "bisect13", "bisect17"]
ALPHA = {"sparsemax": 2.0, "entmax15": 1.5, "bisect15": 1.5, "bisect2": 2.0, "bisect13": 1.3, "bisect17": 1.7}


def forward_backward(fn, x, g, axis=-1):
    t = mta.tensor(x, requires_grad=True)
    fn(t, axis=axis).backward(g)
    return fn(mta.tensor(x), axis=axis).data, t.grad


def oracle(fn, x, g, axis=-1):
    torch, _ = _oracle_modules()
    t = torch.tensor(x, requires_grad=True)
    p = fn(t, axis)
    p.backward(torch.tensor(g))
    return p.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_forward_and_backward_match_the_entmax_package(name, axis):
    rng = np.random.default_rng(int(ALPHA[name] * 10) + axis + 1)
    x = rng.standard_normal((4, 6, 9)) * 3
    g = rng.standard_normal(x.shape)
    p, gx = forward_backward(ours(name), x, g, axis)
    p_ref, g_ref = oracle(theirs(name), x, g, axis)
    np.testing.assert_allclose(p, p_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(gx, g_ref, rtol=0, atol=1e-10)
    assert (p == 0).any(), "these scores should give a sparse distribution"
    np.testing.assert_allclose(p.sum(axis=axis), 1, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.sampled_from([0.01, 1.0, 30.0]), st.integers(0, 2**31 - 1),
       st.sampled_from(["sparsemax", "entmax15", "bisect13"]), st.booleans())
def test_matches_the_entmax_package_on_random_rows(n, scale, seed, name, rounded):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, n)) * scale
    if rounded:  # many exact ties, some at the threshold
        x = np.round(x)
    g = rng.standard_normal(x.shape)
    p, gx = forward_backward(ours(name), x, g)
    p_ref, g_ref = oracle(theirs(name), x, g)
    np.testing.assert_allclose(p, p_ref, rtol=0, atol=1e-10)
    np.testing.assert_allclose(gx, g_ref, rtol=0, atol=1e-8)


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_float64(name):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 7)) * 2
    assert mta.gradcheck(lambda t: ours(name)(t), [mta.tensor(x, requires_grad=True)])
    x3 = rng.standard_normal((2, 5, 3))
    assert mta.gradcheck(lambda t: ours(name)(t, axis=1), [mta.tensor(x3, requires_grad=True)])


@pytest.mark.parametrize("name", NAMES)
def test_masked_entries_get_zero_weight_and_zero_gradient(name):
    x = np.array([[0.3, -INF, 1.0, -INF, 0.9], [-INF, 2.0, -INF, -INF, -INF]])
    g = np.arange(10.0).reshape(2, 5)
    p, gx = forward_backward(ours(name), x, g)
    assert (p[np.isinf(x)] == 0).all() and (gx[np.isinf(x)] == 0).all()
    assert p[1, 1] == 1.0 and (gx[1] == 0).all(), "a single unmasked entry takes all the weight and cannot move"
    np.testing.assert_allclose(p.sum(-1), 1, atol=1e-12)
    kept = np.where(np.isinf(x), -1e3, x)  # masking = a very low score, for the oracle
    p_ref, g_ref = oracle(theirs(name), kept, g)
    np.testing.assert_allclose(p, p_ref, atol=1e-12)
    np.testing.assert_allclose(gx, g_ref, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_a_fully_masked_row_is_nan_with_zero_gradient_as_softmax(name):
    x = np.array([[-INF, -INF, -INF], [0.0, 1.0, 0.2]])
    p, gx = forward_backward(ours(name), x, np.ones_like(x))
    soft = mta.functional.softmax(mta.tensor(x)).data
    assert np.isnan(p[0]).all() and np.isnan(soft[0]).all(), "the same convention as the library's softmax"
    assert np.isfinite(p[1]).all() and (gx[0] == 0).all() and np.isfinite(gx).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_scores_and_dtypes(name, dtype):
    x = np.array([[1e4, 1e4 - 0.5, -1e4, 0.0], [-1e4, -1e4 + 0.25, -1e4 + 0.5, -1e4]], dtype=dtype)
    p, gx = forward_backward(ours(name), x, np.ones_like(x))
    assert p.dtype == dtype and gx.dtype == dtype
    assert np.isfinite(p).all() and np.isfinite(gx).all()
    p_ref, _ = oracle(theirs(name), (x - x.max(-1, keepdims=True)).astype(np.float64), np.ones(x.shape))
    np.testing.assert_allclose(p, p_ref, atol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_length_one_and_uniform_rows(name):
    p, gx = forward_backward(ours(name), np.array([[3.0], [-7.0]]), np.array([[2.0], [5.0]]))
    assert (p == 1).all() and (gx == 0).all()
    p, _ = forward_backward(ours(name), np.full((1, 8), 0.7), np.ones((1, 8)))
    np.testing.assert_allclose(p, 1 / 8, atol=1e-13)


@pytest.mark.parametrize("alpha", [1.3, 1.5, 2.0])
def test_a_gap_of_one_over_alpha_minus_one_gives_exactly_one_at_any_length(alpha):
    for n in (2, 17, 1000, 65536):
        z = np.zeros(n)
        z[n // 3] = 1 / (alpha - 1)
        for dtype in (np.float64, np.float32):
            # 1/0.3 rounds down in float32, to just under the threshold: nudge it up by one float32 step
            zd = np.where(z > 0, np.nextafter(z.astype(dtype), dtype(np.inf)), 0).astype(dtype) if (
                dtype == np.float32 and alpha == 1.3) else z.astype(dtype)
            p = entmax(mta.tensor(zd), alpha).data
            assert p[n // 3] == 1.0 and np.count_nonzero(p) == 1, (alpha, n, dtype, p[n // 3])
        p = entmax(mta.tensor(z * 0.9), alpha).data
        if n > 2:
            assert p[n // 3] < 1.0, "with a smaller gap the other entries keep some weight"


def test_sparsemax_is_the_projection_onto_the_simplex():
    rng = np.random.default_rng(7)
    z = rng.standard_normal(6) * 2
    p = sparsemax(mta.tensor(z)).data
    for _ in range(200):  # no point of the simplex is closer to z
        q = rng.dirichlet(np.full(6, 0.3))
        assert np.sum((q - z) ** 2) >= np.sum((p - z) ** 2) - 1e-12


def test_bisect_threshold_brackets_and_converges():
    z = np.array([[0.0, -0.3, -2.0, -0.1], [0.0, 0.0, 0.0, 0.0]])
    for alpha in (1.2, 1.5, 2.0, 3.0):
        tau = bisect_threshold(z, alpha)
        f = (np.maximum((alpha - 1) * z - tau, 0) ** (1 / (alpha - 1))).sum(-1)
        np.testing.assert_allclose(f, 1, atol=1e-12)
    tau = bisect_threshold(z, 1.5, n_iter=1)  # one step: still a lower bound (sum >= 1)
    assert ((np.maximum(0.5 * z - tau, 0) ** 2).sum(-1) >= 1 - 1e-15).all()


@pytest.mark.parametrize("alpha", [1.0, 0.5, -2, np.nan, np.inf, "x", None])
def test_bad_alpha_is_a_clear_value_error(alpha):
    with pytest.raises(ValueError, match="alpha"):
        entmax(mta.tensor(np.zeros(3)), alpha)


def test_bad_axis_n_iter_and_0d_are_value_errors():
    with pytest.raises(ValueError, match="axis 2 is out of range.*shape \\(2, 3\\)"):
        sparsemax(mta.tensor(np.zeros((2, 3))), axis=2)
    with pytest.raises(ValueError, match="n_iter"):
        entmax(mta.tensor(np.zeros(3)), 1.3, n_iter=0)
    with pytest.raises(ValueError, match="0-d"):
        entmax15(mta.tensor(np.float64(1.0)))
