"""Attention without softmax: linear attention, Galerkin and Fourier attention, and μP's 1/d scale (lesson 14).

**Linear attention** (Katharopoulos, Vyas, Pappas & Fleuret 2020, "Transformers are RNNs"). Replace the
softmax's similarity exp(q·k) by a kernel φ(q)·φ(k) with a positive feature map φ (default
φ(x) = elu(x) + 1, which is > 0 everywhere). Then

    out_i = Σ_j (φ(q_i)·φ(k_j)) v_j / (Σ_j φ(q_i)·φ(k_j) + eps)
          = φ(q_i)ᵀ (Σ_j φ(k_j) v_jᵀ) / (φ(q_i)ᵀ Σ_j φ(k_j) + eps),

the same numbers computed in another order: (φ(Q) φ(K)ᵀ) V costs O(N² d) and an N×N matrix, φ(Q) (φ(K)ᵀ V)
costs O(N d dv) and a d×dv matrix. With a causal mask the sums run over j ≤ i: running prefix sums
S_i = Σ_{j≤i} φ(k_j) v_jᵀ and z_i = Σ_{j≤i} φ(k_j), i.e. an RNN whose state is (S, z), d×dv + d numbers.
`eps` (1e-6, as in the authors' code) keeps the denominator away from 0 when every φ(k) underflows
(logits below about -745 in float64); the quadratic reference uses the same eps, so both agree to rounding.

**Galerkin and Fourier attention** (Cao 2021, "Choose a Transformer: Fourier or Galerkin", NeurIPS 2021).
No softmax and no feature map; layer normalisation LN (over the feature axis, no affine weights, eps 1e-5)
goes on the two tensors that are multiplied first, and the sum over the N points is divided by N:

    Galerkin  z = Q (LN(K)ᵀ LN(V)) / N          Fourier  z = (LN(Q) LN(K)ᵀ) V / N

(the author's README: "Q, K get layer normalized in the local attention [Fourier], as for K, V in the global
attention [Galerkin]"). Both are Riemann sums of integrals over the domain the N points sample, so they
converge as the grid is refined. `order` picks the grouping ("kv": Q(KᵀV), "qk": (QKᵀ)V); in exact
arithmetic both are equal.

**μP's attention scale** (Yang et al. 2022, Tensor Programs V): when q and k are correlated, q·k grows like d,
not √d, so the logits are scaled by 1/d. `correlated_qk` samples such pairs; `qk_scale_stats` measures
|q·k|/√d and |q·k|/d.

Shapes: q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv), with the same batch axes; the result is
(..., Nq, dv). Causal linear attention needs Nq == Nk. Everything is built from Tensor ops, so autograd works.
"""

from __future__ import annotations

import numpy as np

from ..autograd import Tensor, matmul
from ..autograd.linear_attention import CumSum, EluPlusOne
from .common import layer_norm, relu
from .sdpa import causal_mask

FEATURE_MAPS = ("elu+1", "relu", "identity")
ORDERS = ("kv", "qk")


def _as_float_tensor(x, what: str) -> Tensor:
    """`to_tensor`'s rule, stricter: only numbers are accepted, and integers become float32 (linear
    attention's feature maps and sums need floats)."""
    if isinstance(x, Tensor):
        return x
    a = np.asarray(x)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{what} must be a tensor of numbers; got dtype {a.dtype}")
    return Tensor(a if a.dtype.kind == "f" else a.astype(np.float32))


def elu_plus_one(x) -> Tensor:
    """elu(x) + 1, elementwise (the feature map of linear attention)."""
    return EluPlusOne.apply(_as_float_tensor(x, "elu_plus_one: x"))


def cumsum(x, axis: int = -1) -> Tensor:
    """Running sum along `axis` (differentiable)."""
    x = _as_float_tensor(x, "cumsum: x")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"cumsum: axis {axis} is out of range for a tensor of shape {x.shape}")
    return CumSum.apply(x, axis=axis % x.ndim)


def apply_feature_map(x: Tensor, feature_map) -> Tensor:
    """φ(x) for a feature map named in FEATURE_MAPS, or a callable Tensor -> Tensor."""
    if callable(feature_map):
        return feature_map(x)
    if feature_map == "elu+1":
        return elu_plus_one(x)
    if feature_map == "relu":
        return relu(x)
    if feature_map == "identity":
        return x
    raise ValueError(f"feature_map must be one of {FEATURE_MAPS} or a callable; got {feature_map!r}")


def check_qkv(what: str, q, k, v, causal: bool = False) -> tuple[Tensor, Tensor, Tensor]:
    """Tensors q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv) with equal batch axes, or a ValueError naming
    the shapes. Causal attention also needs Nq == Nk."""
    q, k, v = (_as_float_tensor(t, f"{what}: {n}") for t, n in ((q, "q"), (k, "k"), (v, "v")))
    shapes = f"q {q.shape}, k {k.shape}, v {v.shape}"
    if min(q.ndim, k.ndim, v.ndim) < 2:
        raise ValueError(f"{what}: q, k, v need at least 2 axes (..., N, d); got {shapes}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{what}: q and k must have the same feature size d (last axis); got {shapes}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{what}: k and v must have the same number of keys Nk (axis -2); got {shapes}")
    if not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        raise ValueError(f"{what}: q, k, v must have the same batch axes (all but the last two); got {shapes}")
    if 0 in (q.shape[-2], k.shape[-2], q.shape[-1], v.shape[-1]):
        raise ValueError(f"{what}: empty sequence or feature axis; got {shapes}")
    if causal and q.shape[-2] != k.shape[-2]:
        raise ValueError(f"{what}: causal attention needs as many queries as keys (Nq == Nk); got {shapes}")
    return q, k, v


# ---- linear attention ------------------------------------------------------------------------------------
def linear_attention_regrouped(fq: Tensor, fk: Tensor, v: Tensor, eps: float = 1e-6) -> Tensor:
    """Non-causal linear attention from the features fq = φ(q) (..., Nq, d), fk = φ(k) (..., Nk, d) (Exercise 14.1).

        out = fq (fkᵀ v) / (fq · Σ_j fk_j + eps)        shapes: (..., Nq, d) @ (..., d, dv) -> (..., Nq, dv)

    Never builds the Nq×Nk matrix: KV = fkᵀ v is d×dv, the normaliser z = Σ_j fk_j is one d-vector, and the
    denominator of row i is fq_i · z (plus eps), one number per query.
    """
    ### BEGIN SOLUTION
    kv = matmul(fk.transpose(-2, -1), v)  # (..., d, dv): Σ_j φ(k_j) v_jᵀ
    z = fk.sum(axis=-2, keepdims=True)  # (..., 1, d): Σ_j φ(k_j)
    numerator = matmul(fq, kv)  # (..., Nq, dv)
    denominator = (fq * z).sum(axis=-1, keepdims=True) + eps  # (..., Nq, 1)
    return numerator / denominator
    ### END SOLUTION


def causal_linear_attention_prefix(fq: Tensor, fk: Tensor, v: Tensor, eps: float = 1e-6) -> Tensor:
    """Causal linear attention as prefix sums over the sequence axis (Exercise 14.2).

    fq = φ(q), fk = φ(k): (..., N, d); v: (..., N, dv). Row i only sees keys j <= i:

        S_i = Σ_{j<=i} fk_j v_jᵀ   (..., N, d, dv): cumsum over the sequence axis of the outer products
        z_i = Σ_{j<=i} fk_j        (..., N, d)
        out_i = fq_iᵀ S_i / (fq_i · z_i + eps)

    Use `cumsum` (differentiable) and reshape to form the outer products and the row-wise products; the
    result is (..., N, dv). It stores all N states (N·d·dv numbers): simple, not frugal —
    `linear_attention_recurrent` keeps only the last one.
    """
    ### BEGIN SOLUTION
    *batch, n, d = fk.shape
    dv = v.shape[-1]
    outer = fk.reshape(*batch, n, d, 1) * v.reshape(*batch, n, 1, dv)  # (..., N, d, dv): φ(k_j) v_jᵀ
    states = cumsum(outer, axis=-3)  # S_i
    z = cumsum(fk, axis=-2)  # z_i
    numerator = matmul(fq.reshape(*batch, n, 1, d), states).reshape(*batch, n, dv)
    denominator = (fq * z).sum(axis=-1, keepdims=True) + eps
    return numerator / denominator
    ### END SOLUTION


def linear_attention(q, k, v, causal: bool = False, feature_map="elu+1", eps: float = 1e-6) -> Tensor:
    """Linear attention (Katharopoulos et al. 2020): out_i = Σ_j φ(q_i)·φ(k_j) v_j / (Σ_j φ(q_i)·φ(k_j) + eps).

    q (..., Nq, d), k (..., Nk, d), v (..., Nk, dv) -> (..., Nq, dv), computed in O(N d dv) by regrouping;
    causal=True sums over j <= i only (prefix sums; needs Nq == Nk). feature_map: "elu+1" (default),
    "relu", "identity" or a callable. The same numbers as `linear_attention_quadratic`, up to rounding.
    """
    q, k, v = check_qkv("linear_attention", q, k, v, causal)
    fq, fk = apply_feature_map(q, feature_map), apply_feature_map(k, feature_map)
    if causal:
        return causal_linear_attention_prefix(fq, fk, v, eps)
    return linear_attention_regrouped(fq, fk, v, eps)


def linear_attention_quadratic(q, k, v, causal: bool = False, feature_map="elu+1", eps: float = 1e-6) -> Tensor:
    """The reference: the same kernel attention through the Nq×Nk matrix A = φ(q) φ(k)ᵀ (O(N² d) time and
    O(N²) memory): out = A v / (A·1 + eps), with A's entries j > i set to 0 when causal."""
    q, k, v = check_qkv("linear_attention_quadratic", q, k, v, causal)
    fq, fk = apply_feature_map(q, feature_map), apply_feature_map(k, feature_map)
    a = matmul(fq, fk.transpose(-2, -1))
    if causal:
        n = q.shape[-2]
        a = a * causal_mask(n, n).astype(a.dtype)
    return matmul(a, v) / (a.sum(axis=-1, keepdims=True) + eps)


def linear_attention_recurrent(q, k, v, feature_map="elu+1", eps: float = 1e-6) -> np.ndarray:
    """Causal linear attention as an RNN, one step per position, in NumPy (no autograd): the state is
    S (..., d, dv) and z (..., d); step i adds φ(k_i) v_iᵀ to S and φ(k_i) to z, then reads
    out_i = φ(q_i)ᵀ S / (φ(q_i)·z + eps). Memory does not grow with N: this is how a model generates."""
    q, k, v = check_qkv("linear_attention_recurrent", q, k, v, causal=True)
    fq = apply_feature_map(q, feature_map).data
    fk = apply_feature_map(k, feature_map).data
    vv = v.data
    state = np.zeros((*fk.shape[:-2], fk.shape[-1], vv.shape[-1]), dtype=np.result_type(fk, vv))
    z = np.zeros((*fk.shape[:-2], fk.shape[-1]), dtype=fk.dtype)
    out = np.empty((*fq.shape[:-1], vv.shape[-1]), dtype=state.dtype)
    for i in range(fq.shape[-2]):
        state += fk[..., i, :, None] * vv[..., i, None, :]
        z += fk[..., i, :]
        num = np.einsum("...d,...de->...e", fq[..., i, :], state)
        out[..., i, :] = num / ((fq[..., i, :] * z).sum(axis=-1, keepdims=True) + eps)
    return out


# ---- Galerkin and Fourier attention ------------------------------------------------------------------------
def check_order(what: str, order: str) -> None:
    if order not in ORDERS:
        raise ValueError(f"{what}: order must be 'kv' (Q(KᵀV)) or 'qk' ((QKᵀ)V); got {order!r}")


def galerkin_attention(q, k, v, order: str = "kv", eps: float = 1e-5) -> Tensor:
    """Galerkin-type attention (Cao 2021): z = Q (LN(K)ᵀ LN(V)) / N, N = the number of keys (Exercise 14.3).

    LN = F.layer_norm over the feature axis, no affine weights, `eps` inside the square root. order="kv"
    (default) multiplies LN(K)ᵀ LN(V) first, a d×dv matrix: O(N d dv); order="qk" computes (Q LN(K)ᵀ) LN(V)
    through an Nq×Nk matrix — the same numbers up to rounding. No softmax, no normaliser row sums.
    """
    q, k, v = check_qkv("galerkin_attention", q, k, v)
    check_order("galerkin_attention", order)
    n = k.shape[-2]
    ### BEGIN SOLUTION
    k_n = layer_norm(k, k.shape[-1], eps=eps)
    v_n = layer_norm(v, v.shape[-1], eps=eps)
    if order == "kv":
        return matmul(q, matmul(k_n.transpose(-2, -1), v_n)) / n
    return matmul(matmul(q, k_n.transpose(-2, -1)), v_n) / n
    ### END SOLUTION


def fourier_attention(q, k, v, order: str = "qk", eps: float = 1e-5) -> Tensor:
    """Fourier-type attention (Cao 2021): z = (LN(Q) LN(K)ᵀ) V / N, N = the number of keys.

    LN as in `galerkin_attention`, on Q and K this time. order="qk" (default) builds the Nq×Nk kernel matrix;
    order="kv" regroups to LN(Q) (LN(K)ᵀ V), the same numbers up to rounding.
    """
    q, k, v = check_qkv("fourier_attention", q, k, v)
    check_order("fourier_attention", order)
    n = k.shape[-2]
    q_n = layer_norm(q, q.shape[-1], eps=eps)
    k_n = layer_norm(k, k.shape[-1], eps=eps)
    if order == "kv":
        return matmul(q_n, matmul(k_n.transpose(-2, -1), v)) / n
    return matmul(matmul(q_n, k_n.transpose(-2, -1)), v) / n


def grid_function(x: np.ndarray, periodic: bool = True) -> np.ndarray:
    """A smooth function sampled at points x in [0, 1), three channels, shape (len(x), 3): the input of the
    grid-refinement experiment. periodic=True: sin 2πx, exp(sin 2πx), cos 4πx (smooth and 1-periodic);
    periodic=False: sin 2πx, a Gaussian bump and tanh(3x - 1), whose values at x = 0 and 1 differ."""
    x = np.asarray(x, dtype=np.float64)
    if periodic:
        channels = [np.sin(2 * np.pi * x), np.exp(np.sin(2 * np.pi * x)), np.cos(4 * np.pi * x)]
    else:
        channels = [np.sin(2 * np.pi * x), np.exp(-8 * (x - 0.4) ** 2), np.tanh(3 * x - 1)]
    return np.stack(channels, axis=-1)


def grid_attention(n: int, kind: str = "galerkin", d: int = 16, periodic: bool = True,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Galerkin or Fourier attention over the grid x_j = j / n, j = 0..n-1, of `grid_function`'s samples.

    Q, K, V = u Wq, u Wk, u Wv with fixed random weights (3, d) drawn from `seed` (the same for every n), so a
    finer grid samples the same continuous operator; the sum over the n points divided by n is the rectangle
    rule for an integral over [0, 1). Returns (x, z), z of shape (n, d), in float64."""
    if kind not in ("galerkin", "fourier"):
        raise ValueError(f"grid_attention: kind must be 'galerkin' or 'fourier'; got {kind!r}")
    if n < 1 or d < 1:
        raise ValueError(f"grid_attention: need n >= 1 and d >= 1; got n={n}, d={d}")
    x = np.arange(n) / n
    u = grid_function(x, periodic)
    rng = np.random.default_rng(seed)
    wq, wk, wv = (rng.standard_normal((u.shape[-1], d)) for _ in range(3))
    fn = galerkin_attention if kind == "galerkin" else fourier_attention
    return x, fn(Tensor(u @ wq), Tensor(u @ wk), Tensor(u @ wv)).data


# ---- μP: the 1/d attention scale ---------------------------------------------------------------------------
def correlated_qk(d: int, alignments, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One query q (d,) and keys k_j (len(alignments), d) with unit-variance entries and E[q·k_j] = c_j d / 2.

    q = (s + a) / √2 and k_j = (c_j s + √(2 - c_j²) b_j) / √2, with s, a, b_j independent N(0, I_d): c_j = 0
    gives an independent key (q·k ~ √d), c_j = 1 a key that shares the direction s with q (q·k ≈ d / 2), as
    queries and keys do after training. c_j must lie in [-1, 1]."""
    c = np.atleast_1d(np.asarray(alignments, dtype=np.float64))
    if c.ndim != 1 or np.any(np.abs(c) > 1):
        raise ValueError(f"correlated_qk: alignments must be a 1-D list of numbers in [-1, 1]; got {alignments!r}")
    if d < 1:
        raise ValueError(f"correlated_qk: d must be >= 1; got {d}")
    s, a = rng.standard_normal(d), rng.standard_normal(d)
    b = rng.standard_normal((len(c), d))
    q = (s + a) / np.sqrt(2)
    k = (c[:, None] * s + np.sqrt(2 - c[:, None] ** 2) * b) / np.sqrt(2)
    return q, k


def qk_scale_stats(ds, alignment: float, trials: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """Mean |q·k|/√d and |q·k|/d over `trials` pairs from `correlated_qk` with one key of this alignment,
    for every d in `ds`. Returns {"d", "sqrt_d", "d_scaled"} arrays (float64)."""
    if trials < 1:
        raise ValueError(f"qk_scale_stats: trials must be >= 1; got {trials}")
    rng = np.random.default_rng(seed)
    ds = np.asarray(list(ds), dtype=np.int64)
    by_sqrt, by_d = [], []
    for d in ds:
        dots = np.array([abs(float(q @ k[0])) for q, k in (correlated_qk(int(d), [alignment], rng)
                                                          for _ in range(trials))])
        by_sqrt.append(dots.mean() / np.sqrt(d))
        by_d.append(dots.mean() / d)
    return {"d": ds, "sqrt_d": np.array(by_sqrt), "d_scaled": np.array(by_d)}
