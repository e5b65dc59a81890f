"""The Transformer (Vaswani et al. 2017), shaped exactly like torch's modules so their weights load here.

    layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                                       layer_norm_eps=1e-5, batch_first=True, norm_first=False, bias=True)
    enc = nn.TransformerEncoder(layer, num_layers, norm=None)          # deep copies of `layer`, as torch
    dec = nn.TransformerDecoder(nn.TransformerDecoderLayer(...), num_layers, norm=None)
    model = nn.Transformer(d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, ...)
    out = model(src, tgt, src_mask=None, tgt_mask=model.generate_square_subsequent_mask(T), ...)

Parameter names are torch's (`self_attn.in_proj_weight`, `multihead_attn.out_proj.bias`, `linear1.weight`,
`norm3.bias`, `encoder.layers.0....`, `decoder.norm.weight`), so `load_state_dict(torch_module.state_dict())`
works. Defaults are torch's except `batch_first=True` (the course is batch-first everywhere).

One block, two orders (the `residual` function, Exercise 9.1):

    post-LN (norm_first=False, the 2017 paper):   x = LayerNorm(x + sublayer(x))
    pre-LN  (norm_first=True, GPT-2 and later):   x = x + sublayer(LayerNorm(x))

Pre-LN keeps an un-normalised residual "stream" from input to output, which trains deep stacks without
learning-rate warmup (Xiong et al. 2020); post-LN normalises after every sublayer.

Masks follow torch's transformer modules (they are handed to `nn.MultiheadAttention`):
a boolean `*_mask` / `*_key_padding_mask` has **True = NOT allowed**; a float mask is added to the scores
(`generate_square_subsequent_mask` gives 0 on and below the diagonal and -inf above). `tgt_is_causal=True`
with no `tgt_mask` applies the causal mask (torch treats `is_causal` as a hint that needs the mask too).
A query whose keys are all masked out gets attention output 0 (our SDPA's convention; torch may give NaN).
"""

from __future__ import annotations

import copy
import math

import numpy as np

from .. import functional as F
from ..autograd.tensor import to_tensor
from ..functional.sdpa import causal_mask
from ..functional.transformer import residual
from ..random import default_rng
from .layers import Dropout, LayerNorm, Linear
from .module import Module, ModuleList, Parameter
from .multihead import MultiheadAttention

__all__ = ["Transformer", "TransformerDecoder", "TransformerDecoderLayer", "TransformerEncoder",
           "TransformerEncoderLayer", "generate_square_subsequent_mask", "residual"]


def generate_square_subsequent_mask(sz: int, dtype=np.float32) -> np.ndarray:
    """torch's causal mask for the transformer modules: (sz, sz) floats, 0 where key j <= query i, -inf
    above the diagonal (a float mask is added to the scores): `causal_mask(sz, sz)` as an additive mask."""
    return np.where(causal_mask(sz, sz), 0.0, -np.inf).astype(dtype)


def _activation(activation):
    if callable(activation):
        return activation
    if activation == "relu":
        return F.relu
    if activation == "gelu":
        return F.gelu
    raise ValueError(f"activation should be 'relu', 'gelu' or a callable; got {activation!r}")


class _Block(Module):
    """What the encoder and decoder layers share: the feed-forward sublayer and batch_first handling."""

    def _init_common(self, d_model, nhead, dim_feedforward, dropout, activation, batch_first, norm_first,
                     bias, rng, dtype):
        if d_model <= 0 or nhead <= 0 or dim_feedforward <= 0:
            raise ValueError(f"{type(self).__name__}: d_model, nhead and dim_feedforward must be positive; got "
                             f"{d_model}, {nhead}, {dim_feedforward}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"{type(self).__name__}: dropout must be in [0, 1]; got {dropout}")
        self.d_model, self.nhead, self.batch_first, self.norm_first = d_model, nhead, batch_first, norm_first
        self.activation_name = activation if isinstance(activation, str) else getattr(activation, "__name__", "fn")
        self.activation = _activation(activation)
        self.rng = rng

    def _ff_block(self, x):
        x = self.linear2(self.dropout(self.activation(self.linear1(x))))
        return self._last_dropout(x)

    def _in(self, x):
        x = to_tensor(x, self.linear1.weight.dtype)
        if x.ndim == 3 and not self.batch_first:
            x = x.transpose(0, 1)
        return x

    def _out(self, x):
        return x.transpose(0, 1) if x.ndim == 3 and not self.batch_first else x

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, nhead={self.nhead}, activation={self.activation_name!r}, "
                f"batch_first={self.batch_first}, norm_first={self.norm_first}")


class TransformerEncoderLayer(_Block):
    """torch.nn.TransformerEncoderLayer: self-attention, then a feed-forward network, each a residual
    sublayer (pre-LN with `norm_first=True`). `forward(src, src_mask=None, src_key_padding_mask=None,
    is_causal=False)`; src (B, N, d_model) (or unbatched (N, d_model))."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = True,
                 norm_first: bool = False, bias: bool = True, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else default_rng()
        self._init_common(d_model, nhead, dim_feedforward, dropout, activation, batch_first, norm_first, bias,
                          rng, dtype)
        # torch's registration order (so state_dict() lists the same keys in the same order)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=True,
                                            rng=rng, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, rng=rng, dtype=dtype)
        self.dropout = Dropout(dropout, rng=rng)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, rng=rng, dtype=dtype)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout, rng=rng)
        self.dropout2 = Dropout(dropout, rng=rng)

    @property
    def _last_dropout(self):
        return self.dropout2

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = self._in(src)
        x = residual(x, lambda h: self._sa_block(h, src_mask, src_key_padding_mask, is_causal), self.norm1,
                     self.norm_first)
        x = residual(x, self._ff_block, self.norm2, self.norm_first)
        return self._out(x)


class TransformerDecoderLayer(_Block):
    """torch.nn.TransformerDecoderLayer: masked self-attention, cross-attention to `memory` (the encoder's
    output), then a feed-forward network; three residual sublayers with norm1, norm2, norm3.

    `forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)`.
    Set `keep_attention = True` to keep the cross-attention weights of the last call, per head, as a Tensor
    `cross_attn_weights` of shape (B, nhead, T, S) (for plots; it is part of the graph).
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = True,
                 norm_first: bool = False, bias: bool = True, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else default_rng()
        self._init_common(d_model, nhead, dim_feedforward, dropout, activation, batch_first, norm_first, bias,
                          rng, dtype)
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=True,
                                            rng=rng, dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=True,
                                                 rng=rng, dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, rng=rng, dtype=dtype)
        self.dropout = Dropout(dropout, rng=rng)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, rng=rng, dtype=dtype)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout, rng=rng)
        self.dropout2 = Dropout(dropout, rng=rng)
        self.dropout3 = Dropout(dropout, rng=rng)
        self.keep_attention = False
        self.cross_attn_weights = None

    @property
    def _last_dropout(self):
        return self.dropout3

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x, w = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                   need_weights=self.keep_attention, average_attn_weights=False,
                                   is_causal=is_causal)
        if self.keep_attention:
            self.cross_attn_weights = w
        return self.dropout2(x)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False):
        x, mem = self._in(tgt), self._in(memory)
        x = residual(x, lambda h: self._sa_block(h, tgt_mask, tgt_key_padding_mask, tgt_is_causal), self.norm1,
                     self.norm_first)
        x = residual(x, lambda h: self._mha_block(h, mem, memory_mask, memory_key_padding_mask, memory_is_causal),
                     self.norm2, self.norm_first)
        x = residual(x, self._ff_block, self.norm3, self.norm_first)
        return self._out(x)


def _clones(layer: Module, n: int) -> ModuleList:
    """n deep copies of `layer` (torch's `_get_clones`); the copies share the original's random generator."""
    if n < 0:
        raise ValueError(f"num_layers must be non-negative; got {n}")
    copies = []
    for _ in range(n):
        c = copy.deepcopy(layer)
        for orig, new in zip(layer.modules(), c.modules()):
            if hasattr(orig, "rng"):
                object.__setattr__(new, "rng", orig.rng)
        copies.append(c)
    return ModuleList(copies)


class TransformerEncoder(Module):
    """torch.nn.TransformerEncoder: `num_layers` copies of `encoder_layer`, then an optional final `norm`
    (pre-LN stacks need it: their stream is never normalised otherwise)."""

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: Module | None = None):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return self.norm(x) if self.norm is not None else x


class TransformerDecoder(Module):
    """torch.nn.TransformerDecoder: `num_layers` copies of `decoder_layer`, then an optional final `norm`."""

    def __init__(self, decoder_layer: TransformerDecoderLayer, num_layers: int, norm: Module | None = None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False, memory_is_causal: bool = False):
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                      tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                      tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return self.norm(x) if self.norm is not None else x


class Transformer(Module):
    """torch.nn.Transformer: an encoder stack and a decoder stack, each ending in a LayerNorm, with every
    matrix re-initialised xavier-uniform (torch's `_reset_parameters`).

    `forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=False, tgt_is_causal=False,
    memory_is_causal=False)` -> (B, T, d_model). It takes embeddings, not token ids: add your own embedding,
    positions and output projection (see `Seq2SeqTransformer`).
    """

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", layer_norm_eps: float = 1e-5, batch_first: bool = True,
                 norm_first: bool = False, bias: bool = True, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else default_rng()
        kw = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                  layer_norm_eps=layer_norm_eps, batch_first=batch_first, norm_first=norm_first, bias=bias,
                  rng=rng, dtype=dtype)
        self.encoder = TransformerEncoder(TransformerEncoderLayer(d_model, nhead, **kw), num_encoder_layers,
                                          LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        self.decoder = TransformerDecoder(TransformerDecoderLayer(d_model, nhead, **kw), num_decoder_layers,
                                          LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first
        for p in self.parameters():  # xavier-uniform on every matrix, as torch
            if p.ndim > 1:
                fan_out, fan_in = p.shape
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                p.data = rng.uniform(-bound, bound, size=p.shape).astype(p.dtype)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal: bool = False,
                tgt_is_causal: bool = False, memory_is_causal: bool = False):
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(f"Transformer(d_model={self.d_model}): src {tuple(src.shape)} and tgt "
                             f"{tuple(tgt.shape)} must both end in d_model features")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask, tgt_is_causal=tgt_is_causal,
                            memory_is_causal=memory_is_causal)


class Seq2SeqTransformer(Module):
    """A token-level encoder-decoder around `Transformer` for the toy tasks of `data.sequences` (PAD=0,
    BOS=1, EOS=2): shared token embedding scaled by √d_model, learned positions, `Transformer`, and an
    output projection. `loss(batch)` is teacher-forced cross-entropy; `greedy_decode` returns tokens and
    the last decoder layer's cross-attention (B, steps, L) averaged over heads."""

    def __init__(self, vocab_size: int, d_model: int = 64, nhead: int = 4, num_encoder_layers: int = 2,
                 num_decoder_layers: int = 2, dim_feedforward: int = 128, dropout: float = 0.0,
                 max_len: int = 64, norm_first: bool = True, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng(0)
        self.d_model, self.max_len = d_model, max_len
        self.embed = Parameter(rng.normal(0, d_model ** -0.5, size=(vocab_size, d_model)).astype(dtype))
        self.pos = Parameter(rng.normal(0, 0.02, size=(max_len, d_model)).astype(dtype))
        self.transformer = Transformer(d_model, nhead, num_encoder_layers, num_decoder_layers, dim_feedforward,
                                       dropout, norm_first=norm_first, rng=rng, dtype=dtype)
        self.out = Linear(d_model, vocab_size, rng=rng, dtype=dtype)

    def _embed(self, tokens):
        n = tokens.shape[1]
        if n > self.max_len:
            raise ValueError(f"Seq2SeqTransformer: sequences of length {n} exceed max_len={self.max_len}")
        return F.embedding(tokens, self.embed) * math.sqrt(self.d_model) + self.pos[:n]

    def forward(self, src, tgt_in, src_pad=None):
        src, tgt_in = np.asarray(src), np.asarray(tgt_in)
        T = tgt_in.shape[1]
        causal = ~causal_mask(T, T)  # True = NOT allowed (torch's convention)
        h = self.transformer(self._embed(src), self._embed(tgt_in), tgt_mask=causal,
                             src_key_padding_mask=src_pad, memory_key_padding_mask=src_pad)
        return self.out(h)

    def loss(self, batch):
        from ..data.sequences import PAD

        pad = batch.src_pad if batch.src_pad.any() else None
        logits = self(batch.src, batch.tgt_in, pad)
        B, T, V = logits.shape
        loss = F.cross_entropy(logits.reshape(B * T, V), batch.tgt_out.reshape(-1), ignore_index=PAD)
        return loss, logits

    def greedy_decode(self, src, src_pad=None, steps: int | None = None):
        """Greedy decoding without gradients (the whole prefix is re-run each step: fine for toy lengths).
        Returns tokens (B, steps) and the last layer's cross-attention (B, steps, L) averaged over heads."""
        from ..autograd.tensor import no_grad
        from ..data.sequences import BOS

        src = np.asarray(src)
        steps = src.shape[1] + 1 if steps is None else steps
        if src_pad is not None and not np.asarray(src_pad).any():
            src_pad = None
        last = self.transformer.decoder.layers[-1]
        was_training = self.training
        self.eval()
        last.keep_attention = True
        try:
            with no_grad():
                memory = self.transformer.encoder(self._embed(src), src_key_padding_mask=src_pad)
                ys = np.full((src.shape[0], 1), BOS, dtype=np.int64)
                for _ in range(steps):
                    T = ys.shape[1]
                    h = self.transformer.decoder(self._embed(ys), memory, tgt_mask=~causal_mask(T, T),
                                                 memory_key_padding_mask=src_pad)
                    nxt = self.out(h[:, -1]).data.argmax(-1)
                    ys = np.concatenate([ys, nxt[:, None]], axis=1)
                weights = last.cross_attn_weights.data.mean(axis=1)  # (B, steps, L) from the final call
        finally:
            last.keep_attention = False
            self.train(was_training)
        return ys[:, 1:], weights
