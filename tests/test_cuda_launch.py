"""The launch path of kernels/cuda (launch.py and the launchers that call it), reviewed as for a first run on an
H100 (issue 17): each finding is fixed or refused with a clear error, and tested here without a GPU.

1. Inputs: non-contiguous and float64 arrays are converted (the same numbers as contiguous float32); other
   dtypes, d > 128 and (wmma) d not a multiple of 16 are refused, naming the shapes.
2. causal with Nq != Nk: the same convention as torch's `is_causal` (top-left), forward and backward.
3. Grid limits: B*H above gridDim.y's limit is split into launches of whole batches (same numbers, padding
   kept right); a geometry a GPU refuses is refused first, naming the kernel, the geometry and the limit.
4. 32-bit sizes: a size over 2^31 - 1 is refused before anything is allocated; the .cu sources compute every
   global-memory offset in 64 bits.
5. Dynamic shared memory above 48 KiB: the launcher raises max_dynamic_shared_size_bytes first (the harness,
   like a GPU, refuses the launch otherwise); above the opt-in limit it refuses.
6. A failed launch (or a fault caught by MINITORCH_CUDA_SYNC=1) is reported with the kernel, its geometry and
   the call's shapes; empty grids launch nothing.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace

import numpy as np
import pytest

from minitorch_attn.kernels import attention_forward
from minitorch_attn.kernels.cuda import SOURCE_DIR, progression
from minitorch_attn.kernels.cuda.backward import KERNEL_NAMES, flash_backward_cuda_cpu, run_flash_backward
from minitorch_attn.kernels.cuda.cupy_backend import run_flash_forward_wmma
from minitorch_attn.kernels.cuda.forward import flash_forward_cuda_cpu, run_flash_forward
from minitorch_attn.kernels.cuda.launch import (
    DEFAULT_DYNAMIC_SHARED,
    SM80,
    SM90,
    LaunchError,
    batch_chunks,
    check_geometry,
    launch,
)

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="the CPU harness needs g++")
TOL = 1e-5


def _inputs(B, H, Nq, Nk, d, dv=None, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(s).astype(dtype)
                 for s in ((B, H, Nq, d), (B, H, Nk, d), (B, H, Nk, dv or d), (B, H, Nq, dv or d)))


def _rel(x, ref):
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(np.asarray(x, np.float64) - ref), initial=0) / max(1.0, np.max(np.abs(ref), initial=0)))


def _harness(filename, name, seed=1):
    return progression.harness_kernels(seed=seed)(SOURCE_DIR / filename, name)


class Recorder:
    """A stand-in kernel: records each launch's (grid, block, shared_mem) and runs nothing. `limits` replaces the
    device's; `fail` is raised by every launch."""

    def __init__(self, name="k", limits=SM90, fail=None, max_threads=1024, has_attribute=True):
        self.name, self.device_limits, self.fail, self.launches = name, limits, fail, []
        self.max_threads_per_block = max_threads
        if has_attribute:
            self.max_dynamic_shared_size_bytes = DEFAULT_DYNAMIC_SHARED

    def __call__(self, grid, block, args, shared_mem=0, **_):
        if self.fail is not None:
            raise self.fail
        self.launches.append((grid, block, shared_mem))


class Limited:
    """A harness kernel on a device whose gridDim.y/z hold at most `most`: to run the B*H split for real."""

    def __init__(self, kernel, most):
        self.kernel, self.launches = kernel, []
        self.device_limits = replace(SM90, name=f"a test device (gridDim.y <= {most})",
                                     max_grid=(SM90.max_grid[0], most, most))

    def __getattr__(self, name):
        return getattr(self.kernel, name)

    def __call__(self, grid, block, args, **kw):
        self.launches.append(grid)
        return self.kernel(grid, block, args, **kw)


# ---- 1. contiguity, dtypes, head dims --------------------------------------------------------------------
@needs_gxx
def test_non_contiguous_and_float64_inputs_give_the_contiguous_float32_numbers():
    q, k, v, do = _inputs(1, 2, 19, 23, 16)
    o, lse = flash_forward_cuda_cpu(q, k, v, causal=True)
    # (B, N, H, d) memory seen as (B, H, N, d): what a transformer's head split hands over
    qt, kt, vt = (np.ascontiguousarray(a.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3) for a in (q, k, v))
    assert not qt.flags.c_contiguous
    o2, lse2 = flash_forward_cuda_cpu(qt, kt, vt, causal=True)
    np.testing.assert_array_equal(o2, o)
    np.testing.assert_array_equal(lse2, lse)
    o64, lse64 = flash_forward_cuda_cpu(*(a.astype(np.float64) for a in (q, k, v)), causal=True)
    assert o64.dtype == lse64.dtype == np.float64
    np.testing.assert_array_equal(o64, o.astype(np.float64))
    dot = np.ascontiguousarray(do.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3)
    grads = flash_backward_cuda_cpu(qt, kt, vt, o, lse, dot, causal=True)
    for got, want in zip(grads, flash_backward_cuda_cpu(q, k, v, o, lse, do, causal=True)):
        np.testing.assert_array_equal(got, want)


@needs_gxx
def test_wmma_takes_non_contiguous_inputs():
    q, k, v, _ = _inputs(1, 2, 20, 33, 16)
    kernel = _harness("flash_fwd_wmma.cu", "flash_fwd_wmma")
    o, lse = run_flash_forward_wmma(kernel, q, k, v, causal=True, seed=1)
    q2, k2, v2 = (np.ascontiguousarray(a.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3) for a in (q, k, v))
    o2, lse2 = run_flash_forward_wmma(kernel, q2, k2, v2, causal=True, seed=1)
    np.testing.assert_array_equal(o2, o)
    np.testing.assert_array_equal(lse2, lse)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.complex64])
def test_other_dtypes_are_refused_by_name(dtype):
    q, k, v, _ = (a.astype(dtype) for a in _inputs(1, 1, 4, 4, 16))
    with pytest.raises(TypeError, match=f"q must be float32 or float64; got q.dtype = {np.dtype(dtype)}"):
        run_flash_forward(Recorder(), q, k, v)


def test_head_dims_over_128_are_refused_with_the_shapes():
    q, k, v, do = _inputs(1, 1, 4, 4, 136)
    with pytest.raises(ValueError, match=r"flash_fwd.cu supports head dims up to 128; got d = 136, dv = 136 "
                                         r"\(q \(1, 1, 4, 136\) float32"):
        run_flash_forward(Recorder(), q, k, v)
    kernels = {name: Recorder(name) for name in KERNEL_NAMES}
    with pytest.raises(ValueError, match="flash_bwd.cu supports head dims up to 128; got d = 136"):
        run_flash_backward(kernels, q, k, v, do, np.zeros((1, 1, 4), np.float32), do)
    with pytest.raises(ValueError, match=r"step 03 \(03_shared_tiles.cu\) supports head dims up to 128"):
        progression.step("03").run(lambda path, name: Recorder(name), q, k, v)
    q, k, v, _ = _inputs(1, 1, 4, 4, 64, dv=130)
    with pytest.raises(ValueError, match="got d = 64, dv = 130"):
        run_flash_forward(Recorder(), q, k, v)


@pytest.mark.parametrize("d, dv", [(24, 16), (16, 40), (144, 16)])
def test_wmma_needs_head_dims_that_are_multiples_of_16_up_to_128(d, dv):
    q, k, v, _ = _inputs(1, 1, 8, 8, d, dv)
    with pytest.raises(ValueError, match=f"multiples of 16, at most 128.*got d = {d}, dv = {dv}.*variant='fp32'"):
        run_flash_forward_wmma(Recorder(), q, k, v)


# ---- 2. causal with Nq != Nk: torch's is_causal ----------------------------------------------------------
@needs_gxx
@pytest.mark.parametrize("Nq, Nk", [(7, 33), (33, 7), (1, 40)])
def test_causal_with_nq_not_nk_is_torchs_is_causal(Nq, Nk):
    torch = pytest.importorskip("torch", reason="torch is the oracle for is_causal")
    q, k, v, do = _inputs(2, 1, Nq, Nk, 16)
    o, lse = flash_forward_cuda_cpu(q, k, v, causal=True)
    tq, tk, tv = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (q, k, v))
    ref = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    ref.backward(torch.tensor(do, dtype=torch.float64))
    assert _rel(o, ref.detach().numpy()) < TOL
    grads = flash_backward_cuda_cpu(q, k, v, o, lse, do, causal=True)
    for name, got, t in zip("qkv", grads, (tq, tk, tv)):
        assert _rel(got, t.grad.numpy()) < 1e-4, f"d{name}"
    # and not the bottom-right alignment (query i sees keys j <= i + Nk - Nq), which differs here
    shifted = np.triu(np.ones((Nq, Nk), bool), k=1 + Nk - Nq)  # True = masked, bottom-right
    if not np.array_equal(shifted, np.triu(np.ones((Nq, Nk), bool), k=1)):
        s = np.einsum("bhid,bhjd->bhij", q.astype(np.float64), k) / 4.0
        s[..., shifted] = -np.inf
        with np.errstate(invalid="ignore"):
            p = np.exp(s - s.max(-1, keepdims=True))
            bottom_right = np.nan_to_num(p / p.sum(-1, keepdims=True)) @ v
        assert _rel(o, bottom_right) > 1e-2


# ---- 3. grid limits ---------------------------------------------------------------------------------------
def test_a_geometry_a_gpu_refuses_is_refused_first_naming_kernel_geometry_and_limit():
    k = Recorder("flash_fwd")
    with pytest.raises(LaunchError, match=r"flash_fwd: grid \(1, 65536, 1\), block \(128, 1, 1\) = 128 threads, "
                                          r"0 B dynamic shared memory; q \(1\): gridDim.y = 65536 is over the "
                                          r"sm_90 \(H100\) limit of 65535 \(B\*H goes in gridDim.y"):
        launch(k, (1, 65536), (128,), (), 0, shapes="q (1)")
    with pytest.raises(LaunchError, match=r"gridDim.z = 70000 is over"):
        check_geometry(k, (1, 1, 70000), (32,), 0, "k")
    with pytest.raises(LaunchError, match=r"blockDim.z = 65 is over .* limit of 64"):
        check_geometry(k, (1,), (1, 1, 65), 0, "k")
    with pytest.raises(LaunchError, match="2048 threads per block.*at most 1024"):
        check_geometry(k, (1,), (64, 32), 0, "k")
    with pytest.raises(LaunchError, match="256 threads per block.*at most 128.*__launch_bounds__"):
        check_geometry(Recorder(max_threads=128), (1,), (256,), 0, "k")
    assert k.launches == []


@needs_gxx
def test_the_harness_itself_refuses_what_a_gpu_refuses():
    from minitorch_attn.kernels.cuda.harness import KernelError

    kernel = _harness("flash_fwd.cu", "flash_fwd")
    with pytest.raises(KernelError, match=r"gridDim.y = 65536 is over the sm_90 \(H100\) limit of 65535"):
        kernel((1, 65536, 1), (128,), ())
    with pytest.raises(KernelError, match="over the kernel's max_dynamic_shared_size_bytes = 49152"):
        kernel((1,), (128,), (), shared_mem=49153)
    wmma = _harness("flash_fwd_wmma.cu", "flash_fwd_wmma")
    assert wmma.max_threads_per_block == 128  # its __launch_bounds__(WARP_SIZE * NUM_WARPS, ...)
    with pytest.raises(KernelError, match="allows at most 128"):
        wmma((1,), (256,), ())


def test_more_heads_than_grid_y_holds_are_split_into_launches_of_whole_batches():
    assert batch_chunks(70000, 1, 65535) == [(0, 65535), (65535, 70000)]
    assert batch_chunks(10, 3, 7) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]  # 2 batches x 3 heads <= 7
    with pytest.raises(LaunchError, match="H = 9 heads do not fit one launch"):
        batch_chunks(2, 9, 8)
    q, k, v, do = (np.zeros((70000, 1, 1, 1), np.float32) for _ in range(4))  # B*H = 70000 > 65535
    fwd = Recorder("flash_fwd")
    run_flash_forward(fwd, q, k, v)
    assert [g[1] for g, _, _ in fwd.launches] == [65535, 4465]
    kernels = {name: Recorder(name) for name in KERNEL_NAMES}
    run_flash_backward(kernels, q, k, v, do, np.zeros((70000, 1, 1), np.float32), do)
    for name, kernel in kernels.items():
        assert [g[1] for g, _, _ in kernel.launches] == [65535, 4465], name
    for step, axis in (("01", 2), ("02", 1), ("03", 1)):
        recorders = {}
        progression.step(step).run(lambda path, name, r=recorders: r.setdefault(name, Recorder(name)), q, k, v)
        for name, kernel in recorders.items():
            counts = [g[axis] for g, _, _ in kernel.launches] if name != "softmax_rows" else [1, 1]
            assert len(kernel.launches) == 2 and max(counts) <= 65535, (step, name, kernel.launches)


@needs_gxx
def test_split_launches_compute_the_same_numbers_with_padding():
    B, H = 5, 2
    q, k, v, do = _inputs(B, H, 9, 13, 16)
    pad = np.random.default_rng(1).random((B, 13)) < 0.3
    pad[:, 0] = False
    o, lse = flash_forward_cuda_cpu(q, k, v, causal=True, key_padding_mask=pad)
    small = Limited(_harness("flash_fwd.cu", "flash_fwd"), most=4)  # 2 batches of 2 heads per launch
    o2, lse2 = run_flash_forward(small, q, k, v, True, None, pad, seed=1)
    assert [g[1] for g in small.launches] == [4, 4, 2]
    np.testing.assert_array_equal(o2, o)
    np.testing.assert_array_equal(lse2, lse)
    kernels = {name: Limited(_harness("flash_bwd.cu", name), most=4) for name in KERNEL_NAMES}
    grads = run_flash_backward(kernels, q, k, v, o, lse, do, True, None, pad, seed=1)
    for got, want in zip(grads, flash_backward_cuda_cpu(q, k, v, o, lse, do, causal=True, key_padding_mask=pad)):
        np.testing.assert_array_equal(got, want)
    get = progression.harness_kernels(seed=1)
    o3, _ = progression.step("01").run(lambda path, name: Limited(get(path, name), most=3), q, k, v, causal=True)
    ref, _ = attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=True)
    assert _rel(o3, ref) < TOL


# ---- 4. 32-bit sizes --------------------------------------------------------------------------------------
def _huge(shape):
    return np.broadcast_to(np.float32(0), shape)  # 4 bytes of memory, any shape


def test_a_size_over_int32_is_refused_before_anything_is_allocated():
    N = 2**31
    q, k, v = _huge((1, 1, N, 16)), _huge((1, 1, 4, 16)), _huge((1, 1, 4, 16))
    with pytest.raises(LaunchError, match=r"flash_fwd: Nq = 2147483648 does not fit the kernel's 4-byte int "
                                          r"parameter \(at most 2147483647\); q \(1, 1, 2147483648, 16\)"):
        run_flash_forward(Recorder(), q, k, v)
    with pytest.raises(LaunchError, match="flash_fwd_wmma: Nq = 2147483648 does not fit"):
        run_flash_forward_wmma(Recorder(), q, k, v)
    kernels = {name: Recorder(name) for name in KERNEL_NAMES}
    with pytest.raises(LaunchError, match="flash_bwd: Nk = 2147483648 does not fit"):
        run_flash_backward(kernels, k, q, q, k, _huge((1, 1, 4)), k)
    for step in ("01", "02", "03"):
        with pytest.raises(LaunchError, match="Nq = 2147483648(, rows = 2147483648 do| does) not fit"):
            progression.step(step).run(lambda path, name: Recorder(name), q, k, v)
    # step 01's softmax numbers the rows of all heads in one int: B*H*Nq must fit too
    with pytest.raises(LaunchError, match="01_naive.cu: rows = 2147483648 does not fit"):
        progression.step("01").run(lambda path, name: Recorder(name), _huge((2**16, 1, 2**15, 1)),
                                   _huge((2**16, 1, 1, 1)), _huge((2**16, 1, 1, 1)))


# an offset into global memory: a size (a parameter of the kernel) times an index
_SIZES = r"(?:Nq|Nk|N|d|dv|width)"
_PRODUCT = re.compile(rf"(\(size_t\)\s*)?(\(\s*\w+\s*\+\s*\w+\s*\)|\b\w+\b)\s*\*\s*{_SIZES}\b")
_INDEX_NAMES = {"bh", "b", "row", "i", "j", "r", "c", "i0", "j0", "row0"}


def unsafe_offsets(source: str) -> list[str]:
    """Lines where an index is multiplied by a size in 32-bit int arithmetic (no (size_t) cast first)."""
    wide = set(re.findall(r"\bsize_t\s+(\w+)", source))  # 64-bit variables: a product with one is 64-bit
    found = []
    for n, line in enumerate(source.splitlines(), 1):
        code = line.split("//")[0]
        for m in _PRODUCT.finditer(code):
            names = set(re.findall(r"\w+", m.group(2)))
            if names & _INDEX_NAMES and not names & wide and not m.group(1):
                found.append(f"line {n}: {line.strip()}")
    return found


def test_every_global_memory_offset_is_computed_in_64_bits():
    sources = [*sorted(SOURCE_DIR.glob("*.cu")), *progression.HERE.glob("*.cu")]
    assert len(sources) == 6
    for path in sources:
        assert unsafe_offsets(path.read_text()) == [], path.name
    text = (SOURCE_DIR / "flash_fwd.cu").read_text()
    planted = text.replace("q + (size_t)bh * Nq * d", "q + bh * Nq * d")
    assert planted != text and unsafe_offsets(planted) == [
        "line 62: const float* q_bh = q + bh * Nq * d;"]
    planted = text.replace("q_bh[(size_t)(i0 + r) * d + c]", "q_bh[(i0 + r) * d + c]")
    assert planted != text and len(unsafe_offsets(planted)) == 1


# ---- 5. dynamic shared memory above 48 KiB ----------------------------------------------------------------
def test_above_48_kib_the_attribute_is_raised_first_and_above_the_opt_in_limit_refused():
    k = Recorder("big")
    launch(k, (1,), (128,), (), 40_000)
    assert k.max_dynamic_shared_size_bytes == DEFAULT_DYNAMIC_SHARED  # untouched up to 48 KiB
    launch(k, (1,), (128,), (), 100_000)
    assert k.max_dynamic_shared_size_bytes == 100_000 and k.launches[-1][2] == 100_000
    with pytest.raises(LaunchError, match="needs the kernel's max_dynamic_shared_size_bytes attribute"):
        launch(Recorder(has_attribute=False), (1,), (128,), (), 50_000, "k")
    with pytest.raises(LaunchError, match=r"200000 B of dynamic shared memory is over the sm_80 \(A100\) limit of "
                                          r"166912 B"):
        launch(Recorder(limits=SM80), (1,), (128,), (), 200_000, "k")
    class Refuses(Recorder):
        @property
        def max_dynamic_shared_size_bytes(self):
            return DEFAULT_DYNAMIC_SHARED

        @max_dynamic_shared_size_bytes.setter
        def max_dynamic_shared_size_bytes(self, value):
            raise RuntimeError("cudaErrorInvalidValue")

    refusing = Refuses(has_attribute=False)
    with pytest.raises(LaunchError, match="setting max_dynamic_shared_size_bytes = 60000 failed: RuntimeError"):
        launch(refusing, (1,), (128,), (), 60_000, "k")


@needs_gxx
def test_the_backward_at_32_warps_and_d_128_asks_64_kib_and_runs():
    from minitorch_attn.kernels.cuda.backward import dkdv_launch_config

    assert dkdv_launch_config(1, 1, 8, 128, 128, num_warps=32)[2] == 65536  # over 48 KiB: needs the opt-in
    q, k, v, do = _inputs(1, 1, 6, 40, 128)
    o, lse = flash_forward_cuda_cpu(q, k, v)
    want = flash_backward_cuda_cpu(q, k, v, o, lse, do)
    got = flash_backward_cuda_cpu(q, k, v, o, lse, do, num_warps=32)
    for g, w in zip(got, want):
        assert _rel(g, w) < TOL


# ---- 6. errors that say where; empty grids -----------------------------------------------------------------
def test_a_failed_launch_names_the_kernel_its_geometry_and_the_shapes():
    q, k, v, _ = _inputs(1, 2, 5, 7, 128)
    error = RuntimeError("CUDA_ERROR_OUT_OF_RESOURCES: too many resources requested for launch")
    with pytest.raises(LaunchError, match=r"flash_fwd: grid \(2, 2, 1\), block \(128, 1, 1\) = 128 threads, 34816 B "
                                          r"dynamic shared memory; q \(1, 2, 5, 128\) float32, k \(1, 2, 7, 128\) "
                                          r"float32, v \(1, 2, 7, 128\) float32, causal=True: the launch failed: "
                                          r"RuntimeError: CUDA_ERROR_OUT_OF_RESOURCES") as info:
        run_flash_forward(Recorder(fail=error), q, k, v, causal=True)
    assert info.value.__cause__ is error

    def fault():
        raise RuntimeError("cudaErrorIllegalAddress")

    with pytest.raises(LaunchError, match=r"k: grid \(3, 1, 1\).*the kernel while it ran \(synchronised after it\) "
                                          "failed: RuntimeError: cudaErrorIllegalAddress"):
        launch(Recorder("k"), (3,), (32,), (), 0, sync=fault)


@needs_gxx
def test_a_harness_error_keeps_its_type_and_gets_the_geometry():
    from minitorch_attn.kernels.cuda.harness import KernelError

    with pytest.raises(KernelError, match=r"takes 14 arguments; got 1 \[flash_fwd: grid \(1, 1, 1\), block "
                                          r"\(128, 1, 1\) = 128 threads"):
        launch(_harness("flash_fwd.cu", "flash_fwd"), (1,), (128,), (np.int32(1),))


def test_sync_after_every_launch_only_when_asked(monkeypatch):
    from minitorch_attn.kernels.cuda import standin_cupy
    from minitorch_attn.kernels.cuda.launch import SYNC_ENV, debug_sync

    cupy = standin_cupy.module()
    monkeypatch.delenv(SYNC_ENV, raising=False)
    assert debug_sync(cupy) is None and debug_sync(np) is None
    monkeypatch.setenv(SYNC_ENV, "1")
    assert debug_sync(np) is None  # NumPy arrays: the harness has nothing to wait for
    before = standin_cupy.synchronized[0]
    q, k, v, _ = (cupy.asarray(a) for a in _inputs(2, 1, 3, 3, 8))
    fwd = Recorder("flash_fwd")
    run_flash_forward(fwd, q, k, v, xp=cupy)
    assert len(fwd.launches) == 1 and standin_cupy.synchronized[0] == before + 1


def test_an_empty_grid_launches_nothing():
    k = Recorder()
    q, kk, v, _ = _inputs(1, 2, 0, 5, 16)
    o, lse = run_flash_forward(k, q, kk, v)
    assert k.launches == [] and o.shape == (1, 2, 0, 16) and lse.shape == (1, 2, 0)
    launch(k, (0, 4), (128,), ())
    assert k.launches == []
