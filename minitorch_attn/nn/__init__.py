"""Layers, attention modules and models (Module subclasses, and the classes that hold a model's state), in
torch's spelling: `from minitorch_attn import nn`. The stateless functions they are built from live in
`functional/` (e.g. `additive_attention` in functional/additive.py, `split_heads` in functional/multihead.py);
the training recipes in `training/`. The only functions here: the parameter initialisers (layers.uniform,
multihead.xavier_uniform), seq2seq.make_attention (builds a module) and torch's
`generate_square_subsequent_mask` (nn/transformer.py, from functional/sdpa.py's causal_mask)."""

from .. import functional
from .bahdanau import AdditiveAttention
from .gpt import GPT, GPTConfig  # lesson 09
from .graph import GAT, GCN, GATLayer, GCNLayer, NodeMLP
from .hopfield import ClassicalHopfield, Hopfield, HopfieldLayer, HopfieldPooling
from .layers import GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU, Tanh
from .luong import LuongAttention
from .max_retrieval import MaxRetrievalHead  # lesson 12
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential
from .multihead import MultiheadAttention
from .neural_process import ConditionalNP
from .positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
)
from .rnn import GRU, GRUCell
from .seq2seq import Decoder, Encoder, Seq2Seq
from .transformer import (  # lesson 09
    Seq2SeqTransformer,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    generate_square_subsequent_mask,
)

__all__ = [
    "GELU", "GRU", "Dropout", "Embedding", "GRUCell", "Identity", "IncompatibleKeys", "LayerNorm", "Linear",
    "Module", "ModuleList", "Parameter", "ReLU", "Sequential", "Tanh", "functional",
]
__all__ += [
    "LearnedPositionalEmbedding", "MultiheadAttention", "RotaryEmbedding", "SinusoidalPositionalEncoding",
]
__all__ += [
    "AdditiveAttention", "Decoder", "Encoder", "LuongAttention", "Seq2Seq",
]
__all__ += [  # lesson 09
    "Seq2SeqTransformer", "Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
    "TransformerEncoderLayer", "generate_square_subsequent_mask", "GPT", "GPTConfig",
]
__all__ += ["ClassicalHopfield", "Hopfield", "HopfieldLayer", "HopfieldPooling"]  # lessons 07-08
__all__ += ["MaxRetrievalHead"]  # lesson 12


__all__ += [  # lesson 15
    "GAT", "GATLayer", "GCN", "GCNLayer", "NodeMLP", "ConditionalNP",
]
