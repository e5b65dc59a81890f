"""Graded tests for lesson 10, flash attention on the CPU: exercises 10.1-10.4 in
`exercises/lesson10_flash_cpu.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson10_flash_cpu.py
    python -m minitorch_attn grade --lesson 10

The oracle is the naive attention of `minitorch_attn.kernels.reference` (it builds the whole score matrix),
run in float64. Each test checks one exercise: while the tiled forward (10.2) is graded, the lesson
module's `online_softmax_tile_step` is replaced by the graders' own, so a mistake in 10.1 does not cost
points in 10.2. Shapes are awkward on purpose: N not a multiple of the tile sizes, Nq != Nk, N = 1,
tiles larger than N, fully masked rows and logits multiplied by 100.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.course.checks import assert_close, fail, numeric_vjp
from minitorch_attn.kernels.reference import attention_backward, attention_forward

INF = np.inf


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson10_flash_cpu")


def qkv(B, H, Nq, Nk, d, dv=None, seed=0, gain=1.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, H, Nq, d)) * gain
    k = rng.standard_normal((B, H, Nk, d))
    v = rng.standard_normal((B, H, Nk, dv or d))
    return q.astype(dtype), k.astype(dtype), v.astype(dtype)


def ref_tile_step(q_tile, k_tile, v_tile, m, l, acc, scale, mask=None):
    """The graders' online-softmax tile step (the same contract as Exercise 10.1)."""
    S = (q_tile @ np.swapaxes(k_tile, -1, -2)) * scale
    if mask is not None:
        S = np.where(mask, S, -INF)
    m_new = np.maximum(m, S.max(axis=-1))
    safe = np.where(np.isfinite(m_new), m_new, 0)
    P = np.exp(S - safe[..., None])
    alpha = np.exp(m - safe)
    return m_new, l * alpha + P.sum(axis=-1), acc * alpha[..., None] + P @ v_tile


def _step(impl, *args, what):
    with np.errstate(all="ignore"):
        out = impl.online_softmax_tile_step(*args)
    if not isinstance(out, tuple) or len(out) != 3:
        fail(what, f"returned {type(out).__name__}, expected the triple (m_new, l, acc)")
    return out


def _empty_state(shape, dv, dtype=np.float64):
    return np.full(shape, -INF, dtype), np.zeros(shape, dtype), np.zeros(shape + (dv,), dtype)


# ---- 10.1 online_softmax_tile_step ----------------------------------------------------------------------
@pytest.mark.exercise("10.1", points=1)
def test_tile_step_from_the_empty_state(impl):
    q, k, v = qkv(2, 3, 5, 7, 16, dv=8, seed=0)
    scale = 0.25
    m0, l0, a0 = _empty_state((2, 3, 5), 8)
    m, l, acc = _step(impl, q, k, v, m0, l0, a0, scale, None, what="online_softmax_tile_step")
    S = q @ np.swapaxes(k, -1, -2) * scale
    em = S.max(-1)
    P = np.exp(S - em[..., None])
    what = "online_softmax_tile_step on one (Br=5, Bc=7) tile from m = -inf, l = 0, acc = 0"
    hint = ("S = q_tile k_tileᵀ · scale; m_new = max(m, rowmax S); with m = -inf use 0 in place of m_new in "
            "exp(m - m_new) (-inf - -inf is NaN, exp(-inf - 0) = 0 is what you want)")
    assert_close(m, em, what + ": m_new", "m_new = np.maximum(m, S.max(axis=-1)), with S scaled", rtol=1e-13)
    assert_close(l, P.sum(-1), what + ": l", hint + "; l = l · exp(m - m_new) + rowsum(exp(S - m_new))",
                 rtol=1e-12)
    if np.allclose(acc, (P @ v) / P.sum(-1)[..., None], rtol=1e-9):
        fail(what + ": acc", "acc came back normalised (divided by l)",
             "acc is the UNNORMALISED sum P @ v: flash attention divides by l once, after the last key tile")
    assert_close(acc, P @ v, what + ": acc", "acc = acc · exp(m - m_new) + P @ v_tile with P = exp(S - m_new)",
                 rtol=1e-12)


@pytest.mark.exercise("10.1", points=1)
def test_tile_steps_rescale_when_the_max_grows(impl):
    """Three tiles of different widths; the later ones carry much larger scores, so the running max jumps
    and what was accumulated must be rescaled by exp(m - m_new)."""
    q, k, v = qkv(1, 2, 6, 20, 8, dv=5, seed=1, gain=10.0)  # logits of order 30
    k[:, :, 9:] *= 4.0  # the second and third tiles dominate
    scale = 1.0
    m, l, acc = _empty_state((1, 2, 6), 5)
    for j0, j1 in ((0, 9), (9, 12), (12, 20)):
        m, l, acc = _step(impl, q, k[:, :, j0:j1], v[:, :, j0:j1], m, l, acc, scale, None,
                          what="online_softmax_tile_step")
    o_ref, lse_ref = attention_forward(q, k, v, scale=scale)
    what = "three online_softmax_tile_step calls (key tiles of 9, 3 and 8) with a growing max"
    hint = ("when the max grows, multiply BOTH l and acc by alpha = exp(m_old - m_new) before adding the new "
            "tile's rowsum(P) and P @ v_tile")
    assert_close(m + np.log(l), lse_ref, what + ": m + log(l) against the logsumexp of the whole row", hint,
                 rtol=1e-12)
    assert_close(acc / l[..., None], o_ref, what + ": acc / l against softmax(S) @ v", hint, rtol=1e-10,
                 atol=1e-12)


@pytest.mark.exercise("10.1", points=1)
def test_tile_step_with_masks_and_float32(impl):
    q, k, v = qkv(1, 1, 4, 3, 4, dv=2, seed=2)
    mask = np.array([[True, True, False], [False, False, False], [True, False, False], [False, True, True]])
    m0, l0, a0 = _empty_state((1, 1, 4), 2)
    m, l, acc = _step(impl, q, k, v, m0, l0, a0, 0.5, mask, what="online_softmax_tile_step")
    S = np.where(mask, q @ np.swapaxes(k, -1, -2) * 0.5, -INF)
    em = S.max(-1)
    safe = np.where(np.isfinite(em), em, 0)
    P = np.exp(S - safe[..., None])
    what = "online_softmax_tile_step with a mask (row 1 masked entirely), from the empty state"
    hint = ("masked pairs get S = -inf (np.where(mask, S, -np.inf)); a row that has still seen no key keeps "
            "m = -inf, l = 0, acc = 0: exponentiate against 0 where m_new is -inf, never -inf - -inf = NaN")
    assert_close(m, em, what + ": m_new", hint, rtol=1e-13)
    assert_close(l, P.sum(-1), what + ": l", hint, rtol=1e-12)
    assert_close(acc, P @ v, what + ": acc", hint, rtol=1e-12)
    # one more step on top of it: row 1 still masked, row 2 now sees keys
    m2, l2, acc2 = _step(impl, q, k, v, m, l, acc, 0.5, ~mask & np.array([[1], [0], [1], [1]], bool),
                         what="online_softmax_tile_step")
    e_m, e_l, e_acc = ref_tile_step(q, k, v, em, P.sum(-1), P @ v, 0.5,
                                    ~mask & np.array([[1], [0], [1], [1]], bool))
    assert_close(l2, e_l, "a second masked step on top of the first: l", hint, rtol=1e-12)
    assert_close(acc2, e_acc, "a second masked step on top of the first: acc", hint, rtol=1e-12)
    q32, k32, v32 = (a.astype(np.float32) for a in qkv(2, 1, 3, 5, 4, seed=3))
    m0, l0, a0 = _empty_state((2, 1, 3), 4, np.float32)
    m, l, acc = _step(impl, q32, k32, v32, m0, l0, a0, np.float32(0.5), None, what="online_softmax_tile_step")
    e_m, e_l, e_acc = ref_tile_step(*(a.astype(np.float64) for a in (q32, k32, v32, m0, l0, a0)), 0.5)
    for name, got, want in (("m_new", m, e_m), ("l", l, e_l), ("acc", acc, e_acc)):
        assert_close(got, want.astype(np.float32), f"online_softmax_tile_step on float32: {name}",
                     "keep the inputs' dtype: 0 and np.where keep float32", rtol=1e-5, atol=1e-6,
                     check_dtype=True)


# ---- 10.2 flash_forward_tiled ---------------------------------------------------------------------------
@pytest.fixture
def forward(impl, monkeypatch):
    """The target's flash_forward_tiled, folding tiles with the graders' step; `.calls` counts the steps."""
    calls = []

    def step(*args, **kwargs):
        calls.append(args[1].shape[-2])
        return ref_tile_step(*args, **kwargs)

    monkeypatch.setattr(impl, "online_softmax_tile_step", step)

    def run(*args, **kwargs):
        calls.clear()
        with np.errstate(all="ignore"):
            out = impl.flash_forward_tiled(*args, **kwargs)
        if not isinstance(out, tuple) or len(out) != 2:
            fail("flash_forward_tiled", f"returned {type(out).__name__}, expected the pair (o, lse)")
        return out

    run.calls = calls
    return run


def _forward_hint(o, lse, eo, e_lse, Br=None) -> str:
    """What the wrong rows of a tiled forward's (o, lse) say about the mistake, or "" when they say nothing."""
    def close(a, b):
        return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-10, atol=1e-12, equal_nan=True)

    if np.shape(o) != np.shape(eo) or np.shape(lse) != np.shape(e_lse):
        return ""
    bad = ~np.isclose(o, eo, rtol=1e-10, atol=1e-12).all(axis=-1) | ~np.isclose(lse, e_lse, rtol=1e-10, atol=1e-12)
    rows = np.flatnonzero(bad.any(axis=(0, 1)))
    nq = o.shape[-2]
    if Br and nq % Br and len(rows) and rows.min() >= nq - nq % Br:
        return (f"only rows {nq - nq % Br}..{nq - 1}, the last query tile, are wrong: it is shorter than Br "
                "(br = q_tile.shape[2]), and its key tiles must use that br too")
    if close(o, eo):
        return "o is right: lse = m + log(l) for each row, -inf for a row that saw no key"
    if close(lse, e_lse):
        return "lse is right, so m and l are: normalise acc by l once, after the key loop (o = acc / l)"
    return ""


def _check_forward(o, lse, q, k, v, what, hint="", Br=None, **kwargs):
    eo, e_lse = attention_forward(q, k, v, **kwargs)
    hint = _forward_hint(o, lse, eo, e_lse, Br) or hint
    assert_close(o, eo, what + ": o", hint, rtol=1e-12, atol=1e-13)
    assert_close(lse, e_lse, what + ": lse", hint, rtol=1e-12, atol=1e-13)


@pytest.mark.exercise("10.2", points=1)
def test_forward_on_awkward_shapes(forward):
    for (Nq, Nk, d, dv, Br, Bc) in ((37, 53, 16, 8, 16, 8), (53, 37, 16, 16, 8, 16), (1, 1, 4, 4, 16, 8),
                                    (5, 70, 8, 3, 64, 64)):
        q, k, v = qkv(2, 2, Nq, Nk, d, dv, seed=Nq + Nk)
        o, lse = forward(q, k, v, Br=Br, Bc=Bc)
        _check_forward(o, lse, q, k, v, f"flash_forward_tiled with Nq={Nq}, Nk={Nk}, d={d}, dv={dv}, "
                       f"Br={Br}, Bc={Bc}", Br=Br)


@pytest.mark.exercise("10.2", points=1)
def test_forward_causal_skips_the_tiles_above_the_diagonal(forward):
    for (Nq, Nk, Br, Bc) in ((45, 45, 16, 8), (30, 45, 8, 16), (45, 30, 16, 16)):
        q, k, v = qkv(1, 2, Nq, Nk, 8, seed=Nq * Nk)
        o, lse = forward(q, k, v, causal=True, Br=Br, Bc=Bc)
        _check_forward(o, lse, q, k, v, f"flash_forward_tiled(causal=True) with Nq={Nq}, Nk={Nk}, Br={Br}, "
                       f"Bc={Bc}", "with causal=True query i sees keys j <= i: pass allowed_mask(br, bc, "
                       "causal, key_padding_mask, q0=i0, k0=j0) to the step (it knows the tile's offsets)",
                       causal=True)
    q, k, v = qkv(1, 1, 40, 40, 8, seed=5)
    forward(q, k, v, causal=True, Br=8, Bc=8)
    if len(forward.calls) != 15:
        fail("flash_forward_tiled(causal=True) with N=40, Br=Bc=8",
             f"called online_softmax_tile_step {len(forward.calls)} times, expected 15 (query tile t needs key "
             "tiles 0..t only)", "with causal, stop the key loop at the first tile that lies entirely above "
             "the diagonal: break when j0 > i0 + br - 1")


@pytest.mark.exercise("10.2", points=1)
def test_forward_padding_huge_logits_and_dtype(forward):
    q, k, v = qkv(2, 2, 19, 23, 8, seed=7, gain=100.0)  # logits x100: exp would overflow without the max
    pad = np.zeros((2, 23), bool)
    pad[0, 5:17] = True
    pad[1, :] = True  # batch 1: every key is padding -> every row fully masked: o = 0, lse = -inf
    o, lse = forward(q, k, v, key_padding_mask=pad, Br=8, Bc=8)
    if not np.isfinite(o).all():
        fail("flash_forward_tiled with logits x100 and fully padded rows", "o contains NaN or inf",
             "a row that saw no key has l = 0: divide by np.where(l > 0, l, 1) and set o = 0 there")
    _check_forward(o, lse, q, k, v, "flash_forward_tiled with logits x100, key padding and fully masked rows",
                   "rows that saw no key (l == 0) give o = 0 and lse = -inf; the step already keeps exp "
                   "arguments <= 0, so nothing overflows", key_padding_mask=pad)
    q32, k32, v32 = (a.astype(np.float32) for a in qkv(1, 2, 21, 13, 8, seed=8))
    o, lse = forward(q32, k32, v32, causal=True, Br=8, Bc=4)
    eo, e_lse = attention_forward(*(a.astype(np.float64) for a in (q32, k32, v32)), causal=True)
    assert_close(o, eo.astype(np.float32), "flash_forward_tiled on float32: o",
                 "keep q's dtype for m, l and acc (np.full(..., -np.inf, q.dtype))", rtol=1e-5, atol=1e-6,
                 check_dtype=True)
    assert_close(lse, e_lse.astype(np.float32), "flash_forward_tiled on float32: lse", "keep q's dtype",
                 rtol=1e-5, atol=1e-6, check_dtype=True)


# ---- 10.3 flash_backward_tiled --------------------------------------------------------------------------
def _backward_hint(got, expected, scale) -> str:
    """What the wrong gradients of a tiled backward say about the mistake, or "" when they say nothing."""
    def close(a, b):
        return np.shape(a) == np.shape(b) and np.allclose(a, b, rtol=1e-8, atol=1e-10)

    (dq, dk, dv), (eq, ek, ev) = got, expected
    if close(dq, eq / scale) and close(dk, ek / scale):
        return "dq and dk are missing the factor `scale` (S = q kᵀ · scale, so dS reaches q and k times scale)"
    if close(dv, ev) and not close(dq, eq):
        return ("dv is right, so P is: the error is in dS = P ∘ (dP - D), with D = rowsum(dO ∘ O) over the whole "
                "row (not rowsum(P ∘ dP) over one tile)")
    return ""


def _check_backward(impl, q, k, v, what, hint="", Br=16, Bc=8, seed=0, **kwargs):
    o, lse = attention_forward(q, k, v, **kwargs)
    do = np.random.default_rng(seed).standard_normal(o.shape)
    with np.errstate(all="ignore"):
        out = impl.flash_backward_tiled(q, k, v, o, lse, do, Br=Br, Bc=Bc, **kwargs)
    if not isinstance(out, tuple) or len(out) != 3:
        fail("flash_backward_tiled", f"returned {type(out).__name__}, expected (dq, dk, dv)")
    expected = attention_backward(q, k, v, o, lse, do, **kwargs)
    hint = _backward_hint(out, expected, kwargs.get("scale") or 1 / np.sqrt(q.shape[-1])) or hint
    for name, got, want in zip(("dq", "dk", "dv"), out, expected):
        if not np.isfinite(np.asarray(got, dtype=np.float64)).all():
            fail(f"{what}: {name}", "contains NaN or inf",
                 "use lse_safe (lse with -inf replaced by 0) in exp(S - lse), and give masked pairs S = -inf "
                 "so that P = 0 there")
        assert_close(got, want, f"{what}: {name}", hint, rtol=1e-10, atol=1e-12)


@pytest.mark.exercise("10.3", points=1)
def test_backward_on_awkward_shapes(impl):
    for (Nq, Nk, d, dv, Br, Bc) in ((37, 53, 16, 8, 16, 8), (53, 37, 8, 16, 8, 16), (1, 1, 4, 4, 16, 8)):
        q, k, v = qkv(2, 2, Nq, Nk, d, dv, seed=Nq + 2 * Nk)
        _check_backward(impl, q, k, v, f"flash_backward_tiled with Nq={Nq}, Nk={Nk}, d={d}, dv={dv}, "
                        f"Br={Br}, Bc={Bc}", Br=Br, Bc=Bc, seed=Nq)


@pytest.mark.exercise("10.3", points=1)
def test_backward_causal(impl):
    hint = ("with causal, mask S with allowed_mask(br, bc, causal, key_padding_mask, q0=i0, k0=j0) and start the "
            "query loop at (j0 // Br) * Br")
    for (Nq, Nk, Br, Bc) in ((45, 45, 16, 8), (30, 45, 8, 16), (45, 30, 16, 16), (40, 40, 8, 8)):
        q, k, v = qkv(1, 2, Nq, Nk, 8, seed=Nq * Nk + 1)
        _check_backward(impl, q, k, v, f"flash_backward_tiled(causal=True) with Nq={Nq}, Nk={Nk}, Br={Br}, "
                        f"Bc={Bc}", hint, Br=Br, Bc=Bc, seed=Nk, causal=True)


@pytest.mark.exercise("10.3", points=1)
def test_backward_padding_and_huge_logits(impl):
    q, k, v = qkv(2, 2, 19, 23, 8, seed=9, gain=100.0)
    pad = np.zeros((2, 23), bool)
    pad[0, 5:17] = True
    pad[1, :] = True  # fully masked rows: they pass no gradient
    _check_backward(impl, q, k, v, "flash_backward_tiled with logits x100, key padding and fully masked rows",
                    "fully masked rows have P = 0 everywhere, so they add nothing",
                    Br=8, Bc=8, seed=3, key_padding_mask=pad)


@pytest.mark.exercise("10.3", points=1)
def test_backward_against_finite_differences_for_any_tile_size(impl):
    q, k, v = qkv(1, 1, 5, 6, 3, 2, seed=11)
    do = np.random.default_rng(12).standard_normal((1, 1, 5, 2))

    def f(q_, k_, v_):
        return attention_forward(q_, k_, v_, causal=True)[0]

    numeric = numeric_vjp(f, [q, k, v], do)
    o, lse = attention_forward(q, k, v, causal=True)
    for Br, Bc in ((1, 1), (2, 4), (64, 64)):
        with np.errstate(all="ignore"):
            out = impl.flash_backward_tiled(q, k, v, o, lse, do, causal=True, Br=Br, Bc=Bc)
        for name, got, want in zip(("dq", "dk", "dv"), out, numeric):
            assert_close(got, want, f"flash_backward_tiled(causal=True, Br={Br}, Bc={Bc}) on a (5 x 6) problem: "
                         f"{name} against central differences",
                         "the gradients must not depend on the tile sizes: accumulate dq over ALL key tiles "
                         "(+=) and dk, dv over ALL query tiles", rtol=1e-6, atol=1e-8)


# ---- 10.4 forward_tile_numba ----------------------------------------------------------------------------
def numba_forward(impl, q, k, v, causal=False, Br=16, Bc=8, scale=None):
    """The graders' driver: call the kernel for every (batch, head, query tile)."""
    B, H, Nq, d = q.shape
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    o = np.full((B, H, Nq, v.shape[3]), np.nan)
    lse = np.full((B, H, Nq), np.nan)
    for b in range(B):
        for h in range(H):
            qh, kh, vh = (np.ascontiguousarray(a[b, h]) for a in (q, k, v))
            for i0 in range(0, Nq, Br):
                impl.forward_tile_numba(qh, kh, vh, i0, Br, Bc, causal, float(scale), o[b, h], lse[b, h])
    return o, lse


def _check_numba(o, lse, q, k, v, what, hint="", **kwargs):
    if np.isnan(o).any() or np.isnan(lse).any():
        i = tuple(int(x) for x in np.argwhere(np.isnan(o).any(-1) | np.isnan(lse))[0])
        fail(what, f"row {i} of o or lse was not written (or is NaN)",
             "write every row i0 .. i0 + br - 1 with br = min(Br, Nq - i0): the last tile is shorter; a row "
             "that saw no key gets o = 0 and lse = -inf")
    _check_forward(o, lse, q, k, v, what, hint, **kwargs)


@pytest.mark.exercise("10.4", points=1)
def test_numba_tile_kernel_on_awkward_shapes(impl):
    q, k, v = qkv(1, 2, 37, 53, 16, 8, seed=21)
    rows = np.full((37, 8), np.nan)
    rows_lse = np.full(37, np.nan)
    impl.forward_tile_numba(q[0, 0], k[0, 0], v[0, 0], 16, 16, 8, False, 0.25, rows, rows_lse)
    outside = np.r_[0:16, 32:37]
    if not np.isnan(rows[outside]).all() or not np.isnan(rows_lse[outside]).all():
        fail("forward_tile_numba(i0=16, Br=16) on Nq=37", "wrote rows outside 16..31",
             "the kernel owns rows i0 .. i0 + br - 1 only (other calls write the others)")
    for (Nq, Nk, d, dv, Br, Bc) in ((37, 53, 16, 8, 16, 8), (53, 37, 8, 16, 8, 16), (1, 1, 4, 4, 16, 8)):
        q, k, v = qkv(1, 2, Nq, Nk, d, dv, seed=Nq + 3 * Nk)
        o, lse = numba_forward(impl, q, k, v, Br=Br, Bc=Bc)
        _check_numba(o, lse, q, k, v, f"forward_tile_numba for every tile, Nq={Nq}, Nk={Nk}, d={d}, dv={dv}, "
                     f"Br={Br}, Bc={Bc}", Br=Br)


@pytest.mark.exercise("10.4", points=1)
def test_numba_tile_kernel_causal(impl):
    hint = "causal: query i0 + i sees key j0 + j only if j0 + j <= i0 + i (else the score is -inf)"
    for (Nq, Nk, Br, Bc) in ((45, 45, 16, 8), (30, 45, 8, 16), (45, 30, 16, 16)):
        q, k, v = qkv(1, 2, Nq, Nk, 8, seed=Nq * Nk + 2)
        o, lse = numba_forward(impl, q, k, v, causal=True, Br=Br, Bc=Bc)
        _check_numba(o, lse, q, k, v, f"forward_tile_numba(causal=True), Nq={Nq}, Nk={Nk}, Br={Br}, Bc={Bc}",
                     hint, causal=True)


@pytest.mark.exercise("10.4", points=1)
def test_numba_tile_kernel_huge_logits_and_no_keys(impl):
    q, k, v = qkv(1, 1, 21, 26, 8, seed=31, gain=100.0)  # scores in the hundreds: math.exp(300) overflows
    o, lse = numba_forward(impl, q, k, v, causal=True, Br=8, Bc=8)
    _check_numba(o, lse, q, k, v, "forward_tile_numba(causal=True) with logits x100",
                 "subtract the running max before math.exp and rescale by math.exp(m - m_new) <= 1: no "
                 "exponent is ever positive", causal=True)
    q, k, v = qkv(1, 1, 5, 0, 4, seed=32)  # no keys at all: every row is fully masked
    o, lse = numba_forward(impl, q, k, v, Br=4, Bc=4)
    assert_close(o, np.zeros((1, 1, 5, 4)), "forward_tile_numba with Nk = 0 (no keys): o",
                 "a row that saw no key (l == 0) gets o = 0, not acc / 0 = NaN")
    assert_close(lse, np.full((1, 1, 5), -INF), "forward_tile_numba with Nk = 0 (no keys): lse",
                 "a row that saw no key gets lse = -inf")
