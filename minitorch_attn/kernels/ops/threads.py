"""Two process-wide Numba settings, applied before any of our kernels is compiled: the threading layer and
the vector width.

Threading layer. One rule, applied by every module of ours that launches `prange` code.

Numba picks its process-wide thread pool (the "threading layer") at the FIRST parallel launch and keeps it.
`kernels/numba_backend.py` (flash attention) calls it too: the workqueue layer unless the user chose one
(NUMBA_THREADING_LAYER); the training step's kernels (`layernorm.py`, `gelu.py`, `adam.py` here)
apply the same rule, so the layer does not depend on which kernel happens to run first. It matters: a GPT
training step whose first parallel launch was a LayerNorm ran on OpenMP, whose spinning threads fought
OpenBLAS's spinning threads for the 2 cores (976 ms per step instead of 44, benchmarks/NOTES_train_step_baby.md).

Vector width. LLVM compiles Numba code for the host CPU, but for most Intel CPUs with AVX-512 its tuning
("prefer-256-bit") keeps loops at 256-bit vectors, because 512-bit code once lowered the clock of whole chips.
Our kernels are FMA loops that gain from 512-bit vectors: on an Intel Xeon (Emerald Rapids, LLVM
`emeraldrapids`) one core ran the flash forward at N = 4096 in 540 ms instead of 648 ms and the tile matmul at
99 instead of 49 GFLOP/s (benchmarks/NOTES_attention_cpu.md, "Intel"). `prefer_wide_vectors()` therefore
adds `-prefer-256-bit` to the host's features when the CPU has AVX-512F. CPUs whose LLVM tuning already
prefers 512-bit vectors (AMD Zen 4/5) compile the same code as before; CPUs without AVX-512 are untouched.
It applies to all Numba code compiled in the process afterwards, and only if the CPU target was not
initialised yet (a Numba function compiled before `import minitorch_attn` fixes the features).
Opt out with MTA_NUMBA_VECTORS=llvm; NUMBA_CPU_NAME / NUMBA_CPU_FEATURES set by the user always win.
"""

from __future__ import annotations

import os

import numba


def prefer_workqueue() -> None:
    """Choose Numba's workqueue threading layer unless the user (or an earlier launch) chose one."""
    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"


def prefer_wide_vectors() -> str:
    """Let LLVM emit 512-bit vectors on AVX-512 CPUs (see the module docstring); return what was decided."""
    choice = os.environ.get("MTA_NUMBA_VECTORS", "auto").strip().lower()
    if choice not in ("auto", "llvm"):
        raise ValueError(f"MTA_NUMBA_VECTORS={choice!r}: expected 'auto' (512-bit vectors where the CPU has "
                         "AVX-512) or 'llvm' (LLVM's own tuning for the host CPU)")
    if choice == "llvm":
        return "llvm (MTA_NUMBA_VECTORS=llvm)"
    if "NUMBA_CPU_NAME" in os.environ or "NUMBA_CPU_FEATURES" in os.environ or numba.config.CPU_FEATURES:
        return "user (NUMBA_CPU_NAME / NUMBA_CPU_FEATURES)"
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" not in features.split(","):
        return "llvm (no AVX-512 on this CPU)"
    numba.config.CPU_FEATURES = features + ",-prefer-256-bit"
    return "512-bit (host features, -prefer-256-bit)"


def codegen_target() -> tuple[str, str, str]:
    """(triple, LLVM CPU name, features) that Numba compiles for in this process. The first call starts Numba's
    codegen, which fixes the features: this module's import (above) has already set them, so every caller that
    reads the target through here sees the vector width decided by `prefer_wide_vectors`."""
    from numba.core.registry import cpu_target

    return cpu_target.target_context.codegen().magic_tuple()


def wide_vectors() -> bool:
    """Whether Numba compiles for 512-bit vectors here (AVX-512F, and LLVM not told to prefer 256 bits). The
    register tile (`kernels/microkernel.py`) takes its shape from this, and the flash kernels' default inner
    matmul (`kernels/tuning.py`)."""
    flags = codegen_target()[2].split(",")
    return "+avx512f" in flags and ("-prefer-256-bit" in flags or "+prefer-256-bit" not in flags)


def numba_target() -> dict:
    """What Numba compiles for in this process: CPU name, whether 512-bit vectors are preferred, threading."""
    triple, cpu, features = codegen_target()
    flags = features.split(",")
    return {"llvm_cpu": cpu, "triple": triple, "avx512f": "+avx512f" in flags,
            "prefer_256_bit_off": "-prefer-256-bit" in flags, "vectors": VECTOR_CHOICE,
            "threading_layer": numba.config.THREADING_LAYER, "threads": numba.get_num_threads()}


VECTOR_CHOICE = prefer_wide_vectors()
