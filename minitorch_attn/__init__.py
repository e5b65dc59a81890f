"""minitorch_attn: a from-scratch course on neural attention.

    import minitorch_attn as mta
    from minitorch_attn import nn, optim, functional as F
"""

from __future__ import annotations

import numpy as np

from . import autograd, functional, kernels, nn, optim
from .autograd import (
    Function,
    GradcheckError,
    Tensor,
    cat,
    concatenate,
    gradcheck,
    masked_fill,
    matmul,
    maximum,
    no_grad,
    split,
    stack,
    tensor,
    where,
)
from .random import default_rng, manual_seed

__version__ = "0.1.0"


def zeros(*shape, dtype=np.float32, requires_grad=False) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.zeros(shape, dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype=np.float32, requires_grad=False) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


def randn(*shape, dtype=np.float32, requires_grad=False, rng: np.random.Generator | None = None) -> Tensor:
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    rng = rng if rng is not None else default_rng()
    return Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=requires_grad)


__all__ = [
    "Function", "GradcheckError", "Tensor", "autograd", "cat", "concatenate", "default_rng", "functional",
    "gradcheck", "kernels", "manual_seed", "masked_fill", "matmul", "maximum", "nn", "no_grad", "ones",
    "optim", "randn", "split", "stack", "tensor", "where", "zeros",
]

# Last, on purpose: the course machinery (`mta.course.use("exercises")` runs the library on a learner's
# code). In a student release (`python -m minitorch_attn course release`) this switches it on at import.
from . import course  # noqa: E402

course.activate_release()
