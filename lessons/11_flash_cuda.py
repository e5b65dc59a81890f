# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 11 — Flash attention in CUDA C: from the naive port to the tiled kernel
#
# Lesson 10 wrote flash attention as loops over tiles: for each tile of $B_r$ query rows, for each tile of
# $B_c$ keys, fold the tile into each row's running max $m$, running sum $l$ and unnormalised output acc;
# at the end $o = \mathrm{acc}/l$ and $\mathrm{lse} = m + \log l$. This lesson writes the same algorithm in
# **CUDA C**, the language of NVIDIA GPUs, as a progression of four kernels (the way llm.c's `dev/cuda/`
# does it), each checked against the same reference:
#
# | step | file (`minitorch_attn/kernels/cuda/`) | who computes what | what it adds |
# |---|---|---|---|
# | 01 | `progression/01_naive.cu` | a thread per score; a warp per row of scores | the direct port: $S$ in memory |
# | 02 | `progression/02_online_row.cu` | a thread per query row | the online softmax, in registers |
# | 03 | `progression/03_shared_tiles.cu` | a block shares tiles of $K$, $V$ | shared memory and barriers |
# | 04 | `flash_fwd.cu` | a warp per query row | warp shuffles: the library's kernel |
#
# **No GPU is needed.** Every kernel here runs on the course's *CPU harness*
# (`minitorch_attn/kernels/cuda/harness`): the unchanged `.cu` file is compiled by g++ against a small header
# of CUDA built-ins, and CUDA threads run as fibers under a random scheduler, with poisoned memory around
# every array. It checks what a kernel computes — not how fast it is: speed needs a GPU (section 11).
#
# Exercises (in `exercises/lesson11_flash_cuda.py`, graded by `pytest tests/exercises/test_lesson11_flash_cuda.py`).
# The first three are CUDA C: the file holds each kernel as a string, with holes; the graded tests put your
# string back into its `.cu` file and run it on the harness.
#
# | exercise | what | points |
# |---|---|---|
# | 11.1 | `softmax_rows` (CUDA C, step 01): a warp per row, max and sum by butterfly reductions | 2 |
# | 11.2 | `online_row` (CUDA C, step 02): fold one key into $(m, l, \mathrm{acc})$ | 3 |
# | 11.3 | `shared_tiles` (CUDA C, step 03): stage $K$/$V$ tiles in shared memory, fold a masked tile | 4 |
# | 11.4 | `shared_tiles_launch_config` (Python): grid, block and shared memory of step 03 | 2 |
#
# To run this notebook on **your** kernels, uncomment the `use` line below: the progression then compiles
# your definitions in place of the library's.

# %%
import importlib.util
import math
import time

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

import minitorch_attn as mta  # noqa: F401 (the `use` line below)
from minitorch_attn import kernels
from minitorch_attn.kernels.cuda import SOURCE_DIR, progression
from minitorch_attn.kernels.cuda.backward import backward_launch_configs, flash_backward_cuda_cpu
from minitorch_attn.kernels.cuda.forward import forward_launch_config, run_flash_forward
from minitorch_attn.kernels.cuda.harness import CpuModule

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True, linewidth=120)
get_kernel = progression.harness_kernels(seed=1)  # get_kernel(path, name) -> a kernel with CuPy's call shape


def randn(*shape, seed=0, gain=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * gain).astype(np.float32)


def rel_err(x, ref):
    """max|x - ref| / max(1, max|ref|), infinities that agree count as 0."""
    x, ref = np.asarray(x, np.float64), np.asarray(ref, np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.where(x == ref, 0.0, np.abs(x - ref))
    return float(diff.max(initial=0.0) / max(1.0, np.abs(ref[np.isfinite(ref)]).max(initial=0.0)))


def check(step, q, k, v, causal=False):
    """Run a progression step on the harness; return its (o, lse) and errors against the float64 reference."""
    o, lse = step.run(get_kernel, q, k, v, causal=causal)
    o_ref, lse_ref = kernels.attention_forward(*(a.astype(np.float64) for a in (q, k, v)), causal=causal)
    return o, lse, rel_err(o, o_ref), rel_err(lse, lse_ref)


# %% [markdown]
# ## 1. The CUDA execution model in one page
#
# A CUDA **kernel** is one function, written for one thread, launched on a **grid** of **blocks** of threads:
# `kernel<<<grid, block, shared_bytes>>>(args)` in C++, `kernel(grid, block, args, shared_mem=...)` in CuPy
# and on our harness. Inside, each thread reads its coordinates `blockIdx` (which block) and `threadIdx`
# (which thread of its block) and decides from them what to compute.
#
# - **Grid → blocks.** Blocks are independent: they may run in any order, on any of the GPU's streaming
#   multiprocessors (SMs; 108 on an A100, 132 on an H100 SXM, per NVIDIA's datasheets), and cannot wait for
#   each other. Lesson 10's *outer* loop — over tiles of $B_r$ query rows, and over (batch, head) — becomes
#   the grid.
# - **Block → warps → threads.** A block (up to 1024 threads) runs on one SM. Its threads are grouped in
#   **warps** of 32 that execute one instruction at a time together. Threads of a block can share
#   **shared memory** (fast, on-chip, up to ~48 KiB per block without opting in) and wait for each other at
#   `__syncthreads()`. Lanes of a warp can also exchange registers directly: `__shfl_xor_sync`.
# - **Registers** are each thread's private variables: the fastest storage, and the scarcest (64 K 32-bit
#   registers per SM, shared by every resident thread). Per query row, lesson 10's $m$, $l$ and acc belong
#   here. An array indexed by a run-time value goes to slow *local memory* instead.
# - **Global memory** (the GPU's DRAM: 80 GB on an H100 SXM, at 3.35 TB/s per the datasheet) holds $Q$, $K$,
#   $V$, $O$. Reading it is what flash attention economises: every step of this lesson reads it less.
#
# Lesson 10's pseudocode, annotated with where each piece lives in `flash_fwd.cu` (step 04):
#
# ```
# for each tile of Br query rows, each (batch, head):   <- one BLOCK; grid = (ceil(Nq/Br), B*H)
#     m = -inf, l = 0, acc = 0                          <- REGISTERS; one WARP per query row
#     for each tile of Bc = 32 keys:                    <- a loop inside the kernel
#         K_j, V_j -> SHARED MEMORY                     <- every thread copies a part; __syncthreads()
#         S = Q_i K_j^T * scale                         <- lane j of the warp computes key j's score
#         m, l, acc = online_softmax_step(...)          <- max and sum over the 32 lanes: __shfl_xor_sync
#     O_i = acc / l;  lse_i = m + log(l)                <- each lane writes its 4 columns of O
# ```
#
# What each step launches for one concrete problem (B·H = 2 heads, N = 256, d = 64), from the launchers in
# `progression/__init__.py` and `forward.py`:

# %%
BH, N, d = 2, 256, 64
cdiv = lambda a, b: (a + b - 1) // b  # noqa: E731
launches = [
    ("01 naive_scores", (cdiv(N, 16), cdiv(N, 16), BH), (16, 16), 0),
    ("01 softmax_rows", (cdiv(BH * N, 4),), (128,), 0),
    ("01 naive_pv", (cdiv(d, 16), cdiv(N, 16), BH), (16, 16), 0),
    ("02 online_row", (cdiv(N, 128), BH, cdiv(d, progression.DV_CHUNK)), (128,), 0),
    ("03 shared_tiles", *progression.shared_tiles_launch_config(BH, N, d, d)),
    ("04 flash_fwd", *forward_launch_config(1, BH, N, d, d)),
]
print(f"{'kernel':17} {'grid':>14} {'block':>9} {'blocks':>7} {'threads':>8} {'shared memory':>14}")
for name, grid, block, smem in launches:
    blocks, threads = math.prod(grid), math.prod(grid) * math.prod(block)
    print(f"{name:17} {grid!s:>14} {block!s:>9} {blocks:7,} {threads:8,} {smem:>12,} B")

# %% [markdown]
# Step 01 launches a thread per score: $2 \cdot 256 \cdot 256 = 131{,}072$ threads for the first kernel.
# Step 04 launches 128 blocks of 128 threads — a warp per query row — and gives each block 17 KiB of shared
# memory (34 KiB at d = 128) for its 4 query rows and one tile of keys and values.
#
# ## 2. Step 01: the direct port
#
# The reference (`kernels.attention_forward`) computes $S = QK^\top \cdot \text{scale}$, then
# $P = \mathrm{softmax}(S)$ row by row, then $O = PV$. Ported to CUDA as it stands, that is three kernels
# and a scratch array $S$ of $B \cdot H \cdot N_q \cdot N_k$ floats in global memory. The first kernel gives
# each thread one score; `threadIdx.x` walks the keys so that the 16 threads of a row of the block write 16
# consecutive entries of $S$ together (a *coalesced* access: one memory transaction, not 16):

# %%
step01 = progression.step("01")
print(progression.excerpt(step01, 'extern "C" __global__ void naive_scores('))

# %% [markdown]
# The second kernel, `softmax_rows`, gives each row of $S$ to one **warp**: lane $t$ visits the columns
# $t, t+32, t+64, \ldots$ of the row, so the row's max and sum are each a reduction over 32 lanes. That is
# Exercise 11.1 (its body is hidden below: it is yours to write). The reductions are two small helpers,
# `warp_max` and `warp_sum`, explained in section 3. They live, with `neg_inf()` (−∞ from its bit pattern:
# NVRTC has no `<math.h>`), in `kernels/cuda/common.cuh`, which every `.cu` file of the lesson includes
# (`#include "../common.cuh"` at the top of each step), as llm.c's `dev/cuda` files include `common.h`: one
# definition, so a fix reaches every kernel. nvcc finds the header next to the file; NVRTC as CuPy runs it
# has no include path, so the loaders paste it in before compiling (`kernels.cuda.expand_includes`, used by
# CuPy, the compile check and the harness alike).

# %%
print(progression.excerpt(step01, "// One warp per row of S"))

# %% [markdown]
# The third kernel multiplies $P$ by $V$, a thread per output entry. Run all three on the harness and
# compare with the reference in float64 (the kernels compute in float32, so ~1e-7 is the expected error):

# %%
q, k, v = randn(1, 2, 200, 64, seed=1), randn(1, 2, 333, 64, seed=2), randn(1, 2, 333, 64, seed=3)
for causal in (False, True):
    o, lse, err_o, err_lse = check(step01, q, k, v, causal)
    print(f"step 01, Nq = 200, Nk = 333, causal={causal!s:5}: errors of o and lse below 1e-5: {err_o < 1e-5 and err_lse < 1e-5}")
    assert err_o < 1e-5 and err_lse < 1e-5
print(f"scratch S for these 2 heads: {2 * 200 * 333 * 4 / 2**10:.0f} KiB;  for B*H = 16 heads at N = 8192: "
      f"{16 * 8192**2 * 4 / 2**30:.0f} GiB")

# %% [markdown]
# Correct, and hopeless at scale: every score goes to global memory and comes back three times.
#
# ## 3. Warp reductions: the butterfly
#
# The max of 32 numbers, one per lane, without shared memory: `__shfl_xor_sync(mask, x, offset)` returns the
# value of `x` held by lane `lane ^ offset` (XOR: lanes swap in pairs). Five exchanges with offsets
# 16, 8, 4, 2, 1 pair every lane with every other through a *butterfly*, and afterwards **every** lane holds
# the result — which is what the online softmax needs, since every lane then uses $m$ and $l$:

# %%
print(progression.excerpt(SOURCE_DIR / "common.cuh", "__device__ __forceinline__ float warp_max", "return x;"))

# %% [markdown]
# To watch it, a 12-line kernel records what each lane holds after each exchange. It runs on the harness's
# real `__shfl_xor_sync` (per-warp exchange buffers and barriers, with the lanes as separate fibers); NumPy
# replays the same exchanges — `x[lane ^ offset]` — as a check. First the max $m$ of 32 scores, then the
# sum $l$ of 32 weights (small integers, so every partial sum is exact):

# %%
BUTTERFLY = r"""
#define FULL_MASK 0xffffffffu
// Lane t starts with x[t]; row r of `steps` records what every lane holds after exchange r.
extern "C" __global__ void butterfly(const float* x, float* steps, int take_max)
{
    const int lane = threadIdx.x;
    float v = x[lane];
    steps[lane] = v;
    int row = 1;
    for (int offset = 16; offset > 0; offset /= 2, ++row) {
        const float other = __shfl_xor_sync(FULL_MASK, v, offset);   // lane ^ offset's value
        v = take_max ? fmaxf(v, other) : v + other;
        steps[row * 32 + lane] = v;
    }
}
"""
butterfly = CpuModule(code=BUTTERFLY).get_function("butterfly")
lanes = np.arange(32)
for label, take_max, values in (("max (m)", 1, np.random.default_rng(4).permutation(90)[:32]),
                                ("sum (l)", 0, np.random.default_rng(5).integers(0, 10, 32))):
    x = values.astype(np.float32)
    steps = np.full((6, 32), np.nan, np.float32)
    butterfly((1,), (32,), (x, steps, np.int32(take_max)), seed=3)
    print(f"{label}: lane       " + "".join(f"{t:>4}" for t in lanes))
    replay = x.copy()
    for row, offset in enumerate((None, 16, 8, 4, 2, 1)):
        if offset is not None:
            replay = np.maximum(replay, replay[lanes ^ offset]) if take_max else replay + replay[lanes ^ offset]
        name = "start" if offset is None else f"xor {offset:2}"
        print(f"  {name:16}" + "".join(f"{int(s):>4}" for s in steps[row]))
        assert np.array_equal(steps[row], replay)
    want = x.max() if take_max else x.sum()
    assert np.all(steps[-1] == want)
    print(f"  after 5 exchanges every lane holds {int(want)} = {'max' if take_max else 'sum'} of the 32 values\n")

# %% [markdown]
# After `xor 16` lane $t$ holds the result for the pair $\{t, t \oplus 16\}$; after `xor 8`, for a group
# of 4; after 5 steps, for all 32 — $\log_2 32 = 5$ steps instead of 31 sequential ones. A *tree* reduction
# with `__shfl_down_sync` also takes 5 steps but leaves the result in lane 0 only; the online softmax would
# then have to broadcast it. With floats, the butterfly adds in a different order than a sequential loop,
# so GPU sums differ from NumPy's in the last bits: compare kernels with tolerances, never bit for bit.
#
# ## 4. Step 02: one thread per query row, the online softmax in registers
#
# Step 02 drops the score matrix. Each thread owns one query row and streams over the keys with lesson 10's
# online softmax, keeping $m$, $l$ and acc in registers; one kernel, nothing of size $N^2$ anywhere:

# %%
step02 = progression.step("02")
print(progression.excerpt(step02, "    float m = neg_inf();", "    if (blockIdx.z == 0)"))

# %% [markdown]
# The fold of one key (Exercise 11.2) is lesson 10's update with a tile of one key:
# $m' = \max(m, s)$, $l \leftarrow l\,e^{m - m'} + e^{s - m'}$,
# $\mathrm{acc} \leftarrow \mathrm{acc}\,e^{m - m'} + e^{s - m'}\,v_j$. On the first key $m = -\infty$ and
# $e^{m - m'} = 0$ clears the empty state.
#
# **Registers are the constraint.** A 128-wide acc would take 128 registers per thread; we allow 64 (the
# compile check, `python -m minitorch_attn.kernels.cuda.compile_check`, fails a kernel above that, so that
# 8 blocks of 128 threads fit on an SM). So a thread accumulates only `DV_CHUNK` = 32 output columns and the
# grid's third axis walks the column chunks: with $d_v = 64$, two threads share row $i$, and each recomputes
# all of its scores. `acc[u]` must be indexed by the constant `u` of a fully unrolled loop
# (`#pragma unroll`), or it moves to local memory. And `__launch_bounds__(128, 8)` tells the compiler the
# block size and the occupancy we want, which caps it at 64 registers (without it, NVRTC takes 111 on sm_80,
# loading all 32 values of $v_j$ at once). The NVRTC report, compiled exactly as CuPy will compile it:

# %%
# NBVAL_IGNORE_OUTPUT
# (register counts depend on the NVRTC version installed; without NVRTC the cell says so)
try:
    from minitorch_attn.kernels.cuda.compile_check import check as nvrtc_check

    rows, problems = nvrtc_check([s.path for s in progression.STEPS], archs=("sm_90",))
    for r in rows:
        print(f"{r['file']:20} {r['kernel']:14} {r['registers']:3} registers, stack frame {r['stack']} B, "
              f"spills {r['spill_stores']} B")
    print("problems:", problems or "none")
except Exception as error:  # NvrtcError: the `cudacheck` extra is not installed
    print(f"NVRTC is not available here ({error}); pip install -e '.[cudacheck]' to see the report")

# %%
step02_results = {}
for causal in (False, True):
    o, lse, err_o, err_lse = check(step02, q, k, v, causal)
    step02_results[causal] = o
    print(f"step 02, causal={causal!s:5}: errors of o and lse below 1e-5: {err_o < 1e-5 and err_lse < 1e-5}")
    assert err_o < 1e-5 and err_lse < 1e-5

# %% [markdown]
# What is still wrong with step 02: each of the $N_q$ threads of a head reads **all** of $K$ and $V$ from
# global memory by itself — $N_q$ times the data, where one copy per block would do.
#
# ## 5. Step 03: sharing tiles through shared memory
#
# Step 03 keeps one thread per row, but the $B_r = 64$ threads of a block now share the keys: for each tile
# of $B_c = 32$ keys, every thread copies a few entries of $K$ and $V$ into **shared memory**, the block waits
# at `__syncthreads()`, and then every thread reads the whole tile from there. Global traffic for $K$ and
# $V$ drops by a factor $B_r$. The staging and the fold of each key are Exercise 11.3:

# %%
step03 = progression.step("03")
print(progression.excerpt(step03, "    // Every thread of the block runs the same tiles", "    if (!row_in_range) return;"))

# %% [markdown]
# The rules the kernel obeys, and why:
#
# - **Two barriers per tile.** Before the copy: nobody may overwrite the tile another thread is still
#   reading. After the copy: nobody may read the tile before everyone has written their part.
# - **Every thread reaches every barrier.** A thread whose row lies past $N_q$ still helps to copy and waits
#   at the barriers; it skips only the arithmetic (`continue`) and returns after the last barrier. On a GPU
#   a `__syncthreads` that some threads never reach hangs the block (or worse; it is undefined).
# - **Zero-fill.** A thread walks all 32 keys of the tile and masks those past $N_k$ (and, with `causal`,
#   after its own row) with $s = -\infty$, so $p = 0$ — but $0 \cdot v$ is `NaN` if $v$ is `NaN` or $\infty$.
#   Rows of the tile past $N_k$ must therefore hold zeros, not whatever was in shared memory before.
# - **Causal tiles are skipped per block**: all threads of a block loop over the same key tiles (up to the
#   block's last row), so that they all meet the same barriers.
#
# The launch configuration — how many blocks, how many threads, how many bytes of shared memory — is
# Exercise 11.4, `shared_tiles_launch_config`. Checked against the reference:

# %%
for causal in (False, True):
    o, lse, err_o, err_lse = check(step03, q, k, v, causal)
    print(f"step 03, causal={causal!s:5}: errors of o and lse below 1e-5: {err_o < 1e-5 and err_lse < 1e-5}")
    assert err_o < 1e-5 and err_lse < 1e-5

# %% [markdown]
# ## 6. Step 04: a warp per query row — `flash_fwd.cu`
#
# The library's kernel changes the mapping once more: a **warp** owns a query row, and its 32 lanes split
# the row's work. Lane $j$ computes the score of key $j$ of the 32-key tile; the row max and sum over the
# tile are butterflies (section 3); and acc is spread over the lanes too — lane $t$ owns output columns
# $t, t+32, t+64, t+96$ — so a row needs only 4 accumulators per thread, and head dims up to 128 fit in
# registers with no column chunks. The block holds $B_r = 4$ warps, i.e. 4 query rows, and its shared memory
# holds their 4 query rows, one 32-key tile of $K$ and the matching tile of $V$:

# %%
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1.6]})
ax = axes[0]
n_tiles, heads = 6, 3
for x in range(n_tiles):
    for y in range(heads):
        ax.add_patch(Rectangle((x, y), 0.92, 0.92, color="#c6dbef" if (x, y) != (1, 0) else "#fd8d3c"))
        ax.text(x + 0.46, y + 0.46, f"({x},{y})", ha="center", va="center", fontsize=8)
ax.set(xlim=(-0.2, n_tiles + 0.1), ylim=(heads + 0.1, -0.2), title="grid: one block per (query tile, head)",
       xlabel="blockIdx.x: tile of Br = 4 query rows", ylabel="blockIdx.y: (batch, head)")
ax.set_xticks([]), ax.set_yticks([])
ax = axes[1]
for w in range(4):  # warps = query rows
    for lane in range(32):
        ax.add_patch(Rectangle((lane, w), 0.9, 0.9, color=plt.cm.tab10(w), alpha=0.35 + 0.5 * (lane == 5)))
    ax.text(-0.8, w + 0.45, f"warp {w}: row i0+{w}", ha="right", va="center", fontsize=8)
for lane in range(32):  # the K tile in shared memory
    ax.add_patch(Rectangle((lane, 5), 0.9, 0.9, color="#bdbdbd" if lane != 5 else "#636363"))
for lane in (0, 5, 31):
    ax.text(lane + 0.45, -0.25, f"lane {lane}", ha="center", va="bottom", fontsize=7)
ax.text(-0.8, 5.45, "k_s: keys j0..j0+31", ha="right", va="center", fontsize=8)
ax.annotate("lane 5 scores key j0+5\nagainst its warp's row;\nwarp_max / warp_sum combine\nthe 32 lanes",
            xy=(5.4, 3.9), xytext=(12, 4.5), fontsize=8, arrowprops=dict(arrowstyle="->"))
ax.annotate("", xy=(5.4, 5.0), xytext=(5.4, 4.0), arrowprops=dict(arrowstyle="<->", color="k"))
ax.text(33, 1.8, "acc: lane t owns\ncolumns t, t+32,\nt+64, t+96 of o", fontsize=8, va="center")
ax.set(xlim=(-9, 40), ylim=(6.2, -1.0), title="one block (the orange one): 4 warps x 32 lanes = 128 threads")
ax.set_xticks([]), ax.set_yticks([])
plt.tight_layout()
plt.show()

# %% [markdown]
# The heart of `flash_fwd.cu`, the online-softmax step of one tile, with a warp reduction where step 02 had
# a loop over keys, and `__shfl_sync` broadcasting each lane's $p$ so that every lane can update its own
# columns of acc:

# %%
step04 = progression.step("04")
print(progression.excerpt(step04, "        // Lane `lane` scores key j = j0 + lane", "        m = m_new;"))

# %% [markdown]
# All four steps on one problem, against the reference. The times are how long the **CPU harness** took
# (g++-compiled fibers on this machine): they say nothing about a GPU, where step 01 would be the slowest by
# far and step 04 the fastest.

# %%
# NBVAL_IGNORE_OUTPUT
# (harness times depend on the machine and its load; the errors are asserted)
q4, k4, v4 = randn(2, 2, 130, 64, seed=6), randn(2, 2, 170, 64, seed=7), randn(2, 2, 170, 48, seed=8)
print("B = 2, H = 2, Nq = 130, Nk = 170, d = 64, dv = 48, causal")
for step in progression.STEPS:
    start = time.perf_counter()
    o, lse, err_o, err_lse = check(step, q4, k4, v4, causal=True)
    seconds = time.perf_counter() - start
    print(f"  {step.number} {step.file:20} error of o {err_o:.1e}, of lse {err_lse:.1e}   harness {seconds:5.2f} s")
    assert err_o < 1e-5 and err_lse < 1e-5

# %% [markdown]
# ## 7. What the harness catches
#
# A kernel can be wrong in ways a GPU run does not reveal: a race that loses only under some timing, a read
# past the end of an array that happens to return harmless numbers. The harness is built to expose both.
# Here are two bugs planted in a copy of `flash_fwd.cu`, one line each (the tests in
# `tests/test_cuda_harness.py` plant more).
#
# **A missing `__syncthreads`.** Delete the barrier that opens each tile ("everyone is done with the previous
# K/V tile"): a warp that finishes its rows early overwrites the tile while other warps still read it.
# Whether that happens depends on the order in which threads run. The harness's scheduler picks the next
# thread at random at every sync point (seed = 1, 2, 3); seed 0 runs them in lock-step order, as a naive
# simulator would — and there the bug hides:

# %%
# NBVAL_IGNORE_OUTPUT
# (the size of each error depends on the harness's scheduler; which seeds catch the bug is asserted)
FWD = (SOURCE_DIR / "flash_fwd.cu").read_text()


def planted(old, new, count=1):
    """flash_fwd.cu with one small edit (every occurrence of `old`, of which there must be `count`)."""
    assert FWD.count(old) == count, f"the planted edit no longer applies to flash_fwd.cu: {old!r}"
    return CpuModule(code=FWD.replace(old, new)).get_function("flash_fwd")


barrier = "        __syncthreads();                          // everyone is done with the previous K/V tile"
no_barrier = planted(barrier, "        // (barrier removed)")
qb, kb, vb = randn(1, 2, 16, 16, seed=9), randn(1, 2, 96, 16, seed=10), randn(1, 2, 96, 16, seed=11)
o_ref, _ = kernels.attention_forward(qb.astype(np.float64), kb.astype(np.float64), vb.astype(np.float64))
caught = {}
for seed in (0, 1, 2, 3):
    o, _ = run_flash_forward(no_barrier, qb, kb, vb, seed=seed)
    caught[seed] = rel_err(o, o_ref) > 1e-5
    print(f"schedule seed {seed} ({'lock-step' if seed == 0 else 'random   '}): error of o {rel_err(o, o_ref):.1e}"
          f"  -> {'CAUGHT' if caught[seed] else 'looks correct'}")
assert not caught[0] and all(caught[s] for s in (1, 2, 3))

# %% [markdown]
# **A read past the end.** Change the load guard `j0 + r < Nk` to `<=`: the tile's row $N_k$ is read from
# global memory. On a GPU, for every head but the last, that row belongs to the next head (or to whatever
# lies after the array) and its key is masked anyway ($p = 0$), so the output is right and nothing
# complains. The harness surrounds every array with 4 KiB of bytes `0xff` — `NaN` as a float — so the
# last head multiplies $p = 0$ by `NaN`:

# %%
overread = planted("(j0 + r < Nk) ?", "(j0 + r <= Nk) ?", count=2)  # the K and the V load
qr, kr, vr = randn(1, 2, 8, 16, seed=12), randn(1, 2, 37, 16, seed=13), randn(1, 2, 37, 16, seed=14)
o, lse = run_flash_forward(overread, qr, kr, vr, seed=1)
print("NaN per head in o:", [int(np.isnan(o[0, h]).sum()) for h in range(2)], "of", o[0, 0].size)
assert not np.isnan(o[0, 0]).any() and np.isnan(o[0, 1]).all()

# %% [markdown]
# Head 0 read head 1's first key, multiplied it by zero and came out right — exactly what a GPU would show
# for every head. Only the last head exposes the bug, through the red zone. (The harness also stops a kernel
# that *writes* past an array, reports a `__syncthreads` that some threads never reach as a deadlock, and
# checks every scalar argument's size against the kernel's parameter — CuPy would pass a Python `int` as
# 8 bytes to an `int` parameter. Its limits: blocks run one after another, so races *between* blocks go
# unseen, and nothing here measures speed.)
#
# ## 8. Step through one block
#
# The harness can also record what every thread of one block did: `kernel.trace(grid, block, args,
# shared_mem=..., block_index=...)` runs the launch and returns the block's events (which thread ran, each
# barrier, each shuffle with the values sent and received) and its shared memory at every `__syncthreads`.
# One head, 4 query rows (one block of 4 warps), 40 keys (two tiles, the second one partial):

# %%
# NBVAL_IGNORE_OUTPUT
# (the event counts depend on what the harness records, which may grow; the cells below assert the contents)
qt, kt, vt = randn(1, 1, 4, 8, seed=15), randn(1, 1, 40, 8, seed=16), randn(1, 1, 40, 8, seed=17)
fwd = CpuModule(path=SOURCE_DIR / "flash_fwd.cu").get_function("flash_fwd")
traced = fwd.traced(block_index=(0, 0, 0), seed=1)
o, lse = run_flash_forward(traced, qt, kt, vt)
trace = traced.trace
print(trace.summary())

# %% [markdown]
# Shared memory when the first tile's barrier opens (the second `__syncthreads` of the block): the block's 4
# query rows, then keys 0–31, then their values, exactly as in global memory. At the second tile, keys
# 32–39 fill 8 rows and the other 24 rows are zeros — the zero-fill of section 5, not the harness's `NaN`
# poison:

# %%
Br, Bc, dq = 4, 32, 8
for barrier_no, j0 in ((1, 0), (3, 32)):
    smem = trace.shared_at_barrier(barrier_no, np.float32)
    q_s, k_s = smem[:Br * dq].reshape(Br, dq), smem[Br * dq:(Br + Bc) * dq].reshape(Bc, dq)
    rows = min(Bc, 40 - j0)
    zero_rows = f"rows {rows}..31 of k_s all zero: {bool((k_s[rows:] == 0).all())}" if rows < Bc else "a full tile"
    print(f"__syncthreads #{barrier_no}: q_s == q[0:4]: {np.array_equal(q_s, qt[0, 0])},  "
          f"k_s[:{rows}] == k[{j0}:{j0 + rows}]: {np.array_equal(k_s[:rows], kt[0, 0, j0:j0 + rows])},  {zero_rows}")
    assert np.array_equal(q_s, qt[0, 0]) and np.array_equal(k_s[:rows], kt[0, 0, j0:j0 + rows])
    assert (k_s[rows:] == 0).all()

# %% [markdown]
# And the first butterfly of warp 0, seen from lane 0: the five `__shfl_xor_sync` of `warp_max` on the
# first tile's scores of query row 0. Lane 0 starts with the score of key 0 and ends with the max over keys
# 0–31:

# %%
lane0 = [e for e in trace.of_thread(0) if e.kind == "shfl_xor"][:5]
for e in lane0:
    print(f"  xor with lane {e.src_lane:2}: holds {e.sent:8.4f}, receives {e.received:8.4f}")
scores = (qt[0, 0, 0] @ kt[0, 0, :32].T) / math.sqrt(8)
print(f"max over keys 0..31 of row 0's scores: {scores.max():.4f}; lane 0 after 5 exchanges: "
      f"{max(lane0[-1].sent, lane0[-1].received):.4f}")
assert [e.src_lane for e in lane0] == [16, 8, 4, 2, 1]
assert np.isclose(max(lane0[-1].sent, lane0[-1].received), scores.max(), rtol=1e-6)
assert np.isclose(lane0[0].sent, scores[0], rtol=1e-5)

# %% [markdown]
# ## 9. The backward in CUDA C
#
# `flash_bwd.cu` is lesson 10's backward by recomputation (`flash_backward_tiled`), with the same names.
# Per query row it needs one number besides the forward's lse,
#
# $$D_i = \mathrm{rowsum}(dO_i \circ O_i) \;=\; \textstyle\sum_j P_{ij}\, dP_{ij},$$
#
# computed first by its own small kernel (`flash_bwd_preprocess`: a warp per row, a `warp_sum`). Then, tile
# by tile, $P = e^{S - \mathrm{lse}}$, $dP = dO\,V^\top$, $dS = P \circ (dP - D)$, and
#
# $$dV_j = \textstyle\sum_i P_{ij}\,dO_i, \qquad dK_j = \text{scale}\sum_i dS_{ij}\,q_i, \qquad
# dQ_i = \text{scale}\sum_j dS_{ij}\,k_j.$$
#
# **Why dK and dV need atomics or a separate pass.** $dK_j$ and $dV_j$ collect a term from *every* query
# row, $dQ_i$ from *every* key. A parallel loop over key tiles lets each block own its rows of $dK$ and $dV$
# (summed in registers, written once) — but then many blocks add into the same rows of $dQ$ at the same
# time. Blocks cannot wait for each other, so those additions must be `atomicAdd`s (FlashAttention-2's
# choice: $dQ$ zeroed first, float atomics in an unpredictable order, so the result changes in the last bits
# from run to run). `flash_bwd.cu` pays one more recomputation of $S$ and $P$ instead: `flash_bwd_dkdv` loops
# over key tiles and writes $dK$, $dV$; `flash_bwd_dq` loops over query tiles and writes $dQ$. Every output
# has exactly one owner: no atomics, and the same bits whatever the block order. Checked against the float64
# reference backward, on the harness:

# %%
qg, kg, vg = randn(1, 2, 45, 32, seed=18), randn(1, 2, 70, 32, seed=19), randn(1, 2, 70, 32, seed=20)
dO = randn(1, 2, 45, 32, seed=21)
for name, (grid, block, smem) in backward_launch_configs(1, 2, 45, 70, 32, 32).items():
    print(f"{name:22} grid {grid!s:9} block {block!s:7} shared memory {smem:6,} B")
f64 = [a.astype(np.float64) for a in (qg, kg, vg, dO)]
for causal in (False, True):
    o, lse = kernels.flash_attention(qg, kg, vg, causal=causal, backend="cuda-cpu")
    grads = flash_backward_cuda_cpu(qg, kg, vg, o, lse, dO, causal=causal)
    o64, lse64 = kernels.attention_forward(*f64[:3], causal=causal)
    ref = kernels.attention_backward(*f64[:3], o64, lse64, f64[3], causal=causal)
    errs = [rel_err(g, r) for g, r in zip(grads, ref)]
    print(f"causal={causal!s:5}: errors of dq, dk, dv below 1e-4: {max(errs) < 1e-4}")
    assert max(errs) < 1e-4

# %% [markdown]
# ## 10. Tensor cores
#
# Every kernel above multiplies with ordinary float32 instructions, one multiply-add per thread per cycle.
# Since Volta, GPUs also have **tensor cores**: units that multiply small matrices in one instruction.
# A warp issues `mma.sync` (or the C++ wrapper `wmma`) and the 32 lanes together compute, for example,
# $D = AB + C$ with $A$ a $16 \times 16$ tile, $B$ $16 \times 8$ (or $16 \times 16$ with `wmma`), in
# **half precision inputs with float32 accumulation**. NVIDIA's datasheet for the H100 SXM gives ~990 TFLOP/s
# of dense fp16/bf16 on tensor cores against 67 TFLOP/s of float32 — the reason production flash attention
# uses them. What changes in the kernel:
#
# - **Inputs in half precision** (fp16 or bf16): $Q$, $K$, $V$ and $P$ are rounded to 11 (or 8) significant
#   bits before each product; the sums $S$, $l$ and acc stay float32.
# - **Fragments, not rows.** A warp owns a $16 \times d$ block of queries, not one row; each lane holds a few
#   entries of each 16×16 fragment in a layout fixed by the hardware, so the row max and sum become
#   shuffles between the 4 lanes that share a row of the fragment.
# - **$P$ stays in registers**: the layout of an $S$ accumulator fragment is (nearly) that of an $A$ operand,
#   so $PV$ needs no trip through shared memory.
#
# `kernels/cuda/flash_fwd_wmma.cu` is that kernel (PTX `mma.sync.aligned.m16n8k16` with fp16 inputs). **Its
# tensor-core path cannot be checked on this harness**: the harness has no half-precision type and no
# tensor-core instruction. Without a GPU, CI only checks that it compiles (NVRTC) and runs it on the harness
# with software stand-ins for its two PTX instructions, which checks its indexing and its softmax but not the
# instructions themselves; only a GPU run checks those (`tests/test_cupy_backend.py`, skipped without one).
# What rounding the inputs to half costs can still be measured in NumPy — half inputs, float32 products and
# sums:

# %%
# NBVAL_IGNORE_OUTPUT
# (float32 matrix products round differently with different BLAS builds; the assert bounds the ratio)
qh, kh, vh = randn(1, 4, 256, 64, seed=22), randn(1, 4, 256, 64, seed=23), randn(1, 4, 256, 64, seed=24)
o_ref, _ = kernels.attention_forward(qh.astype(np.float64), kh.astype(np.float64), vh.astype(np.float64))
as_half = [a.astype(np.float16).astype(np.float32) for a in (qh, kh, vh)]
o_half, _ = kernels.attention_forward(*as_half)
o_f32, _ = kernels.attention_forward(qh, kh, vh)
print(f"max |o - o_float64|: float32 inputs {np.abs(o_f32 - o_ref).max():.1e},  "
      f"half inputs {np.abs(o_half - o_ref).max():.1e}")
assert np.abs(o_half - o_ref).max() > 30 * np.abs(o_f32 - o_ref).max()

# %% [markdown]
# In our run, $3.0 \cdot 10^{-4}$ against $3.3 \cdot 10^{-7}$: about 900 times the float32 error, from rounding
# the inputs alone (half has an 11-bit significand, float32 a 24-bit one). That is fine for training — it is
# what every fp16 kernel gives — but a tolerance of $10^{-5}$ would fail it: a half-precision kernel must be
# compared with the reference at a tolerance of about $10^{-3}$ instead.
#
# ## 11. On a real GPU
#
# The same `.cu` files run on an NVIDIA GPU through CuPy:
#
# ```bash
# pip install -e '.[cuda]'            # cupy-cuda13x (needs an NVIDIA driver for CUDA 13)
# ```
#
# ```python
# o, lse = mta.kernels.flash_attention(q, k, v, causal=True, backend="cupy")   # flash_fwd.cu
# y = F.scaled_dot_product_attention(q, k, v, is_causal=True, backend="cupy")  # in the autograd
# get_kernel = progression.cupy_kernels()                                        # the progression, on the GPU
# o, lse = progression.step("03").run(get_kernel, cupy.asarray(q), cupy.asarray(k), cupy.asarray(v))
# ```
#
# `benchmarks/attention_gpu.py` times the kernels against torch's SDPA on the same GPU. The launchers are the
# ones this lesson used: only `get_kernel` changes, from the harness's to CuPy's.

# %%
# NBVAL_IGNORE_OUTPUT
# (depends on whether CuPy and a GPU are present on the machine that runs the notebook)
if importlib.util.find_spec("cupy") is None:
    print("CuPy is not installed here: everything above ran on the CPU harness.")
else:
    from minitorch_attn.kernels.cuda.cupy_backend import CupyUnavailable, flash_forward_cupy

    try:
        o_gpu, _ = flash_forward_cupy(q4, k4, v4, causal=True)
        o_ref, _ = kernels.attention_forward(*(a.astype(np.float64) for a in (q4, k4, v4)), causal=True)
        print(f"flash_fwd.cu on the GPU: error of o {rel_err(o_gpu, o_ref):.1e}")
    except CupyUnavailable as error:
        print(f"CuPy is installed but cannot run here: {error}")

# %% [markdown]
# ## Summary
#
# - A CUDA kernel is written for one thread; the launch maps lesson 10's loops onto a grid of blocks (query
#   tiles × heads), warps and threads. Where the data lives decides the speed: registers, shared memory,
#   global memory, in that order.
# - The progression: 01 ports the reference (an $N^2$ score array in global memory); 02 keeps the online
#   softmax's $m$, $l$, acc in registers, a thread per row; 03 shares tiles of $K$, $V$ through shared memory,
#   with two barriers per tile that every thread must reach; 04 gives each row a warp and combines its
#   lanes with butterfly shuffles.
# - Registers are scarce: unrolled loops keep per-thread arrays in them; `__launch_bounds__` caps them.
# - The backward needs $D = \mathrm{rowsum}(dO \circ O)$, and either atomics for $dQ$ or a second pass.
# - Tensor cores multiply half-precision fragments with float32 sums: much faster, ~1000× less exact.
# - Without a GPU, a harness that randomises thread order and poisons memory catches races, over-reads and
#   missing zero-fills that a GPU run would hide; it cannot tell you anything about speed.
#
# Now complete exercises 11.1–11.4 in `exercises/lesson11_flash_cuda.py` and run
# `pytest tests/exercises/test_lesson11_flash_cuda.py` (or `python -m minitorch_attn grade --lesson 11`).
