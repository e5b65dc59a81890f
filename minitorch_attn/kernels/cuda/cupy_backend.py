"""Backend "cupy": the CUDA C kernels of this folder on a GPU, through CuPy's RawModule.

    o, lse = flash_forward_cupy(q, k, v, causal=False, scale=None, key_padding_mask=None, variant="fp32")
    dq, dk, dv = flash_backward_cupy(q, k, v, o, lse, do, causal=False, scale=None, key_padding_mask=None)
    o, lse = flash_attention_cupy(q, k, v, ..., variant="wmma")        # the tensor-core forward

Variants of the forward:
- "fp32" (default, and what `flash_attention(..., backend="cupy")` and `F.scaled_dot_product_attention(...,
  backend="cupy")` use): flash_fwd.cu, float32. The backward is flash_bwd.cu. These are the kernels that
  backend "cuda-cpu" runs on the CPU harness, on every CI run.
- "wmma": flash_fwd_wmma.cu, the stretch kernel: q, k, v rounded to half precision, products on tensor cores
  (PTX `mma.sync` m16n8k16), float32 accumulation; returns o and lse in float32 (float64 for float64 inputs);
  d and dv multiples of 16 up to 128; forward only. **Its GPU path is not verified on any machine that runs
  our CI** (none has a GPU): CI checks that it compiles under NVRTC with no spills and no stack frame, and runs
  it on the CPU harness with software stand-ins for the two PTX instructions it uses (see the top of the
  .cu file), which checks its indexing and softmax but not the hardware. tests/test_cupy_backend.py compares
  it with the float32 kernel and the float64 reference where CuPy finds a GPU.

Arrays: NumPy in, NumPy out (copied to the device and back, in the input dtype); CuPy in, CuPy out (nothing
leaves the device). Each .cu file is compiled once per process (and cached on disk by CuPy), with the options
the NVRTC compile check uses (`MODULE_OPTIONS` = nvrtc.CUPY_OPTIONS; CuPy adds `-arch=sm_XX` for the device).

Errors: without CuPy, or without a CUDA device, `CupyUnavailable` says which and how to get it, and points
to backend "cuda-cpu" (the same kernels on the CPU). Nothing here imports CuPy until a kernel is launched.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..common import check_inputs
from . import SOURCE_DIR, expand_includes
from .forward import array_module, run_flash_forward, shape_only
from .launch import batch_chunks, debug_sync, describe, device_limits, int32_sizes, launch
from .nvrtc import CUPY_OPTIONS

# passed to cupy.RawModule: what compile_check.py compiles with. CuPy appends -arch=sm_XX for the device and
# repeats -ftz=true and --device-as-default-execution-space itself, which NVRTC accepts (same program).
MODULE_OPTIONS = CUPY_OPTIONS
VARIANTS = ("fp32", "wmma")

# flash_fwd_wmma.cu's tiling: must match its #defines
WMMA_WARPS = 4  # NUM_WARPS
WMMA_BLOCK_M = 16 * WMMA_WARPS  # Br
WMMA_BLOCK_N = 32  # Bc
WMMA_PAD = 8  # PAD (halves)
WMMA_MAX_HEAD_DIM = 128
HALF_MAX = 65504.0  # the largest finite half


class CupyUnavailable(RuntimeError):
    """Backend "cupy" cannot run here: CuPy is not installed, or it finds no CUDA device."""


def _cupy():
    """The cupy module, once it is known to have a device; CupyUnavailable (saying why) otherwise."""
    try:
        import cupy
    except ImportError as error:
        raise CupyUnavailable(
            f"backend 'cupy' needs CuPy, which is not installed ({error}): pip install -e '.[cuda]' "
            "(cupy-cuda13x, for a CUDA 13 driver). Without a GPU, backend='cuda-cpu' runs the same CUDA C "
            "kernels on the CPU harness.") from error
    problem = device_problem(cupy)
    if problem:
        raise CupyUnavailable(f"backend 'cupy' found no usable CUDA device: {problem}. backend='cuda-cpu' runs "
                              "the same CUDA C kernels on the CPU harness (slowly, with extra checks).")
    return cupy


def device_problem(cupy) -> str | None:
    """Why CuPy cannot run a kernel here (CuPy's own error, named), or None when a device answers."""
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CUDARuntimeError: no driver, driver too old, no device, ...
        return f"{type(error).__name__}: {error}"
    return None if count > 0 else "CuPy sees 0 CUDA devices"


@cache
def _module(filename: str):
    """The RawModule of one kernels/cuda/*.cu file (compiled by CuPy on first use, once per process)."""
    cupy = _cupy()
    return cupy.RawModule(code=expand_includes((SOURCE_DIR / filename).read_text(), filename), options=MODULE_OPTIONS)


def kernel(filename: str, name: str):
    """One kernel of a kernels/cuda/*.cu file, with CuPy's call shape `kernel(grid, block, args, shared_mem=)`."""
    return _module(filename).get_function(name)


def _to_host(arrays, on_device):
    return arrays if on_device else tuple(a.get() for a in arrays)


def _on_device(*arrays) -> bool:
    return any(array_module(a) is not np for a in arrays if a is not None)


# ---- forward ---------------------------------------------------------------------------------------------
def flash_forward_cupy(q, k, v, causal=False, scale=None, key_padding_mask=None, variant="fp32"):
    """Attention forward on the GPU: (o, lse) as in `kernels.flash_attention`. See the module docstring."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r} of backend 'cupy'; choose one of "
                         f"{', '.join(map(repr, VARIANTS))}")
    cupy = _cupy()
    on_device = _on_device(q, k, v)
    if variant == "fp32":
        out = run_flash_forward(kernel("flash_fwd.cu", "flash_fwd"), q, k, v, causal, scale, key_padding_mask,
                                xp=cupy)
    else:
        out = run_flash_forward_wmma(kernel("flash_fwd_wmma.cu", "flash_fwd_wmma"), q, k, v, causal, scale,
                                     key_padding_mask, xp=cupy)
    return _to_host(out, on_device)


flash_attention_cupy = flash_forward_cupy


def wmma_launch_config(B, H, Nq, d, dv):
    """(grid, block, shared_mem bytes) for flash_fwd_wmma: Br = 64 rows per block of 4 warps, Bc = 32 keys."""
    grid = ((Nq + WMMA_BLOCK_M - 1) // WMMA_BLOCK_M, B * H)
    block = (32 * WMMA_WARPS,)
    halves = WMMA_BLOCK_M * (d + WMMA_PAD) + WMMA_BLOCK_N * (d + WMMA_PAD) + dv * (WMMA_BLOCK_N + WMMA_PAD)
    return grid, block, 2 * halves


def run_flash_forward_wmma(kernel, q, k, v, causal=False, scale=None, key_padding_mask=None, xp=None,
                           **launch_options):
    """Check the arguments, launch `kernel` (flash_fwd_wmma with CuPy's call shape) and return (o, lse).

    q, k, v: float16, float32 or float64, rounded to half for the kernel (values beyond +-65504 raise).
    Returns float32 o and lse, float64 for float64 inputs. `xp`: numpy (the CPU harness) or cupy.
    """
    xp = array_module(q) if xp is None else xp
    q, k, v = (xp.asarray(a) for a in (q, k, v))
    key_padding_mask = None if key_padding_mask is None else xp.asarray(key_padding_mask)
    if np.float16 in (q.dtype, k.dtype, v.dtype):  # half inputs are welcome here: check them as float32
        if not q.dtype == k.dtype == v.dtype:
            raise TypeError(f"q, k, v must share one dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
        stand_ins = [np.broadcast_to(np.float32(0), a.shape) for a in (q, k, v)]
    else:
        stand_ins = [shape_only(a) for a in (q, k, v)]
    _, _, _, scale, _ = check_inputs(*stand_ins, scale, shape_only(key_padding_mask))
    B, H, Nq, d = q.shape
    Nk, dv = v.shape[2], v.shape[3]
    shapes = describe(q=q, k=k, v=v, key_padding_mask=key_padding_mask) + f", causal={bool(causal)}"
    if d % 16 or dv % 16 or d > WMMA_MAX_HEAD_DIM or dv > WMMA_MAX_HEAD_DIM:
        raise ValueError(f"flash_fwd_wmma.cu needs head dims that are multiples of 16, at most {WMMA_MAX_HEAD_DIM} "
                         f"(tensor-core tiles are 16 wide); got d = {d}, dv = {dv} ({shapes}). "
                         "Use variant='fp32' for other sizes.")
    sizes = int32_sizes("flash_fwd_wmma", shapes, H=H, Nq=Nq, Nk=Nk, d=d, dv=dv)
    out_dtype = np.float64 if q.dtype == np.float64 else np.float32
    halves = []
    for name, a in (("q", q), ("k", k), ("v", v)):
        if a.dtype != np.float16 and a.size and float(xp.abs(a).max()) > HALF_MAX:
            raise ValueError(f"variant 'wmma' rounds {name} to half precision, whose largest value is {HALF_MAX}; "
                             f"{name} (shape {a.shape}) holds |x| = {float(xp.abs(a).max()):.6g}. Scale the inputs or "
                             "use variant='fp32'.")
        h = xp.ascontiguousarray(a, xp.float16).reshape(B * H, a.shape[2], a.shape[3])
        if getattr(getattr(h, "data", None), "ptr", 0) % 16:  # a CuPy view at an odd offset: the kernel loads
            h = h.copy()                                       # two halves at once, so copy to an aligned buffer
        halves.append(h)
    o = xp.full((B * H, Nq, dv), xp.nan, xp.float32)  # NaN: a row the kernel forgets to write shows up
    lse = xp.full((B * H, Nq), xp.nan, xp.float32)
    has_padding = key_padding_mask is not None
    padding = xp.ascontiguousarray(key_padding_mask, xp.uint8) if has_padding else xp.zeros(1, xp.uint8)
    sync = debug_sync(xp)
    # B*H > 65535: several launches. A slice starts bh0 * N * d halves in, a multiple of 16 (d % 16 == 0):
    # the slices stay aligned for the kernel's 4-byte loads.
    for b0, b1 in batch_chunks(B, H, device_limits(kernel).max_grid[1]):
        heads = slice(b0 * H, b1 * H)
        grid, block, shared_mem = wmma_launch_config(b1 - b0, H, Nq, d, dv)
        args = (*(h[heads] for h in halves), padding[b0:b1] if has_padding else padding, o[heads], lse[heads],
                *sizes, np.float32(scale), np.int32(bool(causal)), np.int32(has_padding))
        launch(kernel, grid, block, args, shared_mem, "flash_fwd_wmma", shapes, sync, **launch_options)
    return (o.reshape(B, H, Nq, dv).astype(out_dtype, copy=False),
            lse.reshape(B, H, Nq).astype(out_dtype, copy=False))


# ---- backward --------------------------------------------------------------------------------------------
def flash_backward_cupy(q, k, v, o, lse, do, causal=False, scale=None, key_padding_mask=None):
    """Gradients (dq, dk, dv) on the GPU with flash_bwd.cu (float32), as in `kernels.flash_attention_backward`."""
    from .backward import KERNEL_NAMES, run_flash_backward

    cupy = _cupy()
    on_device = _on_device(q, k, v, o, lse, do)
    kernels = {name: kernel("flash_bwd.cu", name) for name in KERNEL_NAMES}
    out = run_flash_backward(kernels, q, k, v, o, lse, do, causal, scale, key_padding_mask, xp=cupy)
    return _to_host(out, on_device)
