"""Adam/AdamW's update and the gradient norm's sum of squares in Numba (used by `optim` when Numba is installed).

NumPy spends ~10 passes over every parameter on one Adam step (m, v, √v, the quotient, ...): ~2 ms for the
baby GPT's 0.8 M parameters. Here vectorised Numba loops (m and v, then p) take ~0.5 ms on one thread, and
parameters of PARALLEL_MIN elements or more are split into fixed chunks over Numba's threads.

Rules these keep:
- the update is torch's formula (see `_adam`) with exactly the operations, order and dtype of `optim.Adam.step`'s
  NumPy lines, so the kernel and the NumPy reference give the same bits (tests check it), and torch's own
  float32 update agrees to an ulp or two (it computes m by lerp):

      p ← p · (1 - lr · wd)                 (AdamW: decoupled)      g ← g + wd · p   (Adam: L2)
      m ← β1 m + (1 - β1) g,   v ← β2 v + (1 - β2) g²
      p ← p - (lr / (1 - β1ᵗ)) · m / (√v / √(1 - β2ᵗ) + eps)

- every element is independent, so splitting over threads changes nothing in the results;
- `sum_squares` accumulates in float64 over `CHUNKS` fixed chunks added in order: the same bits whatever the
  number of threads (within a chunk the sum may be reassociated into vector lanes: fixed by the compiled code).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .threads import prefer_workqueue

prefer_workqueue()

CHUNKS = 16  # fixed chunks of a flat array: the work items of the parallel loops
PARALLEL_MIN = 1 << 22  # smaller arrays are updated by one thread (why so many: see gelu.py)


@njit(cache=True, boundscheck=False, error_model="numpy")
def _adam(p, g, m, v, shrink, l2, b1, c1, b2, c2, eps, step_size, bc2_sqrt):
    """Adam(W) on the flat arrays p, g, m, v, with every scalar already of the arrays' dtype: the same operations
    in the same order as `optim.Adam.step`'s NumPy lines, so the same bits:

        p = p * shrink                       (AdamW, when weight_decay != 0: shrink = 1 - lr·wd)
        g = g + l2 * p                       (Adam, when weight_decay != 0: l2 = wd)
        m = m * b1 + c1 * g                  (c1 = 1 - β1)
        v = v * b2 + (c2 * g) * g            (c2 = 1 - β2)
        p = p - (step_size * m) / (sqrt(v) / bc2_sqrt + eps)

    What the vectoriser needs, each measured (0.8 M float32 elements, one thread: 2.9 ms -> 0.5 ms):
    error_model="numpy" (Numba's default checks every division for a zero divisor, to raise Python's
    ZeroDivisionError, and that check stops the vectoriser; here it gives inf/NaN as NumPy does); loops over
    range(p.size) (chunks are passed as slices, not as range(lo, hi)); one loop per stored array group (m and v,
    then p: a loop that stores into three arrays and reads two back is not vectorised); the weight-decay
    branches outside the loops."""
    if shrink != 1:
        for i in range(p.size):
            p[i] = p[i] * shrink
    if l2 != 0:
        for i in range(p.size):
            gi = g[i] + l2 * p[i]
            m[i] = m[i] * b1 + c1 * gi
            v[i] = v[i] * b2 + (c2 * gi) * gi
    else:
        for i in range(p.size):
            m[i] = m[i] * b1 + c1 * g[i]
            v[i] = v[i] * b2 + (c2 * g[i]) * g[i]
    for i in range(p.size):
        p[i] = p[i] - (step_size * m[i]) / (np.sqrt(v[i]) / bc2_sqrt + eps)


@njit(parallel=True, cache=True, boundscheck=False)
def _adam_parallel(p, g, m, v, shrink, l2, b1, c1, b2, c2, eps, step_size, bc2_sqrt, chunks):
    n = p.size
    for c in prange(chunks):
        lo, hi = c * n // chunks, (c + 1) * n // chunks
        _adam(p[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], shrink, l2, b1, c1, b2, c2, eps, step_size, bc2_sqrt)


def adam_update(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, t: int, lr: float, betas,
                eps: float, weight_decay: float, decoupled: bool) -> None:
    """One Adam(W) step at step count t >= 1, in place on the C-contiguous arrays p, m, v (g is read). The
    Python-float hyperparameters are computed as `optim.Adam.step` computes them, then rounded to the arrays'
    dtype, as NumPy does when it multiplies a float32 array by a Python float."""
    b1, b2 = betas
    f = p.dtype.type
    wd = weight_decay
    shrink = f(1 - lr * wd) if (decoupled and wd != 0) else f(1)
    l2 = f(wd) if (not decoupled and wd != 0) else f(0)
    args = (shrink, l2, f(b1), f(1 - b1), f(b2), f(1 - b2), f(eps), f(lr / (1 - b1**t)), f(math.sqrt(1 - b2**t)))
    pf, gf, mf, vf = (a.reshape(-1) for a in (p, np.ascontiguousarray(g, dtype=p.dtype), m, v))
    if pf.size >= PARALLEL_MIN:
        _adam_parallel(pf, gf, mf, vf, *args, CHUNKS)
    else:
        _adam(pf, gf, mf, vf, *args)


@njit(cache=True, boundscheck=False, fastmath={"reassoc"})
def _sum_squares(x):
    s = 0.0
    for i in range(x.size):
        xi = np.float64(x[i])
        s += xi * xi
    return s


@njit(parallel=True, cache=True, boundscheck=False)
def _sum_squares_parallel(x, parts):
    n, chunks = x.size, parts.size
    for c in prange(chunks):
        parts[c] = _sum_squares(x[c * n // chunks : (c + 1) * n // chunks])


def sum_squares(x: np.ndarray) -> float:
    """Σ x² over every element, accumulated in float64 (the squared 2-norm of a gradient)."""
    xf = np.ascontiguousarray(x).reshape(-1)
    parts = np.zeros(CHUNKS if xf.size >= PARALLEL_MIN else 1)
    if parts.size == 1:
        return float(_sum_squares(xf))
    _sum_squares_parallel(xf, parts)
    return float(parts.sum())
