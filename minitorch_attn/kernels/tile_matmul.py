"""The small matmuls inside a flash-attention tile, written for Numba so that LLVM vectorises them well.

    matmul_tile(C, A, B, col0, m, n, k, accumulate):     C[:m, :n] (+)= A[:m, :k] @ B[:k, col0:col0 + n]
    matmul_tile_at(C, A, B, m, n, k, accumulate):        C[:m, :n] (+)= A[:k, :m]ᵀ @ B[:k, :n]
    matmul_tile_regs, matmul_tile_at_regs:               the same, through microkernel.py's register tile

Two inner kernels, because which is faster depends on the CPU (kernels/tuning.py times both once per machine):
the loops below, which LLVM vectorises, and the `_regs` versions, which run every block of MR rows × NV vectors
of C through `microkernel.py` (C held in registers for all k steps; 8 × 2 zmm with AVX-512, 4 × 2 ymm with AVX2)
and hand the rows and columns left over to the loops. The register tile won on every CPU measured so far
(Intel Xeon Emerald Rapids, AMD Zen 5, AMD Zen 3: benchmarks/NOTES_attention_cpu.md); the loops stay as the
leftover path and the default where nothing was measured.

Why not `np.dot`? Inside a Numba kernel it calls BLAS per tile: it allocates its result every call, the
BLAS threads must be kept from competing with Numba's (threadpoolctl), and on this machine OpenBLAS picks
its AVX2 "Haswell" kernel (it does not know the CPU), while LLVM compiles these loops for the host's
AVX-512. Measured on one core, a (128 × 512) ← (128 × 64)(64 × 512) tile: OpenBLAS sgemm ≈ 105 GFLOP/s,
the loops below ≈ 150 GFLOP/s (benchmarks/NOTES_attention_cpu.md).

How: the innermost loop runs along a contiguous row of B and of C (`j`), so it vectorises; each pass over
it updates 8 rows of C from 4 rows of B (register blocking: the 32 scalars of A stay in registers, every
loaded vector of B feeds 8 FMAs, and each C vector is loaded and stored once per 4 k-steps instead of
once per k-step). Rows and k-steps left over (m % 8, k % 4) go through the plain loop.

`B` is a 2-D C-contiguous array (the full K or V of one head): `B[kk, col0:col0 + n]` is a contiguous
slice, which Numba knows, so LLVM vectorises without runtime stride checks.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .fastexp import FASTMATH
from .microkernel import MR, NV, VECTOR_BYTES, microkernel_tile, microkernel_tile_at
from .ops import threads  # noqa: F401  (Numba's vector width is set before any compile)


@njit(cache=True, fastmath=FASTMATH, boundscheck=False)
def matmul_tile(C, A, B, col0, m, n, k, accumulate):
    """C[:m, :n] = A[:m, :k] @ B[:k, col0:col0+n], or += when `accumulate`."""
    m8, k4 = m - m % 8, k - k % 4
    if not accumulate:
        for i in range(m):
            for j in range(n):
                C[i, j] = 0
    for i in range(0, m8, 8):
        c0, c1, c2, c3 = C[i], C[i + 1], C[i + 2], C[i + 3]  # 8 rows of C, updated together
        c4, c5, c6, c7 = C[i + 4], C[i + 5], C[i + 6], C[i + 7]
        for kk in range(0, k4, 4):
            b0, b1 = B[kk, col0:col0 + n], B[kk + 1, col0:col0 + n]
            b2, b3 = B[kk + 2, col0:col0 + n], B[kk + 3, col0:col0 + n]
            a00, a01, a02, a03 = A[i, kk], A[i, kk + 1], A[i, kk + 2], A[i, kk + 3]
            a10, a11, a12, a13 = A[i + 1, kk], A[i + 1, kk + 1], A[i + 1, kk + 2], A[i + 1, kk + 3]
            a20, a21, a22, a23 = A[i + 2, kk], A[i + 2, kk + 1], A[i + 2, kk + 2], A[i + 2, kk + 3]
            a30, a31, a32, a33 = A[i + 3, kk], A[i + 3, kk + 1], A[i + 3, kk + 2], A[i + 3, kk + 3]
            a40, a41, a42, a43 = A[i + 4, kk], A[i + 4, kk + 1], A[i + 4, kk + 2], A[i + 4, kk + 3]
            a50, a51, a52, a53 = A[i + 5, kk], A[i + 5, kk + 1], A[i + 5, kk + 2], A[i + 5, kk + 3]
            a60, a61, a62, a63 = A[i + 6, kk], A[i + 6, kk + 1], A[i + 6, kk + 2], A[i + 6, kk + 3]
            a70, a71, a72, a73 = A[i + 7, kk], A[i + 7, kk + 1], A[i + 7, kk + 2], A[i + 7, kk + 3]
            for j in range(n):
                x0, x1, x2, x3 = b0[j], b1[j], b2[j], b3[j]
                c0[j] += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
                c1[j] += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
                c2[j] += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
                c3[j] += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3
                c4[j] += a40 * x0 + a41 * x1 + a42 * x2 + a43 * x3
                c5[j] += a50 * x0 + a51 * x1 + a52 * x2 + a53 * x3
                c6[j] += a60 * x0 + a61 * x1 + a62 * x2 + a63 * x3
                c7[j] += a70 * x0 + a71 * x1 + a72 * x2 + a73 * x3
        for kk in range(k4, k):
            b0 = B[kk, col0:col0 + n]
            a0, a1, a2, a3 = A[i, kk], A[i + 1, kk], A[i + 2, kk], A[i + 3, kk]
            a4, a5, a6, a7 = A[i + 4, kk], A[i + 5, kk], A[i + 6, kk], A[i + 7, kk]
            for j in range(n):
                x0 = b0[j]
                c0[j] += a0 * x0
                c1[j] += a1 * x0
                c2[j] += a2 * x0
                c3[j] += a3 * x0
                c4[j] += a4 * x0
                c5[j] += a5 * x0
                c6[j] += a6 * x0
                c7[j] += a7 * x0
    for i in range(m8, m):
        c0 = C[i]
        for kk in range(k):
            a0, b0 = A[i, kk], B[kk, col0:col0 + n]
            for j in range(n):
                c0[j] += a0 * b0[j]


@njit(cache=True, fastmath=FASTMATH, boundscheck=False)
def matmul_tile_at(C, A, B, m, n, k, accumulate):
    """C[:m, :n] = A[:k, :m]ᵀ @ B[:k, :n], or += when `accumulate` (A is read transposed)."""
    m8, k4 = m - m % 8, k - k % 4
    if not accumulate:
        for i in range(m):
            for j in range(n):
                C[i, j] = 0
    for i in range(0, m8, 8):
        c0, c1, c2, c3 = C[i], C[i + 1], C[i + 2], C[i + 3]  # 8 rows of C, updated together
        c4, c5, c6, c7 = C[i + 4], C[i + 5], C[i + 6], C[i + 7]
        for kk in range(0, k4, 4):
            b0, b1, b2, b3 = B[kk, :n], B[kk + 1, :n], B[kk + 2, :n], B[kk + 3, :n]
            a00, a01, a02, a03 = A[kk, i], A[kk + 1, i], A[kk + 2, i], A[kk + 3, i]
            a10, a11, a12, a13 = A[kk, i + 1], A[kk + 1, i + 1], A[kk + 2, i + 1], A[kk + 3, i + 1]
            a20, a21, a22, a23 = A[kk, i + 2], A[kk + 1, i + 2], A[kk + 2, i + 2], A[kk + 3, i + 2]
            a30, a31, a32, a33 = A[kk, i + 3], A[kk + 1, i + 3], A[kk + 2, i + 3], A[kk + 3, i + 3]
            a40, a41, a42, a43 = A[kk, i + 4], A[kk + 1, i + 4], A[kk + 2, i + 4], A[kk + 3, i + 4]
            a50, a51, a52, a53 = A[kk, i + 5], A[kk + 1, i + 5], A[kk + 2, i + 5], A[kk + 3, i + 5]
            a60, a61, a62, a63 = A[kk, i + 6], A[kk + 1, i + 6], A[kk + 2, i + 6], A[kk + 3, i + 6]
            a70, a71, a72, a73 = A[kk, i + 7], A[kk + 1, i + 7], A[kk + 2, i + 7], A[kk + 3, i + 7]
            for j in range(n):
                x0, x1, x2, x3 = b0[j], b1[j], b2[j], b3[j]
                c0[j] += a00 * x0 + a01 * x1 + a02 * x2 + a03 * x3
                c1[j] += a10 * x0 + a11 * x1 + a12 * x2 + a13 * x3
                c2[j] += a20 * x0 + a21 * x1 + a22 * x2 + a23 * x3
                c3[j] += a30 * x0 + a31 * x1 + a32 * x2 + a33 * x3
                c4[j] += a40 * x0 + a41 * x1 + a42 * x2 + a43 * x3
                c5[j] += a50 * x0 + a51 * x1 + a52 * x2 + a53 * x3
                c6[j] += a60 * x0 + a61 * x1 + a62 * x2 + a63 * x3
                c7[j] += a70 * x0 + a71 * x1 + a72 * x2 + a73 * x3
        for kk in range(k4, k):
            b0 = B[kk, :n]
            a0, a1, a2, a3 = A[kk, i], A[kk, i + 1], A[kk, i + 2], A[kk, i + 3]
            a4, a5, a6, a7 = A[kk, i + 4], A[kk, i + 5], A[kk, i + 6], A[kk, i + 7]
            for j in range(n):
                x0 = b0[j]
                c0[j] += a0 * x0
                c1[j] += a1 * x0
                c2[j] += a2 * x0
                c3[j] += a3 * x0
                c4[j] += a4 * x0
                c5[j] += a5 * x0
                c6[j] += a6 * x0
                c7[j] += a7 * x0
    for i in range(m8, m):
        c0 = C[i]
        for kk in range(k):
            a0, b0 = A[kk, i], B[kk, :n]
            for j in range(n):
                c0[j] += a0 * b0[j]


# ---- buffers on cache-line boundaries ---------------------------------------------------------------------
ALIGN = 64  # bytes: one cache line, one 512-bit register


@njit(cache=True)
def aligned_empty(rows, cols, like):
    """An uninitialised C-contiguous (rows, cols) array of `like`'s dtype whose data starts on a 64-byte
    boundary (`aligned_empty(1, n, like)[0]` for a vector).

    Why: Numba's np.empty aligns to 32 bytes. A tile row of 256 float32 is 1 KiB, so every row starts where
    the buffer does: at 32 mod 64, every 512-bit load and store of the tile straddles two cache lines. Which
    buffers land there depends on the allocator's history, so the same kernel ran its forward in 58 or 84 ms
    (N = 2048, 4 heads, one thread, Intel Xeon emeraldrapids) from one process to the next."""
    n = rows * cols
    extra = ALIGN // like.itemsize
    buf = np.empty(n + extra, like.dtype)
    off = ((ALIGN - buf.ctypes.data % ALIGN) % ALIGN) // like.itemsize
    return buf[off:off + n].reshape((rows, cols))


# ---- the register-tile versions ---------------------------------------------------------------------------
@njit(cache=True)
def _register_columns(C, B, n):
    """How many leading columns of C the register tile takes: a multiple of its width (NV vectors), or 0 when a
    row of C or B is not contiguous (the tile loads and stores whole vectors)."""
    if C.strides[1] != C.itemsize or B.strides[1] != B.itemsize:
        return 0
    width = NV * VECTOR_BYTES // C.itemsize
    return n - n % width


@njit(cache=True)
def _clear(C, m, n):
    """C[:m, :n] = 0 (the `accumulate=False` start of both register-tile matmuls)."""
    for i in range(m):
        for j in range(n):
            C[i, j] = 0


@njit(cache=True, boundscheck=False)
def _register_tiles(C, A, B, col0, m8, n, k):
    """C[:m8, :n] += A[:m8, :k] @ B[:k, col0:col0+n] in MR × NV-vector register tiles (m8, n multiples of them)."""
    for i in range(0, m8, MR):
        for j in range(0, n, NV * VECTOR_BYTES // C.itemsize):
            microkernel_tile(C, A, B, i, j, col0 + j, k)


@njit(cache=True, boundscheck=False)
def _register_tiles_at(C, A, B, m8, n, k):
    """C[:m8, :n] += A[:k, :m8]ᵀ @ B[:k, :n] in register tiles."""
    for i in range(0, m8, MR):
        for j in range(0, n, NV * VECTOR_BYTES // C.itemsize):
            microkernel_tile_at(C, A, B, i, j, j, k)


@njit(cache=True, boundscheck=False)
def matmul_tile_regs(C, A, B, col0, m, n, k, accumulate):
    """matmul_tile's contract; the blocks of MR rows × NV vectors in registers, what is left by matmul_tile."""
    if not accumulate:
        _clear(C, m, n)
    m8, j_lo = m - m % MR, _register_columns(C, B, n)
    if j_lo > 0:
        _register_tiles(C, A, B, col0, m8, j_lo, k)
        if m8 < m:  # the last rows of those columns
            matmul_tile(C[m8:m], A[m8:m], B, col0, m - m8, j_lo, k, True)
    if j_lo < n:  # the columns left over, every row
        matmul_tile(C[:, j_lo:], A, B, col0 + j_lo, m, n - j_lo, k, True)


@njit(cache=True, boundscheck=False)
def matmul_tile_at_regs(C, A, B, m, n, k, accumulate):
    """matmul_tile_at's contract; the blocks of MR rows × NV vectors in registers, what is left by matmul_tile_at."""
    if not accumulate:
        _clear(C, m, n)
    m8, j_lo = m - m % MR, _register_columns(C, B, n)
    if j_lo > 0:
        _register_tiles_at(C, A, B, m8, j_lo, k)
        if m8 < m:
            matmul_tile_at(C[m8:m], A[:, m8:m], B, m - m8, j_lo, k, True)
    if j_lo < n:
        matmul_tile_at(C[:, j_lo:], A, B[:, j_lo:], m, n - j_lo, k, True)
