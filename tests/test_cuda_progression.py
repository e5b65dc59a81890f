"""Lesson 11's kernel progression (kernels/cuda/progression): every step against the float64 reference, on the
CPU harness, and the registry, sources and course hooks around it.

1. Every step (01_naive, 02_online_row, 03_shared_tiles, flash_fwd) matches the reference on awkward shapes
   (N not a multiple of any tile, N = 1, Nq != Nk, no keys at all, dv != d, causal) under 2 random thread
   schedules, and stays finite with logits x 100.
2. The registry agrees with the .cu files (kernel names, #defines), `run` rejects bad inputs naming the
   shapes, and step 04 is exactly the library's launcher.
3. The graded tests of lesson 11 can fail: planted learner mistakes (a missing barrier, a load past Nk with no
   zero-fill, a tree reduction that leaves the max in lane 0 only) give wrong answers or harness errors.
4. The course hooks: `excerpt` hides the exercises' solution blocks, `course.use` runs a learner's CUDA C.

Tolerance: max|x - ref| / max(1, max|ref|) <= 1e-5, float32 against float64 (as in test_cuda_harness.py).
"""

from __future__ import annotations

import re
import shutil
from types import SimpleNamespace

import numpy as np
import pytest

from minitorch_attn import course
from minitorch_attn.course import catalog
from minitorch_attn.course.cuda_checks import cuda_exercise_kernels, learner_definition
from minitorch_attn.course.source import read_definition
from minitorch_attn.kernels.reference import attention_forward

pytestmark = pytest.mark.skipif(shutil.which("g++") is None, reason="the CPU harness needs g++")

from minitorch_attn.kernels.cuda import progression  # noqa: E402
from minitorch_attn.kernels.cuda.forward import flash_forward_cuda_cpu  # noqa: E402
from minitorch_attn.kernels.cuda.harness import KernelError  # noqa: E402

TOL = 1e-5
SEEDS = (1, 2)


@pytest.fixture(scope="module")
def kernels():
    """get_kernel for each schedule seed, built once (each .cu file is compiled once, then cached on disk)."""
    return {seed: progression.harness_kernels(seed=seed) for seed in (0, 1, 2, 3)}


def _inputs(B, H, Nq, Nk, d, dv, seed=0, gain=1.0):
    rng = np.random.default_rng(seed)
    q = (rng.standard_normal((B, H, Nq, d)) * gain).astype(np.float32)
    k = rng.standard_normal((B, H, Nk, d)).astype(np.float32)
    v = rng.standard_normal((B, H, Nk, dv)).astype(np.float32)
    return q, k, v


def _errors(o, lse, q, k, v, causal):
    """(error of o, error of lse, problem or ''), errors relative as in the module docstring."""
    ref_o, ref_lse = attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=causal)
    if not np.array_equal(np.isneginf(lse), np.isneginf(ref_lse)):
        return np.inf, np.inf, "the rows with lse = -inf differ from the reference's"
    if not (np.all(np.isfinite(o)) and not np.any(np.isnan(lse))):
        return np.inf, np.inf, "NaN or inf in the output"
    finite = np.isfinite(ref_lse)
    err_o = np.max(np.abs(o - ref_o), initial=0) / max(1.0, np.max(np.abs(ref_o), initial=0))
    err_lse = np.max(np.abs(lse[finite] - ref_lse[finite]) / np.maximum(1, np.abs(ref_lse[finite])), initial=0)
    return err_o, err_lse, ""


def _ok(o, lse, q, k, v, causal) -> bool:
    err_o, err_lse, problem = _errors(o, lse, q, k, v, causal)
    return not problem and err_o <= TOL and err_lse <= TOL


SHAPES = {  # name: (B, H, Nq, Nk, d, dv, causal)
    "N not a tile multiple, d = 64": (1, 2, 37, 45, 64, 64, False),
    "N = 1, causal": (1, 1, 1, 1, 8, 8, True),
    "causal, Nq > Nk, dv = 40 (a partial column chunk)": (1, 2, 70, 40, 32, 40, True),
    "causal, Nq < Nk, d = 80": (2, 1, 33, 50, 80, 24, True),
    "d = dv = 128, four key tiles, Nq = 9": (1, 1, 9, 100, 128, 128, False),
    "no keys: every row fully masked": (1, 2, 5, 0, 16, 16, False),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(SHAPES))
@pytest.mark.parametrize("number", [s.number for s in progression.STEPS])
def test_every_step_matches_the_reference(kernels, number, name, seed):
    B, H, Nq, Nk, d, dv, causal = SHAPES[name]
    q, k, v = _inputs(B, H, Nq, Nk, d, dv, seed=seed)
    o, lse = progression.step(number).run(kernels[seed], q, k, v, causal=causal)
    assert o.shape == (B, H, Nq, dv) and lse.shape == (B, H, Nq) and o.dtype == lse.dtype == np.float32
    err_o, err_lse, problem = _errors(o, lse, q, k, v, causal)
    assert not problem, f"step {number}, {name}: {problem}"
    assert err_o <= TOL and err_lse <= TOL, f"step {number}, {name}: errors (o, lse) = ({err_o:.2e}, {err_lse:.2e})"


@pytest.mark.parametrize("number", [s.number for s in progression.STEPS])
def test_every_step_stays_finite_with_huge_logits(kernels, number):
    q, k, v = _inputs(1, 2, 40, 70, 32, 32, seed=5, gain=100.0)  # scores in the hundreds: exp overflows
    scores = np.einsum("bhid,bhjd->bhij", q, k) / np.sqrt(32)
    assert scores.max() > 100
    o, lse = progression.step(number).run(kernels[1], q, k, v, causal=True)
    assert _ok(o, lse, q, k, v, True), f"step {number}: {_errors(o, lse, q, k, v, True)}"


def test_float64_inputs_come_back_float64(kernels):
    q, k, v = (a.astype(np.float64) for a in _inputs(1, 1, 10, 12, 8, 8))
    for s in progression.STEPS:
        o, lse = s.run(kernels[1], q, k, v)
        assert o.dtype == lse.dtype == np.float64, s.number
        assert _ok(o, lse, q, k, v, False), s.number


def test_step_04_is_the_library_kernel_and_launcher(kernels):
    q, k, v = _inputs(1, 2, 21, 37, 16, 16, seed=3)
    o, lse = progression.step("flash_fwd").run(kernels[2], q, k, v, causal=True)
    o_lib, lse_lib = flash_forward_cuda_cpu(q, k, v, causal=True, seed=2)
    np.testing.assert_array_equal(o, o_lib)
    np.testing.assert_array_equal(lse, lse_lib)


# ---- the registry and the files agree ----------------------------------------------------------------------
def _defines(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^#define (\w+) (\d+)\b", text, re.M)}


def test_registry_matches_the_files():
    assert [s.number for s in progression.STEPS] == ["01", "02", "03", "04"]
    for s in progression.STEPS:
        text = s.path.read_text()
        names = re.findall(r'extern "C" __global__ (?:__launch_bounds__\([^)]*\) )?void (\w+)\(', text)
        assert sorted(names) == sorted(s.kernels), (s.file, names)
        assert s.teaches and s.mapping
        assert progression.step(s.name) is progression.step(int(s.number)) is s
    naive = _defines(progression.step("01").path.read_text())
    assert naive["ROWS_PER_BLOCK"] == progression.SOFTMAX_ROWS_PER_BLOCK
    online = _defines(progression.step("02").path.read_text())
    assert online["ROWS_PER_BLOCK"] == progression.ONLINE_ROWS_PER_BLOCK and online["DV_CHUNK"] == progression.DV_CHUNK
    tiles = _defines(progression.step("03").path.read_text())
    assert tiles["BLOCK_N"] == progression.BLOCK_N and tiles["DV_CHUNK"] == progression.DV_CHUNK
    assert tiles["MAX_BR"] == progression.SHARED_TILES_MAX_BR >= progression.SHARED_TILES_BR
    with pytest.raises(KeyError, match="the steps are 01"):
        progression.step("05")


def test_run_rejects_bad_inputs_naming_the_shapes(kernels):
    q, k, v = _inputs(1, 1, 4, 4, 8, 8)
    with pytest.raises(ValueError, match=r"up to 128.*\(1, 1, 4, 130\)"):
        progression.run("02", kernels[1], *_inputs(1, 1, 4, 4, 130, 8))
    with pytest.raises(ValueError, match=r"same number of keys"):
        progression.run("01", kernels[1], q, k, v[:, :, :3])
    with pytest.raises(TypeError, match="float32 or float64"):
        progression.run("03", kernels[1], q.astype(np.int32), k, v)
    with pytest.raises(ValueError, match="shape \\(B, H, N, d\\)"):
        progression.run("03", kernels[1], q[0], k, v)


def test_shared_tiles_launch_config_and_its_limit(kernels, monkeypatch):
    grid, block, shared_mem = progression.shared_tiles_launch_config(6, 130, 80, 40)
    assert grid == (3, 6, 2) and block == (64,) and shared_mem == (32 * 80 + 32 * 32) * 4
    assert all(isinstance(x, int) for x in (*grid, *block, shared_mem))
    monkeypatch.setattr(progression, "shared_tiles_launch_config",
                        lambda BH, Nq, d, dv, Br=128: ((1, BH, 1), (Br,), 4096))
    with pytest.raises(ValueError, match="at most 64 threads"):
        progression.run("03", kernels[1], *_inputs(1, 1, 4, 4, 8, 8))


# ---- planted learner mistakes are caught ------------------------------------------------------------------
def _solution(exercise_id: str) -> str:
    ex = catalog.get(exercise_id)
    d = read_definition(ex)
    return "\n".join(d.lines[d.offset:-1])  # the CUDA C inside the wrapper


def _learner(exercise_id: str, old: str, new: str) -> SimpleNamespace:
    """A learner's lesson module whose definition is the solution with one small edit."""
    ex = catalog.get(exercise_id)
    text = _solution(exercise_id)
    assert text.count(old) == 1, f"the planted edit no longer applies: {old!r}"
    return SimpleNamespace(**{ex.name: text.replace(old, new)})


def _caught(impl, exercise_id, step, shape, causal=False, seeds=(1, 2, 3)) -> bool:
    get_kernel = cuda_exercise_kernels(impl, exercise_id)
    q, k, v = _inputs(*shape)
    for seed in seeds:
        try:
            o, lse = progression.run(step, get_kernel, q, k, v, causal=causal, seed=seed)
        except KernelError:
            return True
        if not _ok(o, lse, q, k, v, causal):
            return True
    return False


def test_the_solutions_pass_the_same_checks():
    for ex_id, step in (("11.1", "01"), ("11.2", "02"), ("11.3", "03")):
        impl = SimpleNamespace(**{catalog.get(ex_id).name: _solution(ex_id)})
        assert not _caught(impl, ex_id, step, (1, 2, 21, 70, 16, 40), causal=True), ex_id


def test_a_missing_barrier_in_step_03_is_caught():
    # the barrier before the loads: without it a thread that runs ahead overwrites a tile others still read
    line = next(x for x in _solution("11.3").splitlines() if "nobody still reads the previous tile" in x)
    impl = _learner("11.3", line, "")
    assert _caught(impl, "11.3", "03", (1, 2, 16, 96, 16, 16))  # three key tiles


def test_a_tile_without_zero_fill_is_caught_by_poisoned_shared_memory():
    impl = _learner("11.3", "v_s[t] = (j0 + r < Nk && col < dv) ? v_bh[(size_t)(j0 + r) * dv + col] : 0.0f;",
                    "if (j0 + r < Nk && col < dv) v_s[t] = v_bh[(size_t)(j0 + r) * dv + col];")
    assert _caught(impl, "11.3", "03", (1, 1, 8, 20, 16, 16))  # Nk < 32: rows 20..31 keep the NaN poison


def test_a_warp_reduction_that_leaves_the_max_in_lane_0_only_is_caught():
    # what a learner who reuses a tree reduction (__shfl_down_sync) would get: only lane 0 ends with the max
    impl = _learner("11.1", "m = warp_max(m);", "for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_down_sync("
                    "FULL_MASK, m, o));")
    assert _caught(impl, "11.1", "01", (1, 1, 5, 45, 8, 8))


def test_an_online_update_that_forgets_to_rescale_acc_is_caught():
    impl = _learner("11.2", "acc[u] = acc[u] * alpha + ", "acc[u] = acc[u] + ")
    assert _caught(impl, "11.2", "02", (1, 1, 6, 40, 8, 8), seeds=(1,))


def test_a_stub_raises_not_implemented_and_a_compile_error_is_reported():
    stub = course.load("11", "exercises")
    with pytest.raises(NotImplementedError, match=r"Exercise 11\.3: shared_tiles\.stage"):
        learner_definition(stub, "11.3")
    broken = _learner("11.2", "l = l * alpha + p;", "l = l * alpha + p")  # a missing semicolon
    with pytest.raises(AssertionError, match=r"does not compile.*starts at line \d+"):
        cuda_exercise_kernels(broken, "11.2")


# ---- course hooks ---------------------------------------------------------------------------------------
def test_excerpt_hides_the_exercise_blocks():
    shown = progression.excerpt("01", "void softmax_rows(")
    assert "// ... Exercise 11.1 (softmax_rows)" in shown and "warp_max(m)" not in shown
    assert shown.splitlines()[-1] == "}"
    full = progression.excerpt("01", "void softmax_rows(", hide_solutions=False)
    assert "m = warp_max(m);" in full
    common = progression.SOURCE_DIR / "common.cuh"  # the helpers every step includes
    assert progression.excerpt(common, "__device__ __forceinline__ float warp_max", "}").count("__shfl_xor_sync") == 1


def test_use_runs_a_learners_cuda_definition(tmp_path, kernels):
    root = tmp_path / "course"
    shutil.copytree(course.find_root() / "solutions", root / "exercises")
    path = root / "exercises" / "lesson11_flash_cuda.py"
    text = path.read_text()
    old = "acc[u] = acc[u] * alpha + ((c0 + u < dv)"  # online_row's update (Exercise 11.2)
    assert text.count(old) == 1
    path.write_text(text.replace(old, "acc[u] = acc[u] + ((c0 + u < dv)"))  # forgets to rescale acc
    q, k, v = _inputs(1, 1, 6, 40, 8, 8)
    path_02 = progression.step("02").path
    try:
        with course.use("exercises", only="11.2", root=root):
            assert "acc[u] = acc[u] + " in progression.source("02")
            o, lse = progression.run("02", progression.harness_kernels(seed=1), q, k, v)
            assert not _ok(o, lse, q, k, v, False), "the learner's (wrong) online_row should have run"
            assert progression.source("01") == progression.step("01").path.read_text()
        assert progression.source("02") == path_02.read_text()
        assert _ok(*progression.run("02", kernels[1], q, k, v), q, k, v, False)
    finally:
        course.use("library")
