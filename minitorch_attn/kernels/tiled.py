"""FlashAttention-2 in readable NumPy: the pseudocode of lesson 10, runnable.

Forward, for each tile of `Br` query rows: keep per row the running max `m`, the running normaliser `l`
and the unnormalised output `acc`; stream the keys and values `Bc` at a time through
`online_softmax_tile_step`; normalise once at the end (o = acc / l) and save lse = m + log l.
Nothing of size Nq × Nk is ever built: the extra memory is one (Br, Bc) score tile per head.

Backward, for each tile of `Bc` keys: recompute P = exp(S - lse) tile by tile from the saved lse, with
D = rowsum(dO ∘ O), and accumulate dV, dK for the key tile while adding each query tile's share to dQ.

All (B, H) heads are processed together: a tile is (B, H, Br, d). Tiles that lie entirely above the
causal diagonal are skipped. Conventions (causal alignment, key padding, fully masked rows): see
`minitorch_attn.kernels.common`.
"""

from __future__ import annotations

import numpy as np

from .common import allowed_mask, check_backward_inputs, check_inputs


def online_softmax_tile_step(q_tile, k_tile, v_tile, m, l, acc, scale, mask=None):
    """Fold one key/value tile into a query tile's running (m, l, acc) (Exercise 10.1).

    q_tile: (..., Br, d), k_tile: (..., Bc, d), v_tile: (..., Bc, dv); m, l: (..., Br); acc: (..., Br, dv);
    mask: None or boolean, broadcastable to (..., Br, Bc), True where the pair takes part.

        S = q_tile @ k_tileᵀ · scale            (masked pairs: -inf)
        m_new = max(m, rowmax S)
        P = exp(S - m_new)
        l = l · exp(m - m_new) + rowsum P
        acc = acc · exp(m - m_new) + P @ v_tile

    A row that has seen no key yet has m = -inf: use 0 in place of m_new in the exponentials then (so that
    exp(-inf - -inf) never makes a NaN). Returns (m_new, l, acc).
    """
    ### BEGIN SOLUTION
    S = (q_tile @ np.swapaxes(k_tile, -1, -2)) * scale
    if mask is not None:
        S = np.where(mask, S, -np.inf)
    m_new = np.maximum(m, S.max(axis=-1))
    m_safe = np.where(np.isfinite(m_new), m_new, 0)
    P = np.exp(S - m_safe[..., None])
    alpha = np.exp(m - m_safe)  # rescales what was accumulated under the old max; 0 when m = -inf
    l = l * alpha + P.sum(axis=-1)
    acc = acc * alpha[..., None] + P @ v_tile
    ### END SOLUTION
    return m_new, l, acc


def flash_forward_tiled(q, k, v, causal=False, scale=None, key_padding_mask=None, Br=64, Bc=64):
    """FlashAttention-2 forward over (Br × Bc) tiles. Returns (o, lse) (Exercise 10.2).

    For each tile of Br query rows (the last one may be shorter): start from m = -inf, l = 0, acc = 0;
    fold in the key/value tiles j0 = 0, Bc, 2·Bc, ... with `online_softmax_tile_step` (mask from
    `allowed_mask(br, bc, causal, key_padding_mask, q0=i0, k0=j0)`; with `causal`, stop at the first key tile
    that lies entirely above the diagonal); then o = acc / l and lse = m + log l, once per query tile.
    A row with l = 0 saw no key: its o is 0 and its lse -inf.
    """
    q, k, v, scale, key_padding_mask = check_inputs(q, k, v, scale, key_padding_mask)
    B, H, Nq, _ = q.shape
    Nk, dv = v.shape[2], v.shape[3]
    scale = q.dtype.type(scale)
    o = np.empty((B, H, Nq, dv), q.dtype)
    lse = np.empty((B, H, Nq), q.dtype)
    ### BEGIN SOLUTION
    for i0 in range(0, Nq, Br):
        q_tile = q[:, :, i0:i0 + Br]
        br = q_tile.shape[2]
        m = np.full((B, H, br), -np.inf, q.dtype)
        l = np.zeros((B, H, br), q.dtype)
        acc = np.zeros((B, H, br, dv), q.dtype)
        for j0 in range(0, Nk, Bc):
            if causal and j0 > i0 + br - 1:
                break  # this key tile and all later ones are above the diagonal: nothing to see
            bc = min(Bc, Nk - j0)
            mask = allowed_mask(br, bc, causal, key_padding_mask, q0=i0, k0=j0)
            m, l, acc = online_softmax_tile_step(
                q_tile, k[:, :, j0:j0 + bc], v[:, :, j0:j0 + bc], m, l, acc, scale, mask)
        seen = l > 0  # False for a fully masked row: its output is 0 and its lse -inf
        o[:, :, i0:i0 + br] = np.where(seen[..., None], acc / np.where(seen, l, 1)[..., None], 0)
        lse[:, :, i0:i0 + br] = np.where(seen, m + np.log(np.where(seen, l, 1)), -np.inf)
    ### END SOLUTION
    return o, lse


def flash_backward_tiled(q, k, v, o, lse, do, causal=False, scale=None, key_padding_mask=None, Br=64, Bc=64):
    """FlashAttention-2 backward over (Br × Bc) tiles. Returns (dq, dk, dv) (Exercise 10.3).

    For each key tile (outer loop) and query tile (inner loop):
        P = exp(S - lse);  dV_j += Pᵀ dO_i;  dP = dO_i V_jᵀ;  dS = P ∘ (dP - D_i)
        dQ_i += dS K_j · scale;  dK_j += dSᵀ Q_i · scale          with D = rowsum(dO ∘ O).

    Masked pairs get S = -inf (so P = 0); with `causal`, query tiles that end before key j0 are skipped.
    `D` and `lse_safe` (lse with -inf replaced by 0, for fully masked rows) are computed before the loops.
    """
    q, k, v, o, lse, do, scale, key_padding_mask = check_backward_inputs(
        q, k, v, o, lse, do, scale, key_padding_mask)
    Nq, Nk = q.shape[2], k.shape[2]
    scale = q.dtype.type(scale)
    dq = np.zeros_like(q)
    dk = np.empty_like(k)
    dv = np.empty_like(v)
    D = np.sum(do * o, axis=-1)  # (B, H, Nq)
    lse_safe = np.where(np.isfinite(lse), lse, 0)  # fully masked row: S = -inf there, so P = 0
    ### BEGIN SOLUTION
    for j0 in range(0, Nk, Bc):
        k_tile, v_tile = k[:, :, j0:j0 + Bc], v[:, :, j0:j0 + Bc]
        bc = k_tile.shape[2]
        dk_tile = np.zeros_like(k_tile)
        dv_tile = np.zeros_like(v_tile)
        first = (j0 // Br) * Br if causal else 0  # causal: query tiles that end before key j0 see none of it
        for i0 in range(first, Nq, Br):
            br = min(Br, Nq - i0)
            q_tile, do_tile = q[:, :, i0:i0 + br], do[:, :, i0:i0 + br]
            S = (q_tile @ np.swapaxes(k_tile, -1, -2)) * scale
            mask = allowed_mask(br, bc, causal, key_padding_mask, q0=i0, k0=j0)
            if mask is not None:
                S = np.where(mask, S, -np.inf)
            P = np.exp(S - lse_safe[:, :, i0:i0 + br, None])
            dv_tile += np.swapaxes(P, -1, -2) @ do_tile
            dP = do_tile @ np.swapaxes(v_tile, -1, -2)
            dS = P * (dP - D[:, :, i0:i0 + br, None])
            dq[:, :, i0:i0 + br] += (dS @ k_tile) * scale
            dk_tile += (np.swapaxes(dS, -1, -2) @ q_tile) * scale
        dk[:, :, j0:j0 + bc] = dk_tile
        dv[:, :, j0:j0 + bc] = dv_tile
    ### END SOLUTION
    return dq, dk, dv
