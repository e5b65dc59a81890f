"""Flash attention in CUDA C: the `.cu` sources, their launchers and the checks that run without a GPU.

- `flash_fwd.cu`: the FlashAttention-2 forward kernel (float32, writes O and lse).
- `forward.py`: the launcher (grid, block, shared memory, argument casts), shared by every way to run it.
- `harness/`: runs the unchanged `.cu` on the CPU (backend "cuda-cpu").
- `compile_check.py`: compiles every `.cu` with NVRTC as CuPy does, prints registers / spills / shared memory.
"""

from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent
KERNEL_SOURCES = sorted(SOURCE_DIR.glob("*.cu"))
