"""Max retrieval (Veličković et al. 2025, "softmax is not enough"): find the largest of n scalars.

A sample is a set of `n_items` values drawn independently and uniformly from [0, 1); the answer is the
largest one and its position. Train on one set size, test on others: a model that really implemented
"attend to the max" would not care about n, but a softmax head does (lesson 12).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class MaxRetrieval(NamedTuple):
    values: np.ndarray  # (n_samples, n_items) in [0, 1)
    argmax: np.ndarray  # (n_samples,) int: the position of the largest value
    target: np.ndarray  # (n_samples,) the largest value


def max_retrieval(n_samples: int, n_items: int, seed: int = 0, dtype=np.float32) -> MaxRetrieval:
    """`n_samples` sets of `n_items` uniform values in [0, 1), from `seed`, with their max and argmax."""
    if n_samples < 1 or n_items < 1:
        raise ValueError(f"max_retrieval needs n_samples >= 1 and n_items >= 1; got n_samples={n_samples}, "
                         f"n_items={n_items}")
    values = np.random.default_rng(seed).random((n_samples, n_items)).astype(dtype)
    argmax = values.argmax(axis=1)
    return MaxRetrieval(values=values, argmax=argmax, target=values[np.arange(n_samples), argmax])
