"""Layers and the `Module` machinery, in torch's spelling: `from minitorch_attn import nn`."""

from .. import functional
from .bahdanau import AdditiveAttention, additive_attention, masked_softmax
from .gpt import GPT, GPTConfig, cached_attention, next_token_probs, sample_tokens  # lesson 09
from .graph import GAT, GCN, GATLayer, GCNLayer, NodeMLP, gat_attention, gcn_norm, train_node_classifier
from .hopfield import Hopfield, HopfieldLayer, HopfieldPooling, hopfield_association
from .layers import GELU, Dropout, Embedding, Identity, LayerNorm, Linear, ReLU, Tanh
from .luong import LuongAttention, local_p_weights, luong_score
from .module import IncompatibleKeys, Module, ModuleList, Parameter, Sequential
from .multihead import MultiheadAttention, merge_heads, split_heads
from .neural_process import (
    ConditionalNP,
    context_errors,
    cross_attention_aggregate,
    gaussian_nll,
    train_neural_process,
)
from .positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rope,
    sinusoidal_encoding,
)
from .rnn import GRU, GRUCell
from .seq2seq import Decoder, Encoder, Seq2Seq, evaluate, train_seq2seq
from .transformer import (  # lesson 09
    Seq2SeqTransformer,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
    generate_square_subsequent_mask,
    residual,
)

__all__ = [
    "GELU", "GRU", "Dropout", "Embedding", "GRUCell", "Identity", "IncompatibleKeys", "LayerNorm", "Linear",
    "Module", "ModuleList", "Parameter", "ReLU", "Sequential", "Tanh", "functional",
]
__all__ += [
    "LearnedPositionalEmbedding", "MultiheadAttention", "RotaryEmbedding", "SinusoidalPositionalEncoding",
    "apply_rope", "merge_heads", "sinusoidal_encoding", "split_heads",
]
__all__ += [
    "AdditiveAttention", "Decoder", "Encoder", "LuongAttention", "Seq2Seq", "additive_attention", "evaluate",
    "local_p_weights", "luong_score", "masked_softmax", "train_seq2seq",
]
__all__ += [  # lesson 09
    "Seq2SeqTransformer", "Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
    "TransformerEncoderLayer", "generate_square_subsequent_mask", "residual",
    "GPT", "GPTConfig", "cached_attention", "next_token_probs", "sample_tokens",
]
__all__ += ["Hopfield", "HopfieldLayer", "HopfieldPooling", "hopfield_association"]  # lessons 07-08


__all__ += [  # lesson 15
    "GAT", "GATLayer", "GCN", "GCNLayer", "NodeMLP", "gat_attention", "gcn_norm", "train_node_classifier",
    "ConditionalNP", "context_errors", "cross_attention_aggregate", "gaussian_nll", "train_neural_process",
]
