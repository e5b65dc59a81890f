"""Multi-head attention, shaped exactly like `torch.nn.MultiheadAttention` so its weights load here.

    mha = nn.MultiheadAttention(embed_dim, num_heads, kdim=None, vdim=None, batch_first=True)
    out, weights = mha(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                       average_attn_weights=True, is_causal=False)

query (B, Nq, E), key (B, Nk, kdim), value (B, Nk, vdim) -> out (B, Nq, E); weights (B, Nq, Nk) averaged
over heads, or (B, H, Nq, Nk) with `average_attn_weights=False`. Unbatched (N, E) inputs work too, and
`batch_first=False` takes (N, B, E) as torch's default does (ours defaults to batch_first=True: the course
is batch-first everywhere).

Each head h projects the inputs with its own slice of the projection matrices, attends in a space of
head_dim = E / H features, and the heads' outputs are concatenated and mixed by `out_proj`:

    q, k, v = query Wqᵀ + bq, key Wkᵀ + bk, value Wvᵀ + bv          (B, N, E)
    q, k, v = split_heads(q, H), ...                                  (B, H, N, E/H)
    o = scaled_dot_product_attention(q, k, v, mask)                   (B, H, Nq, E/H)
    out = out_proj(merge_heads(o))                                    (B, Nq, E)

Head h owns features h·head_dim ... (h+1)·head_dim - 1 of the projections (torch's layout). The parameter
count, 4E² + 4E with kdim = vdim = E, does not depend on the number of heads.

!!! MASKS: torch's MultiheadAttention convention, the OPPOSITE of F.scaled_dot_product_attention !!!
    In `key_padding_mask` (B, Nk) and in a boolean `attn_mask` (Nq, Nk) or (B·H, Nq, Nk),
    **True means "NOT allowed"** (padding / masked out). Float masks are added to the scores.
    Both are turned into additive float masks (True -> -inf) and summed, as torch does.
A query row whose keys are all masked outputs 0 attention (then `out_proj`'s bias) and weights 0: our
SDPA's convention. torch's module returns NaN for such rows when need_weights=True.

`is_causal=True` adds the causal mask (query i sees keys j <= i). torch's module treats `is_causal` only
as a hint and *requires* the matching `attn_mask`; here `is_causal=True` alone is enough, and with an
`attn_mask` given, the mask is used as is (the hint is ignored, as in torch).

Two layouts of the input projections (`packed`): torch packs Wq, Wk, Wv into one `in_proj_weight` (3E, E)
when kdim == vdim == E, and keeps `q_proj_weight`, `k_proj_weight`, `v_proj_weight` otherwise. BERT-family
checkpoints store query, key and value separately, so `packed=False` keeps the separate weights also when
kdim == vdim == E (lesson 17); the bias stays torch's packed `in_proj_bias` (bq, bk, bv) in both layouts.
The attention itself is the same code for both.

Backends (`backend`, also a keyword of `forward`): the module calls `F.scaled_dot_product_attention` with
this backend. The default "naive" materialises the weights (what `need_weights=True` needs). "tiled",
"numba" (and "auto", which picks Numba for long sequences) run the flash kernels of lesson 10; they take
a boolean `key_padding_mask` alone (it reaches the kernels as their key-padding mask), and raise for
`need_weights=True`, a float mask, an `attn_mask`, `is_causal`, or dropout while training.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd.tensor import Tensor, to_tensor
from ..functional.multihead import merge_heads, split_heads
from ..functional.sdpa import BACKENDS, causal_mask
from ..random import default_rng
from .layers import Linear
from .module import Module, Parameter


def xavier_uniform(rng, shape, dtype) -> Parameter:
    """torch.nn.init.xavier_uniform_: U(-a, a), a = sqrt(6 / (fan_in + fan_out)) for a (out, in) matrix."""
    fan_out, fan_in = shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return Parameter(rng.uniform(-bound, bound, size=shape).astype(dtype))


def _additive(mask, name: str, dtype) -> Tensor | None:
    """A torch-convention MHA mask (bool: True = masked out; float: added) as an additive float Tensor."""
    if mask is None:
        return None
    if isinstance(mask, Tensor):
        if mask.dtype == bool:
            mask = mask.data
        elif mask.dtype.kind == "f":
            if mask.dtype != dtype:
                raise TypeError(f"MultiheadAttention: {name} has dtype {mask.dtype}; the inputs are {dtype}")
            return mask
        else:
            mask = mask.data
    mask = np.asarray(mask)
    if mask.dtype == bool:
        return Tensor(np.where(mask, -np.inf, 0.0).astype(dtype))
    if mask.dtype.kind == "f":
        return Tensor(mask.astype(dtype, copy=False))
    raise TypeError(f"MultiheadAttention: {name} must be boolean (True = NOT allowed, torch's MHA convention) "
                    f"or floating (added to the scores); got dtype {mask.dtype} of shape {mask.shape}")


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention: same arguments, parameter names, shapes and initialisation.

    Parameters (torch's names): with kdim == vdim == embed_dim, `in_proj_weight` (3E, E) holding Wq, Wk, Wv
    stacked; otherwise `q_proj_weight` (E, E), `k_proj_weight` (E, kdim), `v_proj_weight` (E, vdim). Then
    `in_proj_bias` (3E,) when `bias`, and `out_proj` (a Linear E -> E). Initialisation as torch's
    `_reset_parameters`: xavier-uniform projections, zero biases, out_proj.weight U(-1/√E, 1/√E).
    Not supported: add_bias_kv, add_zero_attn.

    Beyond torch: `packed=False` keeps separate q/k/v weights even when kdim == vdim == embed_dim (None:
    torch's rule); `backend` is the attention backend (see the module docstring).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float32, packed: bool | None = None,
                 backend: str = "naive"):
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(f"MultiheadAttention: embed_dim and num_heads must be positive; got {embed_dim} "
                             f"and {num_heads}")
        if embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: embed_dim={embed_dim} must be divisible by "
                             f"num_heads={num_heads} (each head gets embed_dim / num_heads features)")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be in [0, 1]; got {dropout}")
        rng = rng if rng is not None else default_rng()
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        if packed and not self._qkv_same_embed_dim:
            raise ValueError(f"MultiheadAttention: packed=True needs kdim == vdim == embed_dim = {embed_dim}; got "
                             f"kdim={self.kdim}, vdim={self.vdim} (one (3E, E) in_proj_weight cannot hold them)")
        self.packed = self._qkv_same_embed_dim if packed is None else bool(packed)
        if backend not in BACKENDS:
            raise ValueError(f"MultiheadAttention: unknown backend {backend!r}; choose one of {BACKENDS}")
        self.backend = backend
        self.head_dim = embed_dim // num_heads
        self.dropout, self.batch_first, self.rng = dropout, batch_first, rng
        E = embed_dim
        if self.packed:
            self.in_proj_weight = xavier_uniform(rng, (3 * E, E), dtype)
        else:
            self.q_proj_weight = xavier_uniform(rng, (E, E), dtype)
            self.k_proj_weight = xavier_uniform(rng, (E, self.kdim), dtype)
            self.v_proj_weight = xavier_uniform(rng, (E, self.vdim), dtype)
        self.in_proj_bias = Parameter(np.zeros(3 * E, dtype=dtype)) if bias else None
        self.out_proj = Linear(E, E, bias=bias, rng=rng, dtype=dtype)
        if bias:
            self.out_proj.bias.data[...] = 0

    def _projections(self):
        """(Wq, Wk, Wv, bq, bk, bv) as tensors (slices of the packed ones when they are packed)."""
        E = self.embed_dim
        if self.packed:
            w = self.in_proj_weight
            ws = (w[:E], w[E : 2 * E], w[2 * E :])
        else:
            ws = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        b = self.in_proj_bias
        bs = (None, None, None) if b is None else (b[:E], b[E : 2 * E], b[2 * E :])
        return ws + bs

    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True, attn_mask=None,
                average_attn_weights: bool = True, is_causal: bool = False, backend: str | None = None):
        dtype = self.out_proj.weight.dtype  # arrays become Tensors of the module's dtype
        query, key, value = (to_tensor(x, dtype) for x in (query, key, value))
        batched = query.ndim == 3
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: query, key and value must all be (B, N, features) (or unbatched "
                             f"(N, features)); got {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
        if not batched:
            query, key, value = (t.reshape(1, *t.shape) for t in (query, key, value))
            if key_padding_mask is not None:
                key_padding_mask = np.asarray(getattr(key_padding_mask, "data", key_padding_mask))[None]
        elif not self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        B, Nq, E = query.shape
        Nk = key.shape[1]
        for name, t, want in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if t.shape[-1] != want:
                raise ValueError(f"MultiheadAttention(embed_dim={self.embed_dim}, kdim={self.kdim}, vdim={self.vdim}): "
                                 f"{name} has {t.shape[-1]} features (shape {tuple(t.shape)}), expected {want}")
        if key.shape[:2] != value.shape[:2] or key.shape[0] != B:
            raise ValueError(f"MultiheadAttention: key {tuple(key.shape)} and value {tuple(value.shape)} must share "
                             f"batch and length, and match the query's batch {B}")

        wq, wk, wv, bq, bk, bv = self._projections()
        H = self.num_heads
        q = split_heads(F.linear(query, wq, bq), H)  # (B, H, Nq, head_dim)
        k = split_heads(F.linear(key, wk, bk), H)
        v = split_heads(F.linear(value, wv, bv), H)

        mask = self._mask(key_padding_mask, attn_mask, is_causal, B, Nq, Nk, query.dtype)
        p = self.dropout if self.training else 0.0
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, rng=self.rng,
                                           backend=backend or self.backend, return_weights=need_weights)
        if need_weights:
            o, weights = o
        out = self.out_proj(merge_heads(o))  # (B, Nq, E)
        if not batched:
            out = out.reshape(Nq, E)
        elif not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(axis=1)
        if not batched:
            weights = weights.reshape(weights.shape[1:])
        return out, weights

    def _mask(self, key_padding_mask, attn_mask, is_causal, B, Nq, Nk, dtype):
        """One additive float mask (B or 1, H or 1, Nq or 1, Nk) from torch's MHA masks, or None; a boolean
        key_padding_mask alone becomes SDPA's boolean (B, 1, 1, Nk) mask (True = may attend), the same numbers
        on the naive backend and the form the flash kernels take as their key-padding mask."""
        H = self.num_heads
        if attn_mask is None and not is_causal and key_padding_mask is not None:
            kpm = np.asarray(getattr(key_padding_mask, "data", key_padding_mask))
            if kpm.dtype == bool:
                if kpm.shape != (B, Nk):
                    raise ValueError(f"MultiheadAttention: key_padding_mask must have shape (B, Nk) = {(B, Nk)}; "
                                     f"got {kpm.shape}")
                return ~kpm.reshape(B, 1, 1, Nk)
        total = None
        am = _additive(attn_mask, "attn_mask", dtype)
        if am is not None:
            if am.ndim == 2:
                if tuple(am.shape) != (Nq, Nk):
                    raise ValueError(f"MultiheadAttention: a 2-D attn_mask must have shape (Nq, Nk) = {(Nq, Nk)}; "
                                     f"got {tuple(am.shape)}")
            elif am.ndim == 3:
                if tuple(am.shape) != (B * H, Nq, Nk):
                    raise ValueError(f"MultiheadAttention: a 3-D attn_mask must have shape (B*num_heads, Nq, Nk) = "
                                     f"{(B * H, Nq, Nk)}; got {tuple(am.shape)}")
                am = am.reshape(B, H, Nq, Nk)
            else:
                raise ValueError(f"MultiheadAttention: attn_mask must be 2-D or 3-D; got shape {tuple(am.shape)}")
            total = am
        elif is_causal:
            total = Tensor(np.where(causal_mask(Nq, Nk), 0.0, -np.inf).astype(dtype))
        kpm = _additive(key_padding_mask, "key_padding_mask", dtype)
        if kpm is not None:
            if tuple(kpm.shape) != (B, Nk):
                raise ValueError(f"MultiheadAttention: key_padding_mask must have shape (B, Nk) = {(B, Nk)}; "
                                 f"got {tuple(kpm.shape)}")
            kpm = kpm.reshape(B, 1, 1, Nk)
            total = kpm if total is None else total + kpm
        return total

    def extra_repr(self) -> str:
        extra = "" if self._qkv_same_embed_dim else f", kdim={self.kdim}, vdim={self.vdim}"
        extra += "" if self.packed or not self._qkv_same_embed_dim else ", packed=False"
        extra += "" if self.backend == "naive" else f", backend={self.backend!r}"
        return (f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}{extra}, "
                f"batch_first={self.batch_first}")
