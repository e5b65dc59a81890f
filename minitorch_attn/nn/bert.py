"""BERT (Devlin et al. 2019), the encoder of sentence-transformers' all-MiniLM-L6-v2, built from the course's
own layers (lesson 17). `minitorch_attn.pretrained` loads real weights into it.

    config = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                        intermediate_size=1536)
    model = BertModel(config, backend="auto")
    hidden = model(input_ids, attention_mask)                             # (B, N, hidden_size)
    hidden, states = model(input_ids, attention_mask, output_hidden_states=True)   # states: L + 1 of them
    maps = model.attention_maps(input_ids, attention_mask, layer=2)      # (B, H, N, N), the naive backend

BERT's encoder is lesson 09's post-LN `TransformerEncoderLayer`, stacked, with three differences:

1. Inputs: `LayerNorm(word[ids] + position[0 .. N-1] + token_type[types])` -- learned positions (no
   sinusoids), a segment embedding (all zeros for one sentence), and a LayerNorm on the sum.
2. The feed-forward activation is the exact GELU x·Φ(x), and every LayerNorm uses the checkpoint's
   `layer_norm_eps` (1e-12 for BERT, not torch's 1e-5).
3. The checkpoint stores query, key and value as three matrices, so each layer's attention is a
   `MultiheadAttention(packed=False)`: the same attention code, holding the separate layout.

Padding. `attention_mask` (B, N) follows the Hugging Face convention: **1 = a real token, 0 = padding**. It
becomes `key_padding_mask = (attention_mask == 0)` (nn.MultiheadAttention's convention: True = masked out),
which reaches `F.scaled_dot_product_attention` as a boolean (B, 1, 1, N) mask and, on the "tiled" and
"numba" backends, the flash kernels as their key-padding mask. Padded positions are never attended to,
but they are still computed as queries: their rows of the hidden states are meaningless, and pooling
(`pretrained.mean_pool`) must skip them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..autograd.tensor import Tensor, no_grad
from ..random import default_rng
from .layers import Dropout, Embedding, LayerNorm
from .module import Module, ModuleList
from .multihead import MultiheadAttention
from .transformer import TransformerEncoderLayer

__all__ = ["BertConfig", "BertEmbeddings", "BertModel"]


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face BERT `config.json` that the encoder needs (same names)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    pad_token_id: int = 0

    def __post_init__(self):
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) <= 0:
                raise ValueError(f"BertConfig: {name} must be a positive integer; got {getattr(self, name)!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"BertConfig: hidden_size={self.hidden_size} is not divisible by "
                             f"num_attention_heads={self.num_attention_heads}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


class BertEmbeddings(Module):
    """LayerNorm(word_embeddings[ids] + position_embeddings[0..N-1] + token_type_embeddings[types]), then
    dropout. ids and types are integer arrays (B, N); types default to 0 (a single segment)."""

    def __init__(self, config: BertConfig, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        E = config.hidden_size
        self.word_embeddings = Embedding(config.vocab_size, E, rng=rng, dtype=dtype)
        self.position_embeddings = Embedding(config.max_position_embeddings, E, rng=rng, dtype=dtype)
        self.token_type_embeddings = Embedding(config.type_vocab_size, E, rng=rng, dtype=dtype)
        self.norm = LayerNorm(E, eps=config.layer_norm_eps, dtype=dtype)
        self.dropout = Dropout(config.hidden_dropout_prob, rng=rng)

    def forward(self, input_ids, token_type_ids=None) -> Tensor:
        ids = np.asarray(input_ids)
        if ids.ndim != 2:
            raise ValueError(f"BertEmbeddings: input_ids must be (batch, length); got shape {ids.shape}")
        n = ids.shape[1]
        if n > self.position_embeddings.num_embeddings:
            raise ValueError(f"BertEmbeddings: {n} tokens, but the model has only "
                             f"{self.position_embeddings.num_embeddings} positions; truncate the input")
        types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids)
        if types.shape != ids.shape:
            raise ValueError(f"BertEmbeddings: token_type_ids {types.shape} must match input_ids {ids.shape}")
        x = self.word_embeddings(ids) + self.position_embeddings(np.arange(n)) + self.token_type_embeddings(types)
        return self.dropout(self.norm(x))


def _encoder_layer(config: BertConfig, backend: str, rng, dtype) -> TransformerEncoderLayer:
    """torch's post-LN encoder layer with exact GELU and BERT's eps, its attention holding q/k/v separately."""
    E, H = config.hidden_size, config.num_attention_heads
    layer = TransformerEncoderLayer(E, H, dim_feedforward=config.intermediate_size,
                                    dropout=config.hidden_dropout_prob, activation="gelu",
                                    layer_norm_eps=config.layer_norm_eps, batch_first=True, norm_first=False,
                                    rng=rng, dtype=dtype)
    layer.self_attn = MultiheadAttention(E, H, dropout=config.attention_probs_dropout_prob, batch_first=True,
                                         rng=rng, dtype=dtype, packed=False, backend=backend)
    return layer


class BertModel(Module):
    """BERT's encoder: `embeddings`, then `layers` (a ModuleList of `TransformerEncoderLayer`). No pooler
    (sentence embeddings mean-pool the last hidden states instead).

    forward(input_ids, attention_mask=None, token_type_ids=None, output_hidden_states=False):
        input_ids (B, N) integers; attention_mask (B, N), 1 = token, 0 = padding (default: all tokens).
        Returns the last hidden states (B, N, hidden_size), or (last, states) with
        `output_hidden_states=True`, states = [embeddings output, layer 1 output, ..., layer L output].
    `backend` is the attention backend of every layer ("auto", "naive", "tiled", "numba", ...);
    `set_backend` changes it.
    """

    def __init__(self, config: BertConfig, backend: str = "auto", rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else default_rng()
        self.config = config
        self.embeddings = BertEmbeddings(config, rng=rng, dtype=dtype)
        self.layers = ModuleList([_encoder_layer(config, backend, rng, dtype)
                                  for _ in range(config.num_hidden_layers)])

    @property
    def backend(self) -> str:
        return self.layers[0].self_attn.backend

    def set_backend(self, backend: str) -> BertModel:
        for layer in self.layers:
            layer.self_attn.backend = backend
        return self

    @staticmethod
    def key_padding_mask(input_ids, attention_mask) -> np.ndarray | None:
        """attention_mask (1 = token) as nn.MultiheadAttention's key_padding_mask (True = padding), or None
        when there is no padding."""
        if attention_mask is None:
            return None
        m = np.asarray(attention_mask)
        if m.shape != np.shape(input_ids):
            raise ValueError(f"BertModel: attention_mask {m.shape} must have the shape of input_ids "
                             f"{np.shape(input_ids)} (1 = token, 0 = padding)")
        if not np.isin(m, (0, 1)).all():
            raise ValueError("BertModel: attention_mask must hold 1 (token) and 0 (padding) only")
        pad = m == 0
        return pad if pad.any() else None

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, output_hidden_states: bool = False):
        pad = self.key_padding_mask(input_ids, attention_mask)
        x = self.embeddings(input_ids, token_type_ids)
        states = [x]
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad)
            states.append(x)
        return (x, states) if output_hidden_states else x

    def attention_maps(self, input_ids, attention_mask=None, layer: int = 0, token_type_ids=None) -> np.ndarray:
        """The attention weights (B, H, N, N) of layer `layer` (0-based), every head, as a NumPy array: the
        layer's input hidden states run through its own attention module on the naive backend (the one that
        forms the weights). Rows of padded queries are meaningless; columns of padded keys are 0."""
        if not 0 <= layer < len(self.layers):
            raise IndexError(f"BertModel.attention_maps: layer {layer} out of range; the model has "
                             f"{len(self.layers)} layers (0 .. {len(self.layers) - 1})")
        with no_grad():
            _, states = self.forward(input_ids, attention_mask, token_type_ids, output_hidden_states=True)
            h = states[layer]
            _, w = self.layers[layer].self_attn(h, h, h, key_padding_mask=self.key_padding_mask(input_ids,
                                                                                                attention_mask),
                                                need_weights=True, average_attn_weights=False, backend="naive")
        return w.data

    def extra_repr(self) -> str:
        c = self.config
        return (f"layers={c.num_hidden_layers}, hidden={c.hidden_size}, heads={c.num_attention_heads}, "
                f"ffn={c.intermediate_size}, backend={self.backend!r}")
