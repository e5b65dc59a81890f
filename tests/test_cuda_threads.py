"""The CPU harness's thread mode (one OS thread per CUDA thread) and the sanitizer job built on it.

1. flash_fwd.cu gives bit-for-bit the fiber mode's results in thread mode, on awkward shapes.
2. Atomics are real atomics in both modes (float, int, unsigned, double; add, max, min, CAS): many threads
   adding at once lose nothing. Deadlocks are reported at once, a thread that never arrives by a timeout.
3. `python -m minitorch_attn.kernels.cuda.sanitize` passes on the real kernels and fails, with the source line,
   on planted bugs: a removed __syncthreads (ThreadSanitizer: data race) and a `<= Nk` load guard
   (AddressSanitizer: heap-buffer-overflow; in these builds array arguments get exactly their size).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from minitorch_attn.kernels import attention_forward
from minitorch_attn.kernels.cuda import SOURCE_DIR

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the CPU harness needs g++")

from minitorch_attn.kernels.cuda import sanitize  # noqa: E402
from minitorch_attn.kernels.cuda.forward import run_flash_forward  # noqa: E402
from minitorch_attn.kernels.cuda.harness import CpuModule, KernelError, cache_dir  # noqa: E402

SOURCE = (SOURCE_DIR / "flash_fwd.cu").read_text()


def _has_runtime(name: str) -> bool:
    if shutil.which("g++") is None:
        return False
    path = subprocess.run(["g++", f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return os.path.isabs(path) and os.path.exists(path)


needs_tsan = pytest.mark.skipif(not _has_runtime("libtsan.so"), reason="g++ has no ThreadSanitizer runtime "
                                "(libtsan.so); install libtsan2 to run the sanitizer job")
needs_asan = pytest.mark.skipif(not _has_runtime("libasan.so"), reason="g++ has no AddressSanitizer runtime "
                                "(libasan.so); install libasan8 to run the sanitizer job")


def _inputs(B, H, Nq, Nk, d, dv=None, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, H, Nq, d)).astype(np.float32),
            rng.standard_normal((B, H, Nk, d)).astype(np.float32),
            rng.standard_normal((B, H, Nk, dv or d)).astype(np.float32))


# --- 1. same results as fiber mode ----------------------------------------------------------------------

SHAPES = {  # name: (B, H, Nq, Nk, d, dv, causal, padded batch)
    "N not a tile multiple, 2 heads": (1, 2, 37, 45, 16, None, False, False),
    "causal, Nq > Nk, d = 80, dv = 24": (1, 1, 41, 33, 80, 24, True, False),
    "causal + padding, a fully masked batch, N = 1 rows": (2, 1, 5, 35, 8, None, True, True),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_thread_mode_matches_fiber_mode(name):
    B, H, Nq, Nk, d, dv, causal, padded = SHAPES[name]
    q, k, v = _inputs(B, H, Nq, Nk, d, dv)
    pad = None
    if padded:
        pad = np.zeros((B, Nk), bool)
        pad[0, 7:20] = True
        pad[1] = True  # every row of batch 1 is fully masked: o = 0, lse = -inf
    fibers = CpuModule(path=SOURCE_DIR / "flash_fwd.cu").get_function("flash_fwd")
    threads = CpuModule(path=SOURCE_DIR / "flash_fwd.cu", mode="threads").get_function("flash_fwd")
    assert threads.module.mode == "threads" and threads.module._lib.cpu_threads_mode() == 1
    assert fibers.module._lib.cpu_threads_mode() == 0
    o_f, lse_f = run_flash_forward(fibers, q, k, v, causal, None, pad, seed=2)
    o_t, lse_t = run_flash_forward(threads, q, k, v, causal, None, pad)
    # Same arithmetic in the same order per thread: the modes agree exactly, and both match float64.
    assert np.array_equal(o_t, o_f) and np.array_equal(lse_t, lse_f)
    ref_o, ref_lse = attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=causal,
                                       key_padding_mask=pad)
    assert np.max(np.abs(o_t - ref_o)) <= 1e-5 * max(1.0, np.max(np.abs(ref_o)))
    assert np.array_equal(np.isneginf(lse_t), np.isneginf(ref_lse))
    if padded:
        assert np.all(o_t[1] == 0) and np.all(np.isneginf(lse_t[1]))


# --- 2. atomics, deadlocks, timeouts --------------------------------------------------------------------

ATOMICS = r"""
extern "C" __global__ void atomics(float* f, int* i, unsigned* u, double* dd, int repeats) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    for (int r = 0; r < repeats; ++r) {
        atomicAdd(&f[0], 1);                   // int 1 converts to float, as with CUDA's overloads
        atomicAdd(&i[0], 2);
        atomicAdd(&u[0], 1u);
        atomicAdd(&dd[0], 0.25);
    }
    atomicMax(&f[1], 0.5f * t);
    atomicMax(&i[1], t);
    atomicMin(&i[2], -t);
    atomicSub(&i[3], 1);
    int old = atomicAdd(&i[4], 0);            // atomicCAS loop: i[4] += t
    while (true) {
        const int seen = atomicCAS(&i[4], old, old + t);
        if (seen == old) break;
        old = seen;
    }
}
"""


@pytest.mark.parametrize("mode", ["fibers", "threads"])
def test_atomics_lose_nothing(mode):
    kernel = CpuModule(code=ATOMICS, mode=mode).get_function("atomics")
    blocks, threads, repeats = 3, 64, 200
    n = blocks * threads
    f, i = np.array([0, -1], np.float32), np.array([0, -5, 3, 0, 0], np.int32)
    u, dd = np.zeros(1, np.uint32), np.zeros(1)
    kernel((blocks,), (threads,), (f, i, u, dd, np.int32(repeats)))
    assert f[0] == n * repeats and i[0] == 2 * n * repeats and u[0] == n * repeats and dd[0] == 0.25 * n * repeats
    assert f[1] == 0.5 * (n - 1) and i[1] == n - 1 and i[2] == -(n - 1) and i[3] == -n
    assert i[4] == n * (n - 1) // 2


DEADLOCKS = r"""
extern "C" __global__ void early_return(float* out) {
    if (threadIdx.x >= 40) return;             // these threads never reach the barrier
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}
extern "C" __global__ void block_vs_warp(float* out) {
    if (threadIdx.x < 32) __syncthreads(); else __syncwarp();
}
extern "C" __global__ void slow_thread(float* out, int naps) {
    if (threadIdx.x == 0) for (int i = 0; i < naps; ++i) __nanosleep(10000000);  // 10 ms each
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}
"""


@pytest.mark.parametrize("mode", ["fibers", "threads"])
@pytest.mark.parametrize("name, message", [("early_return", "40 threads wait at __syncthreads, 0 at a warp barrier "
                                                            "(__syncwarp / shuffle), 24 have returned"),
                                           ("block_vs_warp", "32 threads wait at __syncthreads")],
                         ids=["early_return", "block_vs_warp"])
def test_deadlock_is_reported_at_once(mode, name, message):
    kernel = CpuModule(code=DEADLOCKS, mode=mode, timeout=30).get_function(name)
    start = time.perf_counter()
    with pytest.raises(KernelError, match="deadlock in block") as error:
        kernel((2,), (64,), (np.zeros(64, np.float32),))
    assert message in str(error.value)
    assert time.perf_counter() - start < 10, "found by counting, not by the 30 s timeout"


def test_thread_mode_times_out_on_a_thread_that_never_arrives():
    kernel = CpuModule(code=DEADLOCKS, mode="threads", timeout=0.3).get_function("slow_thread")
    out = np.zeros(64, np.float32)
    kernel((1,), (64,), (out, np.int32(5)))  # 50 ms late: within the timeout
    assert np.all(out == 1)
    start = time.perf_counter()
    with pytest.raises(KernelError, match=r"timeout: no progress for 0.3 s while a thread waits at __syncthreads; "
                                          r"block \(0, 0, 0\): 63 threads wait"):
        kernel((1,), (64,), (out, np.int32(500)))  # 5 s late
    assert time.perf_counter() - start < 3, "the late thread gives up at its next __nanosleep"


def test_modes_and_sanitizers_are_checked():
    with pytest.raises(ValueError, match="unknown mode 'gpu'"):
        CpuModule(code=DEADLOCKS, mode="gpu")
    with pytest.raises(ValueError, match="needs mode='threads'"):
        CpuModule(code=DEADLOCKS, sanitizer="thread")
    with pytest.raises(KernelError, match="blockDim.x = 1025 is over"):
        CpuModule(code=DEADLOCKS).get_function("early_return")((1,), (1025,), (np.zeros(1, np.float32),))


# --- 3. the sanitizer job -------------------------------------------------------------------------------


def _planted_file(name: str, source: str):
    """Write a planted copy where the next run writes it too: the same path and text hit the compile cache."""
    path = cache_dir() / "planted" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    return path


def _line_of(source: str, text: str) -> int:
    [number] = [i + 1 for i, line in enumerate(source.splitlines()) if text in line]
    return number


@needs_tsan
@needs_asan
def test_sanitize_job_passes_on_the_real_kernels(capsys):
    assert sanitize.main([]) == 0, capsys.readouterr().out
    out = capsys.readouterr().out
    for kernel in sanitize.registry():
        for name in ("thread", "address"):
            assert any(line.split()[:2] == [kernel, name] and "passed" in line for line in out.splitlines()), out
    assert "flash_fwd.cu" in sanitize.registry()
    with pytest.raises(KernelError, match="LD_PRELOAD"):  # a sanitized build does not load in this process
        CpuModule(path=SOURCE_DIR / "flash_fwd.cu", mode="threads", sanitizer="thread")


@needs_tsan
def test_thread_sanitizer_reports_a_planted_race_with_its_lines(capsys):
    barrier = "        __syncthreads();                          // everyone is done with the previous K/V tile"
    assert SOURCE.count(barrier) == 1, "the planted-bug edit no longer applies"
    planted = SOURCE.replace(barrier, "        // (barrier removed: warps that run ahead overwrite the tile)")
    path = _planted_file("flash_fwd_race.cu", planted)
    assert sanitize.main(["--kernel", "flash_fwd.cu", "--sanitizer", "thread", "--source", str(path)]) == 1
    out = capsys.readouterr().out
    assert "WARNING: ThreadSanitizer: data race" in out and "FAILED" in out
    # The race is between a K/V tile store and a read of the previous tile: both lines are named.
    stores = {_line_of(planted, "k_s[t] = (j0 + r < Nk)"), _line_of(planted, "v_s[t] = (j0 + r < Nk)")}
    reads = {_line_of(planted, "k_s[lane * d + c]"), _line_of(planted, "v_s[jj * dv + c]")}
    named = {int(part.split(":")[1]) for part in out.split() if part.startswith(f"{path}:")}
    assert named & stores and named & reads, (named, stores, reads)


@needs_asan
def test_address_sanitizer_reports_a_planted_out_of_bounds_read(capsys):
    planted = SOURCE.replace("(j0 + r < Nk) ?", "(j0 + r <= Nk) ?")  # loads key row Nk: one past the end
    assert planted.count("(j0 + r <= Nk) ?") == 2, "the planted-bug edit no longer applies"
    path = _planted_file("flash_fwd_oob.cu", planted)
    assert sanitize.main(["--kernel", "flash_fwd.cu", "--sanitizer", "address", "--source", str(path)]) == 1
    out = capsys.readouterr().out
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in out and "READ of size 4" in out
    assert f" {path}:{_line_of(planted, 'k_s[t] = (j0 + r <= Nk)')}" in out  # the K tile load
