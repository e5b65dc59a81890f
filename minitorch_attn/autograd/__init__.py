"""The autograd engine: Tensor, Function, the ops and gradcheck."""

from .function import Context, Function, unbroadcast
from .gradcheck import GradcheckError, gradcheck
from .ops import cat, concatenate, masked_fill, matmul, maximum, split, stack, where
from .tensor import Tensor, is_grad_enabled, no_grad, tensor, topological_order

__all__ = [
    "Context", "Function", "GradcheckError", "Tensor", "cat", "concatenate", "gradcheck",
    "is_grad_enabled", "masked_fill", "matmul", "maximum", "no_grad", "split", "stack", "tensor",
    "topological_order", "unbroadcast", "where",
]
