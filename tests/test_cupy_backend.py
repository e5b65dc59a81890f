"""Backend "cupy" (kernels/cuda/cupy_backend.py), the tensor-core forward flash_fwd_wmma.cu, the CUDA backends in
F.scaled_dot_product_attention, and the GPU benchmark's harness mode.

Without a GPU (CI):
1. Clear errors when CuPy is missing or finds no device; `import minitorch_attn` never imports CuPy.
2. The RawModule gets the source and options the NVRTC compile check uses. A stand-in CuPy module (NumPy arrays
   that call themselves device arrays, RawModule = the CPU harness) runs every line of cupy_backend.py:
   NumPy in -> NumPy out, device in -> device out, forward, backward, autograd through F.sdpa.
3. flash_fwd_wmma.cu on the CPU harness (software stand-ins for its two PTX instructions) against the float64
   reference on half-rounded inputs and against the float32 kernel; planted bugs are caught; NVRTC compiles
   the tensor-core path (its PTX holds `mma.sync ... m16n8k16`).
4. F.sdpa with backend "cuda-cpu": outputs and q/k/v gradients match backend "naive".
5. benchmarks/attention_gpu.py --harness prints its ratio table.
With CuPy and a GPU: the real kernels against the float64 reference (tests marked `gpu`, skipped elsewhere with
the reason).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn.kernels import attention_backward, attention_forward, flash_attention, flash_attention_backward
from minitorch_attn.kernels.cuda import SOURCE_DIR, cupy_backend, expand_includes, standin_cupy
from minitorch_attn.kernels.cuda.cupy_backend import CupyUnavailable, run_flash_forward_wmma

ROOT = Path(__file__).resolve().parents[1]
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="the CPU harness needs g++")


def _gpu_reason():
    try:
        import cupy
    except ImportError as error:
        return f"needs CuPy and a CUDA GPU: CuPy is not installed ({error})"
    problem = cupy_backend.device_problem(cupy)
    return f"needs CuPy and a CUDA GPU: {problem}" if problem else None


GPU_REASON = _gpu_reason()
gpu = pytest.mark.skipif(GPU_REASON is not None, reason=GPU_REASON or "")


def _inputs(B, H, Nq, Nk, d, dv=None, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(shape).astype(dtype)
                 for shape in ((B, H, Nq, d), (B, H, Nk, d), (B, H, Nk, dv or d), (B, H, Nq, dv or d)))


def _padding(B, Nk, seed=0):
    """A key-padding mask (True = ignored) whose last batch row is all padding: fully masked rows."""
    pad = np.random.default_rng(seed).random((B, Nk)) < 0.3
    pad[-1] = True
    return pad


def _f64(*arrays):
    return tuple(np.asarray(a, np.float64) for a in arrays)


def _rel(x, ref):
    return float(np.max(np.abs(np.asarray(x, np.float64) - ref), initial=0) / max(1.0, np.max(np.abs(ref), initial=0)))


# ---- 1. errors without CuPy or without a device ----------------------------------------------------------
@pytest.fixture
def fresh_modules():
    cupy_backend._module.cache_clear()
    yield
    cupy_backend._module.cache_clear()


def test_cupy_missing_says_how_to_install(monkeypatch, fresh_modules):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError
    q, k, v, _ = _inputs(1, 1, 4, 4, 16)
    with pytest.raises(CupyUnavailable, match=r"needs CuPy.*pip install -e '\.\[cuda\]'.*backend='cuda-cpu'"):
        flash_attention(q, k, v, backend="cupy")
    with pytest.raises(CupyUnavailable, match="needs CuPy"):
        F.scaled_dot_product_attention(q, k, v, backend="cupy")  # wired through FlashAttention


def _no_device_cupy(error=None, count=0):
    class CUDARuntimeError(RuntimeError):
        pass

    def get_device_count():
        if error:
            raise CUDARuntimeError(error)
        return count

    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count))
    return fake


def test_no_device_names_cupys_error_and_suggests_cuda_cpu(monkeypatch, fresh_modules):
    q, k, v, do = _inputs(1, 1, 4, 4, 16)
    monkeypatch.setitem(sys.modules, "cupy", _no_device_cupy("cudaErrorNoDevice: no CUDA-capable device is detected"))
    with pytest.raises(CupyUnavailable, match=r"no usable CUDA device: CUDARuntimeError: cudaErrorNoDevice.*"
                                              r"backend='cuda-cpu'"):
        flash_attention(q, k, v, backend="cupy")
    with pytest.raises(CupyUnavailable, match="cudaErrorNoDevice"):
        flash_attention_backward(q, k, v, q, q[..., 0], do, backend="cupy")
    monkeypatch.setitem(sys.modules, "cupy", _no_device_cupy(count=0))
    with pytest.raises(CupyUnavailable, match="CuPy sees 0 CUDA devices"):
        cupy_backend.flash_attention_cupy(q, k, v, variant="wmma")


def test_importing_the_package_and_the_cuda_tooling_never_imports_cupy():
    code = ("import sys\n"
            "class NoCupy:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'cupy':\n"
            "            raise AssertionError('cupy imported at import time')\n"
            "sys.meta_path.insert(0, NoCupy())\n"
            "import minitorch_attn, minitorch_attn.kernels.cuda.cupy_backend\n"
            "import minitorch_attn.kernels.cuda.compile_check\n"
            "from minitorch_attn.kernels import _backend\n"
            "_backend('cupy')\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_auto_never_picks_the_cuda_backends(monkeypatch):
    from minitorch_attn import kernels

    class Picked(Exception):
        pass

    def spy(name):
        raise Picked(name)

    monkeypatch.setattr(kernels, "_backend", spy)
    q, k, v, _ = _inputs(1, 2, 80, 80, 16)  # enough work for "auto" to take a flash kernel
    with pytest.raises(Picked) as picked:
        F.scaled_dot_product_attention(q, k, v, is_causal=True, backend="auto")
    assert picked.value.args[0] not in ("cupy", "cuda-cpu")
    with pytest.raises(Picked, match="cuda-cpu"):  # the spy does see an explicit choice
        F.scaled_dot_product_attention(q, k, v, is_causal=True, backend="cuda-cpu")


def test_wmma_argument_errors():
    kernel = object()  # never reached: the checks come first
    q, k, v, _ = _inputs(1, 1, 8, 8, 24)
    with pytest.raises(ValueError, match=r"multiples of 16.*d = 24, dv = 24"):
        run_flash_forward_wmma(kernel, q, k, v)
    q, k, v, _ = _inputs(1, 1, 8, 8, 16)
    with pytest.raises(ValueError, match=r"half precision.*k \(shape \(1, 1, 8, 16\)\) holds \|x\| = 100000"):
        run_flash_forward_wmma(kernel, q, k * 0 + 1e5, v)
    with pytest.raises(TypeError, match="share one dtype"):
        run_flash_forward_wmma(kernel, q.astype(np.float16), k, v)
    with pytest.raises(ValueError, match="unknown variant 'tf32'"):
        cupy_backend.flash_forward_cupy(q, k, v, variant="tf32")


# ---- 2. the RawModule options, and every line of cupy_backend.py on a stand-in CuPy ----------------------
_DeviceArray = standin_cupy.ndarray  # a NumPy array that calls itself a CuPy array


@pytest.fixture
def harness_cupy(monkeypatch, fresh_modules):
    """The stand-in CuPy (kernels/cuda/standin_cupy.py: RawModule = the CPU harness); the list of its compiles."""
    compiled = []
    monkeypatch.setattr(standin_cupy, "compiled", compiled)
    monkeypatch.setitem(sys.modules, "cupy", standin_cupy.module())
    return compiled


@needs_gxx
def test_raw_module_gets_the_source_and_the_compile_checks_options(harness_cupy):
    from minitorch_attn.kernels.cuda import compile_check, nvrtc

    q, k, v, _ = _inputs(1, 1, 5, 7, 16)
    flash_attention(q, k, v, backend="cupy")
    flash_attention(q, k, v, backend="cupy")  # compiled once per process
    assert len(harness_cupy) == 1
    code, options = harness_cupy[0]
    # the file, with common.cuh pasted in place of its #include (NVRTC as CuPy runs it has no include path)
    assert code == expand_includes((SOURCE_DIR / "flash_fwd.cu").read_text(), "flash_fwd.cu")
    assert '\n#include "common.cuh"' not in code and code.count("float warp_max(float x)") == 1
    assert tuple(options) == nvrtc.CUPY_OPTIONS == cupy_backend.MODULE_OPTIONS
    # the compile check compiles with exactly these (compile_cubin adds only -arch and ptxas' report)
    assert "CuPy" in compile_check.__doc__ and all(o in compile_check.__doc__ for o in nvrtc.CUPY_OPTIONS)


@needs_gxx
def test_stand_in_cupy_numpy_in_numpy_out_and_device_in_device_out(harness_cupy):
    q, k, v, do = _inputs(2, 1, 37, 45, 16, dv=32, seed=3)
    pad = _padding(2, 45)
    ref_o, ref_lse = attention_forward(*_f64(q, k, v), causal=True, key_padding_mask=pad)
    o, lse = flash_attention(q, k, v, causal=True, key_padding_mask=pad, backend="cupy")
    assert type(o) is np.ndarray and o.dtype == np.float32 and _rel(o, ref_o) < 1e-5
    assert np.array_equal(np.isneginf(lse), np.isneginf(ref_lse))
    dev = [np.asarray(a).view(_DeviceArray) for a in (q, k, v, do)]
    o_dev, lse_dev = flash_attention(*dev[:3], causal=True, key_padding_mask=pad, backend="cupy")
    assert type(o_dev) is _DeviceArray and np.array_equal(o_dev.get(), o)
    grads = flash_attention_backward(*dev[:3], o_dev, lse_dev, dev[3], causal=True, key_padding_mask=pad,
                                     backend="cupy")
    ref = attention_backward(*_f64(q, k, v, ref_o, ref_lse, do), causal=True, key_padding_mask=pad)
    for name, g, r in zip(("dq", "dk", "dv"), grads, ref):
        assert type(g) is _DeviceArray and _rel(g.get(), r) < 1e-5, name
    o16, lse16 = cupy_backend.flash_attention_cupy(q, k, v, causal=True, key_padding_mask=pad, variant="wmma")
    assert type(o16) is np.ndarray and o16.dtype == np.float32 and _rel(o16, ref_o) < 2e-2
    assert len(harness_cupy) == 3  # flash_fwd.cu, flash_bwd.cu, flash_fwd_wmma.cu, each once


@needs_gxx
def test_stand_in_cupy_autograd_through_sdpa(harness_cupy):
    q, k, v, w = _inputs(1, 2, 21, 21, 16, seed=4)
    grads = {}
    for backend in ("cupy", "naive"):
        ts = [mta.tensor(a.astype(np.float64), requires_grad=True) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*ts, is_causal=True, backend=backend)
        (out * mta.tensor(w.astype(np.float64))).sum().backward()
        grads[backend] = [out.data] + [t.grad for t in ts]
    for name, a, b in zip(("out", "dq", "dk", "dv"), grads["cupy"], grads["naive"]):
        assert a.dtype == np.float64 and _rel(a, b) < 1e-5, name


# ---- 3. the tensor-core kernel on the CPU harness, and what NVRTC makes of it --------------------------
@pytest.fixture(scope="module")
def wmma_cpu():
    if shutil.which("g++") is None:
        pytest.skip("the CPU harness needs g++")
    from minitorch_attn.kernels.cuda.harness import CpuModule

    return CpuModule(path=SOURCE_DIR / "flash_fwd_wmma.cu").get_function("flash_fwd_wmma")


WMMA_SHAPES = {  # name: (B, H, Nq, Nk, d, dv, causal, padding)
    "N = 1": (1, 1, 1, 1, 16, 16, True, False),
    "not tile multiples": (1, 2, 37, 45, 16, 32, False, False),
    "causal, Nq > Nk": (1, 1, 70, 40, 32, 32, True, False),
    "causal, padding, fully masked rows": (2, 1, 33, 50, 64, 48, True, True),
    "d = 128, dv = 16, two key tiles": (1, 1, 65, 70, 128, 16, False, False),
}


@pytest.mark.parametrize("name", list(WMMA_SHAPES))
def test_wmma_kernel_on_the_harness_matches_the_reference(wmma_cpu, name):
    B, H, Nq, Nk, d, dv, causal, padded = WMMA_SHAPES[name]
    q, k, v, _ = _inputs(B, H, Nq, Nk, d, dv, seed=len(name))
    pad = _padding(B, Nk) if padded else None
    # the reference sees what the kernel sees: inputs rounded to half
    ref_o, ref_lse = attention_forward(*_f64(*(a.astype(np.float16) for a in (q, k, v))), causal=causal,
                                       key_padding_mask=pad)
    exact_o, _ = attention_forward(*_f64(q, k, v), causal=causal, key_padding_mask=pad)
    finite = np.isfinite(ref_lse)
    for seed in (1, 2):
        o, lse = run_flash_forward_wmma(wmma_cpu, q, k, v, causal, None, pad, seed=seed)
        assert o.dtype == np.float32 and np.all(np.isfinite(o)), "NaN or inf in o"
        assert np.array_equal(np.isneginf(lse), np.isneginf(ref_lse)), "the fully masked rows differ"
        assert np.all(o[~finite] == 0), "a fully masked row must get o = 0"
        # P is rounded to half before P V: ~2^-11 relative per term
        assert _rel(o, ref_o) < 2e-3, (seed, _rel(o, ref_o))
        assert np.max(np.abs(lse[finite] - ref_lse[finite]), initial=0) < 1e-4 * max(1, np.abs(ref_lse).max())
        assert _rel(o, exact_o) < 2e-2  # and against the float64 reference on the unrounded inputs


def test_wmma_kernel_agrees_with_the_float32_kernel_on_the_harness(wmma_cpu):
    q, k, v, _ = _inputs(1, 2, 50, 61, 32, seed=9)
    o32, lse32 = flash_attention(q, k, v, causal=True, backend="cuda-cpu")
    o16, lse16 = run_flash_forward_wmma(wmma_cpu, q, k, v, causal=True)
    assert _rel(o16, o32) < 2e-2 and np.max(np.abs(lse16 - lse32)) < 1e-2
    # float64 inputs come back as float64; half inputs are taken as they are
    o64, _ = run_flash_forward_wmma(wmma_cpu, *(a.astype(np.float64) for a in (q, k, v)), causal=True)
    oh, _ = run_flash_forward_wmma(wmma_cpu, *(a.astype(np.float16) for a in (q, k, v)), causal=True)
    assert o64.dtype == np.float64 and oh.dtype == np.float32 and np.array_equal(o64, oh) and np.array_equal(oh, o16)


WMMA_BUGS = {  # name: (text in flash_fwd_wmma.cu, its buggy replacement)
    "A fragment registers swapped": ("load_half2(qa + 8 * ld_qk, 0),\n                                       "
                                     "load_half2(qa, 8)",
                                     "load_half2(qa, 8),\n                                       "
                                     "load_half2(qa + 8 * ld_qk, 0)"),
    "P tiles in the wrong A registers": ("pack_half2(s[2 * kc][2], s[2 * kc][3]),",
                                         "pack_half2(s[2 * kc + 1][0], s[2 * kc + 1][1]),"),
    "V staged untransposed": ("v_t[c * ld_v + r]", "v_t[r * ld_v + c]"),
}


@pytest.mark.parametrize("bug", list(WMMA_BUGS))
def test_planted_bugs_in_the_wmma_kernel_are_caught(wmma_cpu, bug):
    from minitorch_attn.kernels.cuda.harness import CpuModule

    good, bad = WMMA_BUGS[bug]
    source = (SOURCE_DIR / "flash_fwd_wmma.cu").read_text()
    assert source.count(good) == 1, f"the planted bug no longer applies: {good!r} is not in the kernel"
    kernel = CpuModule(code=source.replace(good, bad)).get_function("flash_fwd_wmma")
    q, k, v, _ = _inputs(1, 1, 40, 40, 32, seed=5)
    ref_o, _ = attention_forward(*_f64(q, k, v))
    o, _ = run_flash_forward_wmma(kernel, q, k, v)
    assert _rel(o, ref_o) > 0.1, bug


def _require_nvrtc():
    from minitorch_attn.kernels.cuda.nvrtc import NvrtcError, find_nvrtc

    try:
        find_nvrtc()
    except NvrtcError as error:
        if os.environ.get("MINITORCH_REQUIRE_NVRTC"):  # set by .ci/run: CI must run the check
            raise
        pytest.skip(f"{error}")


def _ptx(source: str, arch: str) -> str:
    """PTX of `source` from NVRTC with CuPy's options (for `-arch=compute_XX`)."""
    from minitorch_attn.kernels.cuda import nvrtc

    lib, prog = nvrtc._lib(), ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"k.cu", 0, None, None) == 0
    try:
        options = [o.encode() for o in (*nvrtc.CUPY_OPTIONS, f"-arch={arch}")]
        assert lib.nvrtcCompileProgram(prog, len(options), (ctypes.c_char_p * len(options))(*options)) == 0
        size = ctypes.c_size_t()
        assert lib.nvrtcGetPTXSize(prog, ctypes.byref(size)) == 0
        buf = ctypes.create_string_buffer(size.value)
        assert lib.nvrtcGetPTX(prog, buf) == 0
        return buf.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def test_nvrtc_compiles_the_tensor_core_path_within_its_budget():
    _require_nvrtc()
    from minitorch_attn.kernels.cuda.compile_check import KERNEL_REGISTER_BUDGETS, check

    ptx = _ptx(expand_includes((SOURCE_DIR / "flash_fwd_wmma.cu").read_text()), "compute_80")
    assert ptx.count("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32") >= 2, "no tensor-core instruction"
    assert "cvt.rn.f16x2.f32" in ptx and "shfl.sync.idx" not in ptx  # not the CPU stand-in's shuffles
    rows, problems = check([SOURCE_DIR / "flash_fwd_wmma.cu"])
    assert not problems, problems
    assert {r["arch"] for r in rows} == {"sm_80", "sm_90"}
    assert all(0 < r["registers"] <= KERNEL_REGISTER_BUDGETS["flash_fwd_wmma"] for r in rows)


# ---- 4. the CUDA C kernels through F.scaled_dot_product_attention, on the CPU harness ---------------------
SDPA_CASES = {"causal, Nq != Nk": (37, 45, True, None), "padded keys, a fully masked batch row": (29, 33, False, 0)}


@needs_gxx
@pytest.mark.parametrize("case", list(SDPA_CASES))
def test_sdpa_cuda_cpu_outputs_and_gradients_match_naive(case):
    Nq, Nk, causal, pad_seed = SDPA_CASES[case]
    q, k, v, w = _inputs(2, 2, Nq, Nk, 16, dv=24, seed=7)
    mask = None if pad_seed is None else ~_padding(2, Nk, pad_seed)[:, None, None, :]  # True = may attend
    results = {}
    for backend in ("cuda-cpu", "naive"):
        ts = [mta.tensor(a, requires_grad=True) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*ts, attn_mask=mask, is_causal=causal, backend=backend)
        (out * mta.tensor(w)).sum().backward()
        results[backend] = [out.data] + [t.grad for t in ts]
    for name, a, b in zip(("out", "dq", "dk", "dv"), results["cuda-cpu"], results["naive"]):
        assert a.dtype == np.float32 and a.shape == b.shape and _rel(a, b) < 1e-5, (name, _rel(a, b))
    if mask is not None:
        assert np.all(results["cuda-cpu"][0][1] == 0) and np.all(results["cuda-cpu"][1][1] == 0)


def test_sdpa_cuda_backends_refuse_what_the_kernels_cannot_do():
    q, k, v, _ = _inputs(1, 1, 4, 4, 16)
    for backend in ("cuda-cpu", "cupy"):
        with pytest.raises(ValueError, match=f"backend '{backend}' cannot do this call: dropout_p"):
            F.scaled_dot_product_attention(q, k, v, dropout_p=0.5, backend=backend)


# ---- 5. the GPU benchmark, in harness mode --------------------------------------------------------------
@needs_gxx
def test_gpu_benchmark_harness_mode_prints_ratios(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks" / "attention_gpu.py"), "--harness", "--sizes", "48",
           "--dims", "16", "--heads", "1", "--warmup", "0", "--repeat", "1", "--out-dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "NOT GPU numbers" in text and "vs torch" in text and "TFLOP/s" in text
    rows = [line for line in text.splitlines() if line.strip().startswith("48")]
    assert len(rows) == 14, text  # 2 masks x (cupy fp32, cupy wmma, steps 01-03, torch fp32, torch fp16)
    ours = [line for line in rows if "cupy" in line or "step" in line]
    assert all(line.count("x ") >= 1 and "failed" not in line for line in ours), text  # a ratio on each
    assert sum(line.count("x ") for line in ours if "fp32" in line) == 4  # forward and forward+backward
    csv = (tmp_path / "attention_gpu_harness.csv").read_text().splitlines()
    assert csv[0].startswith("mode,device") and len(csv) == 15
    assert (tmp_path / "attention_gpu_harness.png").stat().st_size > 10_000


# ---- 6. on a GPU ----------------------------------------------------------------------------------------
GPU_SHAPES = {  # name: (B, H, Nq, Nk, d, dv, causal, padding)
    "N = 1": (1, 1, 1, 1, 16, 16, True, False),
    "not tile multiples": (2, 3, 37, 45, 64, 64, False, False),
    "causal, Nq > Nk": (1, 2, 130, 70, 32, 32, True, False),
    "d = 80, padding": (2, 2, 100, 129, 80, 80, False, True),
    "d = 128, causal, padding": (2, 1, 257, 257, 128, 128, True, True),
}


@gpu
@pytest.mark.parametrize("name", list(GPU_SHAPES))
def test_gpu_forward_and_backward_match_the_float64_reference(name):
    import cupy

    B, H, Nq, Nk, d, dv, causal, padded = GPU_SHAPES[name]
    q, k, v, do = _inputs(B, H, Nq, Nk, d, dv, seed=11)
    pad = _padding(B, Nk) if padded else None
    ref_o, ref_lse = attention_forward(*_f64(q, k, v), causal=causal, key_padding_mask=pad)
    ref_grads = attention_backward(*_f64(q, k, v, ref_o, ref_lse, do), causal=causal, key_padding_mask=pad)
    o, lse = flash_attention(q, k, v, causal=causal, key_padding_mask=pad, backend="cupy")
    assert type(o) is np.ndarray and _rel(o, ref_o) < 1e-5
    assert np.array_equal(np.isneginf(lse), np.isneginf(ref_lse))
    grads = flash_attention_backward(q, k, v, o, lse, do, causal=causal, key_padding_mask=pad, backend="cupy")
    for g_name, g, r in zip(("dq", "dk", "dv"), grads, ref_grads):
        assert _rel(g, r) < 1e-4, g_name
    dev = [cupy.asarray(a) for a in (q, k, v)]  # device arrays stay on the device
    o_dev, _ = flash_attention(*dev, causal=causal, key_padding_mask=pad, backend="cupy")
    assert isinstance(o_dev, cupy.ndarray) and np.allclose(o_dev.get(), o, atol=1e-6)


@gpu
def test_gpu_autograd_through_sdpa():
    q, k, v, w = _inputs(2, 2, 70, 90, 32, seed=12)
    results = {}
    for backend in ("cupy", "naive"):
        ts = [mta.tensor(a, requires_grad=True) for a in (q, k, v)]
        out = F.scaled_dot_product_attention(*ts, is_causal=True, backend=backend)
        (out * mta.tensor(w)).sum().backward()
        results[backend] = [out.data] + [t.grad for t in ts]
    for name, a, b in zip(("out", "dq", "dk", "dv"), results["cupy"], results["naive"]):
        assert _rel(a, b) < 1e-4, name


@gpu
@pytest.mark.parametrize("name", [n for n in GPU_SHAPES if GPU_SHAPES[n][4] % 16 == 0])
def test_gpu_wmma_matches_the_float32_kernel_and_the_reference(name):
    import cupy

    B, H, Nq, Nk, d, dv, causal, padded = GPU_SHAPES[name]
    q, k, v, _ = _inputs(B, H, Nq, Nk, d, dv, seed=13)
    pad = _padding(B, Nk) if padded else None
    ref_o, ref_lse = attention_forward(*_f64(*(a.astype(np.float16) for a in (q, k, v))), causal=causal,
                                       key_padding_mask=pad)
    o16, lse16 = cupy_backend.flash_attention_cupy(q, k, v, causal, None, pad, variant="wmma")
    o32, _ = cupy_backend.flash_attention_cupy(q, k, v, causal, None, pad)
    finite = np.isfinite(ref_lse)
    assert np.array_equal(np.isneginf(lse16), ~finite)
    assert _rel(o16, ref_o) < 5e-3 and _rel(o16, o32) < 2e-2
    assert np.max(np.abs(lse16[finite] - ref_lse[finite]), initial=0) < 1e-3 * max(1, np.abs(ref_lse).max())
    dev = [cupy.asarray(a, cupy.float16) for a in (q, k, v)]
    o_dev, _ = cupy_backend.flash_attention_cupy(*dev, causal, None, pad, variant="wmma")
    assert isinstance(o_dev, cupy.ndarray) and o_dev.dtype == cupy.float32 and np.array_equal(o_dev.get(), o16)
