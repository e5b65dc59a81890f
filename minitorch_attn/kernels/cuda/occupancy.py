"""How many blocks of a kernel fit on one SM of an A100 (sm_80) or an H100 (sm_90): the number the first GPU run
is read against (on a GPU, CUDA's occupancy API gives the real one; benchmarks/gpu_check.py asks it).

    estimate(registers=48, threads=128, smem=34816, arch="sm_90")
    -> {"blocks": 6, "warps": 24, "occupancy": 0.375, "limit": "shared memory", ...}

The rules are those of CUDA's occupancy calculator (cuda_occupancy.h, CUDA 13.0, `cudaOccMaxActiveBlocksPer
Multiprocessor` with the default carve-out), for a block of T threads, R registers per thread and S bytes of
shared memory per block (static + dynamic); tests/test_cuda_occupancy.py compiles that header and checks that
both agree on every kernel and on a grid of made-up launches:

    W             = ceil(T / 32)                                    warps per block
    regs per warp = ceil(32 R / 256) * 256                          registers go to a warp in units of 256
    by_registers  = floor(floor(16384 / regs per warp) * 4 / W)     4 sub-partitions of 16384 registers each;
                                                                    0 if the block needs over 65536 registers
    by_smem       = floor(SMEM_SM / ceil128(S + 1024))              the driver reserves 1 KiB per block (sm_80+),
                                                                    allocated in units of 128 B
    by_threads    = floor(64 / W)                                   at most 64 warps (2048 threads) per SM
    blocks        = min(32, by_registers, by_smem, by_threads)     at most 32 blocks per SM
    occupancy     = blocks * W / 64                                 resident warps / the most an SM holds

SMEM_SM is the shared memory of the SM's largest carve-out, what the default carve-out lets the driver pick:
164 KiB on sm_80, 228 KiB on sm_90. A GPU that reports fewer blocks than this runs the kernel with more registers
or shared memory than the compile check saw, or with a carve-out preference set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SmLimits:
    """One SM's resources, as cuda_occupancy.h has them for compute capability 8.0 and 9.0."""

    smem: int  # shared memory per SM at the largest carve-out, bytes
    registers: int = 65536  # 32-bit registers per SM (and at most this many per block)
    sub_partitions: int = 4  # registers are split evenly between the SM's 4 warp schedulers
    register_unit: int = 256  # registers are allocated to a warp in multiples of this
    max_warps: int = 64  # resident warps per SM (2048 threads)
    max_blocks: int = 32  # resident blocks per SM
    reserved_smem_per_block: int = 1024  # the driver's, per block (sm_80 and later)
    smem_unit: int = 128  # shared memory is allocated to a block in multiples of this


ARCH_LIMITS = {"sm_80": SmLimits(smem=164 * 1024), "sm_90": SmLimits(smem=228 * 1024)}
FORMULA = ("blocks/SM = min(32, floor(floor(16384 / (ceil(32 R / 256) * 256)) * 4 / W), "
           "floor(SMEM_SM / ceil128(S + 1024)), floor(64 / W)); occupancy = blocks * W / 64; W = ceil(T / 32); "
           "SMEM_SM = 164 KiB (sm_80), 228 KiB (sm_90) (cuda_occupancy.h's rules)")


def _round_up(n: int, unit: int) -> int:
    return -(-n // unit) * unit


def estimate(registers: int, threads: int, smem: int, arch: str = "sm_90") -> dict:
    """Blocks per SM, resident warps, occupancy and the limiting resource (the first of registers, shared
    memory, warps, blocks per SM that binds) for one kernel launch shape."""
    if arch not in ARCH_LIMITS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(ARCH_LIMITS)}")
    if registers < 1 or threads < 1 or smem < 0:
        raise ValueError(f"need registers >= 1, threads >= 1, smem >= 0; got registers = {registers}, "
                         f"threads = {threads}, smem = {smem}")
    if threads > 1024:
        raise ValueError(f"a block holds at most 1024 threads; got threads = {threads}")
    sm = ARCH_LIMITS[arch]
    warps = math.ceil(threads / 32)
    regs_per_warp = _round_up(32 * registers, sm.register_unit)
    # the hardware's check assumes the block's warps are spread over all sub-partitions at once
    fits = regs_per_warp * _round_up(warps, sm.sub_partitions) <= sm.registers
    warps_per_sub_partition = sm.registers // sm.sub_partitions // regs_per_warp
    limits = {
        "registers": warps_per_sub_partition * sm.sub_partitions // warps if fits else 0,
        "shared memory": sm.smem // _round_up(smem + sm.reserved_smem_per_block, sm.smem_unit),
        "warps": sm.max_warps // warps,
        "blocks per SM": sm.max_blocks,
    }
    blocks = min(limits.values())
    limit = next(name for name, n in limits.items() if n == blocks)
    return {"arch": arch, "registers": registers, "threads": threads, "smem": smem, "blocks": blocks,
            "warps": blocks * warps, "occupancy": blocks * warps / sm.max_warps, "limit": limit, "by": limits}
