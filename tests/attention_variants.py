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

# ---- RNN-era attention: Bahdanau, Luong (lessons 03-04) ----------------------------------------------
