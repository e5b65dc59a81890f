"""The attention kernels (`minitorch_attn.kernels`): every backend against the float64 naive reference.

Tolerances, as the largest error relative to the largest magnitude of the reference tensor
(`max|x - ref| / max|ref|`): float64 1e-12, float32 1e-5 (float32 has ~6e-8 per rounding; the sums over
d and over the keys cost a few hundred roundings in the worst case, measured ≤ 1.5e-6). lse is compared
absolutely against the same bound times max(1, |lse|).
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest

from minitorch_attn import kernels as K
from minitorch_attn.kernels import (
    attention_backward,
    attention_forward,
    flash_attention,
    flash_attention_backward,
    flash_backward_tiled,
    flash_forward_tiled,
    online_softmax_tile_step,
)

BACKENDS = ["tiled", "numba"]
# the kernels run directly, with small tiles: "numba" with tile_matmul's loops, "numba-regtile" with its
# register tile (microkernel.py) where the columns allow (multiples of 32 float32 / 16 float64); "numba-parallel"
# with the loops through the prange entry kernels, which the backend uses only from SERIAL_BELOW score elements
# up (these little shapes would otherwise all run the work items in a plain loop)
KERNELS = ["tiled", "numba", "numba-regtile", "numba-parallel"]
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def _backend_fns(backend, tiles=None):
    """(forward, backward) of a backend, with small tiles so that little shapes still cross many tiles."""
    if backend == "tiled":
        fwd, bwd = flash_forward_tiled, flash_backward_tiled
    else:
        from minitorch_attn.kernels.numba_backend import flash_backward_numba as bwd
        from minitorch_attn.kernels.numba_backend import flash_forward_numba as fwd
    Br, Bc = tiles if tiles else ((40, 48) if backend == "numba-regtile" else (16, 32))  # 40 = 32 + 8 columns
    if backend == "numba-parallel":
        return _parallel_launch(fwd, Br=Br, Bc=Bc), _parallel_launch(bwd, Br=Bc, Bc=Br)
    if backend.startswith("numba"):
        mk = backend == "numba-regtile"
        return (lambda *a, **kw: fwd(*a, Br=Br, Bc=Bc, microkernel=mk, **kw)), \
            (lambda *a, **kw: bwd(*a, Br=Bc, Bc=Br, microkernel=mk, **kw))
    return (lambda *a, **kw: fwd(*a, Br=Br, Bc=Bc, **kw)), (lambda *a, **kw: bwd(*a, Br=Bc, Bc=Br, **kw))


def _parallel_launch(fn, **tiles):
    """fn with SERIAL_BELOW = 0: every call goes through the prange entry kernels (on 2+ threads)."""
    from minitorch_attn.kernels import numba_backend as nb

    def call(*a, **kw):
        saved, nb.SERIAL_BELOW = nb.SERIAL_BELOW, 0
        try:
            return fn(*a, microkernel=False, **tiles, **kw)
        finally:
            nb.SERIAL_BELOW = saved
    return call


def _inputs(seed, B, H, Nq, Nk, d, dv, scale_logits=1.0):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, H, Nq, d)) * np.sqrt(scale_logits)
    k = rng.standard_normal((B, H, Nk, d)) * np.sqrt(scale_logits)
    v = rng.standard_normal((B, H, Nk, dv))
    do = rng.standard_normal((B, H, Nq, dv))
    return q, k, v, do


def _padding(seed, B, Nk, fully_padded_batch=None):
    rng = np.random.default_rng(seed + 1000)
    pad = rng.random((B, Nk)) < 0.3
    if fully_padded_batch is not None:
        pad[fully_padded_batch] = True
    return pad


def assert_close(x, ref, tol, what):
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    assert x.shape == ref.shape, f"{what}: shape {x.shape}, expected {ref.shape}"
    assert np.all(np.isfinite(x) == np.isfinite(ref)), f"{what}: non-finite entries differ from the reference"
    fin = np.isfinite(ref)
    assert np.all(x[~fin] == ref[~fin]), f"{what}: infinite entries differ from the reference"
    if not fin.any():
        return
    err = np.max(np.abs(x[fin] - ref[fin]))
    size = max(np.max(np.abs(ref[fin])), 1e-300)
    assert err <= tol * size, \
        f"{what}: max error {err:.3g} = {err / size:.3g} of max|ref| {size:.3g} > {tol:g}"


def _check_against_reference(backend, dtype, q, k, v, do, causal, pad, tiles=None, tol=None):
    fwd, bwd = _backend_fns(backend, tiles)
    tol = tol if tol is not None else TOL[dtype]
    qc, kc, vc, doc = (a.astype(dtype) for a in (q, k, v, do))
    # the oracle: float64 on the very same (rounded) inputs
    o_ref, lse_ref = attention_forward(*(a.astype(np.float64) for a in (qc, kc, vc)), causal, None, pad)
    grads_ref = attention_backward(*(a.astype(np.float64) for a in (qc, kc, vc)), o_ref, lse_ref,
                                   doc.astype(np.float64), causal, None, pad)
    o, lse = fwd(qc, kc, vc, causal=causal, key_padding_mask=pad)
    assert o.dtype == dtype and lse.dtype == dtype
    assert_close(o, o_ref, tol, f"{backend} o")
    fin = np.isfinite(lse_ref)
    assert np.all(np.isneginf(lse[~fin])), f"{backend}: lse of a fully masked row must be -inf"
    assert np.all(np.abs(lse[fin] - lse_ref[fin]) <= tol * np.maximum(1, np.abs(lse_ref[fin]))), \
        f"{backend}: lse differs from logsumexp of the scores"
    grads = bwd(qc, kc, vc, o, lse, doc, causal=causal, key_padding_mask=pad)
    for name, g, g_ref in zip("dq dk dv".split(), grads, grads_ref):
        assert g.dtype == dtype
        assert_close(g, g_ref, tol, f"{backend} {name}")
    return o, lse, grads


CASES = [  # (B, H, Nq, Nk, d, dv): no tile multiples, Nq != Nk both ways, d in {16, 64, 80, 128, 256}
    (2, 3, 37, 53, 16, 16),
    (1, 2, 70, 29, 80, 64),
    (2, 1, 45, 45, 64, 64),
    (1, 3, 33, 66, 128, 128),
    (1, 1, 20, 19, 256, 200),  # the largest head dim the kernels are built for, dv != d
]


@pytest.mark.parametrize("backend", KERNELS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("padded", [False, True], ids=["nopad", "pad"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c)))
def test_backend_matches_reference(backend, dtype, causal, padded, case):
    B, H, Nq, Nk, d, dv = case
    q, k, v, do = _inputs(sum(case), *case)
    pad = _padding(sum(case), B, Nk) if padded else None
    _check_against_reference(backend, dtype, q, k, v, do, causal, pad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_default_tiles_and_dispatch(backend, dtype):
    """The public entry points with the backends' own tile sizes (several tiles at N = 300)."""
    q, k, v, do = _inputs(5, 1, 3, 300, 290, 64, 32)
    for causal in (False, True):
        o_ref, lse_ref = attention_forward(q, k, v, causal)
        grads_ref = attention_backward(q, k, v, o_ref, lse_ref, do, causal)
        qc, kc, vc, doc = (a.astype(dtype) for a in (q, k, v, do))
        o, lse = flash_attention(qc, kc, vc, causal=causal, backend=backend)
        grads = flash_attention_backward(qc, kc, vc, o, lse, doc, causal=causal, backend=backend)
        tol = TOL[dtype] * (10 if dtype == np.float32 else 1)  # rounding of the inputs themselves
        assert_close(o, o_ref, tol, "o")
        assert_close(lse, lse_ref, tol, "lse")
        for g, g_ref in zip(grads, grads_ref):
            assert_close(g, g_ref, tol, "grad")


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
def test_fully_masked_rows_are_zero_with_lse_minus_inf_and_no_gradient(backend):
    q, k, v, do = _inputs(3, 2, 2, 20, 24, 16, 8)
    pad = _padding(3, 2, 24, fully_padded_batch=1)
    pad[0, :] = False
    pad[0, 5:9] = True
    pad[0, 0] = True  # causal: query 0 of batch 0 sees only key 0, which is padding
    for causal in (False, True):
        o, lse = flash_attention(q, k, v, causal=causal, key_padding_mask=pad, backend=backend)
        assert np.all(o[1] == 0) and np.all(np.isneginf(lse[1]))
        first = 1 if causal else 0
        if causal:
            assert np.all(o[0, :, 0] == 0) and np.all(np.isneginf(lse[0, :, 0]))
        assert np.all(np.isfinite(o[0])) and np.all(np.isfinite(lse[0, :, first:]))
        dq, dk, dv = flash_attention_backward(q, k, v, o, lse, do, causal=causal, key_padding_mask=pad,
                                              backend=backend)
        assert np.all(dq[1] == 0) and np.all(dk[1] == 0) and np.all(dv[1] == 0)
        assert np.all(dk[0][:, 5:9] == 0) and np.all(dv[0][:, 5:9] == 0), "padded keys get no gradient"
        assert np.all(dk[0][:, 0] == 0) and np.all(dv[0][:, 0] == 0)
        if causal:
            assert np.all(dq[0, :, 0] == 0), "a fully masked row passes no gradient"
        assert all(np.all(np.isfinite(g)) for g in (dq, dk, dv))


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_keys_at_all(backend):
    q, k, v, do = _inputs(4, 1, 2, 5, 0, 8, 4)
    o, lse = flash_attention(q, k, v, backend=backend)
    assert o.shape == (1, 2, 5, 4) and np.all(o == 0) and np.all(np.isneginf(lse))
    dq, dk, dv = flash_attention_backward(q, k, v, o, lse, do, backend=backend)
    assert np.all(dq == 0) and dk.shape == (1, 2, 0, 8) and dv.shape == (1, 2, 0, 4)


@pytest.mark.parametrize("backend", KERNELS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_single_query_single_key(backend, dtype):
    """N = 1: the softmax of one score is 1, so o = v, dv = do, and dq = dk = 0."""
    q, k, v, do = (a.astype(dtype) for a in _inputs(6, 2, 2, 1, 1, 16, 16))
    fwd, bwd = _backend_fns(backend)
    for causal in (False, True):
        o, lse = fwd(q, k, v, causal=causal)
        assert_close(o, v, TOL[dtype], "o")
        assert_close(lse, np.sum(q * k, -1) / 4, TOL[dtype], "lse")  # scale = 1/sqrt(16)
        dq, dk, dv = bwd(q, k, v, o, lse, do, causal=causal)
        assert_close(dv, do, TOL[dtype], "dv")
        assert np.max(np.abs(dq)) < 10 * TOL[dtype] and np.max(np.abs(dk)) < 10 * TOL[dtype]


@pytest.mark.parametrize("backend", KERNELS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_huge_logits_stay_finite_and_correct(backend, dtype):
    """Logits ×100 (q, k ×10): exp would overflow without the running max."""
    q, k, v, do = _inputs(7, 1, 2, 40, 50, 64, 64, scale_logits=100.0)
    pad = _padding(7, 1, 50)
    # float32: an absolute score error of |S|·6e-8 ≈ 1e-4 here becomes a relative error of P
    tol = TOL[dtype] if dtype == np.float64 else 1e-3
    for causal in (False, True):
        o, lse, grads = _check_against_reference(backend, dtype, q, k, v, do, causal, pad, tol=tol)
        assert all(np.all(np.isfinite(a)) for a in (o, *grads)) and not np.any(np.isnan(lse))
        assert np.max(lse) > 100, "the test must reach huge logits"


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
def test_backward_matches_finite_differences(backend):
    """Central differences of L = sum(o · do) in float64, every entry of q, k and v."""
    q, k, v, do = _inputs(8, 1, 2, 5, 7, 3, 4)
    pad = np.array([[False, False, True, False, False, False, True]])
    if backend == "reference":
        fwd, bwd = attention_forward, attention_backward
    else:
        fwd, bwd = _backend_fns(backend, (2, 3))
    for causal in (False, True):
        def loss(q_, k_, v_, causal=causal):
            return np.sum(fwd(q_, k_, v_, causal=causal, key_padding_mask=pad)[0] * do)

        o, lse = fwd(q, k, v, causal=causal, key_padding_mask=pad)
        grads = bwd(q, k, v, o, lse, do, causal=causal, key_padding_mask=pad)
        eps = 1e-6
        for which, g in enumerate(grads):
            args = [q.copy(), k.copy(), v.copy()]
            num = np.zeros_like(g)
            for idx in np.ndindex(g.shape):
                old = args[which][idx]
                args[which][idx] = old + eps
                up = loss(*args)
                args[which][idx] = old - eps
                down = loss(*args)
                args[which][idx] = old
                num[idx] = (up - down) / (2 * eps)
            assert np.max(np.abs(num - g)) < 1e-7, \
                f"{backend}: d{'qkv'[which]} differs from finite differences"


@pytest.mark.parametrize("backend", KERNELS)
def test_results_do_not_depend_on_tile_sizes(backend):
    q, k, v, do = _inputs(9, 1, 3, 77, 91, 16, 24)
    pad = _padding(9, 1, 91)
    results = []
    for tiles in [(8, 8), (16, 64), (64, 16), (5, 13), (128, 128)]:
        fwd, bwd = _backend_fns(backend, tiles)
        o, lse = fwd(q, k, v, causal=True, key_padding_mask=pad)
        results.append((o, lse, *bwd(q, k, v, o, lse, do, causal=True, key_padding_mask=pad)))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            assert_close(a, b, 1e-13, f"{backend} with other tiles")


def test_tile_step_folds_to_softmax():
    """online_softmax_tile_step, applied over the key tiles, gives softmax(S) v and its (m, l)."""
    q, k, v, _ = _inputs(10, 1, 1, 6, 20, 8, 5)
    m, l, acc = np.full((1, 1, 6), -np.inf), np.zeros((1, 1, 6)), np.zeros((1, 1, 6, 5))
    for j0 in range(0, 20, 7):
        m, l, acc = online_softmax_tile_step(q, k[:, :, j0:j0 + 7], v[:, :, j0:j0 + 7], m, l, acc, 0.5)
    S = (q @ np.swapaxes(k, -1, -2)) * 0.5
    assert np.allclose(m, S.max(-1)) and np.allclose(l, np.exp(S - m[..., None]).sum(-1))
    o, lse = attention_forward(q, k, v, scale=0.5)
    assert np.allclose(acc / l[..., None], o) and np.allclose(m + np.log(l), lse)


torch = None


def _torch():
    global torch
    torch = pytest.importorskip("torch")
    return torch


@pytest.mark.parametrize("backend", ["reference", *BACKENDS])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_matches_torch_sdpa(backend, causal):
    """Outputs and gradients against torch.nn.functional.scaled_dot_product_attention (float64)."""
    t = _torch()
    for Nq, Nk in [(37, 53), (53, 37)]:  # torch's is_causal is top-left aligned too
        q, k, v, do = _inputs(11 + Nq, 2, 2, Nq, Nk, 16, 24)
        tq, tk, tv = (t.tensor(a, requires_grad=True) for a in (q, k, v))
        to = t.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal, scale=0.3)
        to.backward(t.tensor(do))
        o, lse = flash_attention(q, k, v, causal=causal, scale=0.3, backend=backend)
        grads = flash_attention_backward(q, k, v, o, lse, do, causal=causal, scale=0.3, backend=backend)
        assert_close(o, to.detach().numpy(), 1e-12, "o vs torch")
        for g, tg in zip(grads, (tq.grad, tk.grad, tv.grad)):
            assert_close(g, tg.numpy(), 1e-12, "grad vs torch")


def test_tiled_forward_memory_grows_linearly():
    """Peak allocation (tracemalloc) of the tiled forward at N and 4N: ×4 when linear, ×16 when quadratic."""

    def peak(fn, N):
        q, k, v, _ = _inputs(12, 1, 1, N, N, 16, 16)
        tracemalloc.start()
        fn(q, k, v)
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    tiled = peak(flash_forward_tiled, 1024) / peak(flash_forward_tiled, 256)
    naive = peak(attention_forward, 1024) / peak(attention_forward, 256)
    assert tiled < 6, f"tiled forward peak memory grew ×{tiled:.1f} from N=256 to 1024 (quadratic: ×16)"
    assert naive > 10, f"the naive forward should grow quadratically; grew ×{naive:.1f}"


def test_fast_exp_accuracy():
    from minitorch_attn.kernels.fastexp import fast_exp

    x = np.linspace(-86.5, 88.0, 400_001, dtype=np.float32)
    y = fast_exp(x)
    ref = np.exp(x.astype(np.float64))
    assert y.dtype == np.float32
    assert np.max(np.abs(y - ref) / ref) < 1e-6
    assert fast_exp(np.float32([0.0]))[0] == 1.0
    very_negative = np.array([-88.0, -100.0, -1e4, -3.4e38, -np.inf], np.float32)
    assert np.all(fast_exp(very_negative) == 0.0), "below ~-87 the result flushes to exactly 0"
    wide = fast_exp(np.linspace(-120, 88, 100_001, dtype=np.float32))
    assert np.all(np.isfinite(wide))
    assert np.all((wide == 0) | (wide >= np.finfo(np.float32).tiny)), "no denormal results"
    x64 = np.linspace(-700, 700, 10_001)
    assert np.allclose(fast_exp(x64), np.exp(x64), rtol=1e-15, atol=0), "float64 uses the exact exp"


@pytest.mark.parametrize("backend", [*BACKENDS, "numba-parallel"])
def test_non_contiguous_inputs_and_odd_head_counts(backend, monkeypatch):
    if backend == "numba-parallel":  # the prange kernels: on 2+ threads the backward splits heads into shares
        from minitorch_attn.kernels import numba_backend as nb

        monkeypatch.setattr(nb, "SERIAL_BELOW", 0)
        backend = "numba"
    q, k, v, do = _inputs(13, 1, 3, 40, 30, 16, 16)  # B·H = 3: the numba backward splits heads into shares
    qt = np.swapaxes(np.swapaxes(q, 2, 3).copy(), 2, 3)  # same values, non-contiguous
    o, lse = flash_attention(qt, k, v, causal=True, backend=backend)
    o_ref, lse_ref = attention_forward(q, k, v, causal=True)
    assert_close(o, o_ref, 1e-12, "o")
    grads = flash_attention_backward(qt, k, v, o, lse, do, causal=True, backend=backend)
    for g, g_ref in zip(grads, attention_backward(q, k, v, o_ref, lse_ref, do, causal=True)):
        assert_close(g, g_ref, 1e-12, "grad")


def test_errors_name_the_shapes():
    q = np.zeros((1, 2, 5, 8))
    with pytest.raises(ValueError, match=r"q must have shape \(B, H, N, d\); got q.shape = \(2, 5, 8\)"):
        flash_attention(q[0], q, q, backend="reference")
    with pytest.raises(ValueError, match=r"same head dim.*\(1, 2, 5, 8\).*\(1, 2, 5, 4\)"):
        flash_attention(q, np.zeros((1, 2, 5, 4)), q, backend="tiled")
    with pytest.raises(ValueError, match="number of keys"):
        flash_attention(q, q, np.zeros((1, 2, 6, 8)), backend="tiled")
    with pytest.raises(TypeError, match="share one dtype"):
        flash_attention(q, q.astype(np.float32), q, backend="tiled")
    with pytest.raises(TypeError, match="float32 or float64"):
        flash_attention(q.astype(np.int64), q, q, backend="tiled")
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, Nk\) = \(1, 5\)"):
        flash_attention(q, q, q, key_padding_mask=np.zeros((2, 5), bool), backend="tiled")
    with pytest.raises(TypeError, match="boolean"):
        flash_attention(q, q, q, key_padding_mask=np.zeros((1, 5)), backend="tiled")
    with pytest.raises(ValueError, match=r"lse must have shape \(1, 2, 5\)"):
        flash_attention_backward(q, q, q, q, np.zeros((1, 2, 4)), q, backend="tiled")
    with pytest.raises(ValueError, match=r"unknown attention backend 'cuda'.*'reference'.*'tiled'.*'numba'"):
        flash_attention(q, q, q, backend="cuda")


def test_importing_the_package_does_not_import_numba():
    code = "import sys, minitorch_attn; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", "numba must be imported only when the numba backend is used"


def test_kernels_exports():
    for name in ("flash_attention", "flash_attention_backward", "online_softmax", "merge_normalisers"):
        assert hasattr(K, name)


def test_the_old_name_of_the_oracle_raises_naming_the_new_one():
    q = np.zeros((1, 1, 2, 4))
    with pytest.raises(ValueError, match=r'backend "reference".*F\.scaled_dot_product_attention'):
        flash_attention(q, q, q, backend="naive")
    with pytest.raises(ValueError, match=r'backend "reference"'):
        flash_attention_backward(q, q, q, q, np.zeros((1, 1, 2)), q, backend="naive")


def test_one_compiled_version_per_dtype_whatever_the_layout():
    """q, k, v (forward), dO and O (backward) are read with their strides, so the entry kernels are compiled once
    per dtype with layout 'A' (any strides): a contiguous array and a permuted view must not add a version
    (each costs ~7-30 s of compiling in a fresh clone)."""
    nb = pytest.importorskip("minitorch_attn.kernels.numba_backend", reason="needs Numba")
    r = np.random.default_rng(3)
    x = r.standard_normal((2, 9, 3, 8))  # (B, N, H, d): the GPT's layout before its transpose
    views = [x.transpose(0, 2, 1, 3), np.ascontiguousarray(x.transpose(0, 2, 1, 3))]
    for q in views:
        for k in views:
            o, lse = nb.flash_forward_numba(q, k, views[0], causal=True)
            nb.flash_backward_numba(q, k, views[1], o, lse, q, causal=True)
            nb.flash_backward_numba(q, k, views[1], o, lse, np.ascontiguousarray(q), causal=True)
    for kernel, strided in ((nb._forward_kernel_serial, (0, 1, 2)), (nb._backward_kernel_serial, (4,)),
                            (nb._rowsum_product, (0, 1))):
        f64 = [sig for sig in kernel.signatures if sig[0].dtype == nb.numba.float64]
        assert len(f64) == 1, f"{kernel.__name__}: {len(f64)} float64 versions compiled, expected 1: {f64}"
        layouts = [f64[0][i].layout for i in strided]
        assert layouts == ["A"] * len(strided), f"{kernel.__name__}: strided arguments got layouts {layouts}"
