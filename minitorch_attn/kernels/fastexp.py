"""A vectorisable exp for Numba kernels: the N² exponentials of attention cost as much as its matmuls.

Numba's `math.exp` is a scalar libm call (about 2–3 ns an element here); LLVM cannot vectorise it, and the
PyPI llvmlite has no SVML. This one is plain arithmetic that LLVM turns into AVX-512/AVX2 code:

    exp(x) = 2ⁿ · exp(r),   n = round(x · log2 e),   r = x - n · ln 2  (|r| <= ln2 / 2)

`r` is computed in two steps (Cody–Waite: ln 2 = LN2_HI + LN2_LO, LN2_HI with few mantissa bits so that
n · LN2_HI is exact), exp(r) by a degree-6 polynomial (Cephes' expf coefficients, relative error ~1e-7), and
2ⁿ by writing n + 127 into the exponent bits of a float32. Numba has no scalar bit-cast, so
`int32_bits_as_float32` is a four-line `@intrinsic` that emits LLVM's `bitcast` (an earlier version wrote
the bits into an int32 buffer viewed as float32 and needed a second loop: 0.35–0.42 ns an element against
0.22 ns for this one-loop version, one core; see benchmarks/NOTES_attention_cpu.md).

Range: inputs below about -87 give exactly 0 (n <= -126: the result would be below 2⁻¹²⁵; flushing avoids
denormals, which are slow), -inf gives 0, inputs are clamped at 88 (exp(88) ≈ 1.65e38 < float32 max). NaN is not
supported (the kernels never produce it). float64 rows use the exact `math.exp`.

The kernels call `exp_shift_rowsum` / `exp_sub_accumulate`; `fast_exp(x)` exposes the same code for tests.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import intrinsic, overload

from .ops import threads  # noqa: F401  (Numba's vector width is set before any compile)

# fastmath flags that are safe here: reassociation (vectorised sums), FMA contraction, no signed zeros.
# Not 'ninf'/'nnan': masked scores are -inf and must stay -inf.
FASTMATH = {"reassoc", "contract", "nsz"}

LOG2E = np.float32(1.4426950408889634)
LN2_HI = np.float32(0.693359375)  # 0.693359375 = 355/512: n · LN2_HI is exact for |n| < 2¹⁵
LN2_LO = np.float32(-2.12194440e-4)
X_LO = np.float32(-88.0)  # clamp (-inf included); results below ~exp(-87) are flushed to 0 anyway
X_HI = np.float32(88.0)
C6, C5, C4 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
C3, C2, C1 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)
HALF, ONE = np.float32(0.5), np.float32(1.0)


@intrinsic
def int32_bits_as_float32(typingctx, bits):
    """The float32 whose 32 bits are those of the int32 `bits` (a bit-cast, not a conversion)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return types.float32(types.int32), codegen


@njit(inline="always", fastmath=FASTMATH)
def fast_exp32(x):
    """exp(x) for a float32 x, in plain arithmetic that LLVM vectorises when it sits in a loop."""
    x = min(max(x, X_LO), X_HI)
    # n = round(x · log2 e), kept a float32: math.floor would return an integer (int64 in Numba) and the
    # float -> int64 -> float round trip made the whole loop 2x slower on an Intel Xeon (0.57 -> 0.30 ns/element)
    t = np.floor(x * LOG2E + HALF)
    r = x - t * LN2_HI - t * LN2_LO  # |r| <= ln2 / 2
    p = C6 * r + C5
    p = p * r + C4
    p = p * r + C3
    p = p * r + C2
    p = p * r + C1
    p = p * r * r + r + ONE  # exp(r)
    e = np.int32(t) + np.int32(127)  # the biased exponent of 2ⁿ
    bits = np.int32(e << np.int32(23)) if e > np.int32(1) else np.int32(0)  # 2ⁿ, or 0 below 2⁻¹²⁶
    return p * int32_bits_as_float32(bits)


def exp_shift_rowsum(s, n, shift):
    """s[:n] = exp(s[:n] - shift) in place (shift: a scalar); return the sum of those n values.

    The Python reference of the contract; in Numba code the overload below is compiled instead.
    """
    s[:n] = np.exp(s[:n] - shift)
    return s[:n].sum()


def exp_sub_accumulate(s, n, shift, total):
    """s[:n] = exp(s[:n] - shift[:n]) in place (shift: a vector) and total[:n] += s[:n]."""
    s[:n] = np.exp(s[:n] - shift[:n])
    total[:n] += s[:n]


@overload(exp_shift_rowsum, jit_options={"fastmath": FASTMATH})
def _exp_shift_rowsum_numba(s, n, shift):
    exp = fast_exp32 if s.dtype == types.float32 else math.exp  # float64: exact

    def impl(s, n, shift):
        total = s.dtype.type(0.0)
        for j in range(n):
            s[j] = exp(s[j] - shift)
            total += s[j]
        return total

    return impl


@overload(exp_sub_accumulate, jit_options={"fastmath": FASTMATH})
def _exp_sub_accumulate_numba(s, n, shift, total):
    exp = fast_exp32 if s.dtype == types.float32 else math.exp

    def impl(s, n, shift, total):
        for j in range(n):
            s[j] = exp(s[j] - shift[j])
            total[j] += s[j]

    return impl


@njit(cache=True, fastmath=FASTMATH)
def _fast_exp_rows(x2d):
    for r in range(x2d.shape[0]):
        exp_shift_rowsum(x2d[r], x2d.shape[1], x2d.dtype.type(0.0))


def fast_exp(x):
    """exp(x) computed by the kernels' exp (float32: the polynomial above; float64: exact)."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    out = np.array(x, copy=True, order="C").reshape(-1, x.shape[-1] if x.ndim else 1)
    _fast_exp_rows(out)
    return out.reshape(x.shape)
