"""Launch `flash_bwd.cu` (three kernels) with any module that has CuPy's call shape: the CPU harness or CuPy.

    dq, dk, dv = flash_backward_cuda_cpu(q, k, v, o, lse, do, causal=False, scale=None, key_padding_mask=None,
                                         seed=1)

`run_flash_backward(kernels, ...)` launches, in order,
    flash_bwd_preprocess   D = rowsum(dO * O)                 one warp per query row
    flash_bwd_dkdv         dK, dV                             one block per tile of Bc = num_warps keys
    flash_bwd_dq           dQ                                 one block per tile of Br = num_warps queries
(the mapping, and why dK/dV and dQ are separate passes rather than atomics, is explained at the top of
flash_bwd.cu). The kernels compute in float32: float64 inputs are cast down and the gradients cast back.
Like `run_flash_forward`, it works unchanged on NumPy arrays and on CuPy arrays (`xp`, the array module,
defaults to the one of `q`); outputs start as NaN, so a row a kernel forgets to write shows up.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from ..common import check_backward_inputs
from . import SOURCE_DIR
from .forward import MAX_HEAD_DIM, NUM_WARPS, WARP_SIZE, array_module, check_num_warps, shape_only
from .launch import batch_chunks, debug_sync, describe, device_limits, int32_sizes, launch

TILE = 32  # Br of flash_bwd_dkdv and Bc of flash_bwd_dq: one row per lane; must match flash_bwd.cu
KERNEL_NAMES = ("flash_bwd_preprocess", "flash_bwd_dkdv", "flash_bwd_dq")


def preprocess_launch_config(B, H, Nq, dv, num_warps=NUM_WARPS):
    """(grid, block, shared_mem bytes) for flash_bwd_preprocess: one warp per query row."""
    return ((Nq + num_warps - 1) // num_warps, B * H), (WARP_SIZE * num_warps,), 0


def dkdv_launch_config(B, H, Nk, d, dv, num_warps=NUM_WARPS):
    """(grid, block, shared_mem bytes) for flash_bwd_dkdv: Bc = num_warps keys per block, query tiles of 32."""
    grid = ((Nk + num_warps - 1) // num_warps, B * H)
    shared_mem = (num_warps * d + num_warps * dv + TILE * d + TILE * dv) * 4  # k_s, v_s, q_s, dO_s
    return grid, (WARP_SIZE * num_warps,), shared_mem


def dq_launch_config(B, H, Nq, d, dv, num_warps=NUM_WARPS):
    """(grid, block, shared_mem bytes) for flash_bwd_dq: Br = num_warps queries per block, key tiles of 32."""
    grid = ((Nq + num_warps - 1) // num_warps, B * H)
    shared_mem = (num_warps * d + num_warps * dv + TILE * d + TILE * dv) * 4  # q_s, dO_s, k_s, v_s
    return grid, (WARP_SIZE * num_warps,), shared_mem


def backward_launch_configs(B, H, Nq, Nk, d, dv, num_warps=NUM_WARPS):
    """{kernel name: (grid, block, shared_mem bytes)} for the three backward kernels."""
    return {"flash_bwd_preprocess": preprocess_launch_config(B, H, Nq, dv, num_warps),
            "flash_bwd_dkdv": dkdv_launch_config(B, H, Nk, d, dv, num_warps),
            "flash_bwd_dq": dq_launch_config(B, H, Nq, d, dv, num_warps)}


def run_flash_backward(kernels, q, k, v, o, lse, do, causal=False, scale=None, key_padding_mask=None,
                       num_warps=NUM_WARPS, xp=None, **launch_options):
    """Check the arguments, launch the three kernels and return (dq, dk, dv) in the dtype of q.

    `kernels` maps each name of KERNEL_NAMES to a callable `kernel(grid, block, args, shared_mem=...)`
    (CuPy's RawModule functions, or the CPU harness's); `launch_options` go to every call (the harness's
    `seed`). `o` and `lse` are the forward's outputs.
    """
    missing = [name for name in KERNEL_NAMES if name not in kernels]
    if missing:
        raise KeyError(f"kernels has no {', '.join(missing)}; it needs {', '.join(KERNEL_NAMES)}")
    xp = array_module(q) if xp is None else xp
    q, k, v, o, lse, do = (xp.asarray(a) for a in (q, k, v, o, lse, do))
    key_padding_mask = None if key_padding_mask is None else xp.asarray(key_padding_mask)
    *_, scale, _ = check_backward_inputs(*map(shape_only, (q, k, v, o, lse, do)), scale,
                                         shape_only(key_padding_mask))
    B, H, Nq, d = q.shape
    Nk, dv = v.shape[2], v.shape[3]
    shapes = describe(q=q, k=k, v=v, do=do, key_padding_mask=key_padding_mask) + f", causal={bool(causal)}"
    if d > MAX_HEAD_DIM or dv > MAX_HEAD_DIM:
        raise ValueError(f"flash_bwd.cu supports head dims up to {MAX_HEAD_DIM}; got d = {d}, dv = {dv} ({shapes})")
    check_num_warps("flash_bwd", num_warps)
    H32, Nq32, Nk32, d32, dv32 = int32_sizes("flash_bwd", shapes, H=H, Nq=Nq, Nk=Nk, d=d, dv=dv)
    dtype = q.dtype
    q32, k32, v32, o32, do32 = (xp.ascontiguousarray(a, xp.float32).reshape(B * H, a.shape[2], a.shape[3])
                                for a in (q, k, v, o, do))
    lse32 = xp.ascontiguousarray(lse, xp.float32).reshape(B * H, Nq)
    D = xp.full((B * H, Nq), xp.nan, xp.float32)  # NaN: a row a kernel forgets to write shows up
    dQ = xp.full((B * H, Nq, d), xp.nan, xp.float32)  # the kernels' names: dv is the head dim of v
    dK = xp.full((B * H, Nk, d), xp.nan, xp.float32)
    dV = xp.full((B * H, Nk, dv), xp.nan, xp.float32)
    has_padding = key_padding_mask is not None
    padding = (xp.ascontiguousarray(key_padding_mask, xp.uint8) if has_padding else xp.zeros(1, xp.uint8))
    sizes = (H32, Nq32, Nk32, d32, dv32, np.float32(scale), np.int32(bool(causal)), np.int32(has_padding))
    sync = debug_sync(xp)
    max_heads = min(device_limits(kernels[name]).max_grid[1] for name in KERNEL_NAMES)
    for b0, b1 in batch_chunks(B, H, max_heads):  # B*H > 65535: several launches of each kernel
        h = slice(b0 * H, b1 * H)
        pad = padding[b0:b1] if has_padding else padding
        configs = backward_launch_configs(b1 - b0, H, Nq, Nk, d, dv, num_warps)
        arguments = {"flash_bwd_preprocess": (o32[h], do32[h], D[h], Nq32, dv32),
                     "flash_bwd_dkdv": (q32[h], k32[h], v32[h], do32[h], lse32[h], D[h], pad, dK[h], dV[h], *sizes),
                     "flash_bwd_dq": (q32[h], k32[h], v32[h], do32[h], lse32[h], D[h], pad, dQ[h], *sizes)}
        for name in KERNEL_NAMES:  # preprocess first: dkdv and dq read D
            grid, block, shared_mem = configs[name]
            launch(kernels[name], grid, block, arguments[name], shared_mem, name, shapes, sync, **launch_options)
    return (dQ.reshape(B, H, Nq, d).astype(dtype, copy=False), dK.reshape(B, H, Nk, d).astype(dtype, copy=False),
            dV.reshape(B, H, Nk, dv).astype(dtype, copy=False))


@cache
def _cpu_module():
    from .harness import CpuModule

    return CpuModule(path=SOURCE_DIR / "flash_bwd.cu")


def flash_backward_cuda_cpu(q, k, v, o, lse, do, causal=False, scale=None, key_padding_mask=None, seed=1,
                            num_warps=NUM_WARPS):
    """flash_bwd.cu run on the CPU harness (backend "cuda-cpu"); `seed` picks the thread schedule."""
    module = _cpu_module()
    kernels = {name: module.get_function(name) for name in KERNEL_NAMES}
    return run_flash_backward(kernels, q, k, v, o, lse, do, causal, scale, key_padding_mask, num_warps, seed=seed)
