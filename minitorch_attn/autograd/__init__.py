"""The autograd engine: Tensor, Function, the ops and gradcheck.

The import rule (one direction, no cycles). Each module imports only the modules above it in this list,
always at the top of the file, never inside a function:

    autograd/function.py   Function, Context, Node, unbroadcast, IndexedGrad      (NumPy only)
    autograd/tensor.py     Tensor, the tape (`backward`), no_grad, as_tensors, `Function.apply`
    autograd/ops.py        the elementary ops; Tensor's operators and methods (+ * @ [] sum reshape ...)
    autograd/fused.py, entmax.py, linear_attention.py, softplus.py, gradcheck.py
                           ops with a hand-derived backward; gradcheck
    functional/common.py   F.softmax, F.masked_softmax, F.layer_norm, ...; Tensor.softmax & co.
    functional/sdpa.py     F.scaled_dot_product_attention (built from functional/common.py and ops)

When a class defined higher up needs something defined lower down, the lower module attaches it when it
is imported: tensor.py gives `Function` its `apply` (which makes Tensors), ops.py gives `Tensor` its
operators, functional/common.py gives it `softmax`, `log_softmax` and `logsumexp`. `import minitorch_attn`
imports all of them, so every name is in place before any user code runs. The one import deferred to a call
is an optional dependency that would slow `import minitorch_attn` down or may be missing (the Numba kernels
of kernels/ops/, CuPy).

The same rule between the package's folders, one per role: a folder imports only from the folders before it
in this list (`from ..x import` anywhere in its files, also inside functions):

    random.py, shapes.py   seeds; shape checks
    kernels/               compiled kernels and their NumPy references (NumPy arrays in, arrays out)
    autograd/              the engine and every autograd Function (but functional/sdpa.py's FlashAttention,
                           whose forward and backward are kernels, beside the function that dispatches to it)
    functional/            stateless functions on Tensors (`F`)
    optim.py               optimizers and learning-rate schedules
    data/                  datasets and task generators
    nn/                    Module subclasses and models (classes with state)
    evaluation/            running a trained model on a task and scoring it
    training/              the training loop, checkpoints and the lessons' training recipes
"""

from .function import Context, Function, unbroadcast
from .gradcheck import GradcheckError, gradcheck
from .ops import cat, concatenate, masked_fill, matmul, maximum, split, stack, where
from .tensor import Tensor, is_grad_enabled, no_grad, tensor, topological_order

__all__ = [
    "Context", "Function", "GradcheckError", "Tensor", "cat", "concatenate", "gradcheck",
    "is_grad_enabled", "masked_fill", "matmul", "maximum", "no_grad", "split", "stack", "tensor",
    "topological_order", "unbroadcast", "where",
]
