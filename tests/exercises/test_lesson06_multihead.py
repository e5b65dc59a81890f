"""Graded tests for lesson 06, multi-head attention and positions: exercises 6.1-6.4 in
`exercises/lesson06_multihead.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson06_multihead.py
    python -m minitorch_attn grade --lesson 06

References are computed here with NumPy (float64). Each test checks one exercise.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.autograd.tensor import Tensor
from minitorch_attn.course.checks import assert_close, call, fail, likely_mistake, randn


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson06_multihead")


def ref_split(x, h):
    *lead, n, e = x.shape
    out = np.empty((*lead, h, n, e // h))
    for i in range(h):  # head i owns features i*d ... (i+1)*d - 1
        out[..., i, :, :] = x[..., i * (e // h) : (i + 1) * (e // h)]
    return out


# ---- 6.1 split_heads ------------------------------------------------------------------------------------
@pytest.mark.exercise("6.1", points=1)
def test_split_heads(impl):
    hint = ("reshape (..., N, E) to (..., N, H, E/H) and then swap the N and H axes (transpose(-3, -2)); "
            "reshaping straight to (..., H, N, E/H) gives the right shape but puts other positions' "
            "features into a head")
    for shape, h in (((2, 5, 12), 3), ((1, 4, 6), 1), ((2, 3, 7, 8), 4), ((3, 8), 2)):
        x = randn(*shape, seed=len(shape) + h)
        t = Tensor(x, requires_grad=True)
        out = call(f"split_heads(x {shape}, {h})", impl.split_heads, t, h, hint=hint)
        if not isinstance(out, Tensor):
            fail(f"split_heads(x {shape}, {h})", f"returned {type(out).__name__}, not a Tensor",
                 "use Tensor methods (.reshape, .transpose) so gradients flow back")
        assert_close(out, ref_split(x, h), f"split_heads(x of shape {shape}, num_heads={h})", hint, rtol=0, atol=0)
        g = randn(*out.shape, seed=1)
        out.backward(g)
        # the gradient of a pure rearrangement is the same rearrangement, undone
        expected = np.empty_like(x)
        d = shape[-1] // h
        for i in range(h):
            expected[..., i * d : (i + 1) * d] = g[..., i, :, :]
        assert_close(t.grad, expected, f"split_heads backward (x of shape {shape})", hint, rtol=0, atol=0)


# ---- 6.2 merge_heads ------------------------------------------------------------------------------------
@pytest.mark.exercise("6.2", points=1)
def test_merge_heads_inverts_split(impl):
    hint = ("swap H and N first (transpose(-3, -2): (..., N, H, d)), then reshape to (..., N, H*d); reshaping "
            "(..., H, N, d) directly mixes the heads' rows")
    for shape in ((2, 3, 5, 4), (1, 1, 6, 2), (2, 2, 3, 4, 5), (4, 3, 2)):
        x = randn(*shape, seed=sum(shape))
        out = call(f"merge_heads(x {shape})", impl.merge_heads, Tensor(x), hint=hint)
        *lead, h, n, d = shape
        expected = np.concatenate([x[..., i, :, :] for i in range(h)], axis=-1)  # head i -> features i*d...
        assert_close(out, expected, f"merge_heads(x of shape {shape})", hint, rtol=0, atol=0)


# ---- 6.3 sinusoidal_encoding ----------------------------------------------------------------------------
def ref_pe(n, dim, base=10000.0, offset=0):
    pe = np.zeros((n, dim))
    for p in range(n):
        for j in range(dim):
            i = j // 2
            angle = (offset + p) / base ** (2 * i / dim)
            pe[p, j] = np.sin(angle) if j % 2 == 0 else np.cos(angle)
    return pe


@pytest.mark.exercise("6.3", points=1)
def test_sinusoidal_matches_the_formula(impl):
    hint = ("PE[pos, 2i] = sin(pos / base**(2i/dim)), PE[pos, 2i+1] = cos(pos / base**(2i/dim)): sines in the "
            "even columns, cosines in the odd ones, one frequency per pair")
    for n, dim in ((10, 8), (50, 16), (3, 2)):
        got = call(f"sinusoidal_encoding({n}, {dim})", impl.sinusoidal_encoding, n, dim, dtype=np.float64, hint=hint)
        assert_close(got, ref_pe(n, dim), f"sinusoidal_encoding({n}, {dim})", hint, rtol=1e-9, atol=1e-12)
    got = call("sinusoidal_encoding(6, 8, base=100.0)", impl.sinusoidal_encoding, 6, 8, base=100.0,
               dtype=np.float64, hint=hint)
    assert_close(got, ref_pe(6, 8, base=100.0), "sinusoidal_encoding(6, 8, base=100.0)",
                 "use the `base` argument in the frequencies, not a hard-coded 10000", rtol=1e-9, atol=1e-12)


@pytest.mark.exercise("6.3", points=1)
def test_sinusoidal_offset_odd_dim_and_dtype(impl):
    got = call("sinusoidal_encoding(5, 6, offset=7)", impl.sinusoidal_encoding, 5, 6, offset=7, dtype=np.float64)
    assert_close(got, ref_pe(5, 6, offset=7), "sinusoidal_encoding(5, 6, offset=7)",
                 "the rows are positions offset, offset + 1, ...: pos = offset + np.arange(n_positions)",
                 rtol=1e-9, atol=1e-12)
    got = call("sinusoidal_encoding(4, 5)", impl.sinusoidal_encoding, 4, 5, dtype=np.float64)
    assert_close(got, ref_pe(4, 5), "sinusoidal_encoding(4, 5): an odd dim",
                 "with an odd dim there are ceil(dim/2) sines and dim//2 cosines: pe[:, 0::2] = sin(angles), "
                 "pe[:, 1::2] = cos(angles[:, :dim // 2])", rtol=1e-9, atol=1e-12)
    got = call("sinusoidal_encoding(4, 6)", impl.sinusoidal_encoding, 4, 6)
    assert_close(got, ref_pe(4, 6).astype(np.float32), "sinusoidal_encoding(4, 6) with the default dtype",
                 "compute in float64 and return pe.astype(dtype) (float32 by default)", rtol=1e-6, atol=1e-7,
                 check_dtype=True)


# ---- 6.4 apply_rope -------------------------------------------------------------------------------------
def ref_rope(x, offset=0, base=10000.0, sign=1.0, step=2):
    """RoPE in float64 loops; `sign` -1 turns the other way and `step` 1 uses base ** (-i / d) (mistakes)."""
    n, d = x.shape[-2], x.shape[-1]
    out = np.empty_like(x)
    for p in range(n):
        for i in range(d // 2):
            a = sign * (offset + p) * base ** (-step * i / d)
            x1, x2 = x[..., p, i], x[..., p, i + d // 2]
            out[..., p, i] = x1 * np.cos(a) - x2 * np.sin(a)
            out[..., p, i + d // 2] = x1 * np.sin(a) + x2 * np.cos(a)
    return out


def rope_mistakes(x, offset, base):
    """Plausible wrong answers of apply_rope, by the message naming each mistake."""
    d = x.shape[-1]
    perm = np.stack([np.arange(d // 2), np.arange(d // 2) + d // 2], axis=1).reshape(-1)

    def interleaved():
        out = np.empty_like(x)
        out[..., perm] = ref_rope(x[..., perm], offset, base)
        return out

    wrong = {
        "you paired adjacent features (2i, 2i+1); this library pairs i with i + d/2 (GPT-NeoX/LLaMA)": interleaved,
        "the rotation turns the wrong way: the first half gets x1 cos - x2 sin, the second x1 sin + x2 cos":
            lambda: ref_rope(x, offset, base, sign=-1.0),
        "the frequencies are base ** (-2i / d) for i < d/2 (the 2 counts the pair)":
            lambda: ref_rope(x, offset, base, step=1),
    }
    if offset:
        wrong["positions start at `offset`: the token at index p is position offset + p"] = lambda: ref_rope(x, 0, base)
    return wrong


@pytest.mark.exercise("6.4", points=1)
def test_rope_matches_the_rotation(impl):
    for shape, offset, base in (((5, 8), 0, 10000.0), ((2, 3, 6, 4), 0, 10000.0), ((2, 4, 6), 3, 10000.0),
                                ((3, 10), 0, 50.0)):
        x = randn(*shape, seed=len(shape) + offset)
        got = call(f"apply_rope(x {shape}, offset={offset})", impl.apply_rope, Tensor(x), offset=offset,
                   base=base)
        expected = ref_rope(x, offset, base)
        hint = likely_mistake(got, rope_mistakes(x, offset, base))
        assert_close(got, expected, f"apply_rope(x of shape {shape}, offset={offset}, base={base:g})", hint,
                     rtol=1e-9, atol=1e-12)


@pytest.mark.exercise("6.4", points=1)
def test_rope_scores_depend_only_on_relative_position(impl):
    rng = np.random.default_rng(3)
    q0, k0 = rng.standard_normal(8), rng.standard_normal(8)
    n = 12
    Q = call("apply_rope", impl.apply_rope, Tensor(np.tile(q0, (n, 1))))
    K = call("apply_rope", impl.apply_rope, Tensor(np.tile(k0, (n, 1))))
    scores = Q.data @ K.data.T  # scores[m, n] = rot(q0, m) . rot(k0, n)
    for delta in range(-3, 4):
        diag = np.diagonal(scores, offset=delta)
        assert_close(diag, np.full(diag.shape, diag[0]),
                     f"apply_rope: the score of positions (m, m + {delta}) for the same q and k at every m",
                     "rotate q and k with the same angles (pos * theta_i); each pair must be a true rotation "
                     "(cos, -sin / sin, cos) so that q_m . k_n depends only on n - m", rtol=1e-9, atol=1e-9)
    assert_close(np.linalg.norm(Q.data, axis=-1), np.full(n, np.linalg.norm(q0)), "apply_rope preserves norms",
                 "a rotation does not change lengths: check the signs (x1*cos - x2*sin, x1*sin + x2*cos)", rtol=1e-9)


@pytest.mark.exercise("6.4", points=1)
def test_rope_offset_and_gradient(impl):
    x = randn(2, 7, 6, seed=5)
    full = call("apply_rope(x (2, 7, 6))", impl.apply_rope, Tensor(x))
    tail = call("apply_rope(x[:, 4:], offset=4)", impl.apply_rope, Tensor(x[:, 4:]), offset=4)
    assert_close(tail, full.data[:, 4:], "apply_rope(x[:, 4:], offset=4) vs apply_rope(x)[:, 4:]",
                 "positions are offset + index: the token at index 0 of a chunk starting at offset 4 is position 4 "
                 "(this is how a KV cache feeds new tokens)", rtol=1e-12, atol=1e-12)
    t = Tensor(x, requires_grad=True)
    out = call("apply_rope", impl.apply_rope, t)
    if out._node is None:
        fail("apply_rope", "its output records no graph", "build the result with Tensor ops (slicing, *, -, +, "
             "ops.cat) so gradients reach x")
    g = randn(2, 7, 6, seed=6)
    out.backward(g)
    # a rotation's transpose is the rotation by the opposite angle: the gradient is g rotated back
    expected = np.empty_like(x)
    for p in range(7):
        R = ref_rope(np.eye(6)[:, None, :].repeat(p + 1, axis=1), 0)[:, p, :]  # row j: basis vector j rotated
        expected[:, p] = g[:, p] @ R.T
    assert_close(t.grad, expected, "apply_rope backward: gradient of x", "differentiable ops only, and the same "
                 "cos/sin as the forward", rtol=1e-9, atol=1e-12)
