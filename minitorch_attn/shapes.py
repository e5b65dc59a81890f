"""`shape_of(x)`: the shape of whatever a caller passed, for error messages.

One helper for the whole library (sdpa, the kernels' checks, the Hopfield functions and layers): a Tensor,
an ndarray, anything with a `.shape`, or a nested list, always as a tuple of ints, which an f-string
prints as NumPy does: (2, 3), (5,), ().
"""

from __future__ import annotations

import numpy as np


def shape_of(x) -> tuple[int, ...]:
    shape = getattr(x, "shape", None)
    return tuple(int(n) for n in (np.shape(x) if shape is None else shape))
