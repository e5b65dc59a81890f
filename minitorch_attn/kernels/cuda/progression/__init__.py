"""Lesson 11's kernel progression: numbered CUDA C versions of the attention forward, from the direct port
to the tiled online-softmax kernel, each run by the same `run` and checked against the same reference.

    from minitorch_attn.kernels.cuda import progression
    get_kernel = progression.harness_kernels(seed=1)        # the CPU harness; on a GPU: cupy_kernels()
    for step in progression.STEPS:
        o, lse = step.run(get_kernel, q, k, v, causal=True)

| step | file                 | mapping                                   | what it teaches                        |
|------|----------------------|-------------------------------------------|----------------------------------------|
| 01   | 01_naive.cu          | a thread per score / output, warp per row | the port; N x N scores in global memory |
| 02   | 02_online_row.cu     | a thread per query row (x 32 columns)     | online softmax in registers            |
| 03   | 03_shared_tiles.cu   | + a block shares K/V tiles                | shared memory, __syncthreads           |
| 04   | ../flash_fwd.cu      | a warp per query row                      | warp shuffles; the library kernel      |

`get_kernel(path, name)` returns a callable with CuPy's call shape, `kernel(grid, block, args,
shared_mem=...)`: `harness_kernels()` gives the CPU harness's (kernels/cuda/harness), `cupy_kernels()`
CuPy's RawModule functions. `run` takes NumPy arrays for the harness and CuPy arrays for CuPy (every
allocation goes through the inputs' array module, as in forward.py), computes in float32 and returns
(o, lse) of shapes (B, H, Nq, dv) and (B, H, Nq) in the input dtype. Every step has lse (step 01 computes
it in its softmax kernel). Outputs start as NaN, so anything a kernel forgets to write shows up.

Conventions (kernels/common.py): q (B, H, Nq, d), k (B, H, Nk, d), v (B, H, Nk, dv); causal aligned
top-left (query i sees keys j <= i); a row that sees no key gets o = 0, lse = -inf. No key padding here
(flash_fwd.cu has it; the earlier steps leave it out to stay short). Head dims up to 128.

Lesson 11's exercises are blocks of these .cu files (see minitorch_attn/course): with
`minitorch_attn.course.use("exercises")` active, `source(step)`, `harness_kernels()` and `cupy_kernels()`
compile the learner's versions of those definitions instead of the library's.

On a GPU, each step is timed the same way: `step.run(cupy_kernels(), q, k, v)` on CuPy arrays, between two
device synchronisations (the first call compiles the file).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...common import check_inputs
from .. import SOURCE_DIR, expand_includes
from ..forward import array_module, run_flash_forward, shape_only
from ..launch import batch_chunks, debug_sync, describe, device_limits, int32_sizes, launch

HERE = Path(__file__).resolve().parent
WARP_SIZE = 32
MAX_HEAD_DIM = 128
# Must match the #defines of the .cu files (tests/test_cuda_progression.py checks that they do).
NAIVE_TILE = 16  # 01: naive_scores / naive_pv blocks are 16 x 16
SOFTMAX_ROWS_PER_BLOCK = 4  # 01: ROWS_PER_BLOCK, one warp per row
ONLINE_ROWS_PER_BLOCK = 128  # 02: ROWS_PER_BLOCK
DV_CHUNK = 32  # 02, 03: output columns per thread
BLOCK_N = 32  # 03: Bc, keys per shared-memory tile
SHARED_TILES_BR = 64  # 03: Br, query rows (threads) per block
SHARED_TILES_MAX_BR = 64  # 03: MAX_BR, its __launch_bounds__: a larger block fails to launch on a GPU


@dataclass(frozen=True)
class Step:
    """One version of the kernel: its number, file, kernels, what it teaches and how to launch it."""

    number: str  # "01"
    name: str  # "naive"
    path: Path  # the .cu file
    kernels: tuple[str, ...]  # its extern "C" __global__ kernels, in launch order
    mapping: str  # who computes what
    teaches: str  # what this step adds over the previous one
    launch: Callable  # launch(get_kernel, q32, k32, v32, o, lse, shapes, scale, causal, xp, **options)

    @property
    def file(self) -> str:
        return self.path.name

    def run(self, get_kernel, q, k, v, causal=False, scale=None, **launch_options):
        """Launch this step on (B, H, N, d) arrays; returns (o, lse) in the dtype of q."""
        return run(self, get_kernel, q, k, v, causal=causal, scale=scale, **launch_options)


def _cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b


def _launch_kw(options: dict) -> dict:
    """A step's launch options for `launch`: `described` (the call's shapes) becomes `shapes`."""
    kw = dict(options)
    kw["shapes"] = kw.pop("described", "")
    return kw


def _launch_naive(get_kernel, q, k, v, o, lse, shapes, scale, causal, xp, **options):
    BH, Nq, Nk, d, dv = shapes
    path = STEP_BY_NUMBER["01"].path
    tile = (NAIVE_TILE, NAIVE_TILE)
    Nq32, Nk32, d32, dv32, rows32 = int32_sizes("01_naive.cu", options.get("described", ""), Nq=Nq, Nk=Nk, d=d,
                                                dv=dv, rows=BH * Nq)  # softmax_rows numbers the rows of all heads
    s = xp.full((BH, Nq, Nk), xp.nan, xp.float32)  # the N x N scratch this step is about
    launch(get_kernel(path, "naive_scores"), (_cdiv(Nk, NAIVE_TILE), _cdiv(Nq, NAIVE_TILE), BH), tile,
           (q, k, s, Nq32, Nk32, d32, np.float32(scale), np.int32(causal)), 0, "naive_scores", **_launch_kw(options))
    launch(get_kernel(path, "softmax_rows"), (_cdiv(BH * Nq, SOFTMAX_ROWS_PER_BLOCK),),
           (WARP_SIZE * SOFTMAX_ROWS_PER_BLOCK,), (s, lse, rows32, Nk32), 0, "softmax_rows", **_launch_kw(options))
    launch(get_kernel(path, "naive_pv"), (_cdiv(dv, NAIVE_TILE), _cdiv(Nq, NAIVE_TILE), BH), tile,
           (s, v, o, Nq32, Nk32, dv32), 0, "naive_pv", **_launch_kw(options))


def _row_args(q, k, v, o, lse, shapes, scale, causal, name, described=""):
    BH, Nq, Nk, d, dv = shapes
    return (q, k, v, o, lse, *int32_sizes(name, described, Nq=Nq, Nk=Nk, d=d, dv=dv), np.float32(scale),
            np.int32(causal))


def _launch_online_row(get_kernel, q, k, v, o, lse, shapes, scale, causal, xp, **options):
    BH, Nq, Nk, d, dv = shapes
    grid = (_cdiv(Nq, ONLINE_ROWS_PER_BLOCK), BH, _cdiv(dv, DV_CHUNK))
    launch(get_kernel(STEP_BY_NUMBER["02"].path, "online_row"), grid, (ONLINE_ROWS_PER_BLOCK,),
           _row_args(q, k, v, o, lse, shapes, scale, causal, "online_row", options.get("described", "")), 0,
           "online_row", **_launch_kw(options))


def shared_tiles_launch_config(BH: int, Nq: int, d: int, dv: int, Br: int = SHARED_TILES_BR):
    """(grid, block, shared_mem bytes) of 03_shared_tiles.cu (Exercise 11.4): a block of Br threads per tile of
    Br query rows (one thread per row), per head, per chunk of DV_CHUNK output columns; dynamic shared memory
    for one tile of BLOCK_N keys (width d) and their values (DV_CHUNK columns), float32."""
    ### BEGIN SOLUTION
    grid = (_cdiv(Nq, Br), BH, _cdiv(dv, DV_CHUNK))
    block = (Br,)
    shared_mem = (BLOCK_N * d + BLOCK_N * DV_CHUNK) * 4
    return grid, block, shared_mem
    ### END SOLUTION


def _launch_shared_tiles(get_kernel, q, k, v, o, lse, shapes, scale, causal, xp, **options):
    BH, Nq, Nk, d, dv = shapes
    grid, block, shared_mem = shared_tiles_launch_config(BH, Nq, d, dv)
    if block[0] > SHARED_TILES_MAX_BR:
        raise ValueError(f"03_shared_tiles.cu is compiled for blocks of at most {SHARED_TILES_MAX_BR} threads "
                         f"(__launch_bounds__); the launch config asks for block = {block}")
    launch(get_kernel(STEP_BY_NUMBER["03"].path, "shared_tiles"), grid, block,
           _row_args(q, k, v, o, lse, shapes, scale, causal, "shared_tiles", options.get("described", "")), shared_mem,
           "shared_tiles", **_launch_kw(options))


STEPS: tuple[Step, ...] = (
    Step("01", "naive", HERE / "01_naive.cu", ("naive_scores", "softmax_rows", "naive_pv"),
         "a thread per score S[i, j]; a warp per row of S for the softmax; a thread per output O[i, c]",
         "the direct port of the reference: S = QK^T scale is written to global memory (B*H*Nq*Nk floats), "
         "softmaxed in place by a second kernel and multiplied by V in a third", _launch_naive),
    Step("02", "online_row", HERE / "02_online_row.cu", ("online_row",),
         "a thread per query row (and per 32 output columns)",
         "lesson 10's online softmax with m, l, acc in registers: one kernel, no N x N array; every thread "
         "still reads all of K and V from global memory", _launch_online_row),
    Step("03", "shared_tiles", HERE / "03_shared_tiles.cu", ("shared_tiles",),
         "a block of Br = 64 threads, one per query row, shares each tile of Bc = 32 keys",
         "shared memory: the block stages K/V tiles once and every thread reads them on chip; two "
         "__syncthreads per tile, reached by every thread", _launch_shared_tiles),
    Step("04", "flash_fwd", SOURCE_DIR / "flash_fwd.cu", ("flash_fwd",),
         "a warp per query row (4 rows per block), lane j scores key j of a 32-key tile",
         "warp-level parallelism: the row's scores are spread over 32 lanes and m, l are combined with "
         "__shfl_xor_sync butterflies; acc is spread too (4 columns per lane, up to d = 128); key padding",
         None),
)
STEP_BY_NUMBER = {s.number: s for s in STEPS}


def step(key) -> Step:
    """A step by number ("01", 1) or name ("naive", "flash_fwd")."""
    key = str(key)
    for s in STEPS:
        if key in (s.number, s.number.lstrip("0"), s.name, s.file):
            return s
    raise KeyError(f"no step {key!r}; the steps are " + ", ".join(f"{s.number} ({s.name})" for s in STEPS))


def run(step_, get_kernel, q, k, v, causal=False, scale=None, **launch_options):
    """Run `step_` (a Step, number or name) on q, k, v; returns (o, lse) in the dtype of q."""
    s = step_ if isinstance(step_, Step) else step(step_)
    xp = array_module(q)
    q, k, v = (xp.asarray(a) for a in (q, k, v))
    _, _, _, scale, _ = check_inputs(*map(shape_only, (q, k, v)), scale)
    if not math.isfinite(scale):
        raise ValueError(f"scale must be finite; got {scale}")
    B, H, Nq, d = q.shape
    Nk, dv = v.shape[2], v.shape[3]
    if d > MAX_HEAD_DIM or dv > MAX_HEAD_DIM:
        raise ValueError(f"step {s.number} ({s.file}) supports head dims up to {MAX_HEAD_DIM}; got "
                         f"q {tuple(q.shape)} (d = {d}), v {tuple(v.shape)} (dv = {dv})")
    if s.launch is None:  # step 04 is the library kernel: its own launcher, the same for every caller
        return run_flash_forward(get_kernel(s.path, "flash_fwd"), q, k, v, causal, scale, None, xp=xp,
                                 **launch_options)
    shapes = describe(q=q, k=k, v=v) + f", causal={bool(causal)}, step {s.number}"
    # refused before anything is allocated; step 01's softmax numbers the rows of all heads in one int
    int32_sizes(s.file, shapes, Nq=Nq, Nk=Nk, d=d, dv=dv, **({"rows": B * H * Nq} if s.number == "01" else {}))
    dtype = q.dtype
    q32, k32, v32 = (xp.ascontiguousarray(a, xp.float32).reshape(B * H, a.shape[2], a.shape[3])
                     for a in (q, k, v))
    o = xp.full((B * H, Nq, dv), xp.nan, xp.float32)  # NaN: a row a kernel forgets to write shows up
    lse = xp.full((B * H, Nq), xp.nan, xp.float32)
    first = get_kernel(s.path, s.kernels[0])
    # B*H in gridDim.y (02, 03) or gridDim.z (01), at most 65535: above it, one launch per range of heads
    for h0, h1 in batch_chunks(B * H, 1, min(device_limits(first).max_grid[1:])):
        h = slice(h0, h1)
        s.launch(get_kernel, q32[h], k32[h], v32[h], o[h], lse[h], (h1 - h0, Nq, Nk, d, dv), scale, bool(causal), xp,
                 described=shapes, sync=debug_sync(xp), **launch_options)
    return o.reshape(B, H, Nq, dv).astype(dtype, copy=False), lse.reshape(B, H, Nq).astype(dtype, copy=False)


# ---- sources and kernels -------------------------------------------------------------------------------
def source(step_) -> str:
    """The CUDA C a step runs: its file, with the learner's definitions spliced in while
    `minitorch_attn.course.use(...)` has swapped in lesson 11's exercises (else the file as it is)."""
    s = step_ if isinstance(step_, Step) else step(step_)
    from minitorch_attn.course.targets import cuda_source

    return cuda_source(s.path)


def harness_kernels(seed: int = 1):
    """`get_kernel(path, name)` for the CPU harness: each file compiled once (g++, cached on disk), launched
    with thread schedule `seed` (0: lock-step; use several nonzero seeds to catch missing barriers)."""
    from minitorch_attn.course.targets import cuda_source

    from ..harness import CpuModule

    modules: dict[tuple[Path, str], CpuModule] = {}

    def get_kernel(path, name):
        path = Path(path)
        text = cuda_source(path)
        key = (path, text)
        if key not in modules:
            original = text == path.read_text()
            modules[key] = CpuModule(path=path, seed=seed) if original else CpuModule(code=text, seed=seed)
        return modules[key].get_function(name)

    return get_kernel


def cupy_kernels():
    """`get_kernel(path, name)` for a GPU, through CuPy's RawModule with the options the NVRTC compile check
    uses. Not run on the machines that run our CI (none has a GPU); the GPU benchmark and tests use it."""
    from minitorch_attn.course.targets import cuda_source

    from ..cupy_backend import MODULE_OPTIONS, _cupy

    cupy = _cupy()  # the backend's clear error without CuPy or a device

    modules: dict[tuple[Path, str], object] = {}

    def get_kernel(path, name):
        path = Path(path)
        text = cuda_source(path)
        if (path, text) not in modules:
            modules[(path, text)] = cupy.RawModule(code=expand_includes(text, path.name), options=MODULE_OPTIONS)
        return modules[(path, text)].get_function(name)

    return get_kernel


def excerpt(step_, start: str, stop: str | None = None, hide_solutions: bool = True) -> str:
    """The lines of a step's file (or of the file at a Path, e.g. SOURCE_DIR / "common.cuh") from the first
    line containing `start` to the next one containing `stop` (inclusive; when stop is None, to the end of
    that definition, a line `}`). The solution blocks of lesson 11's exercises are shown as one comment line
    naming the exercise, unless hide_solutions=False."""
    path = step_ if isinstance(step_, Path) else (step_ if isinstance(step_, Step) else step(step_)).path
    if hide_solutions:
        from minitorch_attn.course import catalog
        from minitorch_attn.course.source import hide_cuda_solutions

        lines = hide_cuda_solutions(path, catalog.EXERCISES)
    else:
        lines = path.read_text().splitlines()
    try:
        first = next(i for i, line in enumerate(lines) if start in line)
    except StopIteration:
        raise ValueError(f"{path.name} has no line containing {start!r}") from None
    last = next((i for i in range(first + 1, len(lines))
                 if (stop in lines[i] if stop is not None else lines[i] == "}")), len(lines) - 1)
    return "\n".join(lines[first:last + 1])


__all__ = ["STEPS", "Step", "cupy_kernels", "excerpt", "harness_kernels", "run", "shared_tiles_launch_config",
           "source", "step"]
