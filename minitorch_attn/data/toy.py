"""Small generated data sets. Every generator takes a `seed` and touches no global random state."""

from __future__ import annotations

import numpy as np


def spirals(n_per_class: int = 100, classes: int = 2, noise: float = 0.2, turns: float = 1.5,
            seed: int = 0, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved 2-D spirals: a classic task no linear model can solve, and a tiny MLP can.

    Returns X of shape (classes * n_per_class, 2) and integer labels y of shape (classes * n_per_class,).
    """
    if n_per_class < 1 or classes < 2:
        raise ValueError(f"spirals needs n_per_class >= 1 and classes >= 2; got {n_per_class} and {classes}")
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.1, 1.0, n_per_class)
        theta = 2 * np.pi * turns * r + 2 * np.pi * c / classes + rng.normal(0, noise, n_per_class) * r
        xs.append(np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(dtype), np.concatenate(ys).astype(np.int64)
