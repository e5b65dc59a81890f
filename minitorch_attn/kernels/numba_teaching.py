"""A first Numba kernel: the flash-attention forward of one query tile, in plain loops (lesson 10).

`forward_tile_numba` is `tiled.flash_forward_tiled`'s inner loop for ONE head and ONE tile of query rows,
written as scalar loops and compiled by Numba's `@njit`: no NumPy temporaries, no (Br, Bc) matrix of
probabilities kept, one score at a time. `flash_forward_teaching` calls it for every (batch, head, query
tile) from Python. It is single-threaded and unblocked, so it is slow next to `numba_backend` (which adds
the transposed tiles, register-blocked matmuls, the vectorised exp and `prange`); it is here to be read
and written by a learner (Exercise 10.4), not to be fast.

No key padding here; `causal` follows `minitorch_attn.kernels.common` (query i sees keys j <= i).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .common import check_inputs
from .ops import threads  # noqa: F401  (Numba's vector width is set before any compile)


@njit(cache=True)
def forward_tile_numba(q, k, v, i0, Br, Bc, causal, scale, o, lse):
    """Forward of query rows i0 .. i0+br-1 (br = min(Br, Nq - i0)) of one head (Exercise 10.4).

    q: (Nq, d), k: (Nk, d), v: (Nk, dv), C-contiguous; writes o[i0:i0+br] (Nq × dv) and lse[i0:i0+br].
    Per query row i: running max m = -inf, normaliser l = 0, accumulator acc = 0 (dv numbers), kept in
    float64. For each key tile j0 = 0, Bc, ...: scores s_j = scale · q_i · k_j (-inf above the causal
    diagonal), m_new = max(m, max_j s_j); rescale l and acc by exp(m - m_new); then l += exp(s_j - m_new)
    and acc += exp(s_j - m_new) · v_j. At the end o_i = acc / l and lse_i = m + log l (a row that saw no
    key: o_i = 0, lse_i = -inf). With `causal`, key tiles past the tile's last query are never read.
    The body is compiled by Numba in nopython mode: scalars, loops, `math` and np.empty/zeros/full only
    (no np.where, no fancy indexing), allocated before the loops.
    """
    ### BEGIN SOLUTION
    Nq, d = q.shape
    Nk, dv = v.shape
    br = min(Br, Nq - i0)
    m = np.full(br, -np.inf)
    l = np.zeros(br)
    acc = np.zeros((br, dv))
    s = np.empty(Bc)  # the scores of one query row against one key tile
    j_end = min(Nk, i0 + br) if causal else Nk  # causal: no query of this tile sees a key past i0 + br - 1
    for j0 in range(0, j_end, Bc):
        bc = min(Bc, j_end - j0)
        for i in range(br):
            m_new = m[i]
            for j in range(bc):
                if causal and j0 + j > i0 + i:
                    s[j] = -np.inf
                else:
                    total = 0.0
                    for c in range(d):
                        total += q[i0 + i, c] * k[j0 + j, c]
                    s[j] = total * scale
                m_new = max(m_new, s[j])
            if m_new == -np.inf:
                continue  # this row has seen no key yet: nothing to add (and -inf - -inf would be NaN)
            alpha = math.exp(m[i] - m_new)  # rescales what was accumulated under the old max; 0 if m = -inf
            l[i] *= alpha
            for c in range(dv):
                acc[i, c] *= alpha
            for j in range(bc):
                p = math.exp(s[j] - m_new)
                l[i] += p
                for c in range(dv):
                    acc[i, c] += p * v[j0 + j, c]
            m[i] = m_new
    for i in range(br):
        if l[i] > 0:
            for c in range(dv):
                o[i0 + i, c] = acc[i, c] / l[i]  # normalise once, at the end
            lse[i0 + i] = m[i] + math.log(l[i])
        else:  # a row that saw no key
            for c in range(dv):
                o[i0 + i, c] = 0.0
            lse[i0 + i] = -np.inf
    ### END SOLUTION


def flash_forward_teaching(q, k, v, causal=False, scale=None, Br=32, Bc=32):
    """Attention forward for (B, H, N, d) arrays with `forward_tile_numba`, one (batch, head, query tile)
    at a time, single-threaded. Returns (o, lse) in the input dtype (accumulation in float64)."""
    q, k, v, scale, _ = check_inputs(q, k, v, scale)
    B, H, Nq, _ = q.shape
    o = np.empty((B, H, Nq, v.shape[3]), q.dtype)
    lse = np.empty((B, H, Nq), q.dtype)
    for b in range(B):
        for h in range(H):
            qh, kh, vh = (np.ascontiguousarray(a[b, h]) for a in (q, k, v))
            for i0 in range(0, Nq, Br):
                forward_tile_numba(qh, kh, vh, i0, int(Br), int(Bc), bool(causal), float(scale), o[b, h], lse[b, h])
    return o, lse
