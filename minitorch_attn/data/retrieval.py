"""Two-needle retrieval: a task one attention head provably cannot solve and two heads can.

A sample is a small "dictionary" of `n_items` entries, each a key (one of `n_keys` symbols, all distinct in
a sample) and a value (a random integer with `value_bits` bits, drawn independently of the key: the values
say nothing about their keys). The query names two of the keys, in order, (a, b); the answer is the pair
(value of a, value of b).

Encoding, made for `nn.MultiheadAttention(embed_dim, H, kdim=n_keys, vdim=value_bits)`:

    query  (n, 2·n_keys)          one-hot of a, then one-hot of b (a model embeds it linearly to embed_dim)
    keys   (n, n_items, n_keys)   one-hot key of each item       -> the attention's `key`
    values (n, n_items, bits)     ±1 bits of each item's value   -> the attention's `value`

Why one head cannot: a head outputs a weighted average of (linearly projected) values, Σ_j p_j W v_j, and
the weights p_j are computed from the query and the keys only. Around the two needles that is
α·W v_a + β·W v_b. Look at one bit i, everything else fixed: as the bits (a_i, b_i) run over
(+,+), (+,-), (-,+), (-,-), the output moves along one line through the points α+β, α-β, -α+β, -α-β
(times a fixed vector). If α > β the order along that line is (+,+), (+,-), (-,+), (-,-): b_i alternates
+, -, +, -, and no linear read-out can separate it (XOR); if α < β, a_i alternates instead. So a single
head followed by a linear read-out gets at most one of the two values right: exact-answer accuracy about
2^-bits. Two heads each retrieve one needle and the read-out simply concatenates them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Retrieval(NamedTuple):
    query: np.ndarray  # (n, 2 * n_keys) float: one-hot(a) then one-hot(b)
    keys: np.ndarray  # (n, n_items, n_keys) float one-hot
    values: np.ndarray  # (n, n_items, value_bits) float, entries ±1
    targets: np.ndarray  # (n, 2) int: the values of a and of b, integers in [0, 2**value_bits)
    target_bits: np.ndarray  # (n, 2, value_bits) int in {0, 1}: the same, bit by bit (bit 0 first)
    needles: np.ndarray  # (n, 2) int: the item positions of a and b
    key_ids: np.ndarray  # (n, n_items) int: the key symbol of each item
    value_ids: np.ndarray  # (n, n_items) int: the value of each item


def two_needle_retrieval(n_samples: int, n_items: int = 8, n_keys: int = 16, value_bits: int = 3,
                         seed: int = 0, dtype=np.float32) -> Retrieval:
    """`n_samples` independent samples of the two-needle task (see the module docstring), from `seed`."""
    if n_items < 2 or n_keys < n_items or value_bits < 1:
        raise ValueError(f"two_needle_retrieval needs n_items >= 2, n_keys >= n_items and value_bits >= 1; got "
                         f"n_items={n_items}, n_keys={n_keys}, value_bits={value_bits}")
    rng = np.random.default_rng(seed)
    n = n_samples
    key_ids = np.argsort(rng.random((n, n_keys)), axis=1)[:, :n_items]  # distinct keys per sample
    value_ids = rng.integers(0, 2**value_bits, size=(n, n_items))
    needles = np.argsort(rng.random((n, n_items)), axis=1)[:, :2]  # two distinct positions, in query order
    rows = np.arange(n)[:, None]
    a_b = key_ids[rows, needles]  # (n, 2) the two queried keys
    eye = np.eye(n_keys, dtype=dtype)
    query = np.concatenate([eye[a_b[:, 0]], eye[a_b[:, 1]]], axis=1)
    bits = (value_ids[..., None] >> np.arange(value_bits)) & 1  # (n, n_items, bits), bit 0 first
    targets = value_ids[rows, needles]
    return Retrieval(query=query, keys=eye[key_ids], values=(2 * bits - 1).astype(dtype), targets=targets,
                     target_bits=bits[rows, needles], needles=needles, key_ids=key_ids, value_ids=value_ids)
