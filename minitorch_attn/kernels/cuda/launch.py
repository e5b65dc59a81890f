"""One way to launch a kernel of kernels/cuda: checked against the GPU's limits first, errors that say where.

    launch(kernel, grid, block, args, shared_mem, name="flash_fwd", shapes="q (2, 8, 512, 64), ...")
    for b0, b1 in batch_chunks(B, H, device_limits(kernel).max_grid[1]): ...   # B*H over 65535: several launches

Every launcher of kernels/cuda (forward.py, backward.py, cupy_backend.py, progression/) calls `launch`, whatever
runs the kernel: CuPy's RawKernel on a GPU, the CPU harness's CpuKernel, a test's stand-in. The rules, in order:

1. An empty grid (Nq = 0, Nk = 0, B*H = 0) launches nothing: CuPy would round each 0 up to 1 and run a block.
2. The geometry must fit the device (`device_limits(kernel)`; the harness mimics an H100): grid dims at most
   (2^31 - 1, 65535, 65535), block dims at most (1024, 1024, 64), at most 1024 threads per block, and at most the
   kernel's own `max_threads_per_block` (CuPy reads it from the driver: it counts the kernel's registers and its
   __launch_bounds__). Otherwise LaunchError, before anything reaches the GPU.
3. Dynamic shared memory: a launch gets up to 48 KiB without asking. Above that, up to the device's opt-in
   limit (227 KiB on sm_90, 163 KiB on sm_80), `launch` first raises the kernel's
   cudaFuncAttributeMaxDynamicSharedMemorySize (CuPy: `kernel.max_dynamic_shared_size_bytes = shared_mem`);
   without it the GPU refuses the launch. Above the opt-in limit: LaunchError. (At the default 4 warps and
   d = dv = 128 every kernel here asks for at most 36 KiB; more warps per block can cross 48 KiB.)
4. The launch itself: an exception from it (CuPy's CUDADriverError: too many resources, invalid value, ...)
   comes back as LaunchError naming the kernel, the grid, the block, the shared memory and the call's shapes,
   with the original chained. The CPU harness's KernelError keeps its type (lesson 11's graded tests catch it),
   with the same description added.
5. A kernel's own faults (an illegal address) are reported by a GPU later, at the next synchronising call,
   i.e. by whoever comes next. `sync`: a callable that waits for the device; `launch` calls it after the
   launch and reports its error as this launch's. The launchers pass one when MINITORCH_CUDA_SYNC=1 is set
   (`debug_sync(xp)`); benchmarks/gpu_check.py sets it for its correctness steps, never for timings.

Integer scalars: the kernels take 4-byte `int` sizes and compute every global-memory offset in 64 bits
(`(size_t)bh * Nq * d`, tests/test_cuda_launch.py checks the sources), so tensors above 2^31 elements are fine;
a single size that does not fit an int (Nq >= 2^31) is refused by `int32_sizes` before anything is allocated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cache

import numpy as np

INT32_MAX = 2**31 - 1
DEFAULT_DYNAMIC_SHARED = 48 * 1024  # what a launch may ask for without the opt-in attribute
SYNC_ENV = "MINITORCH_CUDA_SYNC"


class LaunchError(RuntimeError):
    """A launch that a GPU would refuse, or that failed: the message names the kernel, its geometry and shapes."""


@dataclass(frozen=True)
class DeviceLimits:
    """The launch limits of one GPU (CUDA's for compute capability 8.0 and 9.0, unless read from the device)."""

    name: str
    max_shared_optin: int  # cudaDevAttrMaxSharedMemoryPerBlockOptin, bytes
    max_grid: tuple[int, int, int] = (INT32_MAX, 65535, 65535)
    max_block: tuple[int, int, int] = (1024, 1024, 64)
    max_threads_per_block: int = 1024


SM80 = DeviceLimits("sm_80 (A100)", max_shared_optin=163 * 1024)
SM90 = DeviceLimits("sm_90 (H100)", max_shared_optin=227 * 1024)


def dims3(d) -> tuple[int, int, int]:
    """A grid or block as three ints: (n,) -> (n, 1, 1)."""
    d = (d,) if isinstance(d, (int, np.integer)) else tuple(d)
    if not 1 <= len(d) <= 3:
        raise ValueError(f"a grid or block has 1 to 3 dimensions; got {d}")
    return tuple(int(x) for x in d) + (1,) * (3 - len(d))


def device_limits(kernel) -> DeviceLimits:
    """The limits of the device `kernel` runs on: its own `device_limits` (the CPU harness, test stand-ins), the
    current CuPy device's attributes for a CuPy kernel, or an H100's (SM90) for anything else."""
    own = getattr(kernel, "device_limits", None)
    if isinstance(own, DeviceLimits):
        return own
    if type(kernel).__module__.partition(".")[0] == "cupy":
        import cupy

        return _cupy_limits(cupy.cuda.Device().id)
    return SM90


@cache
def _cupy_limits(device_id: int) -> DeviceLimits:
    import cupy

    a = cupy.cuda.Device(device_id).attributes
    major, minor = a.get("ComputeCapabilityMajor", 9), a.get("ComputeCapabilityMinor", 0)
    base = SM80 if major < 9 else SM90
    return replace(base, name=f"device {device_id} (sm_{major}{minor})",
                   max_shared_optin=a.get("MaxSharedMemoryPerBlockOptin", base.max_shared_optin),
                   max_grid=tuple(a.get(f"MaxGridDim{x}", g) for x, g in zip("XYZ", base.max_grid)),
                   max_block=tuple(a.get(f"MaxBlockDim{x}", b) for x, b in zip("XYZ", base.max_block)),
                   max_threads_per_block=a.get("MaxThreadsPerBlock", base.max_threads_per_block))


def geometry(name: str, grid, block, shared_mem: int, shapes: str = "") -> str:
    """'flash_fwd: grid (4, 2, 1), block (128, 1, 1) = 128 threads, 34816 B dynamic shared memory; q (...)'."""
    grid, block = dims3(grid), dims3(block)
    text = (f"{name}: grid {grid}, block {block} = {int(np.prod(block))} threads, {int(shared_mem)} B dynamic "
            f"shared memory")
    return text + (f"; {shapes}" if shapes else "")


def check_geometry(kernel, grid, block, shared_mem: int, name: str, shapes: str = "") -> DeviceLimits:
    """Rule 2 and the refusing half of rule 3: LaunchError if a GPU would refuse this launch."""
    limits = device_limits(kernel)
    grid, block = dims3(grid), dims3(block)
    where = geometry(name, grid, block, shared_mem, shapes)
    for what, dims, most in (("grid", grid, limits.max_grid), ("block", block, limits.max_block)):
        for axis, n, m in zip("xyz", dims, most):
            if n > m:
                hint = (" (B*H goes in gridDim.y: the launchers split it into launches of at most 65535 heads)"
                        if what == "grid" and axis != "x" else "")
                raise LaunchError(f"{where}: {what}Dim.{axis} = {n} is over the {limits.name} limit of {m}{hint}")
    threads = int(np.prod(block))
    own = getattr(kernel, "max_threads_per_block", None)
    most = min(limits.max_threads_per_block, int(own) if isinstance(own, (int, np.integer)) and own > 0 else 1024)
    if threads > most:
        why = ("its registers or __launch_bounds__ allow no more" if most < limits.max_threads_per_block
               else "a block holds at most that many")
        raise LaunchError(f"{where}: {threads} threads per block, but this kernel can launch at most {most} on "
                          f"{limits.name} ({why}); use fewer warps per block")
    if shared_mem > limits.max_shared_optin:
        raise LaunchError(f"{where}: {int(shared_mem)} B of dynamic shared memory is over the {limits.name} limit "
                          f"of {limits.max_shared_optin} B per block (with the opt-in attribute); use fewer warps "
                          "per block or a smaller head dim")
    return limits


def opt_in_shared_memory(kernel, shared_mem: int, name: str, where: str):
    """Rule 3: above 48 KiB, raise the kernel's cudaFuncAttributeMaxDynamicSharedMemorySize to `shared_mem`."""
    if shared_mem <= DEFAULT_DYNAMIC_SHARED:
        return
    try:
        current = kernel.max_dynamic_shared_size_bytes
        if current < shared_mem:
            kernel.max_dynamic_shared_size_bytes = int(shared_mem)
    except AttributeError as error:
        raise LaunchError(f"{where}: more than {DEFAULT_DYNAMIC_SHARED} B of dynamic shared memory needs the "
                          f"kernel's max_dynamic_shared_size_bytes attribute (cudaFuncAttributeMaxDynamicSharedMemory"
                          f"Size), which {type(kernel).__name__} does not have") from error
    except Exception as error:  # the driver refused the attribute
        raise LaunchError(f"{where}: setting max_dynamic_shared_size_bytes = {int(shared_mem)} failed: "
                          f"{type(error).__name__}: {error}") from error


def launch(kernel, grid, block, args, shared_mem: int = 0, name: str | None = None, shapes: str = "",
           sync=None, **launch_options):
    """Launch `kernel(grid, block, args, shared_mem=shared_mem, **launch_options)` by the rules of the module
    docstring. `name`: the kernel's name for messages (default: kernel.name); `shapes`: the call's arrays, for
    messages; `sync`: None, or a callable run after the launch (see rule 5)."""
    grid, block = dims3(grid), dims3(block)
    if not all(grid):
        return
    name = name or getattr(kernel, "name", None) or type(kernel).__name__
    shared_mem = int(shared_mem)
    check_geometry(kernel, grid, block, shared_mem, name, shapes)
    where = geometry(name, grid, block, shared_mem, shapes)
    opt_in_shared_memory(kernel, shared_mem, name, where)
    try:
        kernel(grid, block, args, shared_mem=shared_mem, **launch_options)
        if sync is not None:
            sync()
    except LaunchError:
        raise
    except Exception as error:
        from .harness.launcher import KernelError  # the harness: keep its type, add the geometry

        if isinstance(error, KernelError):
            raise KernelError(f"{error} [{where}]") from error
        stage = "the launch" if sync is None else "the launch, or the kernel while it ran (synchronised after it)"
        raise LaunchError(f"{where}: {stage} failed: {type(error).__name__}: {error}") from error


def debug_sync(xp):
    """A `sync` for `launch`: the device's synchronisation when MINITORCH_CUDA_SYNC=1 and `xp` is CuPy, else None."""
    if os.environ.get(SYNC_ENV, "") in ("", "0") or xp is np:
        return None
    return xp.cuda.runtime.deviceSynchronize


def batch_chunks(B: int, H: int, max_heads: int) -> list[tuple[int, int]]:
    """Ranges [b0, b1) of whole batches, each of at most `max_heads` (batch, head) pairs, covering range(B).

    The kernels put (batch, head) in gridDim.y, at most 65535: for B*H above it the launchers launch once per
    range, on the arrays' slices [b0*H : b1*H] (and the key-padding rows [b0 : b1]). Whole batches, so that a
    kernel's b = bh / H stays right for the padding mask."""
    if H > max_heads:
        raise LaunchError(f"H = {H} heads do not fit one launch: gridDim.y holds at most {max_heads} (batch, head) "
                          "pairs and a batch's heads are not split across launches")
    per = max(1, max_heads // max(H, 1))
    return [(b0, min(B, b0 + per)) for b0 in range(0, B, per)]


def int32_sizes(name: str, shapes: str = "", **sizes: int) -> tuple[np.int32, ...]:
    """The sizes as numpy.int32 (the kernels' `int` parameters), or LaunchError naming any that does not fit."""
    big = {k: int(v) for k, v in sizes.items() if not -INT32_MAX - 1 <= int(v) <= INT32_MAX}
    if big:
        listed = ", ".join(f"{k} = {v}" for k, v in big.items())
        verb = ("does not fit the kernel's 4-byte int parameter" if len(big) == 1
                else "do not fit the kernel's 4-byte int parameters")
        raise LaunchError(f"{name}: {listed} {verb} (at most {INT32_MAX})"
                          + (f"; {shapes}" if shapes else ""))
    return tuple(np.int32(v) for v in sizes.values())


def describe(**arrays) -> str:
    """'q (2, 8, 512, 64) float32, k ...' for error messages (None entries are left out)."""
    return ", ".join(f"{k} {tuple(a.shape)} {a.dtype}" for k, a in arrays.items() if a is not None)
