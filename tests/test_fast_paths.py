"""The fast paths of the training step (issue 5): Numba exact GELU, the one-GEMM Linear, nanoGPT's schedule."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest
import torch
from scipy.special import erf, ndtr

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn.autograd.tensor import Tensor
from minitorch_attn.training.loop import NanoGPT2023Schedule, NanoGPTSchedule

kernel = pytest.importorskip("minitorch_attn.kernels.ops.gelu")


def _inputs():
    r = np.random.default_rng(0)
    return np.concatenate([np.linspace(-10, 10, 200_001, dtype=np.float32),
                           (3 * r.standard_normal(50_000)).astype(np.float32), np.float32([0, -0.0, 1e-30, -1e-30])])


def test_erf_matches_scipy_to_float32_precision():
    x = _inputs()
    ref = erf(x.astype(np.float64) / math.sqrt(2))
    got = kernel.erf_sqrt2(x)
    nz = ref != 0
    assert np.max(np.abs(got[nz] - ref[nz]) / np.abs(ref[nz])) < 1e-7
    assert np.all(got[~nz] == 0)


def test_gelu_cdf_keeps_relative_accuracy_in_the_left_tail():
    x = _inputs()
    _, cdf, _ = kernel.gelu_forward(x)
    ref = ndtr(x.astype(np.float64))
    # float32 inputs: x²/2 rounds, so exp(-x²/2) carries ~x²·6e-8 relative error; nothing cancels
    assert np.all(np.abs(cdf - ref) <= 1e-7 * ref + 1e-7 * ref * x.astype(np.float64) ** 2 + 1e-38)


def test_gelu_float32_matches_torch_forward_and_backward():
    x = _inputs()
    g = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    t = Tensor(x, requires_grad=True)
    y = F.gelu(t)
    y.backward(g)
    tx = torch.tensor(x.astype(np.float64), requires_grad=True)
    ty = torch.nn.functional.gelu(tx)
    ty.backward(torch.tensor(g.astype(np.float64)))
    assert y.data.dtype == np.float32 and t.grad.dtype == np.float32
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=2e-7, atol=1e-7)
    np.testing.assert_allclose(t.grad, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape, bias", [((4, 5, 16), True), ((4, 5, 16), False), ((16,), True), ((3, 16), False)])
def test_linear_is_one_gemm_with_torch_gradients(shape, bias):
    r = np.random.default_rng(2)
    x, w, b = (r.standard_normal(s) for s in (shape, (7, 16), (7,)))
    X, W, B = (Tensor(a, requires_grad=True) for a in (x, w, b))
    y = F.linear(X, W, B if bias else None)
    g = r.standard_normal(y.shape)
    y.backward(g)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.linear(tx, tw, tb if bias else None)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    for ours, theirs in ((X, tx), (W, tw)) + (((B, tb),) if bias else ()):
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_nanogpt_schedule_is_nanogpts_get_lr():
    lr, warm, decay, lo = 1e-3, 100, 2000, 1e-4

    def get_lr(it):  # nanoGPT's train.py
        if it < warm:
            return lr * (it + 1) / (warm + 1)
        if it > decay:
            return lo
        ratio = (it - warm) / (decay - warm)
        return lo + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - lo)

    opt = types.SimpleNamespace(lr=lr)
    sched = NanoGPTSchedule(opt, warm, decay, lo)
    seen = [opt.lr]
    for _ in range(2005):
        seen.append(sched.step())
    assert seen == pytest.approx([get_lr(it) for it in range(2006)], rel=1e-15, abs=0)


def test_nanogpt_2023_schedule_warms_up_from_zero():
    """nanoGPT's get_lr of February 2023 (README's 1.88): lr * it / warmup, then the same cosine as today."""
    lr, warm, decay, lo = 1e-3, 100, 2000, 1e-4
    opt = types.SimpleNamespace(lr=lr)
    sched = NanoGPT2023Schedule(opt, warm, decay, lo)
    seen = [opt.lr] + [sched.step() for _ in range(2005)]
    assert seen[0] == 0.0 and seen[1] == pytest.approx(lr / warm) and seen[50] == pytest.approx(lr / 2)
    later = NanoGPTSchedule(types.SimpleNamespace(lr=lr), warm, decay, lo)
    assert seen[warm:] == pytest.approx([later.get_lr(it) for it in range(warm, 2006)], rel=1e-15, abs=0)
    assert seen[2000] == pytest.approx(lo) and seen[2005] == lo


# ---- Numba kernels of the training step: LayerNorm, the embedding's scatter, Adam(W), the gradient norm ------
ln_kernel = pytest.importorskip("minitorch_attn.kernels.ops.layernorm")
emb_kernel = pytest.importorskip("minitorch_attn.kernels.ops.embedding")
opt_kernel = pytest.importorskip("minitorch_attn.kernels.ops.adam")


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (3, 1), (2, 7, 13), (37, 128)])
@pytest.mark.parametrize("affine", ["weight+bias", "weight", "none"])
def test_layer_norm_kernel_matches_torch(shape, affine):
    """The Numba path (last axis) against torch in float64 on the same inputs: float32 at 1e-5 and float64 at
    1e-12, including rows of length 1 (xhat = 0 exactly; float32 torch gives (x - mean) round-off times
    1/√eps there) and row counts that are not a multiple of the 16 reduction chunks."""
    r = np.random.default_rng(3)
    d = shape[-1]
    for dtype, tol in ((np.float32, 1e-5), (np.float64, 1e-12)):
        x = (5 * r.standard_normal(shape) + 3).astype(dtype)
        w, b, g = r.standard_normal(d).astype(dtype), r.standard_normal(d).astype(dtype), r.standard_normal(shape)
        X, W, B = (Tensor(a, requires_grad=True) for a in (x, w, b))
        y = F.layer_norm(X, d, W if affine != "none" else None, B if affine == "weight+bias" else None)
        y.backward(g.astype(dtype))
        tx, tw, tb = (torch.tensor(a.astype(np.float64), requires_grad=True) for a in (x, w, b))
        ty = torch.nn.functional.layer_norm(tx, (d,), tw if affine != "none" else None,
                                            tb if affine == "weight+bias" else None)
        ty.backward(torch.tensor(g.astype(dtype).astype(np.float64)))
        assert y.data.dtype == dtype and X.grad.dtype == dtype
        np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(X.grad, tx.grad.numpy(), rtol=tol, atol=tol)
        if affine != "none":
            np.testing.assert_allclose(W.grad, tw.grad.numpy(), rtol=tol, atol=tol * np.sqrt(x.size))
        if affine == "weight+bias":
            np.testing.assert_allclose(B.grad, tb.grad.numpy(), rtol=tol, atol=tol * np.sqrt(x.size))


def test_layer_norm_kernel_gradcheck_float64():
    r = np.random.default_rng(4)
    x, w, b = (mta.tensor(a, requires_grad=True) for a in (r.standard_normal((3, 5, 6)), r.standard_normal(6),
                                                           r.standard_normal(6)))
    assert mta.gradcheck(lambda x, w, b: F.layer_norm(x, 6, w, b), [x, w, b])
    assert mta.gradcheck(lambda x: F.layer_norm(x, 6), [x])


def _layer_norm_both_paths(monkeypatch, x, w, b, g):
    """Output and gradients of F.layer_norm through the Numba kernel and through the NumPy lines of fused."""
    from minitorch_attn.autograd import fused

    results = []
    for kernel in (ln_kernel, None):
        with monkeypatch.context() as m:
            m.setitem(fused._KERNELS, "layernorm", kernel)
            X = Tensor(x, requires_grad=True)
            W, B = (None if a is None else Tensor(a, requires_grad=True) for a in (w, b))
            y = F.layer_norm(X, x.shape[-1], W, B)
            y.backward(g)
            results.append([y.data, X.grad] + [t.grad for t in (W, B) if t is not None])
    return results


@pytest.mark.parametrize("d", [1, 2, 7, 8, 9, 16, 127, 128, 129, 300, 1100])  # block sizes of NumPy's pairwise sum
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_norm_kernel_gives_numpys_bits(d, dtype, monkeypatch):
    """Same operations, order and dtype as the NumPy path (NumPy's pairwise sums along a row, rows summed in
    order for the weight and bias gradients): the same bits, with and without weight and bias."""
    r = np.random.default_rng(d)
    x = (r.standard_normal((3, 11, d)) * 10 ** r.uniform(-2, 2) + r.uniform(-5, 5)).astype(dtype)
    g = r.standard_normal(x.shape).astype(dtype)
    for w, b in ((r.standard_normal(d).astype(dtype), r.standard_normal(d).astype(dtype)),
                 (r.standard_normal(d).astype(dtype), None), (None, None)):
        fast, numpy_path = _layer_norm_both_paths(monkeypatch, x, w, b, g)
        for i, (a, c) in enumerate(zip(fast, numpy_path)):
            assert a.dtype == dtype and np.array_equal(a, c), f"result {i} differs (max {np.abs(a - c).max()})"


def test_layer_norm_kernel_parallel_path_gives_the_same_bits_on_any_thread_count(monkeypatch):
    """From PARALLEL_MIN elements the rows (and, for the sums over rows, the columns) are split over the threads:
    still NumPy's bits, on 1 thread or all of them; a strided gradient takes the NumPy route."""
    import numba

    monkeypatch.setattr(ln_kernel, "PARALLEL_MIN", 4096)
    r = np.random.default_rng(5)
    x, g = r.standard_normal((301, 64)).astype(np.float32), r.standard_normal((301, 64)).astype(np.float32)
    w, b = r.standard_normal(64).astype(np.float32), r.standard_normal(64).astype(np.float32)
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            fast, numpy_path = _layer_norm_both_paths(monkeypatch, x, w, b, g)
            assert all(np.array_equal(a, c) for a, c in zip(fast, numpy_path)), f"{threads} threads"
    finally:
        numba.set_num_threads(before)
    strided = np.asfortranarray(g)
    fast, numpy_path = _layer_norm_both_paths(monkeypatch, x, w, b, strided)
    assert all(np.array_equal(a, c) for a, c in zip(fast, numpy_path))


def test_layer_norm_kernel_keeps_numpys_nan_for_non_finite_rows():
    x = np.array([[1.0, np.inf, 2.0], [1.0, 2.0, 3.0]], dtype=np.float32)
    y = F.layer_norm(Tensor(x), 3)
    assert np.isnan(y.data[0]).all() and np.isfinite(y.data[1]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_scatter_is_np_add_at(dtype):
    """Repeated (and negative) indices add up in the same order as np.add.at: bit-identical gradients."""
    r = np.random.default_rng(6)
    idx = r.integers(-7, 7, size=(4, 33))
    grad = r.standard_normal((4, 33, 5)).astype(dtype)
    expected = np.zeros((7, 5), dtype=dtype)
    np.add.at(expected, idx, grad)
    got = emb_kernel.embedding_backward(idx, grad, (7, 5))
    assert got.dtype == dtype and np.array_equal(got, expected)
    with pytest.raises(IndexError, match=r"\[-7, 7\)"):
        emb_kernel.embedding_backward(np.array([7]), grad[0, :1], (7, 5))


def test_embedding_gradcheck_float64():
    idx = np.array([[0, 3, 3], [1, 0, 3]])
    w = mta.tensor(np.random.default_rng(7).standard_normal((4, 3)), requires_grad=True)
    assert mta.gradcheck(lambda w: F.embedding(idx, w), [w])


@pytest.mark.parametrize("size", [100, 3 * 4096 + 7])  # one thread / fixed parallel chunks (PARALLEL_MIN = 4096)
@pytest.mark.parametrize("name, kwargs", [("AdamW", dict(lr=1e-2, weight_decay=0.1)),
                                          ("Adam", dict(lr=1e-2, weight_decay=0.1, eps=1e-6)),
                                          ("AdamW", dict(lr=3e-3, betas=(0.8, 0.95), weight_decay=0.0))])
def test_adam_kernel_matches_torch_and_the_numpy_formula(size, name, kwargs, monkeypatch):
    """The kernel gives the same bits as Adam.step's NumPy lines (float32 and float64), and float32 agrees with
    torch to an ulp or two per step."""
    from minitorch_attn import nn, optim

    monkeypatch.setattr(opt_kernel, "PARALLEL_MIN", 4096)
    r = np.random.default_rng(8)
    p0, grads = r.standard_normal(size), [r.standard_normal(size) for _ in range(6)]

    def run(dtype, fast=True):
        p = nn.Parameter(p0.astype(dtype))
        opt = getattr(optim, name)([p], **kwargs)
        with monkeypatch.context() as m:
            if not fast:  # the NumPy reference lines of Adam.step
                m.setattr(optim, "_fast", lambda *a: False)
            for g in grads:
                p.grad = g.astype(dtype)
                opt.step()
        return p.data, opt.state[0]

    q = torch.tensor(p0.astype(np.float32), requires_grad=True)
    topt = getattr(torch.optim, name)([q], **kwargs)
    for g in grads:
        q.grad = torch.tensor(g.astype(np.float32))
        topt.step()
    ours32, state32 = run(np.float32)
    assert ours32.dtype == np.float32 and state32["exp_avg_sq"].dtype == np.float32
    np.testing.assert_allclose(ours32, q.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(state32["exp_avg"], topt.state[q]["exp_avg"].numpy(), rtol=1e-6, atol=1e-7)
    for dtype in (np.float32, np.float64):
        fast, fast_state = run(dtype)
        slow, slow_state = run(dtype, fast=False)
        assert np.array_equal(fast, slow), f"{dtype.__name__}: the kernel's parameters differ from NumPy's"
        for key in ("exp_avg", "exp_avg_sq"):
            assert np.array_equal(fast_state[key], slow_state[key]), key


def test_sum_squares_is_float64_and_thread_independent(monkeypatch):
    import numba

    monkeypatch.setattr(opt_kernel, "PARALLEL_MIN", 4096)
    x = np.random.default_rng(9).standard_normal(5 * opt_kernel.PARALLEL_MIN + 3).astype(np.float32)
    expected = float(np.sum(x.astype(np.float64) ** 2))
    before = numba.get_num_threads()
    try:
        got = []
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            got.append(opt_kernel.sum_squares(x))
    finally:
        numba.set_num_threads(before)
    assert got[0] == got[-1]
    assert abs(got[0] - expected) <= 1e-12 * expected
    assert opt_kernel.sum_squares(x[:10]) == pytest.approx(float(np.sum(x[:10].astype(np.float64) ** 2)), rel=1e-15)


def test_gelu_parallel_path_equals_the_one_thread_path(monkeypatch):
    """Elements are independent: splitting them over the threads (from PARALLEL_MIN up) changes no bit."""
    x = _inputs()
    g = np.random.default_rng(10).standard_normal(x.shape).astype(np.float32)
    out, cdf, e = kernel.gelu_forward(x)
    dx = kernel.gelu_backward(g, x, e, cdf)
    monkeypatch.setattr(kernel, "PARALLEL_MIN", 4096)
    out2, cdf2, e2 = kernel.gelu_forward(x)
    assert np.array_equal(out, out2) and np.array_equal(cdf, cdf2)
    assert np.array_equal(dx, kernel.gelu_backward(g, x, e2, cdf2))


def test_gelu_forward_deriv_gives_the_backward_of_the_cdf_route():
    """fused.GELU keeps only deriv = Φ + xφ; grad * deriv must be the same bits as gelu_backward(Φ, e)."""
    x = _inputs()
    g = np.random.default_rng(11).standard_normal(x.shape).astype(np.float32)
    out, cdf, e = kernel.gelu_forward(x)
    out2, deriv = kernel.gelu_forward_deriv(x)
    assert np.array_equal(out, out2)
    assert np.array_equal(g * deriv, kernel.gelu_backward(g, x, e, cdf))


_FAULTS = """
import resource, sys
import numpy as np
if sys.argv[1] == "retain":
    from minitorch_attn.training.loop import retain_freed_memory
    assert retain_freed_memory()
for _ in range(3):  # warm up: the heap grows once
    arrays = [np.ones(1 << 18, dtype=np.float32) for _ in range(8)]  # 8 x 1 MiB, as one step's activations
    del arrays
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    arrays = [np.ones(1 << 18, dtype=np.float32) for _ in range(8)]
    del arrays
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="retain_freed_memory sets glibc's malloc (Linux)")
def test_retain_freed_memory_stops_the_page_faults_of_repeated_steps():
    """40 "steps" that allocate and free 8 MiB: without the setting glibc maps fresh pages each time (~2,000
    page faults per step), with it the heap keeps them and the next step reuses them."""
    import subprocess

    faults = {mode: int(subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True,
                                       check=True).stdout) for mode in ("default", "retain")}
    assert faults["default"] > 40 * 1000, faults  # the premise: by default every step faults its memory in
    assert faults["retain"] < faults["default"] / 20, faults


def test_gelu_exp_in_one_buffer_gives_the_bits_of_the_plain_formula():
    x = np.concatenate([_inputs().ravel(), np.float32([0.0, -0.0, 1e-30, -1e-22, 1e-19, 13.5, -14.0, np.inf])])
    want = np.exp(np.float32(-0.5) * x * x)
    got = kernel._exp_minus_half_square(x)
    assert got.dtype == np.float32 and np.array_equal(got, want), \
        "exp(-x²/2) must not depend on the order of the products"
