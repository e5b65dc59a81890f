"""Graded tests for lesson 11, flash attention in CUDA C: exercises 11.1-11.4 in
`exercises/lesson11_flash_cuda.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson11_flash_cuda.py
    python -m minitorch_attn grade --lesson 11

Exercises 11.1-11.3 are CUDA C: the lesson file holds each definition as a string. A test puts the string back
into its .cu file (kernels/cuda/progression/), in place of the library's definition, compiles the file for
the CPU harness (g++) and runs it (`minitorch_attn.course.cuda_checks`); while a block still holds only the
stub's comment, the test raises NotImplementedError instead. The harness runs the CUDA threads of a block in a
seeded random order, fills shared memory with NaN before each block and puts NaN-filled red zones around every
array, so a missing __syncthreads, a tile that is not zero-filled or a read past the end shows up as a wrong
answer or an error. When NVRTC is installed (the `cudacheck` extra), the first test of each CUDA exercise also
compiles the file as CuPy will for a GPU and fails on a compile error or a per-thread array in local memory.

The oracle is the naive attention of `minitorch_attn.kernels.reference`, in float64; the kernels compute in
float32, so values must agree to 1e-5 (relative to max(1, |reference|)).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from minitorch_attn.course.checks import assert_close, fail, logsumexp_ref, softmax_ref
from minitorch_attn.course.cuda_checks import cuda_exercise_kernels, nvrtc_problems
from minitorch_attn.kernels.reference import attention_forward

pytestmark = pytest.mark.skipif(shutil.which("g++") is None,
                                reason="lesson 11's graded tests run CUDA C on the CPU harness, which needs g++")

from minitorch_attn.kernels.cuda import progression  # noqa: E402
from minitorch_attn.kernels.cuda.harness import KernelError  # noqa: E402

TOL = 1e-5
INF = np.inf


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson11_flash_cuda")


def qkv(B, H, Nq, Nk, d, dv, seed=0, gain=1.0):
    rng = np.random.default_rng(seed)
    q = (rng.standard_normal((B, H, Nq, d)) * gain).astype(np.float32)
    k = rng.standard_normal((B, H, Nk, d)).astype(np.float32)
    v = rng.standard_normal((B, H, Nk, dv)).astype(np.float32)
    return q, k, v


def _compiles_for_the_gpu(impl, exercise_id, name):
    """With NVRTC installed: the file with the learner's definition compiles as CuPy will, and keeps its
    per-thread arrays in registers (no stack frame)."""
    problems = nvrtc_problems(impl, exercise_id)
    if problems is None:  # no NVRTC here: the harness checks below still grade the kernel
        return
    bad = [p for p in problems if "stack frame" in p or "failed" in p or "error" in p.lower()]
    if bad:
        fail(f"{name} (NVRTC, as CuPy compiles it for a GPU)", bad[0].splitlines()[0],
             "NVRTC has no <math.h> (no INFINITY: use neg_inf()); a stack frame means a per-thread array went "
             "to local memory: index acc[] only with the constant u of a #pragma unroll loop",
             "\n".join(problems)[:3000])


def check_step(impl, exercise_id, step, shape, causal, seeds, what, hint, gain=1.0, data_seed=0):
    """Run `step` with the learner's definition under each schedule seed; compare with the reference."""
    get_kernel = cuda_exercise_kernels(impl, exercise_id)
    B, H, Nq, Nk, d, dv = shape
    q, k, v = qkv(B, H, Nq, Nk, d, dv, seed=data_seed, gain=gain)
    ref_o, ref_lse = attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=causal)
    where = f"{what} (B, H, Nq, Nk, d, dv = {shape}, causal={causal})"
    for seed in seeds:
        try:
            o, lse = progression.run(step, get_kernel, q, k, v, causal=causal, seed=seed)
        except KernelError as e:
            fail(where, f"the harness stopped the kernel: {e}", hint)
        scale_o = max(1.0, float(np.abs(ref_o).max(initial=0)))
        assert_close(lse, ref_lse, f"{where}, schedule seed {seed}: lse", hint, rtol=TOL, atol=TOL)
        assert_close(o / scale_o, ref_o / scale_o, f"{where}, schedule seed {seed}: o", hint, rtol=TOL, atol=TOL)


# ---- 11.1 softmax_rows --------------------------------------------------------------------------------------
def _softmax_rows(impl, S, seed=1):
    """The learner's softmax_rows kernel on a (rows, N) float32 matrix: (P, lse)."""
    get_kernel = cuda_exercise_kernels(impl, "11.1")
    kernel = get_kernel(progression.step("01").path, "softmax_rows")
    s = np.array(S, np.float32)  # a copy: the kernel works in place
    lse = np.full(s.shape[0], np.nan, np.float32)
    per_block = progression.SOFTMAX_ROWS_PER_BLOCK
    grid = ((s.shape[0] + per_block - 1) // per_block,)
    try:
        kernel(grid, (32 * per_block,), (s, lse, np.int32(s.shape[0]), np.int32(s.shape[1])), seed=seed)
    except KernelError as e:
        fail("softmax_rows", f"the harness stopped the kernel: {e}",
             "every lane of the warp must reach warp_max and warp_sum (no return or break before them); "
             "write only s_row[j] for j < N and lse[row]")
    return s, lse


def _softmax_ref(S):
    return softmax_ref(S, axis=1), logsumexp_ref(S, axis=1)


@pytest.mark.exercise("11.1", points=1)
def test_softmax_rows_inside_the_naive_step(impl):
    _compiles_for_the_gpu(impl, "11.1", "softmax_rows")
    hint = ("a warp per row: lane t visits columns t, t + 32, ...; every lane ends with the row max (warp_max) "
            "and the row sum (warp_sum); P = exp(s - max) / sum; lane 0 writes lse = max + log(sum)")
    for shape, causal in (((1, 2, 37, 45, 16, 16), False),   # rows of 45: two columns for lanes 0-12, one for the rest
                          ((2, 1, 70, 40, 32, 24), True),    # causal: -inf scores in most rows
                          ((1, 1, 1, 1, 8, 8), False)):      # one row of one column: 31 lanes have nothing
        check_step(impl, "11.1", "01", shape, causal, seeds=(1, 2), what="step 01 with your softmax_rows",
                   hint=hint)


@pytest.mark.exercise("11.1", points=1)
def test_softmax_rows_on_extreme_rows(impl):
    rng = np.random.default_rng(1)
    N = 70
    S = rng.standard_normal((7, N)).astype(np.float32)
    S[0] *= 1e4                      # scores of +-1e4: exp(s) overflows unless the max is subtracted first
    S[1, :] = -INF                   # a row that sees no key: P = 0, lse = -inf (no NaN)
    S[2, 5:] = -INF                  # masked tail
    S[3, :] = 88.0                   # exp(88) is near float32's largest: every entry equal, P = 1/N
    S[4, :40] = -INF                 # the max lies in the second half (lanes that see only -inf at first)
    S[5] = np.arange(N, dtype=np.float32) * 3
    P, lse = _softmax_rows(impl, S)
    ref_P, ref_lse = _softmax_ref(S)
    hint = ("subtract the row max before __expf; when the max is -inf use 0 instead (so -inf - -inf never "
            "happens) and write P = 0 and lse = -inf; every lane must end with the max and the sum, not only lane 0")
    if np.isnan(P[1]).any() or np.isnan(lse[1]):
        fail("softmax_rows on a row of -inf scores", "got NaN", hint)
    assert_close(P, ref_P, "softmax_rows: P on extreme rows (+-1e4, all -inf, masked tails, all equal to 88)",
                 hint, rtol=1e-5, atol=1e-6)
    assert_close(lse, ref_lse, "softmax_rows: lse on extreme rows", hint, rtol=1e-5, atol=1e-5)
    row_sums = P[np.isfinite(ref_lse)].sum(axis=1)
    assert_close(row_sums, np.ones_like(row_sums), "softmax_rows: each row of P sums to 1", hint, rtol=1e-5)


# ---- 11.2 online_row ----------------------------------------------------------------------------------------
@pytest.mark.exercise("11.2", points=2)
def test_online_row_matches_the_reference(impl):
    _compiles_for_the_gpu(impl, "11.2", "online_row")
    hint = ("m_new = max(m, s); rescale l and every acc[u] by exp(m - m_new) before adding exp(s - m_new) and "
            "exp(s - m_new) * v_j[c0 + u]; skip the columns c0 + u >= dv; m = m_new at the end")
    for shape, causal in (((1, 2, 37, 45, 16, 16), False),
                          ((1, 2, 70, 40, 32, 40), True),    # dv = 40: the second chunk has 8 real columns
                          ((2, 1, 33, 50, 80, 24), True),
                          ((1, 1, 1, 1, 8, 8), True)):
        check_step(impl, "11.2", "02", shape, causal, seeds=(1,), what="step 02 with your online_row", hint=hint)


@pytest.mark.exercise("11.2", points=1)
def test_online_row_with_huge_logits(impl):
    hint = ("never exponentiate a positive number: exp(s - m_new) and exp(m - m_new) are <= 1 when m_new is the "
            "running max; do not divide by l inside the loop")
    check_step(impl, "11.2", "02", (1, 2, 40, 70, 32, 32), True, seeds=(1,), gain=100.0, data_seed=5,
               what="step 02 with your online_row, logits x 100 (scores in the hundreds)", hint=hint)


# ---- 11.3 shared_tiles --------------------------------------------------------------------------------------
_STAGE_HINT = ("a __syncthreads() before the loads (the previous tile may still be read) and one after them (the "
               "tile must be complete before anyone reads it), reached by every thread of the block; zero-fill "
               "the rows past Nk and the columns past dv")


@pytest.mark.exercise("11.3", points=2)
def test_shared_tiles_under_random_schedules(impl):
    _compiles_for_the_gpu(impl, "11.3", "shared_tiles")
    # several key tiles (a thread that runs ahead would overwrite a tile others still read), Nq past a block
    for shape, causal in (((1, 2, 70, 100, 16, 40), False), ((2, 1, 67, 45, 32, 16), True)):
        check_step(impl, "11.3", "03", shape, causal, seeds=(1, 2, 3), what="step 03 with your shared_tiles",
                   hint=_STAGE_HINT + "; fold each key as in 02_online_row.cu")


@pytest.mark.exercise("11.3", points=1)
def test_shared_tiles_zero_fills_the_last_tile(impl):
    # Nk = 20 < Bc = 32: the tile's rows 20-31 are never loaded; their p is 0, and 0 * NaN (the harness's
    # poisoned shared memory) is NaN, so they must hold zeros.
    check_step(impl, "11.3", "03", (1, 1, 8, 20, 16, 16), False, seeds=(1,), what="step 03 with your "
               "shared_tiles, one partial key tile", hint="write 0.0f into k_s and v_s where j0 + r >= Nk "
               "(and into v_s where c0 + u >= dv): a masked key adds p * v = 0 * v, which is NaN if v is NaN")


@pytest.mark.exercise("11.3", points=1)
def test_shared_tiles_masked_keys_and_huge_logits(impl):
    hint = ("a masked key has s = -inf: it must add nothing (p = exp(-inf - m_safe) = 0) and leave m alone; "
            "subtract the running max before every __expf")
    check_step(impl, "11.3", "03", (1, 2, 70, 40, 32, 32), True, seeds=(2,), gain=100.0, data_seed=7,
               what="step 03 with your shared_tiles, causal, Nq > Nk, logits x 100", hint=hint)


# ---- 11.4 shared_tiles_launch_config --------------------------------------------------------------------------
@pytest.mark.exercise("11.4", points=1)
def test_launch_config_values(impl):
    for BH, Nq, d, dv, Br in ((1, 1, 8, 8, 64), (6, 130, 80, 40, 64), (3, 64, 128, 128, 32), (2, 65, 16, 33, 64)):
        what = f"shared_tiles_launch_config(BH={BH}, Nq={Nq}, d={d}, dv={dv}, Br={Br})"
        out = impl.shared_tiles_launch_config(BH, Nq, d, dv, Br)
        if not (isinstance(out, tuple) and len(out) == 3):
            fail(what, f"returned {out!r}", "return the triple (grid, block, shared_mem)")
        grid, block, shared_mem = out
        grid, block = tuple(grid), tuple(block)
        if not all(isinstance(x, (int, np.integer)) for x in (*grid, *block, shared_mem)):
            fail(what, f"returned {out!r}: not all integers", "use _cdiv (integer ceil division), not / or math.ceil "
                 "of floats; CUDA launch dimensions and byte counts are integers")
        want_grid = (-(-Nq // Br), BH, -(-dv // progression.DV_CHUNK))
        if grid != want_grid:
            fail(what, f"grid = {grid}, expected {want_grid}",
                 "x: tiles of Br query rows (the last may be partial), y: one per (batch, head), z: chunks of "
                 "DV_CHUNK output columns")
        if block != (Br,):
            fail(what, f"block = {block}, expected {(Br,)}", "one thread per query row of the tile")
        want_smem = (progression.BLOCK_N * d + progression.BLOCK_N * progression.DV_CHUNK) * 4
        if shared_mem != want_smem:
            fail(what, f"shared_mem = {shared_mem} bytes, expected {want_smem}",
                 "k_s is BLOCK_N x d floats, v_s is BLOCK_N x DV_CHUNK floats, 4 bytes each")


@pytest.mark.exercise("11.4", points=1)
def test_launch_config_runs_step_03(impl, monkeypatch):
    monkeypatch.setattr(progression, "shared_tiles_launch_config", impl.shared_tiles_launch_config)
    get_kernel = progression.harness_kernels(seed=1)
    q, k, v = qkv(2, 1, 70, 45, 80, 40, seed=3)
    ref_o, ref_lse = attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=True)
    what = "step 03 launched with your shared_tiles_launch_config (Nq = 70, d = 80, dv = 40)"
    try:
        o, lse = progression.run("03", get_kernel, q, k, v, causal=True)
    except KernelError as e:
        fail(what, f"the harness stopped the kernel: {e}",
             "too little dynamic shared memory makes the kernel write past its end; the kernel takes exactly the "
             "launch's block size as Br")
    hint = "a grid that is too small leaves rows (NaN) or output columns unwritten"
    assert_close(lse, ref_lse, what + ": lse", hint, rtol=TOL, atol=TOL)
    assert_close(o, ref_o, what + ": o", hint, rtol=TOL, atol=TOL)
