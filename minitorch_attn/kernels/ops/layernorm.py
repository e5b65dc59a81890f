"""LayerNorm over the last axis in Numba, forward and backward (used by `fused.LayerNorm` when Numba is installed
and the normalised axes are the last one), giving the same bits as the NumPy lines of `fused.LayerNorm`.

The NumPy version makes ~6 passes over x in the forward and ~10 in the backward; here each row (one position's
D features) is read once or twice, with the same operations in the same order and dtype:

    forward   mean = Σx / D,  var = Σ(x - mean)² / D,  rstd = 1 / √(var + eps)
              xhat = (x - mean) · rstd,  out = xhat (· weight) (+ bias)
    backward  g = grad (· weight),  gx = rstd · ((g - Σg / D) - xhat · Σ(g · xhat) / D)
              gweight = Σ_rows grad · xhat,  gbias = Σ_rows grad   (row after row, as NumPy sums leading axes)

Rules it keeps:
- a row's sums are NumPy's pairwise summation (`_pairwise_sum`: 8 running sums for blocks of up to 128
  elements, halves above), in the array's dtype, so float32 stays float32 and the results are NumPy's to the
  bit (tests compare the two paths with array_equal; a first version that summed in float64, more exact,
  changed lesson 08's printed accuracy after 500 training steps);
- no fastmath: a row holding ±inf or NaN gives NaN as NumPy's formula does; error_model="numpy" (no zero-divisor
  checks, which stop LLVM's vectoriser);
- from PARALLEL_MIN elements up the rows are split over Numba's threads in CHUNKS fixed chunks, and the sums
  over rows (gweight, gbias) are split by columns, each still summed row after row: the same bits on any
  number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .threads import prefer_workqueue

prefer_workqueue()

CHUNKS = 16  # fixed chunks of rows (or of columns, for the sums over rows) for the parallel loops
PARALLEL_MIN = 1 << 22  # elements from which the work is split over the threads (why so many: see gelu.py)


@njit(cache=True, boundscheck=False, error_model="numpy")
def _block_sum(a, lo, n, zero):
    """Σ a[lo : lo + n] for n <= 128 as NumPy's pairwise_sum adds it (numpy/_core/src/umath/loops_utils.h.src),
    in the dtype of `zero` (a's): n < 8 one running sum from 0; else eight running sums over stride-8
    elements, combined as ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)), then the n % 8 last elements."""
    if n < 8:
        res = zero
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    stop = n - n % 8
    while i < stop:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@njit(cache=True, boundscheck=False, error_model="numpy")
def _pairwise_sum(a, lo, n, zero):
    """Σ a[lo : lo + n] as NumPy's pairwise_sum: blocks of up to 128 by `_block_sum`; a longer run is the sum
    of its two halves (the first a multiple of 8 long), each summed the same way. NumPy recurses; Numba cannot
    cache recursive functions, so the halves are walked here with an explicit stack (left half first, then
    right, then left + right), which adds the same numbers in the same order."""
    if n <= 128:
        return _block_sum(a, lo, n, zero)
    seg = np.empty((64, 3), dtype=np.int64)  # pending runs: start, length, halves already pushed
    part = np.empty(64, dtype=a.dtype)  # sums of finished runs, left before right
    seg[0, 0], seg[0, 1], seg[0, 2] = lo, n, 0
    top, vals = 1, 0
    while top:
        start, length, split = seg[top - 1, 0], seg[top - 1, 1], seg[top - 1, 2]
        if length <= 128:
            part[vals] = _block_sum(a, start, length, zero)
            vals += 1
            top -= 1
        elif split == 0:
            seg[top - 1, 2] = 1
            half = length // 2
            half -= half % 8
            seg[top, 0], seg[top, 1], seg[top, 2] = start + half, length - half, 0  # right, summed second
            seg[top + 1, 0], seg[top + 1, 1], seg[top + 1, 2] = start, half, 0  # left, summed first
            top += 2
        else:
            part[vals - 2] = part[vals - 2] + part[vals - 1]
            vals -= 1
            top -= 1
    return part[0]


@njit(cache=True, boundscheck=False, error_model="numpy")
def _forward_rows(x, weight, bias, has_weight, has_bias, eps, zero, one, dd, out, xhat, rstd, tmp):
    """x (n, D); weight, bias (D,) used when has_weight / has_bias; eps, zero, one and dd = D are scalars of
    x's dtype (Numba would compute float32 op int in float64). Writes out, xhat (n, D) and rstd (n,), all of
    x's dtype; tmp (D,) is scratch."""
    n, d = x.shape
    for i in range(n):
        mean = _pairwise_sum(x[i], 0, d, zero) / dd
        for j in range(d):
            c = x[i, j] - mean
            tmp[j] = c * c
        r = one / np.sqrt(_pairwise_sum(tmp, 0, d, zero) / dd + eps)
        rstd[i] = r
        for j in range(d):
            xhat[i, j] = (x[i, j] - mean) * r
        if has_weight and has_bias:
            for j in range(d):
                out[i, j] = xhat[i, j] * weight[j] + bias[j]
        elif has_weight:
            for j in range(d):
                out[i, j] = xhat[i, j] * weight[j]
        elif has_bias:
            for j in range(d):
                out[i, j] = xhat[i, j] + bias[j]
        else:
            for j in range(d):
                out[i, j] = xhat[i, j]


@njit(cache=True, boundscheck=False, error_model="numpy")
def _backward_rows(grad, xhat, rstd, weight, has_weight, zero, dd, gx, g, gh):
    """grad, xhat (n, D); rstd (n,); weight (D,) used when has_weight; zero and dd = D scalars of the dtype.
    Writes gx (n, D); g, gh (D,) are scratch (g = grad · weight and g · xhat of the current row)."""
    n, d = grad.shape
    for i in range(n):
        for j in range(d):
            gj = grad[i, j] * weight[j] if has_weight else grad[i, j]
            g[j] = gj
            gh[j] = gj * xhat[i, j]
        a = _pairwise_sum(g, 0, d, zero) / dd
        b = _pairwise_sum(gh, 0, d, zero) / dd
        r = rstd[i]
        for j in range(d):
            gx[i, j] = r * ((g[j] - a) - xhat[i, j] * b)


@njit(cache=True, boundscheck=False, error_model="numpy")
def _sums_over_rows(grad, xhat, gw, gb):
    """gw[j] = Σ_i grad[i, j] · xhat[i, j] and gb[j] = Σ_i grad[i, j], adding the rows in order from 0 (NumPy's
    order for a sum over the leading axes). The parallel caller passes column slices (a loop over range(lo, hi)
    is not vectorised, one over range(n) of a slice is)."""
    d = gw.shape[0]
    for j in range(d):
        gw[j] = 0
        gb[j] = 0
    for i in range(grad.shape[0]):
        for j in range(d):
            gw[j] += grad[i, j] * xhat[i, j]
            gb[j] += grad[i, j]


@njit(parallel=True, cache=True, boundscheck=False)
def _forward_parallel(x, weight, bias, has_weight, has_bias, eps, zero, one, dd, out, xhat, rstd):
    n, d = x.shape
    for c in prange(CHUNKS):
        lo, hi = c * n // CHUNKS, (c + 1) * n // CHUNKS
        tmp = np.empty(d, dtype=x.dtype)
        _forward_rows(x[lo:hi], weight, bias, has_weight, has_bias, eps, zero, one, dd, out[lo:hi], xhat[lo:hi],
                      rstd[lo:hi], tmp)


@njit(parallel=True, cache=True, boundscheck=False)
def _backward_parallel(grad, xhat, rstd, weight, has_weight, zero, dd, gx, gw, gb):
    n, d = grad.shape
    for c in prange(CHUNKS):
        lo, hi = c * n // CHUNKS, (c + 1) * n // CHUNKS
        g, gh = np.empty(d, dtype=grad.dtype), np.empty(d, dtype=grad.dtype)
        _backward_rows(grad[lo:hi], xhat[lo:hi], rstd[lo:hi], weight, has_weight, zero, dd, gx[lo:hi], g, gh)
    for c in prange(CHUNKS):
        lo, hi = c * d // CHUNKS, (c + 1) * d // CHUNKS
        _sums_over_rows(grad[:, lo:hi], xhat[:, lo:hi], gw[lo:hi], gb[lo:hi])


def layer_norm_forward(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None, eps: float):
    """(out, xhat, rstd) of LayerNorm over x's last axis: out and xhat of x's shape, rstd of shape
    x.shape[:-1], all of x's dtype (float32 or float64)."""
    x2 = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    n, d = x2.shape
    f = x2.dtype.type
    w = np.ascontiguousarray(weight, dtype=x2.dtype) if weight is not None else np.empty(d, dtype=x2.dtype)
    b = np.ascontiguousarray(bias, dtype=x2.dtype) if bias is not None else np.empty(d, dtype=x2.dtype)
    out, xhat, rstd = np.empty_like(x2), np.empty_like(x2), np.empty(n, dtype=x2.dtype)
    args = (x2, w, b, weight is not None, bias is not None, f(eps), f(0), f(1), f(d), out, xhat, rstd)
    if x2.size >= PARALLEL_MIN:
        _forward_parallel(*args)
    else:
        _forward_rows(*args, np.empty(d, dtype=x2.dtype))
    return out.reshape(x.shape), xhat.reshape(x.shape), rstd.reshape(x.shape[:-1])


def layer_norm_backward(grad: np.ndarray, xhat: np.ndarray, rstd: np.ndarray, weight: np.ndarray | None):
    """(gx, gweight, gbias) for `layer_norm_forward`'s xhat and rstd, in xhat's dtype."""
    d = xhat.shape[-1]
    g2 = np.ascontiguousarray(grad, dtype=xhat.dtype).reshape(-1, d)
    h2 = xhat.reshape(-1, d)
    w = np.ascontiguousarray(weight, dtype=xhat.dtype) if weight is not None else np.empty(d, dtype=xhat.dtype)
    gx, gw, gb = np.empty_like(h2), np.empty(d, dtype=xhat.dtype), np.empty(d, dtype=xhat.dtype)
    f = xhat.dtype.type
    if h2.size >= PARALLEL_MIN:
        _backward_parallel(g2, h2, rstd.reshape(-1), w, weight is not None, f(0), f(d), gx, gw, gb)
    else:
        _backward_rows(g2, h2, rstd.reshape(-1), w, weight is not None, f(0), f(d), gx,
                       np.empty(d, dtype=xhat.dtype), np.empty(d, dtype=xhat.dtype))
        _sums_over_rows(g2, h2, gw, gb)
    if d == 1:  # one column: NumPy sums it as one contiguous run, pairwise
        gw[0] = _pairwise_sum((g2 * h2).reshape(-1), 0, h2.shape[0], f(0))
        gb[0] = _pairwise_sum(g2.reshape(-1), 0, h2.shape[0], f(0))
    return gx.reshape(xhat.shape), gw, gb
