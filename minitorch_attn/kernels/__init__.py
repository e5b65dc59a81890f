"""Attention kernels and the streaming softmax pieces they are built from.

    o, lse = flash_attention(q, k, v, causal=False, scale=None, key_padding_mask=None, backend="numba")
    dq, dk, dv = flash_attention_backward(q, k, v, o, lse, do, causal=..., backend="numba")

Backends: "reference" (materialises the scores: the NumPy oracle every kernel is tested against),
"tiled" (FlashAttention-2 in readable NumPy, the lesson's pseudocode), "numba" (the same algorithm compiled
and parallel; Numba is imported only when this backend is first used, so `import minitorch_attn` stays fast),
"cuda-cpu" (the
CUDA C kernels `kernels/cuda/flash_fwd.cu` and `flash_bwd.cu` compiled with g++ and run on the CPU harness,
float32), "cupy" (the same CUDA C kernels on a GPU through CuPy, imported only when first used;
`kernels.cuda.cupy_backend` also has a half-precision tensor-core forward, variant "wmma").
Shapes, masks and the fully-masked-row convention: `minitorch_attn.kernels.common`.

The oracle was called "naive" here until it was renamed: "naive" is `F.scaled_dot_product_attention`'s
backend that composes autograd ops; here it raises, naming the new name.
"""

from __future__ import annotations

from .online import merge_normalisers, online_normaliser, online_softmax
from .reference import attention_backward, attention_forward
from .tiled import flash_backward_tiled, flash_forward_tiled, online_softmax_tile_step

BACKENDS = ("reference", "tiled", "numba", "cuda-cpu", "cupy")


def _backend(name: str):
    """(forward, backward) functions of a backend."""
    if name == "reference":
        return attention_forward, attention_backward
    if name == "naive":
        raise ValueError('the kernels\' NumPy oracle is backend "reference" (it was "naive", the name that '
                         'F.scaled_dot_product_attention gives its autograd composition): pass backend="reference"')
    if name == "tiled":
        return flash_forward_tiled, flash_backward_tiled
    if name == "numba":
        from .numba_backend import flash_backward_numba, flash_forward_numba  # lazy: compiling costs

        return flash_forward_numba, flash_backward_numba
    if name == "cuda-cpu":
        from .cuda.backward import flash_backward_cuda_cpu  # lazy: compiles with g++
        from .cuda.forward import flash_forward_cuda_cpu

        return flash_forward_cuda_cpu, flash_backward_cuda_cpu
    if name == "cupy":
        from .cuda.cupy_backend import flash_backward_cupy, flash_forward_cupy  # lazy: CuPy only when used

        return flash_forward_cupy, flash_backward_cupy
    raise ValueError(f"unknown attention backend {name!r}; choose one of {', '.join(map(repr, BACKENDS))}")


def flash_attention(q, k, v, causal=False, scale=None, key_padding_mask=None, backend="numba"):
    """Attention forward for (B, H, N, d) arrays: returns (o, lse), lse = logsumexp of each score row."""
    forward, _ = _backend(backend)
    return forward(q, k, v, causal=causal, scale=scale, key_padding_mask=key_padding_mask)


def flash_attention_backward(q, k, v, o, lse, do, causal=False, scale=None, key_padding_mask=None,
                             backend="numba"):
    """Gradients (dq, dk, dv) of sum(o · do), from the forward's o and lse."""
    _, backward = _backend(backend)
    return backward(q, k, v, o, lse, do, causal=causal, scale=scale, key_padding_mask=key_padding_mask)


__all__ = [
    "BACKENDS", "attention_backward", "attention_forward", "flash_attention", "flash_attention_backward",
    "flash_backward_tiled", "flash_forward_tiled", "merge_normalisers", "online_normaliser", "online_softmax",
    "online_softmax_tile_step",
]
