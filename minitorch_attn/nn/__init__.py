"""Layers and the `Module` machinery, in torch's spelling: `from minitorch_attn import nn`."""

from .. import functional
from .layers import GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU, Tanh
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential
from .rnn import GRU, GRUCell

__all__ = [
    "GELU", "GRU", "Dropout", "Embedding", "GRUCell", "Identity", "IncompatibleKeys", "LayerNorm", "Linear",
    "Module", "ModuleList", "Parameter", "ReLU", "Sequential", "Tanh", "functional",
]
