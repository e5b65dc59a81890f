"""kernels/cuda/occupancy.py against its oracle, CUDA's own occupancy calculator (cuda_occupancy.h, a header-only
C++ file of the CUDA toolkit, compiled here with g++ and given A100 / H100 device properties), and the compile
check's occupancy table against the launchers' geometry."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess

import pytest

from minitorch_attn.kernels.cuda import compile_check
from minitorch_attn.kernels.cuda.occupancy import ARCH_LIMITS, estimate

# cudaDeviceProp fields that cuda_occupancy.h reads: A100 (8.0) and H100 (9.0)
_DEVICE = {"sm_80": (8, 0, 164 * 1024, 163 * 1024), "sm_90": (9, 0, 228 * 1024, 227 * 1024)}
_LIMIT_BITS = {"registers": 0x02, "shared memory": 0x04, "warps": 0x01, "blocks per SM": 0x08}

_ORACLE = r"""
#include <cstdio>
#include "cuda_occupancy.h"
int main() {
    int major, minor, regs, threads; size_t smem_sm, optin, smem;
    while (std::scanf("%d %d %zu %zu %d %d %zu", &major, &minor, &smem_sm, &optin, &regs, &threads, &smem) == 7) {
        cudaOccDeviceProp p;
        p.computeMajor = major; p.computeMinor = minor; p.maxThreadsPerBlock = 1024;
        p.maxThreadsPerMultiprocessor = 2048; p.regsPerBlock = 65536; p.regsPerMultiprocessor = 65536;
        p.warpSize = 32; p.sharedMemPerBlock = 48 * 1024; p.sharedMemPerMultiprocessor = smem_sm; p.numSms = 132;
        p.sharedMemPerBlockOptin = optin; p.reservedSharedMemPerBlock = 1024;
        cudaOccFuncAttributes a;  // what the runtime's cudaFuncAttributes gives, after the opt-in
        a.maxThreadsPerBlock = 1024; a.numRegs = regs; a.sharedSizeBytes = 0;
        a.partitionedGCConfig = PARTITIONED_GC_OFF; a.shmemLimitConfig = FUNC_SHMEM_LIMIT_OPTIN;
        a.maxDynamicSharedSizeBytes = smem; a.numBlockBarriers = 1; a.virtualResourceCount = 0;
        cudaOccDeviceState s;
        cudaOccResult r;
        int err = cudaOccMaxActiveBlocksPerMultiprocessor(&r, &p, &a, &s, threads, smem);
        std::printf("%d %d %u\n", err, r.activeBlocksPerMultiprocessor, r.limitingFactors);
    }
}
"""


def _occupancy_header() -> str | None:
    roots = [os.environ.get("CUDA_HOME", ""), "/usr/local/cuda", *sorted(glob.glob("/usr/local/cuda-*"))]
    for root in roots:
        path = os.path.join(root, "include", "cuda_occupancy.h")
        if root and os.path.isfile(path):
            return path
    return None


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """occupancy(arch, registers, threads, smem) -> (blocks, limiting-factor bits), from cuda_occupancy.h."""
    header = _occupancy_header()
    if header is None or shutil.which("g++") is None:
        pytest.skip("needs the CUDA toolkit's include/cuda_occupancy.h ($CUDA_HOME or /usr/local/cuda) and g++")
    folder = tmp_path_factory.mktemp("occupancy")
    (folder / "oracle.cpp").write_text(_ORACLE)
    subprocess.run(["g++", "-O1", "-I", os.path.dirname(header), "-o", str(folder / "oracle"),
                    str(folder / "oracle.cpp")], check=True, capture_output=True, timeout=120)

    def occupancy(queries):
        lines = "".join(f"{_DEVICE[a][0]} {_DEVICE[a][1]} {_DEVICE[a][2]} {_DEVICE[a][3]} {r} {t} {s}\n"
                        for a, r, t, s in queries)
        out = subprocess.run([str(folder / "oracle")], input=lines, capture_output=True, text=True, check=True,
                             timeout=60).stdout.split("\n")
        results = []
        for line in out[:len(queries)]:
            err, blocks, bits = map(int, line.split())
            assert err == 0, f"cuda_occupancy.h returned error {err}"
            results.append((blocks, bits))
        return results

    return occupancy


def test_estimate_matches_cudas_occupancy_calculator(oracle):
    queries = [(arch, regs, threads, smem) for arch in ARCH_LIMITS
               for regs in (16, 24, 29, 32, 40, 48, 56, 64, 72, 96, 122, 128, 168, 255)
               for threads in (32, 64, 96, 128, 160, 256, 384, 512, 1024)
               for smem in (0, 1000, 17408, 20480, 34816, 36352, 49152, 100_000, 160 * 1024)
               if smem <= _DEVICE[arch][3]]
    expected = oracle(queries)
    wrong = []
    for (arch, regs, threads, smem), (blocks, bits) in zip(queries, expected):
        got = estimate(regs, threads, smem, arch)
        if got["blocks"] != blocks or (blocks and not bits & _LIMIT_BITS[got["limit"]]):
            wrong.append(f"{arch} R={regs} T={threads} S={smem}: ours {got['blocks']} ({got['limit']}), "
                         f"cuda_occupancy.h {blocks} (limiting factors {bits:#x})")
    assert not wrong, f"{len(wrong)} of {len(queries)} disagree:\n" + "\n".join(wrong[:20])


def test_every_kernels_default_launch_matches_cudas_occupancy_calculator(oracle):
    rows = [{"file": "x.cu", "kernel": name, "arch": arch, "registers": regs, "static_smem": 0}
            for name in compile_check.LAUNCH_SHAPES for arch in ARCH_LIMITS for regs in (40, 64, 122)]
    table = compile_check.occupancy_rows(rows)
    expected = oracle([(r["arch"], r["registers"], r["threads"], r["smem"]) for r in table])
    assert [r["blocks_per_sm"] for r in table] == [blocks for blocks, _ in expected]


@pytest.mark.parametrize("registers, threads, smem, arch, blocks, limit", [
    (48, 128, 34816, "sm_90", 6, "shared memory"),  # flash_fwd at d = 128: 228 KiB / (34 KiB + 1 KiB)
    (48, 128, 34816, "sm_80", 4, "shared memory"),  # 164 KiB on an A100
    (48, 128, 17408, "sm_90", 10, "registers"),  # 16384 / 1536 = 10 warps per scheduler, x 4 / 4 warps
    (48, 96, 0, "sm_90", 13, "registers"),  # 40 warps / 3: not 65536 / (3 * 1536) = 14 (sub-partitions)
    (122, 128, 0, "sm_90", 4, "registers"),  # 122 registers are allocated as 128 per thread
    (16, 32, 0, "sm_90", 32, "blocks per SM"),
    (16, 1024, 0, "sm_90", 2, "warps"),
    (255, 1024, 0, "sm_90", 0, "registers"),  # 256 x 1024 registers do not fit one block: the launch fails
])
def test_worked_examples(registers, threads, smem, arch, blocks, limit):
    got = estimate(registers, threads, smem, arch)
    assert (got["blocks"], got["limit"]) == (blocks, limit), got
    assert got["occupancy"] == pytest.approx(blocks * -(-threads // 32) / 64)


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown arch 'sm_75'"):
        estimate(32, 128, 0, "sm_75")
    with pytest.raises(ValueError, match="registers = 0"):
        estimate(0, 128, 0)
    with pytest.raises(ValueError, match="at most 1024 threads; got threads = 2048"):
        estimate(32, 2048, 0)


def test_the_compile_checks_launch_shapes_are_the_launchers():
    from minitorch_attn.kernels.cuda.backward import dkdv_launch_config
    from minitorch_attn.kernels.cuda.forward import forward_launch_config

    assert compile_check.LAUNCH_SHAPES["flash_fwd"](128) == (128, forward_launch_config(1, 1, 1, 128, 128)[2])
    assert compile_check.LAUNCH_SHAPES["flash_bwd_dkdv"](64) == (128, dkdv_launch_config(1, 1, 1, 64, 64)[2])
    assert compile_check.DYNAMIC_SHARED["flash_fwd"] == 34816 and compile_check.DYNAMIC_SHARED["naive_pv"] == 0
    rows = [{"file": "flash_fwd.cu", "kernel": "flash_fwd", "arch": "sm_90", "registers": 48, "static_smem": 0},
            {"file": "y.cu", "kernel": "not_a_launched_kernel", "arch": "sm_90", "registers": 48, "static_smem": 0}]
    table = compile_check.occupancy_rows(rows)
    assert [(r["kernel"], r["d"], r["blocks_per_sm"]) for r in table] == [("flash_fwd", 64, 10), ("flash_fwd", 128, 6)]
    assert "flash_fwd  sm_90  128" in compile_check.format_occupancy(table)
