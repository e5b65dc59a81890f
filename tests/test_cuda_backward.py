"""The CUDA C backward kernels (kernels/cuda/flash_bwd.cu) run on the CPU harness.

1. The three kernels (flash_bwd_preprocess, flash_bwd_dkdv, flash_bwd_dq) match the float64 reference
   `attention_backward` on awkward shapes, under several random thread schedules; fully masked rows and
   padded keys get exactly zero gradients; huge logits stay finite and accurate.
2. backend "cuda-cpu" of `flash_attention_backward` agrees with central differences of the float64 loss.
3. Planted bugs in copies of flash_bwd.cu are caught: a missing barrier (random schedules only), a causal
   off-by-one, D computed from the wrong row, dK/dV reading lse and D of the warp's row instead of the
   lane's, a skipped query tile, and an early return before a barrier (deadlock).

Tolerance: max|x - ref| / max(1, max|ref|). The kernels compute in float32 and each gradient is a sum over
up to Nq (dK, dV) or Nk (dQ) float32 products, with a cancellation in dS = P * (dP - D): the error grows
like sqrt(N) times float32's 6e-8, and every float32 rounding of S = q·k * scale moves P by a relative
|S| * 6e-8. Measured here (seeds 1-3, the shapes below): at most 7e-7 with unit-variance inputs, so TOL = 1e-5
keeps a 14x margin while a wrong term (a missing row, a wrong D) moves the result by 1e-2 or more; with q
scaled x100 (|S| up to ~500) at most 2e-5, so HUGE_TOL = 1e-4. The harness is deterministic per thread, so
these numbers do not depend on the schedule.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from minitorch_attn.kernels import attention_backward, attention_forward, flash_attention, flash_attention_backward
from minitorch_attn.kernels.cuda import SOURCE_DIR

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the CPU harness needs g++")

from minitorch_attn.kernels.cuda.backward import (  # noqa: E402
    KERNEL_NAMES,
    flash_backward_cuda_cpu,
    run_flash_backward,
)
from minitorch_attn.kernels.cuda.harness import CpuModule, KernelError  # noqa: E402

SEEDS = (1, 2, 3)
TOL = 1e-5
HUGE_TOL = 1e-4
SOURCE = (SOURCE_DIR / "flash_bwd.cu").read_text()

SHAPES = {  # name: (B, H, Nq, Nk, d, dv, causal, padding); those of tests/test_cuda_harness.py
    "N not a tile multiple": (1, 2, 37, 45, 16, None, False, None),
    "N = 1": (1, 1, 1, 1, 8, None, False, None),
    "N = 1 causal": (1, 1, 1, 1, 8, None, True, None),
    "d = 80, causal, Nq < Nk": (2, 1, 33, 50, 80, None, True, None),
    "causal, Nq > Nk": (1, 2, 70, 40, 32, None, True, None),
    "d = 128, dv = 40": (1, 1, 9, 40, 128, 40, False, None),
    "padding": (2, 2, 21, 37, 16, None, False, "random"),
    "causal + padding, fully masked rows": (2, 1, 19, 35, 16, None, True, "first key and one whole batch"),
}


def _problem(B, H, Nq, Nk, d, dv=None, causal=False, pad_kind=None, seed=0, q_scale=1.0):
    """float64 inputs, the float64 reference forward (o, lse) and backward (dq, dk, dv), and the mask."""
    rng = np.random.default_rng(seed)
    dv = dv or d
    q = rng.standard_normal((B, H, Nq, d)) * q_scale
    k = rng.standard_normal((B, H, Nk, d))
    v = rng.standard_normal((B, H, Nk, dv))
    do = rng.standard_normal((B, H, Nq, dv))
    pad = _padding(pad_kind, B, Nk, rng)
    o, lse = attention_forward(q, k, v, causal=causal, key_padding_mask=pad)
    grads = attention_backward(q, k, v, o, lse, do, causal=causal, key_padding_mask=pad)
    return (q, k, v, o, lse, do), grads, pad


def _padding(kind, B, Nk, rng):
    if kind is None:
        return None
    if kind == "random":
        pad = rng.random((B, Nk)) < 0.3
        pad[:, 0] = False
        return pad
    pad = np.zeros((B, Nk), bool)
    pad[0, 0] = True  # causal: query 0 of batch 0 sees only key 0, padded -> fully masked row
    pad[1, :] = True  # batch 1: every row fully masked
    return pad


def _f32(arrays):
    return tuple(a.astype(np.float32) for a in arrays)


def _errors(grads, ref):
    """Relative max error of (dq, dk, dv); inf if anything is not finite (a NaN fill left unwritten)."""
    return tuple(np.max(np.abs(g - r), initial=0) / max(1.0, np.max(np.abs(r), initial=0))
                 if np.all(np.isfinite(g)) else np.inf for g, r in zip(grads, ref))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(SHAPES))
def test_backward_matches_reference(name, seed):
    B, H, Nq, Nk, d, dv, causal, pad_kind = SHAPES[name]
    inputs, ref, pad = _problem(B, H, Nq, Nk, d, dv, causal, pad_kind, seed=seed)
    grads = flash_backward_cuda_cpu(*_f32(inputs), causal=causal, key_padding_mask=pad, seed=seed)
    assert all(g.dtype == np.float32 for g in grads)
    errors = _errors(grads, ref)
    assert max(errors) <= TOL, f"{name}: relative errors (dq, dk, dv) = {errors}"


def test_fully_masked_rows_and_padded_keys_get_zero_gradients():
    B, H, Nq, Nk, d, dv, causal, pad_kind = SHAPES["causal + padding, fully masked rows"]
    inputs, _, pad = _problem(B, H, Nq, Nk, d, dv, causal, pad_kind, seed=1)
    assert np.isneginf(inputs[4][0, :, 0]).all() and np.isneginf(inputs[4][1]).all()  # the rows are fully masked
    dq, dk, dv = flash_backward_cuda_cpu(*_f32(inputs), causal=causal, key_padding_mask=pad)
    assert np.all(dq[1] == 0) and np.all(dq[0, :, 0] == 0), "a fully masked row passes no gradient to q"
    assert np.all(dk[1] == 0) and np.all(dv[1] == 0), "keys seen by no query get no gradient"
    assert np.all(dk[0, :, 0] == 0) and np.all(dv[0, :, 0] == 0), "a padded key gets no gradient"
    assert np.any(dq[0, :, 1:] != 0) and np.any(dk[0, :, 1:] != 0), "the other rows do get gradients"


@pytest.mark.parametrize("causal", [False, True])
def test_huge_logits_stay_finite_and_accurate(causal):
    inputs, ref, _ = _problem(1, 2, 37, 45, 16, causal=causal, seed=1, q_scale=100.0)
    q, k = inputs[0], inputs[1]
    assert np.abs(q @ np.swapaxes(k, -1, -2)).max() / 4 > 250  # |S| (scale 1/4) in the hundreds: exp(S) overflows
    grads = flash_backward_cuda_cpu(*_f32(inputs), causal=causal)
    errors = _errors(grads, ref)
    assert max(errors) <= HUGE_TOL, f"relative errors (dq, dk, dv) = {errors}"


def test_backend_matches_finite_differences():
    """Central differences of the float64 loss sum(o * do) against backend "cuda-cpu", end to end.

    The kernels run in float32, so their gradients cannot match float64 differences to 1e-8: we check
    them to TOL, while the differences themselves (eps = 1e-6, error ~eps^2 + 1e-16 / eps ~ 1e-10) are
    exact at that scale. The shape has causal masking, a padded key and so a fully masked row (query 0).
    """
    (q, k, v, _, _, do), _, _ = _problem(1, 2, 3, 5, 4, 3, seed=7)
    pad = np.array([[True, False, False, False, False]])

    def loss(q, k, v):
        return np.sum(attention_forward(q, k, v, causal=True, key_padding_mask=pad)[0] * do)

    o, lse = flash_attention(q, k, v, causal=True, key_padding_mask=pad, backend="cuda-cpu")
    grads = flash_attention_backward(q, k, v, o, lse, do, causal=True, key_padding_mask=pad, backend="cuda-cpu")
    assert all(g.dtype == np.float64 for g in grads)  # computed in float32, returned in the input dtype
    eps = 1e-6
    args = [q, k, v]
    for which, grad in enumerate(grads):
        numeric = np.zeros_like(grad)
        for index in np.ndindex(grad.shape):
            plus, minus = [a.copy() for a in args], [a.copy() for a in args]
            plus[which][index] += eps
            minus[which][index] -= eps
            numeric[index] = (loss(*plus) - loss(*minus)) / (2 * eps)
        error = np.max(np.abs(grad - numeric)) / max(1.0, np.max(np.abs(numeric)))
        assert error <= TOL, f"{'qkv'[which]}: relative error {error:.2e} vs central differences"
    assert np.all(grads[0][:, :, 0] == 0) and np.abs(grads[0]).max() > 0.1


def test_bad_arguments_are_named():
    inputs, _, _ = _problem(1, 1, 3, 4, 8)
    q, k, v, o, lse, do = _f32(inputs)
    with pytest.raises(ValueError, match=r"lse must have shape \(1, 1, 3\)"):
        flash_backward_cuda_cpu(q, k, v, o, lse[..., :2], do)
    with pytest.raises(TypeError, match="do must have the dtype of q"):
        flash_backward_cuda_cpu(q, k, v, o, lse, do.astype(np.float64))
    big, _, _ = _problem(1, 1, 2, 2, 130)
    with pytest.raises(ValueError, match="up to 128; got d = 130"):
        flash_backward_cuda_cpu(*_f32(big))
    with pytest.raises(KeyError, match="flash_bwd_dq"):
        run_flash_backward({}, q, k, v, o, lse, do)


def test_empty_query_or_key_sets():
    """Nq = 0: no gradient reaches k, v (zeros). Nk = 0: every row is fully masked, dq = 0. No empty launch."""
    inputs, _, _ = _problem(1, 2, 0, 5, 8)
    dq, dk, dv = flash_backward_cuda_cpu(*_f32(inputs))
    assert dq.shape == (1, 2, 0, 8) and np.all(dk == 0) and np.all(dv == 0)
    inputs, _, _ = _problem(1, 2, 6, 0, 8)
    dq, dk, dv = flash_backward_cuda_cpu(*_f32(inputs))
    assert np.all(dq == 0) and dk.shape == dv.shape == (1, 2, 0, 8)


# --- planted bugs: each copy of the kernel differs from flash_bwd.cu by one small edit -------------------


def _planted(old, new, count=1):
    assert SOURCE.count(old) == count, f"the planted-bug edit no longer applies: {old!r}"
    module = CpuModule(code=SOURCE.replace(old, new))
    return {name: module.get_function(name) for name in KERNEL_NAMES}


def _caught(kernels, shape, causal=False, seeds=SEEDS):
    """True if the buggy kernels raise KernelError or give a wrong answer under some seed."""
    inputs, ref, _ = _problem(*shape, causal=causal, seed=1)
    for seed in seeds:
        try:
            grads = run_flash_backward(kernels, *_f32(inputs), causal, seed=seed)
        except KernelError:
            return True
        if max(_errors(grads, ref)) > TOL:
            return True
    return False


def test_missing_barrier_is_caught_by_random_schedules():
    kernels = _planted("        __syncthreads();                          // everyone is done with the previous query",
                       "        // (barrier removed)                      // everyone is done with the previous query")
    shape = (1, 1, 96, 8, 16)  # three query tiles: a warp that runs ahead overwrites the tile others read
    assert _caught(kernels, shape)
    assert not _caught(kernels, shape, seeds=(0,)), "lock-step order hides it: why random seeds are needed"


def test_causal_off_by_one_is_caught():
    kernels = _planted("(!causal || j <= i)", "(!causal || j < i)")
    assert _caught(kernels, (1, 1, 40, 40, 16), causal=True)


def test_D_from_the_wrong_row_is_caught():
    # Preprocess pairs dO of row i with O of row i + 1 (on a GPU: the next head's first row, or past the end).
    kernels = _planted("partial += dO[row + c] * o[row + c];", "partial += dO[row + c] * o[row + dv + c];")
    assert _caught(kernels, (1, 2, 9, 12, 16))


def test_lse_and_D_of_the_warps_row_in_dkdv_is_caught():
    # In dkdv the lane owns the query (the forward's mapping transposed): indexing by the warp is a classic slip.
    kernels = _planted("P = __expf(S - lse[q_row0 + i]);", "P = __expf(S - lse[q_row0 + i0 + warp]);")
    assert _caught(kernels, (1, 1, 9, 12, 16))
    kernels = _planted("dS = P * (dP - D[q_row0 + i]);", "dS = P * (dP - D[q_row0 + i0 + warp]);")
    assert _caught(kernels, (1, 1, 9, 12, 16))


def test_causal_query_tile_skipped_too_early_is_caught():
    kernels = _planted("causal ? (j0 / Br) * Br : 0", "causal ? (j0 / Br + 1) * Br : 0")
    assert _caught(kernels, (1, 1, 40, 40, 16), causal=True)


def test_early_return_before_a_barrier_is_a_deadlock():
    kernels = _planted("const int j = j0 + warp;                      // this warp's key",
                       "const int j = j0 + warp;\n    if (j >= Nk) return;")
    inputs, _, _ = _problem(1, 1, 5, 6, 8)  # 4 keys per block: the second block has 2 warps past Nk
    with pytest.raises(KernelError, match="deadlock"):
        run_flash_backward(kernels, *_f32(inputs), seed=1)
