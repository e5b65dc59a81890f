"""The CUDA C forward kernel (kernels/cuda/flash_fwd.cu) run on the CPU harness, and the harness itself.

1. flash_fwd.cu matches the float64 reference on awkward shapes, under several random thread schedules.
2. Planted bugs in copies of the kernel are caught (so we know the harness can fail): a missing barrier, an
   off-by-one causal mask, a `<= Nk` load guard, a key-range off-by-one, a tile that is not zero-filled,
   a write past the end, an early return before a barrier; and a wrong scalar argument size.
3. The NVRTC compile check (as CuPy compiles) passes, and flags a kernel with a stack frame.

Tolerance: max|x - ref| / max(1, max|ref|) <= 1e-5 (float32, as in test_kernels.py).
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from minitorch_attn.kernels import attention_forward, flash_attention, flash_attention_backward
from minitorch_attn.kernels.cuda import SOURCE_DIR

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the CPU harness needs g++")

from minitorch_attn.kernels.cuda.forward import flash_forward_cuda_cpu, run_flash_forward  # noqa: E402
from minitorch_attn.kernels.cuda.harness import CpuModule, KernelError  # noqa: E402

SEEDS = (1, 2, 3)
TOL = 1e-5
SOURCE = (SOURCE_DIR / "flash_fwd.cu").read_text()


def _inputs(B, H, Nq, Nk, d, dv=None, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((B, H, Nq, d)).astype(dtype)
    k = rng.standard_normal((B, H, Nk, d)).astype(dtype)
    v = rng.standard_normal((B, H, Nk, dv or d)).astype(dtype)
    return q, k, v


def _close(o, lse, q, k, v, causal, pad):
    ref_o, ref_lse = attention_forward(q.astype(np.float64), k.astype(np.float64), v.astype(np.float64),
                                       causal=causal, key_padding_mask=pad)
    if not np.array_equal(np.isneginf(lse), np.isneginf(ref_lse)):
        return False, "the fully masked rows differ"
    if not np.all(np.isfinite(o)):
        return False, "NaN or inf in the output"
    finite = np.isfinite(ref_lse)
    err_o = np.max(np.abs(o - ref_o), initial=0) / max(1.0, np.max(np.abs(ref_o), initial=0))
    err_lse = np.max(np.abs(lse[finite] - ref_lse[finite]) / np.maximum(1, np.abs(ref_lse[finite])), initial=0)
    return err_o <= TOL and err_lse <= TOL, (err_o, err_lse)


SHAPES = {  # name: (B, H, Nq, Nk, d, dv, causal, padding)
    "N not a tile multiple": (1, 2, 37, 45, 16, None, False, None),
    "N = 1": (1, 1, 1, 1, 8, None, False, None),
    "N = 1 causal": (1, 1, 1, 1, 8, None, True, None),
    "d = 80, causal, Nq < Nk": (2, 1, 33, 50, 80, None, True, None),
    "causal, Nq > Nk": (1, 2, 70, 40, 32, None, True, None),
    "d = 128, dv = 40": (1, 1, 9, 40, 128, 40, False, None),
    "padding": (2, 2, 21, 37, 16, None, False, "random"),
    "causal + padding, fully masked rows": (2, 1, 19, 35, 16, None, True, "first key and one whole batch"),
}


def _padding(kind, B, Nk, seed=0):
    if kind is None:
        return None
    if kind == "random":
        pad = np.random.default_rng(seed).random((B, Nk)) < 0.3
        pad[:, 0] = False
        return pad
    pad = np.zeros((B, Nk), bool)
    pad[0, 0] = True  # causal: query 0 of batch 0 sees only key 0, padded -> fully masked row
    pad[1, :] = True  # batch 1: every row fully masked
    return pad


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(SHAPES))
def test_forward_matches_reference(name, seed):
    B, H, Nq, Nk, d, dv, causal, pad_kind = SHAPES[name]
    q, k, v = _inputs(B, H, Nq, Nk, d, dv, seed=seed)
    pad = _padding(pad_kind, B, Nk, seed)
    o, lse = flash_forward_cuda_cpu(q, k, v, causal=causal, key_padding_mask=pad, seed=seed)
    ok, errors = _close(o, lse, q, k, v, causal, pad)
    assert ok, f"{name}: errors (o, lse) = {errors}"


def test_backend_dispatch_and_dtypes():
    q, k, v = _inputs(1, 1, 10, 12, 8, dtype=np.float64)
    o, lse = flash_attention(q, k, v, causal=True, backend="cuda-cpu")
    assert o.dtype == lse.dtype == np.float64  # computed in float32, returned in the input dtype
    assert _close(o, lse, q, k, v, True, None)[0]
    from minitorch_attn.kernels import attention_backward

    grads = flash_attention_backward(q, k, v, o, lse, o, causal=True, backend="cuda-cpu")  # do = o
    assert all(g.dtype == np.float64 for g in grads)
    ref = attention_backward(q, k, v, o, lse, o, causal=True)
    assert all(np.max(np.abs(g - r)) <= TOL * max(1.0, np.max(np.abs(r))) for g, r in zip(grads, ref))
    with pytest.raises(ValueError, match="up to 128"):
        flash_forward_cuda_cpu(*_inputs(1, 1, 2, 2, 130))


def test_lock_step_schedule_also_matches():
    q, k, v = _inputs(1, 1, 37, 70, 16)
    assert _close(*flash_forward_cuda_cpu(q, k, v, seed=0), q, k, v, False, None)[0]


# --- planted bugs: each copy of the kernel differs from flash_fwd.cu by one small edit -------------------


def _planted(old, new, count=1):
    assert SOURCE.count(old) == count, f"the planted-bug edit no longer applies: {old!r}"
    return CpuModule(code=SOURCE.replace(old, new)).get_function("flash_fwd")


def _caught(kernel, shape, causal=False, pad=None, seeds=SEEDS):
    """True if the buggy kernel raises KernelError or gives a wrong answer under some seed."""
    q, k, v = _inputs(*shape)
    for seed in seeds:
        try:
            o, lse = run_flash_forward(kernel, q, k, v, causal, None, pad, seed=seed)
        except KernelError:
            return True
        if not _close(o, lse, q, k, v, causal, pad)[0]:
            return True
    return False


def test_missing_barrier_is_caught_by_random_schedules():
    kernel = _planted("        __syncthreads();                          // everyone is done with the previous",
                      "        // (barrier removed)                      // everyone is done with the previous")
    shape = (1, 2, 16, 96, 16)  # three key tiles: a warp that runs ahead overwrites the tile others read
    assert _caught(kernel, shape)
    assert not _caught(kernel, shape, seeds=(0,)), "lock-step order hides it: why random seeds are needed"


def test_causal_off_by_one_is_caught():
    kernel = _planted("(!causal || j <= i)", "(!causal || j < i)")
    assert _caught(kernel, (1, 1, 40, 40, 16), causal=True)


def test_key_range_off_by_one_is_caught():
    kernel = _planted("row_in_range && j < Nk", "row_in_range && j <= Nk")
    assert _caught(kernel, (1, 1, 8, 37, 16))  # Nk not a multiple of 32: key Nk lies in the last tile


def test_load_guard_past_the_end_is_caught_by_red_zones():
    # On a GPU the extra row is the next head's (or whatever follows), multiplied by p = 0: invisible.
    # Here the last head reads the red zone: NaN, and 0 * NaN = NaN in the output.
    kernel = _planted("(j0 + r < Nk) ?", "(j0 + r <= Nk) ?", count=2)
    assert _caught(kernel, (1, 2, 8, 37, 16))


def test_tile_not_zero_filled_is_caught_by_poisoned_shared_memory():
    kernel = _planted("v_s[t] = (j0 + r < Nk) ? v_bh[(size_t)(j0 + r) * dv + c] : 0.0f;",
                      "if (j0 + r < Nk) v_s[t] = v_bh[(size_t)(j0 + r) * dv + c];")
    # Nk < 32: the only tile's rows Nk..31 are never written and hold the poison (NaN); 0 * NaN = NaN.
    # (With a second tile they would hold the first tile's stale, finite values, as on a GPU.)
    assert _caught(kernel, (1, 1, 8, 20, 16))


def test_write_past_the_end_raises():
    kernel = _planted("if (c < dv) o[", "if (c <= dv) o[")
    q, k, v = _inputs(1, 1, 5, 9, 16)
    with pytest.raises(KernelError, match="past the end of argument 4"):
        run_flash_forward(kernel, q, k, v, seed=1)


def test_early_return_before_a_barrier_is_a_deadlock():
    kernel = _planted("const bool row_in_range = i < Nq;",
                      "const bool row_in_range = i < Nq;\n    if (!row_in_range) return;")
    q, k, v = _inputs(1, 1, 5, 9, 16)  # 4 warps per block: the second block has 3 warps past Nq
    with pytest.raises(KernelError, match="deadlock"):
        run_flash_forward(kernel, q, k, v, seed=1)


def test_scalar_argument_sizes_are_checked():
    kernel = CpuModule(path=SOURCE_DIR / "flash_fwd.cu").get_function("flash_fwd")
    q, k, v = (a[0] for a in _inputs(1, 1, 4, 4, 8))
    o, lse, pad = np.zeros((1, 4, 8), np.float32), np.zeros((1, 4), np.float32), np.zeros(1, np.uint8)
    good = [q, k, v, pad, o, lse, np.int32(1), np.int32(4), np.int32(4), np.int32(8), np.int32(8),
            np.float32(0.3), np.int32(0), np.int32(0)]
    kernel((1, 1), (128,), tuple(good), shared_mem=(4 * 8 + 32 * 8 * 2) * 4)
    for index, wrong, message in ((7, 4, "4-byte signed integer, but argument 7 is a 8-byte"),  # Python int
                                  (8, np.int64(4), "8-byte signed integer"),
                                  (11, 0.3, "4-byte floating-point value, but argument 11 is a 8-byte"),
                                  (6, np.uint32(1), "unsigned integer"),
                                  (0, np.int32(0), "pointer")):
        args = list(good)
        args[index] = wrong
        with pytest.raises(KernelError, match=message):
            kernel((1, 1), (128,), tuple(args), shared_mem=(4 * 8 + 32 * 8 * 2) * 4)
    with pytest.raises(KernelError, match="takes 14 arguments"):
        kernel((1, 1), (128,), tuple(good[:-1]))


# --- NVRTC compile check, as CuPy compiles ---------------------------------------------------------------


def _require_nvrtc():
    from minitorch_attn.kernels.cuda.nvrtc import NvrtcError, find_nvrtc

    try:
        find_nvrtc()
    except NvrtcError as error:
        if os.environ.get("MINITORCH_REQUIRE_NVRTC"):  # set by .ci/run: CI must run the check
            raise
        pytest.skip(f"{error}")


def test_nvrtc_compile_check_passes(capsys):
    _require_nvrtc()
    from minitorch_attn.kernels.cuda import compile_check

    assert compile_check.main([]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "flash_fwd" in out and "sm_80" in out and "sm_90" in out and "passed" in out


def test_nvrtc_compile_check_flags_stack_frames_and_errors(tmp_path):
    _require_nvrtc()
    from minitorch_attn.kernels.cuda.compile_check import check

    local = tmp_path / "local_array.cu"  # a dynamically indexed per-thread array lives in local memory
    local.write_text('extern "C" __global__ void local_array(float* out, int n) {\n'
                     "    float a[256];\n    for (int i = 0; i < 256; ++i) a[i] = out[i * n];\n"
                     "    out[threadIdx.x] = a[(threadIdx.x * n) % 256];\n}\n")
    broken = tmp_path / "uses_infinity.cu"  # fine with nvcc and g++, an error in NVRTC: no <math.h>
    broken.write_text('extern "C" __global__ void k(float* out) { out[0] = INFINITY; }\n')
    rows, problems = check([local, broken], archs=("sm_90",))
    assert any("stack frame" in p for p in problems), problems
    assert any("uses_infinity.cu [sm_90]" in p and "INFINITY" in p for p in problems), problems
