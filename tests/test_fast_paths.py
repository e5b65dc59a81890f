"""The fast paths of the training step (issue 5): Numba exact GELU, the one-GEMM Linear, nanoGPT's schedule."""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from scipy.special import erf, ndtr

from minitorch_attn import functional as F
from minitorch_attn.autograd.tensor import Tensor
from minitorch_attn.train import NanoGPTSchedule

kernel = pytest.importorskip("minitorch_attn.autograd._gelu_kernel")


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
