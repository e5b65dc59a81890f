"""The library's random generator: every layer's initialisation and dropout draw from it unless given
their own `rng`, so `mta.manual_seed(0)` makes a whole script repeatable without global NumPy state."""

from __future__ import annotations

import numpy as np

_rng = np.random.default_rng(0)


def manual_seed(seed: int) -> np.random.Generator:
    """Reset the library generator; returns it."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def default_rng() -> np.random.Generator:
    return _rng
