"""Launch `flash_fwd.cu` with any module that has CuPy's call shape (the CPU harness now, CuPy later).

    o, lse = flash_forward_cuda_cpu(q, k, v, causal=False, scale=None, key_padding_mask=None, seed=1)

The kernel computes in float32: float64 inputs are cast down and the results cast back to float64.
Scalars are cast to numpy.int32 / numpy.float32 to match the kernel's `int` / `float` parameters (CuPy would
pass a Python int as 8 bytes). The mapping of threads and blocks is described at the top of flash_fwd.cu.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..common import check_inputs
from . import SOURCE_DIR

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


def run_flash_forward(kernel, q, k, v, causal=False, scale=None, key_padding_mask=None, num_warps=NUM_WARPS,
                      **launch_options):
    """Check the arguments, launch `kernel` (a flash_fwd with CuPy's call shape) and return (o, lse)."""
    q, k, v, scale, key_padding_mask = check_inputs(q, k, v, scale, key_padding_mask)
    B, H, Nq, d = q.shape
    Nk, dv = v.shape[2], v.shape[3]
    if d > MAX_HEAD_DIM or dv > MAX_HEAD_DIM:
        raise ValueError(f"flash_fwd.cu supports head dims up to {MAX_HEAD_DIM}; got d = {d}, dv = {dv}")
    dtype = q.dtype
    q32, k32, v32 = (np.ascontiguousarray(a, np.float32).reshape(B * H, a.shape[2], a.shape[3])
                     for a in (q, k, v))
    o = np.full((B * H, Nq, dv), np.nan, np.float32)  # NaN: a row the kernel forgets to write shows up
    lse = np.full((B * H, Nq), np.nan, np.float32)
    if Nq == 0:
        return o.reshape(B, H, Nq, dv).astype(dtype), lse.reshape(B, H, Nq).astype(dtype)
    has_padding = key_padding_mask is not None
    padding = (np.ascontiguousarray(key_padding_mask, np.uint8) if has_padding else np.zeros(1, np.uint8))
    grid, block, shared_mem = forward_launch_config(B, H, Nq, d, dv, num_warps)
    args = (q32, k32, v32, padding, o, lse, np.int32(H), np.int32(Nq), np.int32(Nk), np.int32(d),
            np.int32(dv), np.float32(scale), np.int32(bool(causal)), np.int32(has_padding))
    kernel(grid, block, args, shared_mem=shared_mem, **launch_options)
    return o.reshape(B, H, Nq, dv).astype(dtype, copy=False), lse.reshape(B, H, Nq).astype(dtype, copy=False)


@cache
def _cpu_module():
    from .harness import CpuModule

    return CpuModule(path=SOURCE_DIR / "flash_fwd.cu")


def flash_forward_cuda_cpu(q, k, v, causal=False, scale=None, key_padding_mask=None, seed=1,
                           num_warps=NUM_WARPS):
    """flash_fwd.cu run on the CPU harness (backend "cuda-cpu"); `seed` picks the thread schedule."""
    kernel = _cpu_module().get_function("flash_fwd")
    return run_flash_forward(kernel, q, k, v, causal, scale, key_padding_mask, num_warps, seed=seed)


def flash_backward_cuda_cpu(q, k, v, o, lse, do, causal=False, scale=None, key_padding_mask=None):
    raise NotImplementedError("backend 'cuda-cpu' has no backward yet: the CUDA backward kernel (dQ, dK, dV) "
                              "is not written yet (issue 7); use backend 'numba' or 'tiled' for gradients")
