"""Numba's vector width (kernels/ops/threads.prefer_wide_vectors): 512-bit vectors on AVX-512 CPUs, the user's
choice kept, a clear error for a bad setting. Each case runs in a fresh interpreter: the choice is made once
per process, before the first compile."""

import json
import os
import subprocess
import sys

import llvmlite.binding as llvm
import pytest

HOST_HAS_AVX512 = "+avx512f" in llvm.get_host_cpu_features().flatten().split(",")

PROBE = ("import json; import {first}; import numba; "
         "from minitorch_attn.kernels.ops.threads import numba_target; "
         "print(json.dumps(dict(numba_target(), features=numba.config.CPU_FEATURES)))")


def _probe(first="minitorch_attn.kernels.fastexp", **env):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CPU", "MTA_NUMBA"))}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], env=full, capture_output=True, text=True,
                         timeout=120)
    return out


# Whichever module of ours a program imports first: tuning.py reads the codegen's features at import, and once
# Numba's codegen exists the vector width can no longer change (numba_backend imported tuning first, so a
# process that ran only attention compiled 256-bit loops while the benchmark reported "512-bit").
FIRST_IMPORTS = ["minitorch_attn.kernels.fastexp", "minitorch_attn.kernels.numba_backend",
                 "minitorch_attn.kernels.tuning", "minitorch_attn.kernels.tile_matmul",
                 "minitorch_attn.kernels.ops.gelu"]


@pytest.mark.parametrize("first", FIRST_IMPORTS)
def test_default_prefers_512_bit_vectors_exactly_when_the_cpu_has_avx512(first):
    out = _probe(first)
    assert out.returncode == 0, out.stderr
    target = json.loads(out.stdout)
    assert target["prefer_256_bit_off"] == HOST_HAS_AVX512, (
        f"host AVX-512F: {HOST_HAS_AVX512}, but Numba compiles with {target['vectors']!r}: 512-bit vectors "
        "must be preferred on AVX-512 CPUs and nothing changed elsewhere")
    if not HOST_HAS_AVX512:
        assert target["features"] is None, "a CPU without AVX-512 must keep Numba's own host features"


def test_opt_out_and_the_users_own_numba_settings_win():
    llvm_only = json.loads(_probe(MTA_NUMBA_VECTORS="llvm").stdout)
    assert not llvm_only["prefer_256_bit_off"] and llvm_only["vectors"].startswith("llvm")
    generic = json.loads(_probe(NUMBA_CPU_NAME="generic").stdout)
    assert generic["llvm_cpu"] == "generic" and not generic["prefer_256_bit_off"], (
        "NUMBA_CPU_NAME set by the user (the perturbed-numerics CI pass sets 'generic') must be left alone")


def test_a_bad_setting_is_refused_with_the_allowed_values():
    out = _probe(MTA_NUMBA_VECTORS="wide")
    assert out.returncode != 0
    assert "MTA_NUMBA_VECTORS='wide'" in out.stderr and "'auto'" in out.stderr and "'llvm'" in out.stderr


@pytest.mark.skipif(not HOST_HAS_AVX512, reason="needs an AVX-512 CPU: there is no 512-bit code to look for")
@pytest.mark.parametrize("fn", ["matmul_tile", "_register_tiles"])
def test_the_tile_matmul_really_uses_512_bit_registers(tmp_path, fn):
    """Both inner kernels of tile_matmul compile to zmm FMAs: the loops (vectorised by LLVM) and the register
    tile (microkernel.py's <16 x float> values)."""
    call = {"matmul_tile": "matmul_tile(c, a, b, 0, 16, 64, 16, False)",
            "_register_tiles": "_register_tiles(c, a, b, 0, 16, 64, 16)"}[fn]
    code = ("import numpy as np; from minitorch_attn.kernels.tile_matmul import matmul_tile, _register_tiles; "
            "a = np.ones((16, 16), np.float32); c = np.zeros((16, 64), np.float32); b = np.ones((16, 64), np.float32); "
            f"{call}; import re; asm = next(iter({fn}.inspect_asm().values())); "
            "print(len(re.findall(r'vfmadd\\w+\\s+.*zmm', asm)))")
    full = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CPU", "MTA_NUMBA"))}
    full["NUMBA_CACHE_DIR"] = str(tmp_path)  # compiled afresh: Numba cannot show the assembly of cached code
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) >= 16, f"{fn} should be compiled to 512-bit (zmm) FMAs"



# Two x86 targets, whatever the host (the kernels are compiled, not run): AVX2 (16 ymm registers) and AVX-512
# (32 zmm registers, 512-bit vectors preferred, as `prefer_wide_vectors` sets on such a CPU).
_X86 = ("+64bit,+avx,+avx2,+fma,+f16c,+sse,+sse2,+sse3,+ssse3,+sse4.1,+sse4.2,+popcnt,+bmi,+bmi2,+cmov,+cx16,"
        "+lzcnt,+movbe")
TARGETS = {"avx2": dict(NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=_X86),
           "avx512": dict(NUMBA_CPU_NAME="skylake-avx512",
                          NUMBA_CPU_FEATURES=_X86 + ",+avx512f,+avx512cd,+avx512bw,+avx512dq,+avx512vl,"
                                                    "-prefer-256-bit")}
EXPECTED = {"avx2": ([4, 2, 32], "ymm"), "avx512": ([8, 2, 64], "zmm")}
SPILLS = r"""
import json, re, sys
import numba
import numpy as np
from minitorch_attn.kernels import microkernel, tile_matmul
reg = sys.argv[1]
a = np.ones((16, 16), np.float32); c = np.zeros((16, 64), np.float32)
sig = tuple(numba.typeof(x) for x in (c, a, a, 0, 16, 64, 16))
tile_matmul._register_tiles.compile(sig)  # compiled only: the host may lack these instructions
asm = tile_matmul._register_tiles.inspect_asm(sig)
loops = [blk for blk in re.split(r"\n\.LBB\S+:", asm) if len(re.findall(r"vfmadd\w+\s+[^\n]*%" + reg, blk)) >= 8]
stack = r"%{0}\d+,\s*-?\d*\(%rsp\)|\(%rsp\),\s*%{0}".format(reg)
print(json.dumps(dict(shape=[microkernel.MR, microkernel.NV, microkernel.VECTOR_BYTES], loops=len(loops),
                      spills=[len(re.findall(stack, b)) for b in loops])))
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="compiles for x86 targets and reads x86 assembly")
@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_the_register_tile_keeps_its_accumulators_in_registers(tmp_path, isa):
    """The register tile's shape follows the vector registers: 8 rows × 2 zmm vectors with AVX-512 (16 of 32
    registers), 4 rows × 2 ymm vectors with AVX2 (8 of 16). Its k-loop moves nothing to or from the stack. (The
    512-bit shape compiled for AVX2 spilled 50 ymm values in that loop and ran the flash forward 0.73x as fast
    as the loops on an AMD Zen 3.)"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CPU", "MTA_NUMBA"))}
    env.update(TARGETS[isa], NUMBA_CACHE_DIR=str(tmp_path))  # compiled afresh: Numba cannot show cached assembly
    shape, reg = EXPECTED[isa]
    out = subprocess.run([sys.executable, "-c", SPILLS, reg], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.splitlines()[-1])
    assert found["shape"] == shape, f"{isa}: expected a {shape[0]} × {shape[1]} tile of {shape[2]}-byte vectors"
    assert found["loops"] >= 1, f"no loop of {reg} FMAs: the register tile was not compiled to {isa} code"
    assert max(found["spills"]) == 0, (f"the register tile's k-loop moves {reg} values to and from the stack "
                                       f"{found['spills']}: its accumulators spilled out of the registers")
