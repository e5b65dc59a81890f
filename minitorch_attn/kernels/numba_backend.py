"""FlashAttention-2 on the CPU with Numba: the algorithm of `tiled.py`, compiled and run on every core.

Same names as the NumPy version: query tiles of `Br` rows, key/value tiles of `Bc`, running `m`, `l`, `acc`,
`lse = m + log l`, and `D = rowsum(dO ∘ O)` in the backward. What changes is how the work is laid out
(each choice measured in benchmarks/NOTES_attention_cpu.md):

- Forward: one work item per (head, query tile), split over the threads with `prange`. An item owns its
  buffers (allocated once per item, never inside the loops over tiles) and writes only its own rows of o and
  lse, so items share nothing. With `causal`, query tile t needs t + 1 key tiles; the items are ordered
  cheapest, dearest, next cheapest, ... so that prange's equal contiguous chunks carry equal work.
  The tile is held transposed, keys × queries (`S_t`: (Bc, Br), `acc_t`: (dv, Br)): every online-softmax
  step is then elementwise along rows of Br queries (the running max is a max of rows: no horizontal
  reduction) and both matmuls run their innermost loop over the Br queries (Br = 256: long vector loops).
- Backward: one work item per (head, share of its key tiles). An item owns dK and dV of its key tiles and
  walks all the query tiles, adding dS k into dQ. Two items of one head would race on dQ, so each share
  has its own dQ buffer (`dq_parts`), summed at the end. A head is split into shares only when B·H is not
  a multiple of the thread count (else a share is a whole head and dq_parts is dq itself).
  dKᵀ and dVᵀ of the key tile are accumulated as (d, Bc) so their matmuls also run along Bc keys.
- The matmuls are `tile_matmul`'s register-blocked loops: no BLAS call inside the parallel region, hence no
  BLAS threads competing with Numba's threads (the wrappers call no BLAS either: nothing to switch off).
- Scores are (q · scale) kᵀ: q is scaled once per tile rather than every score.
- exp: `fastexp` (vectorised polynomial for float32, exact `math.exp` for float64).
- Masks: entries above the causal diagonal and padded keys get S = -inf (forward) or P = 0 (backward).
- Threads: Numba's workqueue threading layer unless the user picked one (see the note at THREADING_LAYER).
- Small problems (fewer than SERIAL_BELOW score elements, e.g. a GPT's short training sequences) and one
  thread run the same work items in a plain loop: a parallel launch costs more than such a problem's work.

Peak extra memory: a few arrays of the size of q (q · scale, Kᵀ, Vᵀ, dq_parts in the backward), i.e.
O(B·H·N·d), plus a few (Br × Bc) tiles per work item. Nothing of size N × N.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import literally, njit, prange  # literally: in the work items only (see _forward_kernel)

from . import tuning  # imports ops.threads first: Numba's vector width is set before the codegen starts
from .common import check_backward_inputs, check_inputs
from .fastexp import FASTMATH, exp_shift_rowsum, exp_sub_accumulate
from .ops.threads import prefer_workqueue
from .tile_matmul import aligned_empty, matmul_tile, matmul_tile_at, matmul_tile_at_regs, matmul_tile_regs

# Numba's threading layer: the process-wide pool that runs `prange`. By default Numba picks OpenMP when it can;
# on the 2-core machine its workqueue layer ran these kernels 15–20 % faster (forward 130 ms against 160 ms
# at N = 4096, see the notes), so it is chosen here unless the user chose a layer (NUMBA_THREADING_LAYER).
# Its limit: two Python threads must not launch Numba-parallel code at the same time. The rule is shared with
# the training step's kernels (kernels/ops/threads.py), so the layer never depends on which kernel runs first.
prefer_workqueue()

# (Br, Bc) and the inner matmul (tile_matmul's loops or its register tile) are chosen per machine by `tuning`
# (timed once, cached); explicit Br= / Bc= / microkernel= arguments win. These are its defaults (MTA_TUNE=off).
FWD_TILES = (tuning.DEFAULTS["forward"]["Br"], tuning.DEFAULTS["forward"]["Bc"])
BWD_TILES = (tuning.DEFAULTS["backward"]["Br"], tuning.DEFAULTS["backward"]["Bc"])


# Below this many score elements (B·H·Nq·Nk) the kernels run on the calling thread. A parallel launch through
# the workqueue layer costs 50-150 µs even for an empty loop (measured on the Intel Xeon, emeraldrapids: a
# prange over 2 elements), and with one thread the parallel forward of the baby GPT's attention (B·H = 48,
# N = 64, d = 32, causal) took 1.05 ms against 0.60 ms for the same work items called in a plain loop; on two
# threads the two were equal (0.58 / 0.60 ms). At N = 4096 (8 heads: 1.3e8 elements) a launch is noise.
SERIAL_BELOW = 1 << 20


def _serial(B, H, Nq, Nk):
    """Run the work items in a plain loop: one thread, or too little work for a parallel launch."""
    return numba.get_num_threads() == 1 or B * H * Nq * Nk < SERIAL_BELOW


# One compiled version per kernel and dtype. Numba compiles a function once per combination of argument types,
# and an array's layout is part of its type: a C-contiguous q and the GPT's permuted view of q are two types, and
# q, k, v, dO, O each varying gave up to 6 versions of each entry kernel (about 7 s of compiling apiece, in every
# fresh clone and in CI). The inputs are read with their strides anyway, so `_launch` calls the version whose
# strided arguments all have layout 'A' (any strides), whatever their actual layout.
_ENTRIES = {}


def _launch(kernel, strided, *args):
    """kernel(*args), with the array arguments at the positions in `strided` typed as layout 'A'.

    `Dispatcher.compile(signature)` compiles that version (or loads it from the disk cache) once and returns its
    entry point, which unboxes each array by its data pointer, shape and strides, so a C-contiguous array is a
    valid 'A' argument. The wrappers below build every other argument themselves (fixed types for a dtype), so
    the version is looked up by dtype and the strided arrays' flags: the full type signature is computed only
    the first time (`numba.typeof` on 17 arguments: ~35 µs a call under cProfile; a GPT step makes 12 calls)."""
    key = (kernel, args[0].dtype, tuple((args[i].flags.writeable, args[i].flags.aligned) for i in strided))
    entry = _ENTRIES.get(key)
    if entry is None:
        sig = tuple(numba.types.Array(t.dtype, t.ndim, "A", readonly=not t.mutable, aligned=t.aligned)
                    if i in strided else t for i, t in enumerate(map(numba.typeof, args)))
        entry = _ENTRIES[key] = kernel.compile(sig)
    return entry(*args)


def _choose(kind, Br, Bc, microkernel):
    """Explicit arguments, else the machine's tuned choice (kernels/tuning.py)."""
    if Br is None or Bc is None or microkernel is None:
        chosen = tuning.config(kind)
        Br = chosen["Br"] if Br is None else Br
        Bc = chosen["Bc"] if Bc is None else Bc
        microkernel = chosen["microkernel"] if microkernel is None else microkernel
    return int(Br), int(Bc), bool(microkernel)


@njit(parallel=True, cache=True)
def _forward_kernel(q, k, v, key_pad, has_mask, heads, causal, scale, Br, Bc, mk, o, lse):
    """q: (B, H, Nq, d), k: (B, H, Nk, d), v: (B, H, Nk, dv), any strides (the caller's views: no copies);
    key_pad: (B, Nk) bool (True = padding). Writes o: (BH, Nq, dv) and lse: (BH, Nq).
    One work item per (head, query tile), split over the threads."""
    for w in prange(o.shape[0] * ((q.shape[2] + Br - 1) // Br)):
        _forward_item(q, k, v, key_pad, has_mask, heads, causal, scale, Br, Bc, mk, o, lse, w)


@njit(cache=True)
def _forward_kernel_serial(q, k, v, key_pad, has_mask, heads, causal, scale, Br, Bc, mk, o, lse):
    """_forward_kernel on the calling thread: for problems too small to pay for a parallel launch (SERIAL_BELOW)."""
    for w in range(o.shape[0] * ((q.shape[2] + Br - 1) // Br)):
        _forward_item(q, k, v, key_pad, has_mask, heads, causal, scale, Br, Bc, mk, o, lse, w)


@njit(cache=True)
def _forward_item(q, k, v, key_pad, has_mask, heads, causal, scale, Br, Bc, mk, o, lse, w):
    """Work item w = (head, query tile). `mk` picks the inner matmul; the work item's function is compiled
    once per value, as a constant (see microkernel.py's note). The branch is here, not a `literally` in the
    entry points: Numba dispatches a call with literal arguments from Python on a slow path, which cost
    milliseconds per call (a GPT training step makes dozens of these calls on short sequences: 76 -> 139 ms
    per step)."""
    n_qt = (q.shape[2] + Br - 1) // Br
    bh, t = w // n_qt, w % n_qt
    it = t // 2 if t % 2 == 0 else n_qt - 1 - t // 2  # 0, last, 1, last-1, ...: balanced causal chunks
    if mk:
        _forward_tile(q, k, v, key_pad, has_mask, heads, causal, scale, Br, Bc, True, o, lse, bh, it * Br)
    else:
        _forward_tile(q, k, v, key_pad, has_mask, heads, causal, scale, Br, Bc, False, o, lse, bh, it * Br)


@njit(cache=True, fastmath=FASTMATH, boundscheck=False)
def _forward_tile(q, k, v, key_pad, has_mask, heads, causal, scale, Br, Bc, mk, o, lse, bh, i0):
    """One work item of the forward: query rows i0 .. i0+Br-1 of head bh, against all its keys."""
    literally(mk)  # a constant here too, so that only one inner kernel is compiled in
    Nq, d = q.shape[2], q.shape[3]
    Nk, dv = v.shape[2], v.shape[3]
    b, h = bh // heads, bh % heads
    dt = q.dtype.type
    br = min(Br, Nq - i0)
    q_t = aligned_empty(d, Br, q)  # (q_tile · scale)ᵀ; every buffer on a cache line (see aligned_empty)
    S_t = aligned_empty(Bc, Br, q)
    acc_t = aligned_empty(dv, Br, q)
    acc_t[:] = 0
    m = aligned_empty(1, Br, q)[0]
    m[:] = -np.inf
    m_new = aligned_empty(1, Br, q)[0]
    m_safe = aligned_empty(1, Br, q)[0]  # m, or 0 while a query has seen no key (never -inf - -inf)
    l = aligned_empty(1, Br, q)[0]
    l[:] = 0
    pad = key_pad[b]
    for i in range(br):
        for c in range(d):
            q_t[c, i] = q[b, h, i0 + i, c] * scale
    j_end = min(Nk, i0 + br) if causal else Nk  # causal: keys >= i0 + br are seen by no query here
    for j0 in range(0, j_end, Bc):
        bc = min(Bc, j_end - j0)
        if mk:  # S_t = k_tile (q_tile · scale)ᵀ
            matmul_tile_regs(S_t, k[b, h, j0:j0 + bc], q_t, 0, bc, br, d, False)
        else:
            matmul_tile(S_t, k[b, h, j0:j0 + bc], q_t, 0, bc, br, d, False)
        for j in range(bc):  # masks: query i sees key j0 + j iff j0 + j <= i0 + i (causal), not padding
            first = min(br, max(0, j0 + j - i0)) if causal else 0
            if has_mask and pad[j0 + j]:
                first = br
            for i in range(first):
                S_t[j, i] = -np.inf
        for i in range(br):
            m_new[i] = m[i]
        for j in range(bc):
            for i in range(br):
                m_new[i] = max(m_new[i], S_t[j, i])  # m_new = max(m, rowmax S)
        for i in range(br):
            if m_new[i] != m[i]:  # rescale what was accumulated under the old max (to 0 if m = -inf)
                alpha = dt(math.exp(m[i] - m_new[i]))
                l[i] *= alpha
                for c in range(dv):
                    acc_t[c, i] *= alpha
                m[i] = m_new[i]
            m_safe[i] = m[i] if m[i] != -np.inf else dt(0.0)
        for j in range(bc):
            exp_sub_accumulate(S_t[j], br, m_safe, l)  # P = exp(S - m_new);  l += rowsum P
        if mk:  # acc += P v_tile
            matmul_tile_at_regs(acc_t, v[b, h, j0:j0 + bc], S_t, dv, br, bc, True)
        else:
            matmul_tile_at(acc_t, v[b, h, j0:j0 + bc], S_t, dv, br, bc, True)
    for i in range(br):
        if l[i] > 0:
            inv = dt(1.0) / l[i]
            for c in range(dv):
                o[bh, i0 + i, c] = acc_t[c, i] * inv  # o = acc / l
            lse[bh, i0 + i] = m[i] + math.log(l[i])  # lse = m + log l
        else:  # fully masked row
            for c in range(dv):
                o[bh, i0 + i, c] = 0
            lse[bh, i0 + i] = -np.inf


@njit(parallel=True, cache=True)
def _backward_kernel(qs, k, kt, vt, do, lse, D, key_pad, has_mask, heads, causal, Br, Bc, mk,
                     dq_parts, dk, dv):
    """qs = q · scale: (BH, Nq, d); k: (BH, Nk, d), kt = kᵀ: (BH, d, ≥ Nk); vt = vᵀ: (BH, dv, ≥ Nk) (rows padded);
    do: (B, H, Nq, dv), any strides (the caller's view); lse, D: (BH, Nq).
    Adds dS k (not yet scaled) into dq_parts[share]; writes dk (scaled) and dv.
    One work item per (head, share of its key tiles), split over the threads."""
    for w in prange(qs.shape[0] * dq_parts.shape[0]):
        _backward_item(qs, k, kt, vt, do, lse, D, key_pad, has_mask, heads, causal, Br, Bc, mk,
                       dq_parts, dk, dv, w)


@njit(cache=True)
def _backward_kernel_serial(qs, k, kt, vt, do, lse, D, key_pad, has_mask, heads, causal, Br, Bc, mk,
                            dq_parts, dk, dv):
    """_backward_kernel on the calling thread (SERIAL_BELOW)."""
    for w in range(qs.shape[0] * dq_parts.shape[0]):
        _backward_item(qs, k, kt, vt, do, lse, D, key_pad, has_mask, heads, causal, Br, Bc, mk,
                       dq_parts, dk, dv, w)


@njit(cache=True)
def _backward_item(qs, k, kt, vt, do, lse, D, key_pad, has_mask, heads, causal, Br, Bc, mk,
                   dq_parts, dk, dv, w):
    """Work item w = (head, share). `mk` as in the forward: a constant in each work item's function."""
    shares = dq_parts.shape[0]
    if mk:
        _backward_share(qs, k, kt, vt, do, lse, D, key_pad, has_mask, heads, causal, Br, Bc, True,
                        dq_parts, dk, dv, w // shares, w % shares)
    else:
        _backward_share(qs, k, kt, vt, do, lse, D, key_pad, has_mask, heads, causal, Br, Bc, False,
                        dq_parts, dk, dv, w // shares, w % shares)


@njit(cache=True, fastmath=FASTMATH, boundscheck=False)
def _backward_share(qs, k, kt, vt, do, lse, D, key_pad, has_mask, heads, causal, Br, Bc, mk,
                    dq_parts, dk, dv, bh, share):
    """One work item of the backward: key tiles share, share + shares, ... of head bh."""
    literally(mk)
    Nq, d = qs.shape[1], qs.shape[2]
    dvd, Nk = vt.shape[1], k.shape[1]  # kt and vt may have padded rows (_transposed)
    b, h = bh // heads, bh % heads
    shares = dq_parts.shape[0]
    n_kt = (Nk + Bc - 1) // Bc
    S = aligned_empty(Br, Bc, qs)  # S, then P in place (every buffer on a cache line: see aligned_empty)
    dP = aligned_empty(Br, Bc, qs)  # dP, then dS in place
    dk_t = aligned_empty(d, Bc, qs)  # dKᵀ, dVᵀ of the key tile
    dv_t = aligned_empty(dvd, Bc, qs)
    pad = key_pad[b]
    dq = dq_parts[share, bh]
    for jt in range(share, n_kt, shares):  # interleaved: each share gets early and late key tiles
        j0 = jt * Bc
        bc = min(Bc, Nk - j0)
        dk_t[:] = 0
        dv_t[:] = 0
        first = (j0 // Br) * Br if causal else 0  # causal: earlier query tiles see none of these keys
        for i0 in range(first, Nq, Br):
            br = min(Br, Nq - i0)
            if mk:  # S = (q · scale) kᵀ
                matmul_tile_regs(S, qs[bh, i0:i0 + br], kt[bh], j0, br, bc, d, False)
            else:
                matmul_tile(S, qs[bh, i0:i0 + br], kt[bh], j0, br, bc, d, False)
            for r in range(br):
                s = S[r]
                lim = min(bc, max(0, i0 + r + 1 - j0)) if causal else bc  # keys past the diagonal: P = 0
                if lse[bh, i0 + r] == -np.inf:
                    lim = 0  # fully masked row: P = 0
                exp_shift_rowsum(s, lim, lse[bh, i0 + r])  # P = exp(S - lse)
                for c in range(lim, bc):
                    s[c] = 0
                if has_mask:
                    for c in range(lim):
                        if pad[j0 + c]:
                            s[c] = 0
            if mk:  # dP = dO vᵀ
                matmul_tile_regs(dP, do[b, h, i0:i0 + br], vt[bh], j0, br, bc, dvd, False)
            else:
                matmul_tile(dP, do[b, h, i0:i0 + br], vt[bh], j0, br, bc, dvd, False)
            if mk:  # dV += Pᵀ dO
                matmul_tile_at_regs(dv_t, do[b, h, i0:i0 + br], S, dvd, bc, br, True)
            else:
                matmul_tile_at(dv_t, do[b, h, i0:i0 + br], S, dvd, bc, br, True)
            for r in range(br):
                Dr = D[bh, i0 + r]
                for c in range(bc):
                    dP[r, c] = S[r, c] * (dP[r, c] - Dr)  # dS = P ∘ (dP - D)
            if mk:  # dK += dSᵀ (q · scale)
                matmul_tile_at_regs(dk_t, qs[bh, i0:i0 + br], dP, d, bc, br, True)
            else:
                matmul_tile_at(dk_t, qs[bh, i0:i0 + br], dP, d, bc, br, True)
            if mk:  # dQ += dS k
                matmul_tile_regs(dq[i0:i0 + br], dP, k[bh, j0:j0 + bc], 0, br, d, bc, True)
            else:
                matmul_tile(dq[i0:i0 + br], dP, k[bh, j0:j0 + bc], 0, br, d, bc, True)
        for r in range(bc):
            for c in range(d):
                dk[bh, j0 + r, c] = dk_t[c, r]
            for c in range(dvd):
                dv[bh, j0 + r, c] = dv_t[c, r]


@njit(cache=True, fastmath=FASTMATH, boundscheck=False)
def _rowsum_product(x, y, out):
    """out[b·H + h, i] = sum_c x[b, h, i, c] · y[b, h, i, c] for (B, H, N, n) arrays of any strides
    (D = rowsum(dO ∘ O) without an (N, d) temporary).
    On the calling thread: it reads two arrays once, far less work than the backward it feeds."""
    B, H, N, n = x.shape
    for b in range(B):
        for h in range(H):
            for i in range(N):
                total = x.dtype.type(0.0)
                for c in range(n):
                    total += x[b, h, i, c] * y[b, h, i, c]
                out[b * H + h, i] = total


def _heads(a):
    """(B, H, N, x) -> C-contiguous (B·H, N, x) (a view when `a` is already contiguous). The forward reads q, k, v
    with their own strides (no copy); the backward needs k head-major, as a matmul operand whose rows it slices."""
    return np.ascontiguousarray(a.reshape((a.shape[0] * a.shape[1],) + a.shape[2:]))


def _transposed(a):
    """(B, H, N, x) -> C-contiguous (B·H, x, Np): aᵀ per head in one copy, from any strides, its rows padded to
    Np >= N columns (the kernels read only the first N).

    Why the padding: the backward reads one tile's columns from every row of Kᵀ and Vᵀ. With N a power of two
    the rows are a multiple of 4 KiB apart, so all of a tile's rows fall into the same few sets of the L1 cache
    and evict each other: the backward took 21.3 ns a score element at N = 2048 against 14.1 at N = 2112 (one
    thread, AMD Zen 3; benchmarks/NOTES_attention_cpu.md). A row length that is not a multiple of 512 bytes
    spreads them over the sets."""
    B, H, N, x = a.shape
    Np = N + (-N) % 16  # whole 64-byte lines
    if (Np * a.itemsize) % 512 == 0:
        Np += 64 // a.itemsize  # one line more: consecutive rows start in different cache sets
    out = np.empty((B * H, x, Np), a.dtype)
    out.reshape(B, H, x, Np)[..., :N] = np.swapaxes(a, 2, 3)
    out[:, :, N:] = 0
    return out


def _key_pad(key_padding_mask, B):
    if key_padding_mask is None:
        return np.zeros((B, 1), np.bool_), False
    return np.ascontiguousarray(key_padding_mask), True


def flash_forward_numba(q, k, v, causal=False, scale=None, key_padding_mask=None, Br=None, Bc=None,
                        microkernel=None):
    """FlashAttention-2 forward, compiled by Numba, parallel over (head, query tile) from SERIAL_BELOW score
    elements up. Returns (o, lse).

    Br, Bc, microkernel: None = this machine's tuned choice (kernels/tuning.py)."""
    q, k, v, scale, key_padding_mask = check_inputs(q, k, v, scale, key_padding_mask)
    B, H, Nq, _ = q.shape
    dv = v.shape[3]
    Br, Bc, microkernel = _choose("forward", Br, Bc, microkernel)
    key_pad, has_mask = _key_pad(key_padding_mask, B)
    o = np.empty((B * H, Nq, dv), q.dtype)
    lse = np.empty((B * H, Nq), q.dtype)
    kernel = _forward_kernel_serial if _serial(B, H, Nq, k.shape[2]) else _forward_kernel
    _launch(kernel, (0, 1, 2), q, k, v, key_pad, has_mask, H, bool(causal), q.dtype.type(scale),
            Br, Bc, microkernel, o, lse)
    return o.reshape(B, H, Nq, dv), lse.reshape(B, H, Nq)


def flash_backward_numba(q, k, v, o, lse, do, causal=False, scale=None, key_padding_mask=None, Br=None,
                         Bc=None, microkernel=None):
    """FlashAttention-2 backward, compiled by Numba, parallel over (head, share of the key tiles).

    Returns (dq, dk, dv)."""
    q, k, v, o, lse, do, scale, key_padding_mask = check_backward_inputs(
        q, k, v, o, lse, do, scale, key_padding_mask)
    B, H, Nq, d = q.shape
    Br, Bc, microkernel = _choose("backward", Br, Bc, microkernel)
    scale = q.dtype.type(scale)
    key_pad, has_mask = _key_pad(key_padding_mask, B)
    kh = _heads(k)
    D = np.empty((B * H, Nq), q.dtype)
    _launch(_rowsum_product, (0, 1), do, o, D)
    serial = _serial(B, H, Nq, k.shape[2])
    threads = numba.get_num_threads()
    shares = 1 if serial or (B * H) % threads == 0 else threads
    dq_parts = np.zeros((shares, B * H, Nq, d), q.dtype)
    dk, dv = np.empty_like(kh), np.empty((B * H,) + v.shape[2:], q.dtype)
    qs = np.multiply(q, scale, order="C").reshape(B * H, Nq, d)  # scaled and head-major in one pass
    kernel = _backward_kernel_serial if serial else _backward_kernel
    _launch(kernel, (4,), qs, kh, _transposed(k), _transposed(v), do, _heads(lse), D,
            key_pad, has_mask, H, bool(causal), Br, Bc, microkernel, dq_parts, dk, dv)
    dq = dq_parts[0] if shares == 1 else dq_parts.sum(axis=0)
    dq *= scale
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)
