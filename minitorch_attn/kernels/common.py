"""What every attention kernel shares: the argument checks and the masking conventions.

Contract (the same for every backend, see `flash_attention`):

- q: (B, H, Nq, d), k: (B, H, Nk, d), v: (B, H, Nk, dv); all float32 or all float64 (the same dtype).
- `scale` defaults to 1/sqrt(d).
- `causal=True` follows torch's `is_causal`: the mask is aligned to the top-left corner, so query i sees
  keys j <= i, also when Nq != Nk (with Nq > Nk the queries i >= Nk see every key; with Nq < Nk the last
  keys are never seen).
- `key_padding_mask`: boolean (B, Nk), True where the key is padding and must be ignored (torch's
  `key_padding_mask` convention in `nn.MultiheadAttention`; the opposite of `F.scaled_dot_product_attention`'s
  boolean `attn_mask`, where True means "take part").
- A row that sees no key at all (every key padded, or Nk = 0) is *fully masked*: by definition its output
  is 0, its lse is -inf and it passes no gradient (dq = 0 for it, and it adds nothing to dk, dv). This is
  what torch 2.13's `scaled_dot_product_attention` returns on the CPU too, and what `F.scaled_dot_product_attention`
  documents (minitorch_attn/functional/sdpa.py).
- Returns o: (B, H, Nq, dv) and lse: (B, H, Nq), `lse = m + log(l)` = logsumexp of the scaled, masked
  scores of each query row, both in the input dtype.
"""

from __future__ import annotations

import math

import numpy as np

from ..shapes import shape_of

DTYPES = (np.float32, np.float64)


def check_inputs(q, k, v, scale=None, key_padding_mask=None):
    """Check the forward arguments; return (q, k, v, scale, key_padding_mask) as ndarrays and a float.

    Raises ValueError / TypeError naming the offending shapes or dtypes.
    """
    q, k, v = (np.asarray(a) for a in (q, k, v))
    for name, a in (("q", q), ("k", k), ("v", v)):
        if a.ndim != 4:
            raise ValueError(f"{name} must have shape (B, H, N, d); got {name}.shape = {shape_of(a)}")
        if a.dtype not in DTYPES:
            raise TypeError(f"{name} must be float32 or float64; got {name}.dtype = {a.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"q, k, v must share one dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
    B, H, _, d = q.shape
    if k.shape[:2] != (B, H) or v.shape[:2] != (B, H):
        raise ValueError(f"q, k, v must agree on (B, H); got q {shape_of(q)}, k {shape_of(k)}, v {shape_of(v)}")
    if k.shape[3] != d:
        raise ValueError(f"q and k must have the same head dim d; got q {shape_of(q)}, k {shape_of(k)}")
    if v.shape[2] != k.shape[2]:
        raise ValueError(f"k and v must have the same number of keys Nk; got k {shape_of(k)}, v {shape_of(v)}")
    if d == 0:
        raise ValueError(f"the head dim d must be at least 1; got q {shape_of(q)}")
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    if key_padding_mask is not None:
        key_padding_mask = np.asarray(key_padding_mask)
        if key_padding_mask.dtype != np.bool_:
            raise TypeError(f"key_padding_mask must be boolean (True = padding, ignored); "
                            f"got dtype {key_padding_mask.dtype}")
        if key_padding_mask.shape != (B, k.shape[2]):
            raise ValueError(f"key_padding_mask must have shape (B, Nk) = ({B}, {k.shape[2]}); "
                             f"got {shape_of(key_padding_mask)}")
    return q, k, v, scale, key_padding_mask


def check_backward_inputs(q, k, v, o, lse, do, scale=None, key_padding_mask=None):
    """`check_inputs`, plus o: (B, H, Nq, dv), lse: (B, H, Nq) and do: like o, all in the dtype of q."""
    q, k, v, scale, key_padding_mask = check_inputs(q, k, v, scale, key_padding_mask)
    o, lse, do = (np.asarray(a) for a in (o, lse, do))
    want_o = q.shape[:3] + (v.shape[3],)
    for name, a, want in (("o", o, want_o), ("do", do, want_o), ("lse", lse, q.shape[:3])):
        if a.shape != want:
            raise ValueError(f"{name} must have shape {want} for q {shape_of(q)} and v {shape_of(v)}; "
                             f"got {name}.shape = {shape_of(a)}")
        if a.dtype != q.dtype:
            raise TypeError(f"{name} must have the dtype of q ({q.dtype}); got {a.dtype}")
    return q, k, v, o, lse, do, scale, key_padding_mask


def allowed_mask(nq: int, nk: int, causal: bool, key_padding_mask=None, q0: int = 0, k0: int = 0):
    """Boolean mask of the (query, key) pairs that take part, for queries q0.. and keys k0..

    Shape (nq, nk) without padding, (B, 1, nq, nk) with it, ready to broadcast against (B, H, nq, nk).
    Returns None when every pair takes part (nothing to mask).
    """
    mask = None
    if causal:
        mask = (q0 + np.arange(nq))[:, None] >= (k0 + np.arange(nk))[None, :]
    if key_padding_mask is not None:
        keep = ~key_padding_mask[:, None, None, k0:k0 + nk]
        mask = keep if mask is None else (mask & keep)
    return mask
