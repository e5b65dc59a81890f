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
# # Lesson 10 — Flash attention on the CPU: the tiled online softmax in NumPy and Numba
#
# Attention as lesson 05 wrote it builds the score matrix $S = QK^\top / \sqrt{d}$: $N_q \times N_k$
# numbers per head. At $N = 65{,}536$ that is 16 GiB per head in float32, for a matrix that is used once
# and thrown away. **Flash attention** (Dao et al. 2022; FlashAttention-2, Dao 2023; the memory argument
# first in Rabe & Staats 2021) never builds it. It walks over the keys a tile at a time and keeps, per
# query row, only the two numbers of lesson 02's online normaliser — the running max $m$ and the running
# sum $l$ — plus the running weighted sum of values `acc`. The result is *exactly* softmax attention (not an
# approximation), with $O(N)$ extra memory instead of $O(N^2)$.
#
# This lesson derives it, writes it in NumPy (forward and backward), checks it against the naive
# attention to float64 round-off, measures its memory, and then compiles the same algorithm with Numba.
#
# Exercises (in `exercises/lesson10_flash_cpu.py`, graded by `pytest tests/exercises/test_lesson10_flash_cpu.py`):
#
# | exercise | what | points |
# |---|---|---|
# | 10.1 | `online_softmax_tile_step`: fold one key/value tile into a query tile's $(m, l, \mathrm{acc})$ | 3 |
# | 10.2 | `flash_forward_tiled`: the FlashAttention-2 forward over $B_r \times B_c$ tiles | 3 |
# | 10.3 | `flash_backward_tiled`: the backward by recomputation | 4 |
# | 10.4 | `forward_tile_numba`: a Numba kernel for the forward of one query tile | 3 |
#
# To run this notebook on **your** implementations, uncomment the `use` line below (the lesson calls
# the kernels as `kernels.…` and `numba_teaching.…`, so it picks up your versions).

# %%
import importlib.util
import math
import subprocess
import sys
import time
import tracemalloc

import matplotlib.pyplot as plt
import numpy as np

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn import kernels, viz
from minitorch_attn.kernels import numba_teaching

# mta.course.use("exercises")   # run the lesson on your own code
np.set_printoptions(precision=4, suppress=True)
rng = np.random.default_rng(0)


def randn(*shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def max_err(a, b):
    """Largest absolute difference, infinities that agree count as 0."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    with np.errstate(invalid="ignore"):
        return float(np.max(np.where(a == b, 0.0, np.abs(a - b)), initial=0.0))


# %% [markdown]
# ## 1. The naive attention and its memory
#
# `kernels.attention_forward` is the oracle of this lesson: it computes, per head,
# $S = QK^\top \cdot \text{scale}$, $P = \mathrm{softmax}(S)$ and $O = PV$, and also returns
# $\mathrm{lse} = \log\sum_j e^{S_{ij}}$, one number per query row. Every kernel of the course (`tiled`,
# `numba`, the CUDA one of lesson 11) has the same contract: arrays of shape $(B, H, N, d)$, `causal`
# as torch's `is_causal`, an optional `key_padding_mask`, and it returns `(o, lse)`.
#
# The trouble is $S$ (and $P$, the same size). Its size, for one head, in float32:

# %%
for n in (1024, 4096, 16384, 65536, 262144):
    print(f"N = {n:7,}:  S is {n * n * 4 / 2**20:12,.0f} MiB per head  (q, k, v, o with d = 64: "
          f"{4 * n * 64 * 4 / 2**20:6,.1f} MiB)")

# %% [markdown]
# At long context the scores outweigh the inputs by a factor $N / (4d)$; at $N = 262{,}144$ one head's
# score matrix is 256 GiB. Yet the output is only $N \times d_v$. Section 5 measures both.

# %% [markdown]
# ## 2. The online softmax, now carrying the values
#
# Lesson 02 streamed one row of scores a block at a time, keeping $(m, l)$: after a block with its own
# $(m_b, l_b)$,
#
# $$m' = \max(m, m_b), \qquad l' = l\,e^{m - m'} + l_b\,e^{m_b - m'}.$$
#
# Attention needs more than the normaliser: it needs $o = \sum_j p_j v_j$. Keep the **unnormalised**
# sum $\mathrm{acc} = \sum_j e^{s_j - m} v_j$ beside $l = \sum_j e^{s_j - m}$. When the max moves from $m$ to
# $m'$, every term of both sums must be multiplied by the same $e^{m - m'}$, so for one tile of keys
# $K_j$, values $V_j$ and scores $S = q K_j^\top \cdot \text{scale}$:
#
# $$m' = \max(m, \max_j S_j),\quad P = e^{S - m'},\quad l' = l\,e^{m - m'} + \textstyle\sum_j P_j,\quad
# \mathrm{acc}' = \mathrm{acc}\,e^{m - m'} + P V_j.$$
#
# After the last tile, $o = \mathrm{acc} / l$ — **one** division per row, at the end (FlashAttention-2's
# choice; the first version renormalised $o$ after every tile) — and $\mathrm{lse} = m + \log l$, which the
# backward will need. That is Exercise 10.1, `online_softmax_tile_step`, written for a whole tile of $B_r$
# query rows at once (every row has its own $m$, $l$, acc). The start is $m = -\infty$, $l = 0$,
# $\mathrm{acc} = 0$; as in lesson 02, a row that has seen no key yet must not compute $-\infty - (-\infty)$.
#
# Here is one query row streaming over 40 keys in tiles of 8, printing its state after each tile, and
# the normalised output so far against the exact answer:

# %%
d = 16
q1, k1, v1 = randn(1, 1, 1, d, seed=1) * 2, randn(1, 1, 40, d, seed=2), randn(1, 1, 40, 4, seed=3)
scale = 1 / math.sqrt(d)
o_exact, lse_exact = kernels.attention_forward(q1, k1, v1)

m = np.full((1, 1, 1), -np.inf)
l = np.zeros((1, 1, 1))
acc = np.zeros((1, 1, 1, 4))
for j0 in range(0, 40, 8):
    m, l, acc = kernels.online_softmax_tile_step(q1, k1[:, :, j0:j0 + 8], v1[:, :, j0:j0 + 8], m, l, acc, scale)
    err = max_err(acc / l[..., None], o_exact)
    print(f"after keys {j0:2}..{j0 + 7:2}:  m = {m.item():6.3f}   l = {l.item():7.4f}   "
          f"|acc/l - o| = {f'{err:.2e}' if err > 1e-12 else 'below 1e-12'}")
print(f"lse = m + log l: {(m + np.log(l)).item():.12f}   exact: {lse_exact.item():.12f}")
assert max_err(acc / l[..., None], o_exact) < 1e-14 and max_err(m + np.log(l), lse_exact) < 1e-14

# %% [markdown]
# $l$ drops whenever $m$ jumps: the old sum is rescaled to the new max. The printed error is the error of
# the *partial* answer (only the keys seen so far); it reaches round-off only at the end.
#
# ## 3. The tiled forward
#
# FlashAttention-2 puts the loop over **query tiles** outside (rows $i_0 \ldots i_0 + B_r - 1$; each tile is
# independent, so on a GPU — or on several CPU cores — each one is a separate worker) and the loop over
# **key tiles** inside:
#
# ```
# for each query tile Q_i (Br rows):            m = -inf, l = 0, acc = 0
#     for each key tile K_j, V_j (Bc rows):     m, l, acc = online_softmax_tile_step(Q_i, K_j, V_j, m, l, acc)
#     O_i = acc / l;  lse_i = m + log l          (normalise once)
# ```
#
# The only arrays of size $B_r \times B_c$ are one tile of scores and probabilities. With `causal`,
# query $i$ sees keys $j \le i$: key tiles that lie entirely above the diagonal are **skipped** (the loop
# stops at the first one), tiles on the diagonal are computed and masked inside, and the rest are computed in
# full. That halves the work. `viz.flash_tiles` draws which tiles a forward visits:

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
viz.flash_tiles(200, 200, 32, 32, causal=False, ax=axes[0],
                title="full: every tile (Br = Bc = 32, N = 200)")
viz.flash_tiles(200, 200, 32, 32, causal=True, ax=axes[1], title="causal: 28 of 49 tiles")
viz.flash_tiles(200, 200, 64, 16, causal=True, ax=axes[2], title="causal, Br = 64, Bc = 16")
plt.tight_layout()
plt.show()

# %% [markdown]
# The last row and column of tiles are shorter (200 is not a multiple of 32): a kernel must handle
# partial tiles. Exercise 10.2 is this loop, `flash_forward_tiled`, for all $(B, H)$ heads at once (a tile
# is $(B, H, B_r, d)$). Against the naive attention, in float64, on shapes that are not tile multiples,
# $N_q \ne N_k$, causal and not, with key padding — including a batch whose keys are *all* padding, whose
# rows by convention give $o = 0$ and $\mathrm{lse} = -\infty$:

# %%
# NBVAL_IGNORE_OUTPUT
# (the last bits of float64 round-off depend on the CPU and the BLAS build: the asserts bound them instead)
pad = np.zeros((2, 333), bool)
pad[0, 100:150] = True
pad[1, :] = True  # batch 1: every key is padding
cases = [
    dict(Nq=200, Nk=333, causal=False, key_padding_mask=None),
    dict(Nq=200, Nk=333, causal=True, key_padding_mask=None),
    dict(Nq=333, Nk=200, causal=True, key_padding_mask=None),
    dict(Nq=200, Nk=333, causal=False, key_padding_mask=pad),
    dict(Nq=1, Nk=1, causal=True, key_padding_mask=None),
]
for c in cases:
    q, k, v = randn(2, 3, c["Nq"], 64, seed=4), randn(2, 3, c["Nk"], 64, seed=5), randn(2, 3, c["Nk"], 32, seed=6)
    kw = dict(causal=c["causal"], key_padding_mask=c["key_padding_mask"])
    o_ref, lse_ref = kernels.attention_forward(q, k, v, **kw)
    o, lse = kernels.flash_forward_tiled(q, k, v, Br=64, Bc=48, **kw)
    eo, el = max_err(o, o_ref), max_err(lse, lse_ref)
    print(f"Nq={c['Nq']:3} Nk={c['Nk']:3} causal={c['causal']!s:5} padding={c['key_padding_mask'] is not None!s:5}:"
          f"  max|o - ref| = {eo:.1e}   max|lse - ref| = {el:.1e}")
    assert eo < 1e-13 and el < 1e-13
    if c["key_padding_mask"] is not None:
        o_pad, lse_pad = o, lse
print("the fully padded batch: o == 0:", bool((o_pad[1] == 0).all()), "  lse == -inf:",
      bool(np.isneginf(lse_pad[1]).all()))

# %% [markdown]
# The same to the last few bits of float64: the tiled forward is not an approximation. Now the logits
# multiplied by 100, so that scores reach the hundreds: the textbook $e^{s} / \sum e^{s}$ overflows (float32
# at $e^{88.7}$, float64 at $e^{709}$), while the online softmax never exponentiates a positive number
# ($S - m' \le 0$ and $m - m' \le 0$):

# %%
q, k, v = randn(1, 2, 100, 64, seed=7) * 100, randn(1, 2, 130, 64, seed=8), randn(1, 2, 130, 64, seed=9)
S = (q @ np.swapaxes(k, -1, -2) / 8).astype(np.float32)
with np.errstate(over="ignore", invalid="ignore"):
    textbook = (np.exp(S) / np.exp(S).sum(-1, keepdims=True)) @ v.astype(np.float32)
o_ref, lse_ref = kernels.attention_forward(q, k, v)
o, lse = kernels.flash_forward_tiled(q, k, v, Br=32, Bc=32)
print(f"largest score: {S.max():.0f}")
print("textbook softmax in float32: NaN entries =", int(np.isnan(textbook).sum()), "of", textbook.size)
assert np.isnan(textbook).any()
print("tiled forward (float64):    finite =", bool(np.isfinite(o).all()), "  matches the reference to 1e-12:",
      max_err(o, o_ref) < 1e-12 and max_err(lse, lse_ref) < 1e-9)
assert np.isfinite(o).all() and max_err(o, o_ref) < 1e-12

# %% [markdown]
# ## 4. The backward by recomputation
#
# The backward of $O = PV$ with $P = \mathrm{softmax}(S)$ needs $P$. The naive backward stores it
# ($N^2$ again); flash attention **recomputes** it, tile by tile, from the one number per row that the
# forward saved: $P = e^{S - \mathrm{lse}}$ (no max, no sum: lse already normalises). With $dO$ the
# incoming gradient,
#
# $$dV = P^\top dO,\qquad dP = dO\,V^\top,\qquad dS = P \circ (dP - D),\qquad dQ = dS\,K\cdot\text{scale},
# \qquad dK = dS^\top Q\cdot\text{scale}.$$
#
# $dS$ is lesson 02's softmax backward, row by row: $p \odot (g - \langle g, p\rangle)$ with $g = dP$. The
# row sums $D_i = \sum_j P_{ij}\,dP_{ij}$ run over **all** keys — no single tile has them — but
# $\sum_j P_{ij} (dO_i \cdot v_j) = dO_i \cdot \sum_j P_{ij} v_j = dO_i \cdot O_i$, so
#
# $$D = \mathrm{rowsum}(dO \circ O),$$
#
# computed once, before the loops, from $O$ and $dO$ ($N \times d$ each). Let us check that identity:

# %%
q, k, v = randn(1, 1, 50, 16, seed=10), randn(1, 1, 70, 16, seed=11), randn(1, 1, 70, 16, seed=12)
dO = randn(1, 1, 50, 16, seed=13)
o, lse = kernels.attention_forward(q, k, v)
P = np.exp(q @ np.swapaxes(k, -1, -2) / 4 - lse[..., None])
dP = dO @ np.swapaxes(v, -1, -2)
err = max_err((P * dP).sum(-1), (dO * o).sum(-1))
print("max |rowsum(P ∘ dP) - rowsum(dO ∘ O)| < 1e-13:", err < 1e-13, " (the row sums are of order",
      f"{np.abs((dO * o).sum(-1)).mean():.2f})")
assert err < 1e-13

# %% [markdown]
# Exercise 10.3, `flash_backward_tiled`, puts the **key tiles** outside: each key tile owns its $dK_j$,
# $dV_j$ and accumulates them over the query tiles, while $dQ_i$ collects a share from every key tile.
# (In parallel code that choice matters: the owner of $dK_j$ never races with anyone; $dQ$ does.) With
# `causal`, the query tiles that end before the key tile begins are skipped. Against the naive backward in
# float64, at normal and ×100 logits, and against central differences on a tiny problem:

# %%
# NBVAL_IGNORE_OUTPUT
# (the last bits of float64 round-off depend on the CPU and the BLAS build: the asserts bound them instead)
for gain, causal in ((1, False), (1, True), (100, True)):
    q, k, v = randn(2, 2, 150, 32, seed=14) * gain, randn(2, 2, 190, 32, seed=15), randn(2, 2, 190, 32, seed=16)
    dO = randn(2, 2, 150, 32, seed=17)
    o, lse = kernels.flash_forward_tiled(q, k, v, causal=causal, Br=64, Bc=48)
    grads = kernels.flash_backward_tiled(q, k, v, o, lse, dO, causal=causal, Br=64, Bc=48)
    o_r, lse_r = kernels.attention_forward(q, k, v, causal=causal)
    ref = kernels.attention_backward(q, k, v, o_r, lse_r, dO, causal=causal)
    errs = [max_err(g, r) / max(1.0, np.abs(r).max()) for g, r in zip(grads, ref)]
    print(f"logits x{gain:<3} causal={causal!s:5}: relative max error of dq, dk, dv = "
          + ", ".join(f"{e:.1e}" for e in errs))
    assert max(errs) < 1e-12 and all(np.isfinite(g).all() for g in grads)

# %%
q, k, v = randn(1, 1, 5, 3, seed=18), randn(1, 1, 6, 3, seed=19), randn(1, 1, 6, 2, seed=20)
dO = randn(1, 1, 5, 2, seed=21)
o, lse = kernels.flash_forward_tiled(q, k, v, causal=True, Br=2, Bc=4)
grads = kernels.flash_backward_tiled(q, k, v, o, lse, dO, causal=True, Br=2, Bc=4)
eps = 1e-6
for name, x, g in zip("qkv", (q, k, v), grads):
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        x[idx] += eps
        plus = (kernels.attention_forward(q, k, v, causal=True)[0] * dO).sum()
        x[idx] -= 2 * eps
        minus = (kernels.attention_forward(q, k, v, causal=True)[0] * dO).sum()
        x[idx] += eps
        numeric[idx] = (plus - minus) / (2 * eps)
    ok = np.allclose(g, numeric, rtol=1e-6, atol=1e-8)
    print(f"d{name}: matches central differences: {ok}")
    assert ok

# %% [markdown]
# ## 5. Memory: linear, not quadratic
#
# NumPy reports its allocations to Python's `tracemalloc`, so we can measure the **peak** memory each
# forward allocates (inputs excluded). B = 1, H = 4, d = 64, float32, tiles of 64 × 64:

# %%
# NBVAL_IGNORE_OUTPUT
# (the byte counts include NumPy's temporaries, which change a little between NumPy versions)
def peak_mib(fn, *args, **kwargs):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*args, **kwargs)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


sizes = [256, 512, 1024, 2048]
naive_mem, tiled_mem, work_mem = [], [], []
for n in sizes:
    q, k, v = (randn(1, 4, n, 64, seed=s, dtype=np.float32) for s in (1, 2, 3))
    naive_mem.append(peak_mib(kernels.attention_forward, q, k, v))
    tiled_mem.append(peak_mib(kernels.flash_forward_tiled, q, k, v, Br=64, Bc=64))
    work_mem.append(tiled_mem[-1] - (q.nbytes + 4 * n * 4) / 2**20)  # minus the outputs o and lse
    print(f"N = {n:5}:  naive {naive_mem[-1]:7.2f} MiB   tiled {tiled_mem[-1]:5.2f} MiB "
          f"(outputs + {work_mem[-1]:.2f} MiB of tiles)   ratio {naive_mem[-1] / tiled_mem[-1]:5.1f}x")
slope_naive = np.polyfit(np.log(sizes), np.log(naive_mem), 1)[0]
slope_tiled = np.polyfit(np.log(sizes), np.log(tiled_mem), 1)[0]
print(f"growth exponent (log-log slope): naive {slope_naive:.2f}, tiled {slope_tiled:.2f}")
assert 1.9 < slope_naive < 2.1 and slope_tiled < 1.05
assert max(work_mem) < 1.2 * min(work_mem), "the tiled forward's workspace should not depend on N"

fig, ax = plt.subplots(figsize=(5.5, 3.8))
ax.loglog(sizes, naive_mem, "o-", label=f"naive (slope {slope_naive:.2f})")
ax.loglog(sizes, tiled_mem, "s-", label=f"tiled flash (slope {slope_tiled:.2f})")
ax.set(xlabel="N", ylabel="peak extra memory (MiB)", title="forward, B=1, H=4, d=64, float32")
ax.legend()
plt.show()

# %% [markdown]
# The tiled forward's peak is its output (o and lse, $N \times d$, linear in $N$) plus a workspace of a few
# tiles that does not grow with $N$ at all; the naive one's is $S$ and $P$, $N^2$ each. (Below
# $N \approx 1000$ the constant workspace dominates, so the tiled slope is under 1.) The ratio doubles with
# every doubling of $N$. (tracemalloc counts NumPy's
# allocations, not Numba's, so this measurement is for the NumPy versions; `benchmarks/attention_cpu.py`
# measures the Numba kernels by resident memory.)
#
# ## 6. The same algorithm in Numba
#
# The NumPy version is the clearest statement of the algorithm and the slowest way to run it: every tile
# step allocates new arrays, and Python runs the loops. Numba compiles Python functions that use loops,
# scalars and NumPy arrays to machine code (`@njit`). Exercise 10.4 is the smallest useful kernel: the
# forward of **one query tile of one head**, in plain loops, one score at a time —
# `numba_teaching.forward_tile_numba(q, k, v, i0, Br, Bc, causal, scale, o, lse)`, which writes rows
# $i_0 \ldots i_0 + B_r - 1$ of `o` and `lse`. Per query row it keeps $m$, $l$ and acc as scalars and a
# $d_v$-vector, exactly as in section 2. `numba_teaching.flash_forward_teaching` calls it for every
# (batch, head, query tile). The first call compiles it (about a second; `cache=True` stores the machine
# code on disk for the next run):

# %%
# NBVAL_IGNORE_OUTPUT
# (the last bits of float64 round-off depend on the CPU: the asserts bound them instead)
for Nq, Nk, causal in ((200, 333, False), (333, 200, True), (1, 1, True)):
    q, k, v = randn(1, 2, Nq, 64, seed=22), randn(1, 2, Nk, 64, seed=23), randn(1, 2, Nk, 64, seed=24)
    o, lse = numba_teaching.flash_forward_teaching(q, k, v, causal=causal, Br=32, Bc=32)
    o_ref, lse_ref = kernels.attention_forward(q, k, v, causal=causal)
    print(f"Nq={Nq:3} Nk={Nk:3} causal={causal!s:5}: max|o - ref| = {max_err(o, o_ref):.1e}   "
          f"max|lse - ref| = {max_err(lse, lse_ref):.1e}")
    assert max_err(o, o_ref) < 1e-13 and max_err(lse, lse_ref) < 1e-13

# %% [markdown]
# Correct — and single-threaded, with a scalar `math.exp` and a dot product per score. The library's
# `kernels.flash_attention(..., backend="numba")` (`minitorch_attn/kernels/numba_backend.py`) is the same
# algorithm with the same names ($B_r$, $B_c$, $m$, $l$, acc, lse, $D$), engineered for speed; each step
# is measured in `benchmarks/NOTES_attention_cpu.md`:
#
# - **The tile is held transposed**, keys × queries: $S^\top = K_j (Q_i \cdot \text{scale})^\top$ is
#   $(B_c, B_r)$ and acc is $(d_v, B_r)$. Every online-softmax operation then runs along a row of $B_r = 256$
#   queries: the running max is an elementwise max of rows (no horizontal reduction), and both matmuls
#   have a long, vectorisable inner loop.
# - **Register-blocked matmuls** (`tile_matmul.py`): 8 rows of the output × 4 steps of the inner dimension
#   per pass, so every loaded vector feeds 8 fused multiply-adds. No BLAS call inside the kernel: LLVM
#   compiles these loops for the host's AVX-512, and there are no BLAS threads to fight Numba's.
# - **A vectorised exp** (`fastexp.py`): $e^x = 2^n e^r$ with a degree-6 polynomial for $e^r$ and $2^n$
#   written straight into the float's exponent bits. `math.exp` is a scalar library call that LLVM cannot
#   vectorise; this one is plain arithmetic, about 10× faster per element (float32; float64 keeps
#   `math.exp`).
# - **`prange` over (head, query tile)**: each work item owns its rows of $O$ and lse, so the threads share
#   nothing. Causal query tiles cost more the further down they are; the items are ordered cheapest,
#   dearest, next cheapest, … so both cores get equal work. The backward splits by key tile (each item owns
#   its $dK_j$, $dV_j$) and gives each share its own $dQ$ buffer, summed at the end: no locks, no atomics.
#
# The production kernels in float32 against the float64 reference (compiling them takes a few seconds
# per kernel the first time, then they are loaded from the on-disk cache):

# %%
# NBVAL_IGNORE_OUTPUT
# (float32 round-off depends on the CPU's vector width: the asserts bound it instead)
q, k, v = (randn(2, 4, 300, 64, seed=s, dtype=np.float32) for s in (25, 26, 27))
dO = randn(2, 4, 300, 64, seed=28, dtype=np.float32)
q64, k64, v64, dO64 = (a.astype(np.float64) for a in (q, k, v, dO))
for causal in (False, True):
    o, lse = kernels.flash_attention(q, k, v, causal=causal, backend="numba")
    grads = kernels.flash_attention_backward(q, k, v, o, lse, dO, causal=causal, backend="numba")
    o_r, lse_r = kernels.attention_forward(q64, k64, v64, causal=causal)
    ref = kernels.attention_backward(q64, k64, v64, o_r, lse_r, dO64, causal=causal)
    errs = [max_err(o, o_r), max_err(lse, lse_r)] + [max_err(g, r) for g, r in zip(grads, ref)]
    print(f"causal={causal!s:5}: max error of o, lse, dq, dk, dv = " + ", ".join(f"{e:.1e}" for e in errs))
    assert max(errs) < 1e-4

# %% [markdown]
# ### A small timing table
#
# One forward at $N = 1024$, B = 1, H = 4, d = 64 (best of a few runs on this machine; the teaching
# kernel gets float64 inputs and the others float32 — it accumulates in float64 either way). Torch, when
# installed, runs in **its own process**: after Numba's worker threads have run, torch's threads in the
# same process compete with them and its timings get several times worse, which would flatter us.

# %%
# NBVAL_IGNORE_OUTPUT
# (timings differ from run to run and from machine to machine; nothing is asserted on them)
N, H, D = 1024, 4, 64
q, k, v = (randn(1, H, N, D, seed=s, dtype=np.float32) for s in (30, 31, 32))
flops = 4 * N * N * D * H


def best_ms(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e3 * min(times)


rows = {
    "naive NumPy (S materialised)": best_ms(lambda: kernels.attention_forward(q, k, v)),
    "tiled NumPy (Br = Bc = 128)": best_ms(lambda: kernels.flash_forward_tiled(q, k, v, Br=128, Bc=128)),
    "Numba, teaching kernel (10.4, 1 thread)": best_ms(
        lambda: numba_teaching.flash_forward_teaching(q.astype(np.float64), k.astype(np.float64),
                                                      v.astype(np.float64)), repeat=1),
    "Numba, library kernel (all cores)": best_ms(lambda: kernels.flash_attention(q, k, v, backend="numba"),
                                                 repeat=5),
}
if importlib.util.find_spec("torch") is not None:
    script = (
        "import time, torch\n"
        f"q, k, v = (torch.randn(1, {H}, {N}, {D}) for _ in range(3))\n"
        "f = torch.nn.functional.scaled_dot_product_attention\n"
        "f(q, k, v)\n"
        "ts = []\n"
        "for _ in range(5):\n"
        "    t = time.perf_counter(); f(q, k, v); ts.append(time.perf_counter() - t)\n"
        "print(1e3 * min(ts))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    if out.returncode == 0:
        rows["torch SDPA on CPU (own process)"] = float(out.stdout.split()[-1])
print(f"{'forward, N = 1024, H = 4, d = 64':42} {'ms':>9} {'GFLOP/s':>9}")
for name, ms in rows.items():
    print(f"{name:42} {ms:9.2f} {flops / ms / 1e6:9.1f}")

# %% [markdown]
# In our first runs on a 2-core AMD Zen 5 the library kernel was 20–25× faster than the single-threaded
# teaching kernel; how it compares with torch depends on the CPU far more than that (the table below). The
# NumPy versions are limited by the exponentials, the temporaries and (for the tiled one) Python's loop over
# tiles. At $N = 1024$ fixed costs still show; the comparison that matters is at long sequences.
#
# ### The full numbers
#
# `benchmarks/attention_cpu.py` times, for B = 1, H = 8, d = 64, float32 and N up to 4096 (or 8192), naive
# NumPy, tiled NumPy, our Numba kernels and torch 2.13's `scaled_dot_product_attention`, forward and
# forward + backward, causal and not, each contender in its own process (best of interleaved rounds), with
# NumPy's SGEMM rate measured in the same run. Three 2-core VMs, each measured with
# `MTA_TUNE=off python benchmarks/attention_cpu.py --sizes 1024 4096 --no-memory --contenders numba torch --rounds 3`
# while shared with other jobs ("vs torch" is torch's time over ours, > 1 means faster than torch; from
# `benchmarks/NOTES_attention_cpu.md`, where the runs' loads are; code of 83ded73 on the Zen 5, cb17692 on the
# Intel Xeon, 51445c7 on the Zen 3, whose padded backward the other two have not been measured with):
#
# | CPU (LLVM name, vectors) | forward, N = 4096 | causal | forward + backward | forward, N = 1024 | SGEMM in the run |
# |---|---|---|---|---|---|
# | AMD Zen 5 (`znver5`, AVX-512) | 91 ms, **1.95×** torch | 1.78× | 1.88× | 1.46× | 267 GFLOP/s |
# | Intel Xeon, Emerald Rapids (`emeraldrapids`, AVX-512) | 166 ms, **0.87×** | 0.88× | 0.90× | 0.74× | 310 GFLOP/s |
# | AMD Zen 3 (`znver3`, AVX2) | 398 ms, **0.86×** | 0.81× | 0.99× | 0.72× | 143 GFLOP/s |
#
# These ratios belong to those CPUs, and each took work on that CPU. On the Intel Xeon the kernels first gave
# forward 0.51× torch at N = 4096: torch's MKL-based kernel runs near the chip's peak there, and our tile
# matmul's loops paid for storing C after every few k steps. A register tile that keeps an 8 × 32 block of C
# in 16 zmm registers (`kernels/microkernel.py`), tile buffers on cache-line boundaries and tile shapes timed
# once per machine (`kernels/tuning.py`) brought it to 0.87×, and the same changes took the Zen 5 from 1.40× to
# 1.95×. On the Zen 3, which has 16 ymm registers instead of 32 zmm, that register tile spilled; a 4 × 16 tile
# in 8 ymm registers took the forward from 0.54× to 0.86×, and padding the rows of Kᵀ and Vᵀ, which at a
# power-of-two N all fell into the same L1 cache sets, took the backward from 0.7× to 1.04×. What moves between
# machines: the vector width and register count (the library asks LLVM for 512-bit vectors on AVX-512 CPUs,
# `MTA_NUMBA_VECTORS`), which inner kernel and tiles win (the tuner times them), the BLAS kernel NumPy and torch
# pick, the clock, the caches and the cost of a store. Measure on yours; the benchmark prints all of it.
#
# Memory (same notes): the tiled NumPy forward at N = 2048, H = 8 peaks at 4.8 MiB against the naive
# version's 384 MiB; Numba forward + backward at N = 16,384, H = 8 grows the process by 225 MiB (7 × one
# input, outputs included; the naive score matrix alone would be 8 GiB); one causal head of
# N = 262,144 runs (131 s) in 514 MiB, where the naive version would need 256 GiB for its scores.
#
# ## 7. In the library: `F.scaled_dot_product_attention(..., backend="numba")`
#
# The kernels are wired into the course's autograd as one `Function`: its forward calls the kernel forward
# and saves `(o, lse)`, its backward calls the kernel backward. Modules and training loops use it like
# any other op, and its gradients match the naive backend's:

# %%
q_np, k_np, v_np = (randn(2, 4, 160, 32, seed=s, dtype=np.float32) for s in (40, 41, 42))
g_np = randn(2, 4, 160, 32, seed=43, dtype=np.float32)
results = {}
for backend in ("naive", "numba"):
    q, k, v = (mta.tensor(a.copy(), requires_grad=True) for a in (q_np, k_np, v_np))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, backend=backend)
    out.backward(g_np)
    results[backend] = [out.data, q.grad, k.grad, v.grad]
for name, a, b in zip(("out", "dq", "dk", "dv"), results["naive"], results["numba"]):
    print(f"{name}: numba and naive backends agree to 1e-4: {np.allclose(a, b, atol=1e-4, rtol=1e-4)}")
    assert np.allclose(a, b, atol=1e-4, rtol=1e-4)

# %% [markdown]
# ## Summary
#
# - Softmax attention can be computed **exactly** a key tile at a time: keep per query row the running max
#   $m$, the running normaliser $l$ and the unnormalised output acc, rescale both sums by $e^{m - m'}$
#   when the max grows, divide once at the end, and save $\mathrm{lse} = m + \log l$.
# - The backward recomputes $P = e^{S - \mathrm{lse}}$ tile by tile and needs only
#   $D = \mathrm{rowsum}(dO \circ O)$ beyond the forward's outputs: $dS = P \circ (dP - D)$.
# - Extra memory is $O(N d)$ instead of $O(N^2)$; causal attention skips the tiles above the diagonal.
# - Speed comes from the layout, not the algorithm: transposed tiles, register-blocked matmuls, a
#   vectorised exp, and independent work items on every core — enough to match or beat torch on a CPU.
#
# Now complete exercises 10.1–10.4 in `exercises/lesson10_flash_cpu.py` and run
# `pytest tests/exercises/test_lesson10_flash_cpu.py` (or `python -m minitorch_attn grade --lesson 10`).
# Lesson 11 writes the same kernel in CUDA C.
