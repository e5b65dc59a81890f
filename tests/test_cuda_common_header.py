"""kernels/cuda/common.cuh: the helpers every .cu file shares, defined once, and the same header reaching
all three compilers: nvcc (next to the file), NVRTC and the CPU harness (both through expand_includes)."""

import os
import re
import shutil

import numpy as np
import pytest

from minitorch_attn.kernels import attention_forward
from minitorch_attn.kernels.cuda import SOURCE_DIR, expand_includes, progression

SOURCES = [*sorted(SOURCE_DIR.glob("*.cu")), *sorted(progression.HERE.glob("*.cu"))]
HELPERS = ("float neg_inf()", "float warp_max(float x)", "float warp_sum(float x)", "#define WARP_SIZE",
           "#define FULL_MASK")
needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="the CPU harness needs g++")


def test_every_kernel_file_includes_the_header_and_redefines_none_of_it():
    header = (SOURCE_DIR / "common.cuh").read_text()
    assert len(SOURCES) == 6
    for name in HELPERS:
        assert header.count(name) == 1, f"common.cuh should define {name} once"
    for path in SOURCES:
        text = path.read_text()
        include = '#include "common.cuh"' if path.parent == SOURCE_DIR else '#include "../common.cuh"'
        assert include in text, f"{path.name} does not include the shared header"
        for name in HELPERS:
            assert name not in text, f"{path.name} defines {name} again: it belongs in common.cuh"
        assert not re.search(r"^\s*#include", expand_includes(text, path.name), re.M), path.name


def test_expansion_keeps_the_line_numbers_of_the_file():
    text = (SOURCE_DIR / "flash_fwd.cu").read_text()
    expanded = expand_includes(text, "flash_fwd.cu").splitlines()
    # what a compiler would call each line: follow the #line directives
    named, current, line = [], None, 0
    for row in expanded:
        m = re.match(r'#line (\d+) "([^"]+)"', row)
        if m:
            line, current = int(m.group(1)), m.group(2)
            continue
        named.append((current, line, row))
        line += 1
    original = text.splitlines()
    for file, n, row in named:
        if file == "flash_fwd.cu":
            assert original[n - 1] == row, f"line {n} of flash_fwd.cu became {row!r}"
    assert ("common.cuh", 1) == next((f, n) for f, n, _ in named if f == "common.cuh")


def _require_nvrtc():
    from minitorch_attn.kernels.cuda.nvrtc import NvrtcError, find_nvrtc

    try:
        find_nvrtc()
    except NvrtcError as error:
        if os.environ.get("MINITORCH_REQUIRE_NVRTC"):  # set by .ci/run: CI must run the check
            raise
        pytest.skip(f"{error}")


def test_nvrtc_errors_name_the_line_of_the_kernel_file():
    _require_nvrtc()
    from minitorch_attn.kernels.cuda.nvrtc import NvrtcError, compile_cubin

    text = (SOURCE_DIR / "flash_fwd.cu").read_text().splitlines()
    n = next(i for i, row in enumerate(text) if row.startswith('extern "C" __global__ void flash_fwd('))
    text.insert(n, "int broken = ;")  # becomes line n + 1
    with pytest.raises(NvrtcError, match=rf"flash_fwd\.cu\({n + 1}\)"):
        compile_cubin("\n".join(text) + "\n", "flash_fwd.cu", "sm_80")


@needs_gxx
def test_the_harness_compiles_the_header_it_finds_at_run_time(monkeypatch, tmp_path):
    """A changed common.cuh changes the kernels (and the harness's cache key): break warp_sum, see it."""
    from minitorch_attn.kernels.cuda import forward
    from minitorch_attn.kernels.cuda.harness import CpuModule

    header = (SOURCE_DIR / "common.cuh").read_text()
    broken = header.replace("x += __shfl_xor_sync(FULL_MASK, x, offset);", "x = __shfl_xor_sync(FULL_MASK, x, offset);")
    assert broken != header
    (tmp_path / "common.cuh").write_text(broken)
    monkeypatch.setattr("minitorch_attn.kernels.cuda.SOURCE_DIR", tmp_path)
    kernel = CpuModule(code=(SOURCE_DIR / "flash_fwd.cu").read_text()).get_function("flash_fwd")
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, 4, 16)).astype(np.float32) for _ in range(3))
    o, _ = forward.run_flash_forward(kernel, q, k, v)
    ref, _ = attention_forward(*(a.astype(np.float64) for a in (q, k, v)))
    assert np.abs(o - ref).max() > 1e-2, "a broken warp_sum in common.cuh should break flash_fwd on the harness"
