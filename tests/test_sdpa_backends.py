"""F.scaled_dot_product_attention through the flash kernels ("tiled", "numba") gives the naive backend's
values and gradients, and "auto" picks the kernels only where they run.

Tolerances: float64 1e-10; float32 2e-5 relative to the largest value (the Numba float32 kernels use a
polynomial exp with 3e-7 relative error, and sum in another order than the naive matmuls).
"""

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn.functional import sdpa
from minitorch_attn.functional.sdpa import FlashAttention

FLASH = ["tiled", "numba"]


def make(shape_q, shape_k, shape_v, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [mta.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in (shape_q, shape_k, shape_v)]


def run(backend, tensors, grad_seed=1, **kwargs):
    for t in tensors:
        t.grad = None
    out = F.scaled_dot_product_attention(*tensors, backend=backend, **kwargs)
    g = np.random.default_rng(grad_seed).standard_normal(out.shape).astype(out.dtype)
    out.backward(g)
    return out.data.copy(), [t.grad.copy() for t in tensors]


def close(a, b, dtype, what):
    tol = 1e-10 if dtype == np.float64 else 2e-5
    scale = max(np.abs(b).max(), 1e-30)
    err = np.abs(a - b).max() / scale
    assert err < tol, f"{what}: relative error {err:.2e} > {tol:.0e} against the naive backend"


def uses_flash(out) -> bool:
    """Whether a FlashAttention node is in the graph that made `out`."""
    stack, seen = [out], set()
    while stack:
        t = stack.pop()
        if id(t) in seen or t._node is None:
            continue
        seen.add(id(t))
        if t._node.fn is FlashAttention:
            return True
        stack.extend(t._node.parents)
    return False


CASES = [
    # (q shape, k shape, v shape, kwargs)
    ((2, 3, 37, 16), (2, 3, 37, 16), (2, 3, 37, 16), {}),
    ((2, 3, 37, 16), (2, 3, 37, 16), (2, 3, 37, 16), {"is_causal": True}),
    ((1, 2, 19, 8), (1, 2, 45, 8), (1, 2, 45, 24), {"is_causal": True}),  # Nq != Nk, dv != d
    ((1, 2, 45, 8), (1, 2, 19, 8), (1, 2, 19, 8), {"scale": 0.3}),
    ((2, 4, 33, 16), (2, 1, 33, 16), (2, 1, 33, 16), {}),  # k, v shared by the heads: broadcast
    ((29, 16), (29, 16), (29, 16), {"is_causal": True}),  # no batch axes at all
    ((3, 40, 16), (3, 40, 16), (3, 40, 16), {}),  # one batch axis
]


@pytest.mark.parametrize("backend", FLASH)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_flash_backends_match_naive(backend, dtype, case):
    sq, sk, sv, kwargs = CASES[case]
    tensors = make(sq, sk, sv, dtype)
    out_n, grads_n = run("naive", tensors, **kwargs)
    out_f, grads_f = run(backend, tensors, **kwargs)
    assert out_f.dtype == dtype and out_f.shape == out_n.shape
    close(out_f, out_n, dtype, f"{backend} output")
    for name, a, b in zip("qkv", grads_f, grads_n):
        close(a, b, dtype, f"{backend} d{name}")


@pytest.mark.parametrize("backend", FLASH)
def test_key_padding_mask_of_shape_b11n_runs_on_the_kernels(backend):
    q, k, v = make((2, 2, 30, 8), (2, 2, 30, 8), (2, 2, 30, 8), np.float64)
    allowed = np.ones((2, 1, 1, 30), dtype=bool)
    allowed[0, ..., 20:] = False  # batch 0 has 10 padded keys
    allowed[1, ..., :] = False  # batch 1 is fully masked: output 0, gradient 0
    out_n, grads_n = run("naive", [q, k, v], attn_mask=allowed)
    out_f, grads_f = run(backend, [q, k, v], attn_mask=allowed)
    close(out_f, out_n, np.float64, "output with padding")
    assert np.all(out_f[1] == 0), "a fully masked row's output is 0 (see functional/sdpa.py)"
    for name, a, b in zip("qkv", grads_f, grads_n):
        close(a, b, np.float64, f"d{name} with padding")


@pytest.mark.parametrize("backend", FLASH)
def test_gradcheck_through_the_flash_function(backend):
    q, k, v = make((1, 2, 7, 4), (1, 2, 9, 4), (1, 2, 9, 3), np.float64, seed=3)
    assert mta.gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, backend=backend), [q, k, v])
    assert mta.gradcheck(
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, backend=backend), [q, k, v])


def test_auto_uses_numba_for_large_calls_and_naive_for_small_or_unsupported_ones():
    n = int(np.sqrt(sdpa.AUTO_MIN_SCORES))
    big = make((1, 2, n, 8), (1, 2, n, 8), (1, 2, n, 8), np.float32)
    small = make((1, 2, n // 2, 8), (1, 2, n // 2, 8), (1, 2, n // 2, 8), np.float32)
    assert uses_flash(F.scaled_dot_product_attention(*big, is_causal=True)), "auto should use the kernels"
    assert not uses_flash(F.scaled_dot_product_attention(*small, is_causal=True)), "too small for the kernels"
    float_mask = np.zeros((n, n), dtype=np.float32)
    assert not uses_flash(F.scaled_dot_product_attention(*big, attn_mask=float_mask)), "float masks: naive"
    out, w = F.scaled_dot_product_attention(*big, return_weights=True)
    assert w.shape == (1, 2, n, n) and not uses_flash(out)


@pytest.mark.parametrize("kwargs, phrase", [
    ({"dropout_p": 0.1}, "dropout"),
    ({"return_weights": True}, "return_weights"),
    ({"attn_mask": np.zeros((5, 5), dtype=np.float32)}, "attn_mask of shape"),
    ({"attn_mask": np.ones((5, 5), dtype=bool)}, "attn_mask of shape"),
])
def test_explicit_flash_backend_says_what_it_cannot_do(kwargs, phrase):
    q, k, v = make((1, 1, 5, 4), (1, 1, 5, 4), (1, 1, 5, 4), np.float32)
    with pytest.raises(ValueError, match=phrase):
        F.scaled_dot_product_attention(q, k, v, backend="numba", **kwargs)
