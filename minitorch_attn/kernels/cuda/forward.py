"""Launch `flash_fwd.cu` with any module that has CuPy's call shape (the CPU harness now, CuPy later).

    o, lse = flash_forward_cuda_cpu(q, k, v, causal=False, scale=None, key_padding_mask=None, seed=1)

The kernel computes in float32: float64 inputs are cast down and the results cast back to float64.
Scalars are cast to numpy.int32 / numpy.float32 to match the kernel's `int` / `float` parameters (CuPy would
pass a Python int as 8 bytes). The mapping of threads and blocks is described at the top of flash_fwd.cu.

`run_flash_forward` works unchanged on NumPy arrays (the CPU harness) and on CuPy arrays (a GPU): every
allocation and cast goes through the array module `xp` of the inputs (`array_module`), and the argument
checks of `kernels.common` run on zero-byte NumPy stand-ins of the same shapes and dtypes (`shape_only`),
so nothing is copied between host and device. The backward is in backward.py.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..common import check_inputs
from . import SOURCE_DIR
from .launch import batch_chunks, debug_sync, describe, device_limits, int32_sizes, launch

WARP_SIZE = 32
BLOCK_N = 32  # Bc, must match flash_fwd.cu
MAX_HEAD_DIM = 128  # must match flash_fwd.cu
NUM_WARPS = 4  # Br: query rows per block, one per warp


def forward_launch_config(B, H, Nq, d, dv, num_warps=NUM_WARPS):
    """(grid, block, shared_mem bytes) for flash_fwd."""
    grid = ((Nq + num_warps - 1) // num_warps, B * H)
    block = (WARP_SIZE * num_warps,)
    shared_mem = (num_warps * d + BLOCK_N * d + BLOCK_N * dv) * 4
    return grid, block, shared_mem


def array_module(a):
    """The array module of `a`: cupy for a CuPy array (imported only then), numpy for anything else."""
    if type(a).__module__.partition(".")[0] == "cupy":
        import cupy

        return cupy
    return np


def shape_only(a):
    """A zero-byte NumPy array with the shape and dtype of `a` (NumPy or CuPy): for the argument checks."""
    return None if a is None else np.broadcast_to(np.zeros((), a.dtype), a.shape)


def run_flash_forward(kernel, q, k, v, causal=False, scale=None, key_padding_mask=None, num_warps=NUM_WARPS,
                      xp=None, **launch_options):
    """Check the arguments, launch `kernel` (a flash_fwd with CuPy's call shape) and return (o, lse).

    `xp`: the array module of q, k, v (numpy or cupy); by default the one of `q`.
    """
    xp = array_module(q) if xp is None else xp
    q, k, v = (xp.asarray(a) for a in (q, k, v))
    key_padding_mask = None if key_padding_mask is None else xp.asarray(key_padding_mask)
    _, _, _, scale, _ = check_inputs(*map(shape_only, (q, k, v)), scale, shape_only(key_padding_mask))
    B, H, Nq, d = q.shape
    Nk, dv = v.shape[2], v.shape[3]
    shapes = describe(q=q, k=k, v=v, key_padding_mask=key_padding_mask) + f", causal={bool(causal)}"
    if d > MAX_HEAD_DIM or dv > MAX_HEAD_DIM:
        raise ValueError(f"flash_fwd.cu supports head dims up to {MAX_HEAD_DIM}; got d = {d}, dv = {dv} ({shapes})")
    check_num_warps("flash_fwd", num_warps)
    sizes = int32_sizes("flash_fwd", shapes, H=H, Nq=Nq, Nk=Nk, d=d, dv=dv)
    dtype = q.dtype
    q32, k32, v32 = (xp.ascontiguousarray(a, xp.float32).reshape(B * H, a.shape[2], a.shape[3])
                     for a in (q, k, v))
    o = xp.full((B * H, Nq, dv), xp.nan, xp.float32)  # NaN: a row the kernel forgets to write shows up
    lse = xp.full((B * H, Nq), xp.nan, xp.float32)
    has_padding = key_padding_mask is not None
    padding = (xp.ascontiguousarray(key_padding_mask, xp.uint8) if has_padding else xp.zeros(1, xp.uint8))
    sync = debug_sync(xp)
    for b0, b1 in batch_chunks(B, H, device_limits(kernel).max_grid[1]):  # B*H > 65535: several launches
        heads = slice(b0 * H, b1 * H)
        grid, block, shared_mem = forward_launch_config(b1 - b0, H, Nq, d, dv, num_warps)
        args = (q32[heads], k32[heads], v32[heads], padding[b0:b1] if has_padding else padding, o[heads],
                lse[heads], *sizes, np.float32(scale), np.int32(bool(causal)), np.int32(has_padding))
        launch(kernel, grid, block, args, shared_mem, "flash_fwd", shapes, sync, **launch_options)
    return o.reshape(B, H, Nq, dv).astype(dtype, copy=False), lse.reshape(B, H, Nq).astype(dtype, copy=False)


def check_num_warps(name: str, num_warps: int):
    """Warps per block: 1 to 32 (a block holds at most 1024 threads)."""
    if not (isinstance(num_warps, (int, np.integer)) and 1 <= num_warps <= 32):
        raise ValueError(f"{name}: num_warps must be an int from 1 to 32 (blocks of 32 * num_warps <= 1024 threads); "
                         f"got {num_warps!r}")


@cache
def _cpu_module():
    from .harness import CpuModule

    return CpuModule(path=SOURCE_DIR / "flash_fwd.cu")


def flash_forward_cuda_cpu(q, k, v, causal=False, scale=None, key_padding_mask=None, seed=1,
                           num_warps=NUM_WARPS):
    """flash_fwd.cu run on the CPU harness (backend "cuda-cpu"); `seed` picks the thread schedule."""
    kernel = _cpu_module().get_function("flash_fwd")
    return run_flash_forward(kernel, q, k, v, causal, scale, key_padding_mask, num_warps, seed=seed)
