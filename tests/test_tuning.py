"""kernels/tuning.py: the per-machine choice of (Br, Bc) and inner matmul for the Numba flash kernels, and
microkernel.py's register tile that it chooses between. The timing itself runs on a tiny problem here."""

from __future__ import annotations

import json

import numpy as np
import pytest

numba = pytest.importorskip("numba", reason="the Numba kernels need numba (in the project's dependencies)")

from minitorch_attn.kernels import tuning  # noqa: E402
from minitorch_attn.kernels.microkernel import (  # noqa: E402
    MR,
    NV,
    VECTOR_BYTES,
    microkernel_tile,
    microkernel_tile_at,
)
from minitorch_attn.kernels.tile_matmul import (  # noqa: E402
    matmul_tile,
    matmul_tile_at,
    matmul_tile_at_regs,
    matmul_tile_regs,
)


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A private cache directory, a tiny timing problem, two candidates, and no choice made yet."""
    for var in ("MTA_TUNE", "MTA_FLASH_FWD", "MTA_FLASH_BWD", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MTA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tuning, "PROBLEM", dict(B=1, H=1, N=96, d=16))
    monkeypatch.setattr(tuning, "CANDIDATES", {"forward": [(32, 16), (64, 32)], "backward": [(16, 32)]})
    tuning.reset()
    yield tmp_path
    tuning.reset()


def test_first_use_times_the_candidates_and_caches_the_fastest(fresh):
    chosen = tuning.forward_config()
    seconds = tuning.report(["forward"])["forward"]["seconds"]
    assert set(seconds) == {"32,16,loops", "32,16,microkernel", "64,32,loops", "64,32,microkernel"}
    best = min(seconds, key=seconds.get)
    assert chosen == tuning._parse(best), "the choice is the fastest candidate"
    cache = json.loads((fresh / "tuning.json").read_text())
    assert cache[tuning.machine_key()]["forward"]["choice"] == best
    assert tuning.report(["forward"])["forward"]["how"].startswith("timed 4 candidates")


def test_a_cached_choice_is_read_back_without_timing(fresh, monkeypatch):
    key = tuning.machine_key()
    (fresh / "tuning.json").write_text(json.dumps({key: {"forward": {"choice": "64,32,loops", "seconds": {}}}}))
    monkeypatch.setattr(tuning, "_time_candidates", lambda kind: pytest.fail("a cached choice must not be timed"))
    assert tuning.forward_config() == {"Br": 64, "Bc": 32, "microkernel": False}
    assert "cache" in tuning.report(["forward"])["forward"]["how"]


def test_another_machine_key_is_not_reused(fresh, monkeypatch):
    (fresh / "tuning.json").write_text(json.dumps({"someothercpu|x": {"forward": {"choice": "64,32,loops"}}}))
    timed = []
    monkeypatch.setattr(tuning, "_time_candidates", lambda kind: timed.append(kind) or {"32,16,microkernel": 1.0})
    assert tuning.forward_config() == {"Br": 32, "Bc": 16, "microkernel": True}
    assert timed == ["forward"]


def test_environment_overrides_and_off(fresh, monkeypatch):
    monkeypatch.setattr(tuning, "_time_candidates", lambda kind: pytest.fail("no timing with a fixed choice"))
    monkeypatch.setenv("MTA_FLASH_FWD", "128,32,microkernel")
    monkeypatch.setenv("MTA_TUNE", "off")
    assert tuning.forward_config() == {"Br": 128, "Bc": 32, "microkernel": True}
    assert tuning.backward_config() == tuning.DEFAULTS["backward"]
    assert "MTA_TUNE=off" in tuning.report()["backward"]["how"]
    assert not (fresh / "tuning.json").exists(), "nothing is written without timing"


@pytest.mark.parametrize("raw", ["128", "128,x", "0,64", "128,64,fast", "1,2,loops,4"])
def test_bad_settings_are_refused_with_the_expected_form(fresh, monkeypatch, raw):
    monkeypatch.setenv("MTA_FLASH_BWD", raw)
    with pytest.raises(ValueError, match="MTA_FLASH_BWD=.*expected 'Br,Bc'"):
        tuning.backward_config()
    tuning.reset()
    monkeypatch.delenv("MTA_FLASH_BWD")
    monkeypatch.setenv("MTA_TUNE", "sometimes")
    with pytest.raises(ValueError, match="MTA_TUNE='sometimes'.*'auto'.*'off'.*'force'"):
        tuning.forward_config()


def test_an_unwritable_cache_is_not_an_error(fresh, monkeypatch):
    blocker = fresh / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MTA_CACHE_DIR", str(blocker / "sub"))
    assert tuning.backward_config()["Br"] == 16


def test_the_tuned_kernels_give_the_same_attention(fresh):
    """Whatever is chosen computes the same attention (the choice changes speed, not results)."""
    from minitorch_attn.kernels import attention_forward
    from minitorch_attn.kernels.numba_backend import flash_forward_numba

    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 70, 16)).astype(np.float32) for _ in range(3))
    o, _ = flash_forward_numba(q, k, v, causal=True)
    o_ref, _ = attention_forward(*(a.astype(np.float64) for a in (q, k, v)), True)
    assert np.max(np.abs(o - o_ref)) < 1e-5


# ---- the register tile itself -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_register_tile_adds_exactly_its_block(dtype):
    """C[i:i+MR, cj:cj+NV·L] += A @ B[:, bj:bj+NV·L], nothing outside the block, A read plainly or transposed
    (MR × NV vectors: 8 × 2 of 64 bytes with 512-bit vectors, 4 × 2 of 32 bytes otherwise)."""
    from numba import njit

    @njit
    def plain(C, A, B, i, cj, bj, k):
        microkernel_tile(C, A, B, i, cj, bj, k)

    @njit
    def transposed(C, A, B, i, cj, bj, k):
        microkernel_tile_at(C, A, B, i, cj, bj, k)

    W = NV * VECTOR_BYTES // np.dtype(dtype).itemsize  # columns of C per call
    rng = np.random.default_rng(1)
    A = rng.standard_normal((20, 30)).astype(dtype)
    B = rng.standard_normal((30, W + 20)).astype(dtype)
    C0 = rng.standard_normal((24, W + 12)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    C = C0.copy()
    plain(C, A, B, 3, 5, 7, 25)
    want = C0.astype(np.float64)
    want[3:3 + MR, 5:5 + W] += A[3:3 + MR, :25].astype(np.float64) @ B[:25, 7:7 + W]
    assert np.max(np.abs(C - want)) < tol * 10, f"the block: {MR} rows from i=3, {W} columns from cj=5, k=25"
    At = np.ascontiguousarray(A.T)  # (30, 20): A[:k, i:i+MR] read transposed
    C = C0.copy()
    transposed(C, At, B, 3, 5, 7, 25)
    want = C0.astype(np.float64)
    want[3:3 + MR, 5:5 + W] += At[:25, 3:3 + MR].T.astype(np.float64) @ B[:25, 7:7 + W]
    assert np.max(np.abs(C - want)) < tol * 10


def test_register_tile_shape_follows_the_vector_width():
    """The 512-bit shape (16 accumulators of 64 bytes) needs 32 vector registers: on an AVX2 CPU (16 ymm) it
    spills and ran 0.73x as fast as the loops; there the tile is 4 rows × 2 vectors of 32 bytes."""
    from minitorch_attn.kernels.ops.threads import wide_vectors

    if wide_vectors():
        assert (MR, NV, VECTOR_BYTES) == (8, 2, 64)
    else:
        assert (MR, NV, VECTOR_BYTES) == (4, 2, 32)
    assert MR * NV + NV + 1 <= (32 if VECTOR_BYTES == 64 else 16), "accumulators + loads of B + a broadcast fit"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,n,k", [(8, 32, 4), (21, 77, 13), (64, 256, 64), (7, 31, 5)])
def test_tile_matmuls_agree_with_and_without_the_register_tile(dtype, m, n, k):
    """Both inner kernels, every leftover (rows % MR, columns % NV·L, k of any length), plain and transposed A."""
    rng = np.random.default_rng(m * n + k)
    A = rng.standard_normal((m, k)).astype(dtype)
    At = np.ascontiguousarray(A.T)
    B = rng.standard_normal((k, n + 9)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for plain, transposed in ((matmul_tile, matmul_tile_at), (matmul_tile_regs, matmul_tile_at_regs)):
        for accumulate in (False, True):
            C = np.ones((m, n), dtype)
            plain(C, A, B, 9, m, n, k, accumulate)
            want = (1.0 if accumulate else 0.0) + A.astype(np.float64) @ B[:, 9:9 + n]
            assert np.max(np.abs(C - want)) < tol * max(1, k), f"{plain.__name__} accumulate={accumulate}"
            C = np.ones((m, n), dtype)
            transposed(C, At, B, m, n, k, accumulate)
            want = (1.0 if accumulate else 0.0) + A.astype(np.float64) @ B[:, :n]
            assert np.max(np.abs(C - want)) < tol * max(1, k), f"{transposed.__name__} accumulate={accumulate}"


def test_the_entry_kernels_take_no_literal_arguments():
    """A literal-typed argument at a Python-called entry point sends every call down Numba's slow dispatch path
    (it cost a GPT training step on short sequences 76 -> 139 ms). The choice of inner kernel becomes a constant
    inside the kernels instead."""
    from minitorch_attn.kernels import numba_backend as nb

    rng = np.random.default_rng(3)
    q, k, v, do = (rng.standard_normal((1, 1, 40, 16)).astype(np.float32) for _ in range(4))
    saved = nb.SERIAL_BELOW
    try:
        for serial_below in (0, saved):  # the prange entry kernels, then the plain-loop ones
            nb.SERIAL_BELOW = serial_below
            for mk in (False, True):
                o, lse = nb.flash_forward_numba(q, k, v, Br=32, Bc=32, microkernel=mk)
                nb.flash_backward_numba(q, k, v, o, lse, do, Br=32, Bc=32, microkernel=mk)
    finally:
        nb.SERIAL_BELOW = saved
    kernels = [nb._forward_kernel_serial, nb._backward_kernel_serial]
    if numba.get_num_threads() > 1:
        kernels += [nb._forward_kernel, nb._backward_kernel]
    for kernel in kernels:
        literal = [str(t) for sig in kernel.signatures for t in sig if "Literal" in str(t)]
        assert kernel.signatures and not literal, f"{kernel.__name__} was compiled with literal arguments {literal}"


@pytest.mark.parametrize("N", [2048, 1024, 70, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_k_and_v_rows_are_padded_off_the_cache_set_stride(N, dtype):
    """The backward reads a tile's columns from every row of Kᵀ and Vᵀ: rows a multiple of 4 KiB apart (N a
    power of two) share L1 sets, and the backward ran 1.5x slower per score element at N = 2048 than at 2112
    (AMD Zen 3). The copy is aᵀ in its first N columns, zeros after, rows never a multiple of 512 bytes long."""
    from minitorch_attn.kernels.numba_backend import _transposed

    a = np.random.default_rng(N).standard_normal((2, 3, N, 5)).astype(dtype)[:, :, :, ::-1]  # any strides
    t = _transposed(a)
    assert t.shape[:2] == (6, 5) and t.shape[2] >= N and t.flags.c_contiguous
    assert (t.shape[2] * t.itemsize) % 512 != 0, f"row of {t.shape[2] * t.itemsize} bytes: a cache-set stride"
    assert (t.shape[2] * t.itemsize) % 64 == 0, "rows start on cache lines"
    np.testing.assert_array_equal(t[:, :, :N], np.swapaxes(a, 2, 3).reshape(6, 5, N))
    assert not t[:, :, N:].any()
