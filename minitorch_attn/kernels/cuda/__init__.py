"""Flash attention in CUDA C: the `.cu` sources, their launchers and the checks that run without a GPU.

- `flash_fwd.cu`: the FlashAttention-2 forward kernel (float32, writes O and lse).
- `flash_bwd.cu`: the backward by recomputation (D = rowsum(dO * O); dK/dV and dQ in separate passes, no atomics).
- `flash_fwd_wmma.cu`: a half-precision tensor-core forward (mma.sync), GPU only: cannot be verified without one.
- `forward.py`, `backward.py`: the launchers (grid, block, shared memory, argument casts), shared by every way
  to run the kernels (NumPy arrays on the harness, CuPy arrays on a GPU).
- `cupy_backend.py`: backend "cupy" (RawModule, compiled with the compile check's options).
- `harness/`: runs the unchanged `.cu` on the CPU (backend "cuda-cpu"): fibers or OS threads, tracing.
- `sanitize.py`: `python -m minitorch_attn.kernels.cuda.sanitize`, ThreadSanitizer and AddressSanitizer over the
  harness's OS-thread mode.
- `progression/`: lesson 11's numbered kernels, from the naive port to the tiled kernel.
- `compile_check.py`: compiles every `.cu` with NVRTC as CuPy does, prints registers / spills / shared memory.
- `common.cuh`: WARP_SIZE, FULL_MASK, neg_inf(), warp_max(), warp_sum(), included by every `.cu` file.
  nvcc finds it next to the file; for NVRTC (CuPy, the compile check) and the CPU harness, which compile a
  string, `expand_includes` pastes it in first.
"""

import re
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
KERNEL_SOURCES = sorted(SOURCE_DIR.glob("*.cu"))

_INCLUDE_RE = re.compile(r'^[ \t]*#include[ \t]+"(?:\.\./)?(common\.cuh)"[^\n]*$', re.M)


def expand_includes(source: str, filename: str = "kernel.cu") -> str:
    """`source` with each `#include "common.cuh"` (or `"../common.cuh"`) replaced by that header's text.

    NVRTC as CuPy runs it has no include path and the CPU harness compiles a string, so both get the header
    pasted in; `#line` directives around it keep the line numbers of compiler errors those of `filename`
    (and of common.cuh inside it). Pasting the text also puts the header into CuPy's cache key (the source)
    and the harness's, so editing common.cuh recompiles every kernel. Other #include lines are left alone."""
    def paste(m: re.Match) -> str:
        line = source.count("\n", 0, m.start()) + 1  # the #include's own line number
        header = (SOURCE_DIR / m.group(1)).read_text()
        return f'#line 1 "{m.group(1)}"\n{header.rstrip()}\n#line {line + 1} "{filename}"'

    return _INCLUDE_RE.sub(paste, source)
