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
"""

from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
KERNEL_SOURCES = sorted(SOURCE_DIR.glob("*.cu"))
