"""Stateless functions on Tensors, in PyTorch's spelling: `from minitorch_attn import functional as F`.

`F.` offers torch's names (re-exported here): softmax, masked_softmax, log_softmax, logsumexp, layer_norm,
cross_entropy, embedding, dropout, gelu, relu, sigmoid, tanh, linear (common.py), sparsemax, entmax15 and
entmax (lesson 13, autograd/entmax.py) and scaled_dot_product_attention (sdpa.py).

The other files hold the functions of one lesson each, imported by their path
(`from minitorch_attn.functional.additive import additive_attention`):

    common.py            the elementary ops above                                        lessons 01-02, 09
    additive.py          additive (Bahdanau) attention, padding masks, argument checks   lesson 03
    rnn.py               the GRU update, Bahdanau's decoder step                         lesson 03
    luong.py             Luong's scores (dot, general, concat) and local-p weights       lesson 04
    sdpa.py              scaled dot-product attention, causal masks, cached attention    lessons 05, 09-11
    multihead.py         splitting into heads and merging them                           lesson 06
    positional.py        sinusoidal encodings, rotary embeddings (RoPE)                  lesson 06
    hopfield.py          the modern Hopfield update and energy, hopfield_association     lessons 07-08
    transformer.py       a block's residual wiring; next-token probabilities, sampling   lesson 09
    softmax_limits.py    how sharp softmax can be; entropy; adaptive temperature         lesson 12
    linear_attention.py  linear, Galerkin and Fourier attention                          lesson 14
    graph.py             graph attention (GAT) scores, GCN normalisation                 lesson 15
    neural_process.py    cross-attention aggregation, the Gaussian NLL                   lesson 15
    anatomy.py           attention composed from a score, a normaliser and a combine     lesson 16

The files here import each other's functions directly (`from .common import softmax`), never this
__init__, so that any of them can be imported on its own.
"""

from ..autograd.entmax import entmax, entmax15, sparsemax  # lesson 13: sparse alternatives to softmax
from .common import (
    cross_entropy,
    dropout,
    embedding,
    gelu,
    layer_norm,
    linear,
    log_softmax,
    logsumexp,
    masked_softmax,
    relu,
    sigmoid,
    softmax,
    tanh,
)
from .sdpa import scaled_dot_product_attention

__all__ = [
    "softmax", "log_softmax", "logsumexp", "layer_norm", "cross_entropy", "embedding", "dropout",
    "gelu", "relu", "sigmoid", "tanh", "linear", "scaled_dot_product_attention",
    "sparsemax", "entmax15", "entmax", "masked_softmax",
]
