"""How sharp can softmax be? The dispersion bound and adaptive temperature (lesson 12).

After Veličković, Perivolaropoulos, Barbero & Pascanu, "softmax is not enough (for sharp
out-of-distribution)" (arXiv 2410.01104).

**The bound.** If the n logits of a row all lie in an interval of width Δ = max − min, the largest softmax
weight is at most

    e^Δ / (e^Δ + n − 1)  =  1 / (1 + (n − 1) e^(−Δ)),

reached when one logit sits at the top of the interval and the other n − 1 at the bottom. For any bounded
Δ it goes to 0 as n grows: a model whose logits are bounded (every MLP on bounded inputs) must disperse its
attention when it sees more items than it was trained on.

**Adaptive temperature** (the paper's inference-time patch, its JAX listing): compute the Shannon
entropy H (nats) of the row's softmax; if H > 0.5, multiply the logits by

    β = max(polyval(POLY_COEFFS, H), 1),   POLY_COEFFS = [−0.037, 0.481, −2.3, 4.917, −1.791]

(highest degree first, as `numpy.polyval`), else β = 1; then take softmax(β · logits). β ≥ 1 never
raises the entropy. β is a constant computed from the data, not a parameter: it is applied at inference
only and nothing is differentiated through it (the functions here work on NumPy arrays, outside autograd).
The polynomial falls below 1 for good at H ≈ 5.94 nats (`beta_cutoff_entropy()`), so a row flatter than
that, e.g. a near-uniform row over more than e^5.94 ≈ 380 items, is left as it is.

Conventions: probabilities and entropies in float64 unless the input is float32 (kept); entropy uses
0·log 0 = 0, so masked entries (logit −inf, weight 0) contribute nothing; a row whose logits are all −inf
has no softmax (NaN, as in lesson 02) and gets β = 1.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor, no_grad
from .common import softmax

POLY_COEFFS = (-0.037, 0.481, -2.3, 4.917, -1.791)  # β(H), highest degree first (numpy.polyval order)
ENTROPY_THRESHOLD = 0.5  # rows with H <= 0.5 nats are already sharp: β = 1


def as_float_array(x, what: str) -> np.ndarray:
    """`x` as a float32 or float64 NumPy array (a Tensor gives its .data; integers become float64)."""
    a = x.data if isinstance(x, Tensor) else np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{what} must be numbers; got an array of dtype {a.dtype}")
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def check_row_axis(a: np.ndarray, axis: int, what: str) -> int:
    """`axis` as an index in [0, a.ndim); ValueError for a 0-d array, an axis out of range or an empty row."""
    if a.ndim == 0:
        raise ValueError(f"{what} needs at least one axis (a row of items); got a 0-d array")
    if not -a.ndim <= axis < a.ndim:
        raise ValueError(f"{what}: axis {axis} is out of range for an array of shape {a.shape}")
    if a.shape[axis] == 0:
        raise ValueError(f"{what}: axis {axis} of shape {a.shape} is empty; a row needs at least one item")
    return axis % a.ndim


def max_weight_bound(delta, n):
    """The largest softmax weight possible for n logits spread over an interval of width `delta`
    (Exercise 12.1): e^Δ / (e^Δ + n − 1), written as 1 / (1 + (n − 1) e^(−Δ)) so that Δ = 1e4 or
    Δ = inf gives 1 instead of inf / inf. n = 1 gives 1 (one item takes all the weight).

    `delta` (≥ 0) and `n` (≥ 1) broadcast; returns a float64 array (a float for scalar inputs).
    """
    d = np.asarray(delta, dtype=np.float64)
    k = np.asarray(n, dtype=np.float64)
    if np.isnan(d).any() or (d < 0).any():
        raise ValueError(f"max_weight_bound: delta (max logit - min logit) must be >= 0; got {delta}")
    if np.isnan(k).any() or (k < 1).any():
        raise ValueError(f"max_weight_bound: n (the number of items) must be >= 1; got {n}")
    ### BEGIN SOLUTION
    bound = 1.0 / (1.0 + (k - 1.0) * np.exp(-d))
    ### END SOLUTION
    return float(bound) if bound.ndim == 0 else bound


def entropy(p, axis: int = -1):
    """Shannon entropy H(p) = −Σ p log p in nats along `axis` (Exercise 12.2), with 0·log 0 = 0:
    a weight of exactly 0 (a masked item) adds nothing, and never produces NaN.

    H is 0 for a one-hot row and log n for a uniform row of n items. `p` must be probabilities: no
    negative entries and every row summing to 1 (to 1e-3, float32 round-off); a NaN row (the softmax of an
    all-masked row) gives NaN. Returns an array of shape p.shape without `axis`, in p's float dtype.
    """
    p = as_float_array(p, "entropy: p")
    axis = check_row_axis(p, axis, "entropy")
    if (p < 0).any():
        raise ValueError(f"entropy expects probabilities; p of shape {p.shape} has negative entries "
                         f"(min {p.min():.4g}). Did you pass logits? Take softmax(logits) first.")
    with np.errstate(invalid="ignore"):
        sums = p.sum(axis=axis)
    finite = sums[np.isfinite(sums)]
    if finite.size and np.abs(finite - 1).max() > 1e-3:
        raise ValueError(f"entropy expects probabilities summing to 1 along axis {axis}; p of shape {p.shape} "
                         f"has row sums from {finite.min():.4g} to {finite.max():.4g}. Did you pass logits, "
                         "or normalise along another axis?")
    ### BEGIN SOLUTION
    safe = np.where(p > 0, p, 1.0)  # log 1 = 0: zero weights contribute 0, not 0 * -inf = NaN
    h = -(p * np.log(safe)).sum(axis=axis)
    ### END SOLUTION
    return h


def softmax_array(z: np.ndarray, axis: int) -> np.ndarray:
    """The library's softmax on a NumPy array, outside autograd (NaN for an all -inf row)."""
    with no_grad(), np.errstate(invalid="ignore"):
        return softmax(Tensor(z), axis=axis).data


def softmax_entropy(logits) -> float:
    """The entropy (nats) of softmax(logits) over the last axis, averaged over the other axes: `entropy`
    of `softmax_array`, as one float (lesson 14 plots it against the head dimension)."""
    return float(np.mean(entropy(softmax_array(np.asarray(logits, dtype=np.float64), -1))))


def adaptive_temperature(logits, axis: int = -1):
    """Softmax with the paper's adaptive temperature (Exercise 12.3). Returns (probs, beta).

    1. p = softmax(logits) along `axis`, and its entropy H (nats);
    2. β = max(polyval(POLY_COEFFS, H), 1) where H > ENTROPY_THRESHOLD (0.5), else β = 1;
    3. probs = softmax(β · logits) along `axis`.

    `beta` has the shape of `logits` without `axis` (one temperature per row); `probs` has the shape and
    float dtype of `logits`. Masked entries (−inf) stay at weight 0; an all −inf row gives NaN probs and
    β = 1. Inference only: β is computed from the data and not differentiated.
    """
    z = as_float_array(logits, "adaptive_temperature: logits")
    axis = check_row_axis(z, axis, "adaptive_temperature")
    if np.isnan(z).any() or np.isposinf(z).any():
        bad = tuple(int(i) for i in np.argwhere(np.isnan(z) | np.isposinf(z))[0])
        raise ValueError(f"adaptive_temperature: logits of shape {z.shape} must be finite or -inf (masked); "
                         f"got {z[bad]} at index {bad}")
    ### BEGIN SOLUTION
    h = entropy(softmax_array(z, axis), axis=axis)
    poly = np.polyval(np.asarray(POLY_COEFFS, dtype=z.dtype), h)
    beta = np.where(h > ENTROPY_THRESHOLD, np.maximum(poly, 1.0), 1.0).astype(z.dtype)
    with np.errstate(invalid="ignore"):  # an all -inf row: -inf * 1 stays -inf, its softmax is NaN
        probs = softmax_array(z * np.expand_dims(beta, axis), axis)
    ### END SOLUTION
    return probs, beta


def beta_curve(h):
    """β as a function of the entropy h (nats): the rule of `adaptive_temperature` on its own, for plots."""
    h = np.asarray(h, dtype=np.float64)
    return np.where(h > ENTROPY_THRESHOLD, np.maximum(np.polyval(POLY_COEFFS, h), 1.0), 1.0)


def beta_cutoff_entropy() -> float:
    """The entropy past which β is clamped to 1 for good: the largest real root of polyval(POLY_COEFFS) − 1."""
    coeffs = np.array(POLY_COEFFS, dtype=np.float64)
    coeffs[-1] -= 1.0
    roots = np.roots(coeffs)
    real = roots[np.abs(roots.imag) < 1e-9].real
    return float(real.max())


