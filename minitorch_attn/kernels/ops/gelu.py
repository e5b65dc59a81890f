"""Exact GELU for float32 arrays in one Numba pass (used by `fused.GELU` when Numba is installed).

scipy.special.erf costs ~13 ns per float32 element (a scalar cephes call); GELU on the baby GPT's (12, 64, 512)
activations took ~5 ms per call, a quarter of a training step. Here erf(u), u = x/√2, is evaluated in float64
from two fitted polynomials (relative error < 1e-8 against scipy's float64 erf, far below float32's 6e-8
half-ulp) that the compiler vectorises:

    |u| < 1:   erf(u) = u · P(u²)                      P of degree 6 (Taylor-like, keeps relative accuracy at 0)
    |u| >= 1:  erf(u) = sign(u) · (1 - e^(-u²) · R(1/|u|))   R ≈ erfcx(|u|) = e^(u²) erfc(|u|), degree 14 on
                                                        1/|u| in [0, 1] (relative error < 1e-8, so Φ(x) for
                                                        x << 0 is computed as e^(-u²) R / 2, without cancellation)

with e^(-u²) = exp(-x²/2) computed once by NumPy's SIMD float32 exp and kept for the backward, where it is
the normal pdf times √(2π). Arrays of PARALLEL_MIN elements or more are split over Numba's threads.
error_model="numpy": Numba's default checks every float division for a zero divisor (to raise Python's
ZeroDivisionError), and that check keeps LLVM from vectorising a loop. Coefficients: least-squares fits
(Chebyshev nodes, relative weights) to scipy.special.erf / erfcx; `tests/test_fast_paths.py` checks the result
against scipy.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .threads import prefer_workqueue

prefer_workqueue()

_A = (1.1283791656913833, -0.3761262557207304, 0.1128358227754028, -0.02685369186360695,
      0.005188099769039263, -0.0008008193333468389, 7.847262424055094e-05)
_B = (4.563532926237909e-16, 0.5641895791371432, 1.7654817974040447e-06, -0.28221302517328806,
      0.0031194475312236133, 0.3804285886448681, 0.34479470800051604, -2.793903759398519,
      5.428273559363968, -5.611252522354112, 2.961661347149582, -0.08458900403559264,
      -0.8915666906917712, 0.5036093547747179, -0.09496977390383617)
A0, A1, A2, A3, A4, A5, A6 = _A
B0, B1, B2, B3, B4, B5, B6, B7, B8, B9, B10, B11, B12, B13, B14 = _B
INV_SQRT2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(cache=True, fastmath=True, boundscheck=False)
def _erf_from_exp(x, e):
    """erf(x/√2) (float64) for flat float32 arrays x and e = exp(-x²/2)."""
    out = np.empty(x.size, dtype=np.float64)
    for i in range(x.size):
        xi = np.float64(x[i])
        u = abs(xi) * INV_SQRT2
        s = u * u
        p = ((((((A6 * s + A5) * s + A4) * s + A3) * s + A2) * s + A1) * s + A0) * u
        t = 1.0 / max(u, 1.0)
        r = B14
        r = r * t + B13
        r = r * t + B12
        r = r * t + B11
        r = r * t + B10
        r = r * t + B9
        r = r * t + B8
        r = r * t + B7
        r = r * t + B6
        r = r * t + B5
        r = r * t + B4
        r = r * t + B3
        r = r * t + B2
        r = r * t + B1
        r = r * t + B0
        q = 1.0 - np.float64(e[i]) * r
        v = p if u < 1.0 else q
        out[i] = -v if xi < 0.0 else v
    return out


@njit(inline="always", fastmath=True, error_model="numpy")
def _phi(xi, ei):
    """Φ(x) in float64 for one x (float64) and e = exp(-x²/2) (float64)."""
    u = abs(xi) * INV_SQRT2
    s = u * u
    p = ((((((A6 * s + A5) * s + A4) * s + A3) * s + A2) * s + A1) * s + A0) * u
    t = 1.0 / max(u, 1.0)
    r = B14
    r = r * t + B13
    r = r * t + B12
    r = r * t + B11
    r = r * t + B10
    r = r * t + B9
    r = r * t + B8
    r = r * t + B7
    r = r * t + B6
    r = r * t + B5
    r = r * t + B4
    r = r * t + B3
    r = r * t + B2
    r = r * t + B1
    r = r * t + B0
    tail = 0.5 * ei * r  # Φ(-|x|) = erfc(u)/2 directly, no cancellation for x << 0
    head = 0.5 * p
    return (0.5 + head if xi >= 0.0 else 0.5 - head) if u < 1.0 else (1.0 - tail if xi >= 0.0 else tail)


@njit(cache=True, fastmath=True, boundscheck=False, error_model="numpy")
def _gelu_forward(x, e, out, cdf):
    """cdf = Φ(x), out = x·Φ(x) (float32), flat arrays; e = exp(-x²/2)."""
    for i in range(x.size):
        xi = np.float64(x[i])
        c = _phi(xi, np.float64(e[i]))
        cdf[i] = c
        out[i] = xi * c


@njit(cache=True, fastmath=True, boundscheck=False, error_model="numpy")
def _gelu_forward_deriv(x, e, out, deriv):
    """out = x·Φ(x) and deriv = Φ(x) + x·φ(x), the derivative the backward multiplies by (float32, flat arrays;
    e = exp(-x²/2), φ(x) = e/√(2π)). deriv is computed in float32 exactly as `_gelu_backward` computes it from
    the rounded Φ, so both backward routes give the same bits."""
    for i in range(x.size):
        xi = np.float64(x[i])
        c = _phi(xi, np.float64(e[i]))
        out[i] = xi * c
        deriv[i] = np.float32(c) + x[i] * (e[i] * np.float32(INV_SQRT_2PI))


@njit(cache=True, fastmath=True, boundscheck=False, error_model="numpy")
def _gelu_backward(grad, x, e, cdf, dx):
    """dx = grad · (Φ(x) + x·φ(x)), φ(x) = e/√(2π); flat arrays."""
    for i in range(x.size):
        dx[i] = grad[i] * (cdf[i] + x[i] * (e[i] * np.float32(INV_SQRT_2PI)))


# The same loops split over Numba's threads: CHUNKS fixed contiguous slices (each element is independent, so
# the split changes no result), used from PARALLEL_MIN elements up. Alone, 2 threads run these loops 1.7-1.9x
# faster than one from 32 K elements up; but inside a training step Numba's threads compete with OpenBLAS's
# (which spin for a while after every matrix product) for the 2 cores, and the baby GPT's step was FASTER with
# every one of these kernels on one thread (median step 37.9-44.2 ms over 3 rounds, against 39.8-44.8 ms with
# parallel launches from 256 K elements and 43.8-48.6 ms from 32 K; benchmarks/NOTES_train_step_baby.md). So
# only arrays large enough for the split to pay for a contended launch (4 M elements: milliseconds of work)
# use it.
CHUNKS = 16
PARALLEL_MIN = 1 << 22


@njit(parallel=True, cache=True, boundscheck=False)
def _gelu_forward_parallel(x, e, out, cdf):
    n = x.size
    for c in prange(CHUNKS):
        lo, hi = c * n // CHUNKS, (c + 1) * n // CHUNKS
        _gelu_forward(x[lo:hi], e[lo:hi], out[lo:hi], cdf[lo:hi])


@njit(parallel=True, cache=True, boundscheck=False)
def _gelu_forward_deriv_parallel(x, e, out, deriv):
    n = x.size
    for c in prange(CHUNKS):
        lo, hi = c * n // CHUNKS, (c + 1) * n // CHUNKS
        _gelu_forward_deriv(x[lo:hi], e[lo:hi], out[lo:hi], deriv[lo:hi])


@njit(parallel=True, cache=True, boundscheck=False)
def _gelu_backward_parallel(grad, x, e, cdf, dx):
    n = x.size
    for c in prange(CHUNKS):
        lo, hi = c * n // CHUNKS, (c + 1) * n // CHUNKS
        _gelu_backward(grad[lo:hi], x[lo:hi], e[lo:hi], cdf[lo:hi], dx[lo:hi])


def _exp_minus_half_square(x: np.ndarray) -> np.ndarray:
    """exp(-x²/2) (float32), in one buffer: x·x, then ·(-1/2) (exact: a power of two) and NumPy's SIMD exp in
    place. The same bits as `np.exp(np.float32(-0.5) * x * x)`, without its two temporaries (0.42 -> 0.35 ms
    for the baby GPT's (12, 64, 512) activations, Intel Xeon emeraldrapids, one thread)."""
    e = np.multiply(x, x)
    e *= np.float32(-0.5)
    return np.exp(e, out=e)


def erf_sqrt2(x: np.ndarray) -> np.ndarray:
    """erf(x/√2) in float64 for a float32 array (for tests)."""
    x = np.ascontiguousarray(x, dtype=np.float32).ravel()
    e = _exp_minus_half_square(x)
    return _erf_from_exp(x, e)


def gelu_forward(x: np.ndarray):
    """(x·Φ(x), Φ(x), exp(-x²/2)) for a float32 array x, each float32 of x's shape."""
    x = np.ascontiguousarray(x)
    e = _exp_minus_half_square(x)
    out, cdf = np.empty_like(x), np.empty_like(x)
    kernel = _gelu_forward_parallel if x.size >= PARALLEL_MIN else _gelu_forward
    kernel(x.ravel(), e.ravel(), out.ravel(), cdf.ravel())
    return out, cdf, e


def gelu_forward_deriv(x: np.ndarray):
    """(x·Φ(x), Φ(x) + x·φ(x)) for a float32 array x: the output and the derivative the backward needs, the
    only array a training step has to keep (the backward is then grad * deriv, one NumPy pass)."""
    x = np.ascontiguousarray(x)
    e = _exp_minus_half_square(x)
    out, deriv = np.empty_like(x), np.empty_like(x)
    kernel = _gelu_forward_deriv_parallel if x.size >= PARALLEL_MIN else _gelu_forward_deriv
    kernel(x.ravel(), e.ravel(), out.ravel(), deriv.ravel())
    return out, deriv


def gelu_backward(grad: np.ndarray, x: np.ndarray, e: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """dx from what `gelu_forward` returned (Φ and e): grad · (Φ + x·e/√(2π))."""
    grad = np.ascontiguousarray(grad, dtype=np.float32)
    dx = np.empty_like(x)
    kernel = _gelu_backward_parallel if x.size >= PARALLEL_MIN else _gelu_backward
    kernel(grad.ravel(), x.ravel(), e.ravel(), cdf.ravel(), dx.ravel())
    return dx
