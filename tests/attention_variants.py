"""Every attention variant of the course behind one interface, so that
`tests/test_attention_properties.py` applies the same property battery to each of them.

A variant's `make(rng, dtype)` builds the mechanism (a module with freshly initialised parameters, or a
plain function) and returns `attend`:

    out, weights = attend(q, k, v, key_padding_mask)
    q: (B, Nq, q_dim)   k: (B, Nk, k_dim)   v: (B, Nk, v_dim)      mta.Tensors of `dtype`
    key_padding_mask: None or a bool array (B, Nk), True = padding (that key must be ignored)
    out: (B, Nq, out_dim)   weights: (B, Nq, Nk), the attention weights (averaged over heads if any)

Flags say which properties hold for the variant (e.g. local-p attention is position dependent, so it
is not equivariant to permuting the keys). `params(attend)` returns the tensors to gradcheck besides
q, k, v (module parameters), or [] for a parameter-free function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Variant:
    name: str
    make: Callable  # (rng: np.random.Generator, dtype) -> attend
    q_dim: int = 8
    k_dim: int = 8
    v_dim: int = 8
    permutation_equivariant: bool = True  # permuting keys and values together leaves `out` unchanged
    supports_padding_mask: bool = True
    params: Callable = field(default=lambda attend: [])


VARIANTS: list[Variant] = []

# ---- scaled dot-product, multi-head (lessons 05-06) -------------------------------------------------


def _sdpa_attend(rope: bool = False):
    import numpy as np

    from minitorch_attn import functional as F
    from minitorch_attn.functional.positional import apply_rope

    def attend(q, k, v, key_padding_mask=None):
        if rope:  # positions rotate q and k (RoPE); values are not rotated
            q, k = apply_rope(q), apply_rope(k)
        mask = None if key_padding_mask is None else ~np.asarray(key_padding_mask)[:, None, :]  # True = may attend
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, return_weights=True)

    return attend


class _ModuleAttend:
    """attend() around an nn.MultiheadAttention (torch's mask convention: True = padding)."""

    def __init__(self, module):
        self.module = module

    def __call__(self, q, k, v, key_padding_mask=None):
        return self.module(q, k, v, key_padding_mask=key_padding_mask, need_weights=True)


def _mha(num_heads: int, kdim: int, vdim: int):
    def make(rng, dtype):
        from minitorch_attn import nn

        return _ModuleAttend(nn.MultiheadAttention(8, num_heads, kdim=kdim, vdim=vdim, rng=rng, dtype=dtype))

    return make


def _module_params(attend):
    return list(attend.module.parameters())


VARIANTS += [
    Variant("sdpa", lambda rng, dtype: _sdpa_attend(), q_dim=8, k_dim=8, v_dim=6),
    Variant("sdpa+rope", lambda rng, dtype: _sdpa_attend(rope=True), q_dim=8, k_dim=8, v_dim=6,
            permutation_equivariant=False),  # a key's rotation depends on its position
    Variant("mha-1-head", _mha(1, 6, 5), q_dim=8, k_dim=6, v_dim=5, params=_module_params),
    Variant("mha-2-heads", _mha(2, 6, 5), q_dim=8, k_dim=6, v_dim=5, params=_module_params),
]

# ---- RNN-era attention: Bahdanau, Luong (lessons 03-04) ----------------------------------------------


def _rnn_attention(kind: str, q_dim: int, k_dim: int, **options):
    def make(rng, dtype):
        from minitorch_attn import nn

        if kind == "additive":
            module = nn.AdditiveAttention(q_dim, k_dim, hidden_dim=7, rng=rng, dtype=dtype)
        else:
            module = nn.LuongAttention(q_dim, k_dim, score=kind, rng=rng, dtype=dtype, **options)
        return _RNNAttend(module)

    return make


class _RNNAttend:
    """attend() around AdditiveAttention / LuongAttention (key_padding_mask: True = padding)."""

    def __init__(self, module):
        self.module = module

    def __call__(self, q, k, v, key_padding_mask=None):
        return self.module(q, k, v, key_padding_mask=key_padding_mask)


VARIANTS += [
    Variant("bahdanau-additive", _rnn_attention("additive", 8, 6), q_dim=8, k_dim=6, v_dim=5, params=_module_params),
    Variant("luong-dot", _rnn_attention("dot", 8, 8), q_dim=8, k_dim=8, v_dim=5, params=_module_params),
    Variant("luong-general", _rnn_attention("general", 8, 6), q_dim=8, k_dim=6, v_dim=5, params=_module_params),
    Variant("luong-concat", _rnn_attention("concat", 8, 6, hidden_dim=7), q_dim=8, k_dim=6, v_dim=5,
            params=_module_params),
    # local-p weights depend on key positions; the battery checks rows sum to 1, so this variant
    # renormalises after the Gaussian (the paper's default, renormalize=False, is tested in
    # tests/test_bahdanau_luong.py). D = 3 keeps a non-padded key in every window of the battery's masks.
    Variant("luong-local-p", _rnn_attention("general", 8, 6, window=3, renormalize=True), q_dim=8, k_dim=6,
            v_dim=5, permutation_equivariant=False, params=_module_params),
]

# ---- Hopfield networks as attention (lessons 07-08) -------------------------------------------------


class _HopfieldAttend:
    """attend() around an nn.Hopfield: stored patterns = keys, state patterns = queries, pattern projections =
    values; its stored_pattern_padding_mask has torch's convention (True = padding). Weights: the last
    association, averaged over heads."""

    def __init__(self, module):
        self.module = module

    def __call__(self, q, k, v, key_padding_mask=None):
        out, weights = self.module((k, q, v), stored_pattern_padding_mask=key_padding_mask, return_association=True)
        return out, weights.mean(axis=1)


def _hopfield(num_heads: int, steps: int, normalize: bool):
    def make(rng, dtype):
        from minitorch_attn import nn

        flags = {f"normalize_{n}": normalize for n in ("stored_pattern", "state_pattern", "pattern_projection")}
        return _HopfieldAttend(nn.Hopfield(8, hidden_size=4, num_heads=num_heads, stored_pattern_size=6,
                                           pattern_projection_size=5, update_steps_max=steps, rng=rng, dtype=dtype,
                                           **flags))

    return make


VARIANTS += [
    # one update, no layer norms: exactly multi-head attention with beta = 1/sqrt(head_dim)
    Variant("hopfield-1-step", _hopfield(1, 1, False), q_dim=8, k_dim=6, v_dim=5, params=_module_params),
    # three updates in the association space, two heads, layer norms on all three inputs
    Variant("hopfield-2-heads-3-steps-ln", _hopfield(2, 3, True), q_dim=8, k_dim=6, v_dim=5, params=_module_params),
]

# ---- transformer blocks (lesson 09) ------------------------------------------------------------------


class _DecoderLayerAttend:
    """attend() around a whole nn.TransformerDecoderLayer: queries = the target sequence, keys = the memory
    (the encoder's output; the layer has no separate values, so `v` is ignored), weights = the cross-attention
    averaged over heads. Self-attention, residuals, LayerNorms and the feed-forward network are all inside,
    so the battery checks that none of them leaks a padded memory position or mixes batch elements."""

    def __init__(self, module):
        self.module = module
        module.keep_attention = True

    def __call__(self, q, k, v, key_padding_mask=None):
        out = self.module(q, k, memory_key_padding_mask=key_padding_mask)
        return out, self.module.cross_attn_weights.mean(axis=1)


def _decoder_layer(norm_first: bool, activation: str):
    def make(rng, dtype):
        from minitorch_attn import nn

        return _DecoderLayerAttend(nn.TransformerDecoderLayer(8, 2, dim_feedforward=12, dropout=0.0,
                                                              activation=activation, norm_first=norm_first,
                                                              rng=rng, dtype=dtype))

    return make


VARIANTS += [
    Variant("decoder-layer-post-ln", _decoder_layer(False, "relu"), q_dim=8, k_dim=8, v_dim=8, params=_module_params),
    Variant("decoder-layer-pre-ln-gelu", _decoder_layer(True, "gelu"), q_dim=8, k_dim=8, v_dim=8,
            params=_module_params),
]
