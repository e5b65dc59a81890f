"""A GRU encoder-decoder with pluggable attention, for the RNN-era attention lessons (03 Bahdanau, 04 Luong).

    model = Seq2Seq(vocab_size, attention="additive")          # Bahdanau: bidirectional encoder, additive
    model = Seq2Seq(vocab_size, attention="general")           # Luong: attention after the decoder step
    model = Seq2Seq(vocab_size, attention=None)                # the baseline: one fixed-size vector
    loss, logits = model.loss(batch)                            # teacher forcing, mean cross-entropy
    tokens, alignments = model.greedy_decode(batch.src, batch.src_pad, steps=...)
    history = train_seq2seq(model, reversal_task, steps=400)   # Adam, clipping, a tqdm progress bar

Token conventions (PAD/BOS/EOS, batches of `SeqBatch`) are those of `minitorch_attn.data.sequences`.

Encoder: embedding, then a GRU (bidirectional by default, as in Bahdanau et al.); its states h_j (forward
and backward concatenated) are the attention's keys and values. The decoder's first state is
s_0 = tanh(W_init [final forward state; final backward state]).

Decoder, two styles (the default follows the attention module):
- "bahdanau" (for `AdditiveAttention`): attend with the *previous* state, then step:
  c_i = attn(s_{i-1}, h),  s_i = GRU([emb(y_{i-1}); c_i], s_{i-1}),  logits_i = W_out [s_i; c_i].
  Attention sits inside the recurrence, so teacher forcing runs one step at a time.
- "luong" (for `LuongAttention`): step, then attend with the *current* state:
  s_i = GRU(emb(y_{i-1}), s_{i-1}),  c_i = attn(s_i, h),  h̃_i = tanh(W_c [c_i; s_i]),  logits_i = W_s h̃_i.
  Attention is outside the recurrence, so under teacher forcing the whole target is one GRU call and
  one batched attention call (no input feeding).
- attention=None: s_i = GRU(emb(y_{i-1}), s_{i-1}), logits_i = W_out s_i. Everything the decoder knows about
  the source has to pass through s_0, a single vector of `hidden_dim` numbers: the bottleneck.

Padding: the encoder GRU reads padded positions too (there is no sequence packing), so use `min_length`
< `length` only with attention, whose key_padding_mask hides those positions.
"""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd.ops import concatenate, stack
from ..autograd.tensor import no_grad
from ..data.sequences import BOS, PAD, SeqBatch
from ..functional.rnn import bahdanau_step
from .bahdanau import AdditiveAttention
from .layers import Embedding, Linear
from .luong import LuongAttention
from .module import Module
from .rnn import GRU, GRUCell

STYLES = ("bahdanau", "luong")


class Encoder(Module):
    """Embedding + GRU. `annotations, final = encoder(src)`: annotations (B, L, D * hidden_dim) (forward
    and backward states concatenated when bidirectional), final (B, D * hidden_dim) the last state of each
    direction (the backward direction's last state is the one at position 0)."""

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, bidirectional: bool = True,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.embed = Embedding(vocab_size, emb_dim, rng=rng, dtype=dtype)
        self.gru = GRU(emb_dim, hidden_dim, bidirectional=bidirectional, rng=rng, dtype=dtype)
        self.bidirectional = bidirectional
        self.out_dim = hidden_dim * (2 if bidirectional else 1)

    def forward(self, src):
        src = np.asarray(getattr(src, "data", src))
        if src.ndim != 2:
            raise ValueError(f"Encoder: src must be token ids of shape (B, L); got shape {src.shape}")
        annotations, h_n = self.gru(self.embed(src))
        final = h_n[0] if not self.bidirectional else concatenate([h_n[0], h_n[1]], axis=-1)
        return annotations, final


class Decoder(Module):
    """A GRU decoder with pluggable attention (see the module docstring for the two styles).

    `logits, alignments = decoder(tgt_in, annotations, final, src_pad)` under teacher forcing:
    tgt_in (B, T) token ids, logits (B, T, vocab_size), alignments (B, T, L) as a NumPy array (None
    without attention).
    """

    def __init__(self, vocab_size: int, emb_dim: int, hidden_dim: int, enc_dim: int, attention=None,
                 style: str | None = None, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        if style is None:
            style = "luong" if isinstance(attention, LuongAttention) else "bahdanau"
        if style not in STYLES:
            raise ValueError(f"Decoder: style must be one of {STYLES}; got {style!r}")
        if attention is not None:
            qd, kd = getattr(attention, "query_dim", hidden_dim), getattr(attention, "key_dim", enc_dim)
            if (qd, kd) != (hidden_dim, enc_dim):
                raise ValueError(f"Decoder: the attention module takes queries of {qd} and keys of {kd} "
                                 f"features, but the decoder state has {hidden_dim} and the encoder states "
                                 f"{enc_dim}")
        self.vocab_size, self.emb_dim, self.hidden_dim, self.enc_dim = vocab_size, emb_dim, hidden_dim, enc_dim
        self.style = style if attention is not None else None
        self.embed = Embedding(vocab_size, emb_dim, rng=rng, dtype=dtype)
        self.init = Linear(enc_dim, hidden_dim, rng=rng, dtype=dtype)
        self.attention = attention
        if attention is None:
            self.rnn = GRU(emb_dim, hidden_dim, rng=rng, dtype=dtype)
            self.out = Linear(hidden_dim, vocab_size, rng=rng, dtype=dtype)
        elif style == "bahdanau":
            self.cell = GRUCell(emb_dim + enc_dim, hidden_dim, rng=rng, dtype=dtype)
            self.out = Linear(hidden_dim + enc_dim, vocab_size, rng=rng, dtype=dtype)
        else:
            self.rnn = GRU(emb_dim, hidden_dim, rng=rng, dtype=dtype)
            self.combine = Linear(enc_dim + hidden_dim, hidden_dim, bias=False, rng=rng, dtype=dtype)
            self.out = Linear(hidden_dim, vocab_size, rng=rng, dtype=dtype)

    # ---- shared by teacher forcing and greedy decoding -----------------------------------------------
    def start(self, annotations, final, src_pad):
        """What every step needs: the first state s_0 and the attention's per-sequence precomputation."""
        state = self.init(final).tanh()
        cache = {"annotations": annotations, "src_pad": src_pad}
        if self.attention is not None and hasattr(self.attention, "precompute_keys"):
            cache["projected_keys"] = self.attention.precompute_keys(annotations)
        if self.style == "bahdanau":
            E = self.emb_dim
            cache["w_emb"] = self.cell.weight_ih[:, :E]  # the GRU input weights, split: embedding part ...
            cache["w_ctx_t"] = self.cell.weight_ih[:, E:].transpose(0, 1)  # ... and context part
            cache["w_hh_t"] = self.cell.weight_hh.transpose(0, 1)
        return state, cache

    def attend(self, query, cache):
        kw = {"projected_keys": cache["projected_keys"]} if "projected_keys" in cache else {}
        keys = None if kw else cache["annotations"]
        return self.attention(query, keys, cache["annotations"], cache["src_pad"], **kw)

    def bahdanau_step(self, gi_emb, state, cache):
        """One step of the Bahdanau-style decoder (see `bahdanau_step`)."""
        return bahdanau_step(lambda s: self.attend(s, cache), gi_emb, state, cache["w_ctx_t"], cache["w_hh_t"],
                             self.cell.bias_hh)

    def luong_outputs(self, states, cache):
        """Logits (B, T, vocab) and weights (B, T, L) from decoder states (B, T, H), Luong style."""
        context, weights = self.attend(states, cache)
        attentional = self.combine(concatenate([context, states], axis=-1)).tanh()
        return self.out(attentional), weights

    # ---- teacher forcing ------------------------------------------------------------------------------
    def forward(self, tgt_in, annotations, final, src_pad=None):
        tgt_in = np.asarray(getattr(tgt_in, "data", tgt_in))
        if tgt_in.ndim != 2 or tgt_in.shape[0] != annotations.shape[0]:
            raise ValueError(f"Decoder: tgt_in must be token ids of shape (B, T) with B = "
                             f"{annotations.shape[0]}; got shape {tgt_in.shape}")
        state, cache = self.start(annotations, final, src_pad)
        emb = self.embed(tgt_in)  # (B, T, E)
        B, T = tgt_in.shape
        if self.attention is None:
            states, _ = self.rnn(emb, state.reshape(1, B, self.hidden_dim))
            return self.out(states), None
        if self.style == "luong":
            states, _ = self.rnn(emb, state.reshape(1, B, self.hidden_dim))
            logits, weights = self.luong_outputs(states, cache)
            return logits, weights.data
        gi_emb = F.linear(emb, cache["w_emb"], self.cell.bias_ih)  # (B, T, 3H): every step in one matmul
        states, contexts, alignments = [], [], []
        for t in range(T):
            state, context, weights = self.bahdanau_step(gi_emb[:, t], state, cache)
            states.append(state)
            contexts.append(context)
            alignments.append(weights.data)
        features = concatenate([stack(states, axis=1), stack(contexts, axis=1)], axis=-1)  # (B, T, H + enc)
        return self.out(features), np.stack(alignments, axis=1)

    # ---- greedy decoding ------------------------------------------------------------------------------
    def greedy(self, annotations, final, src_pad, steps: int):
        """Decode `steps` tokens, each the argmax given the previous ones. Returns tokens (B, steps) and
        alignments (B, steps, L) (None without attention), as NumPy arrays."""
        B = annotations.shape[0]
        state, cache = self.start(annotations, final, src_pad)
        y = np.full(B, BOS, dtype=np.int64)
        tokens, alignments = [], []
        h = state.reshape(1, B, self.hidden_dim)
        for _ in range(steps):
            emb = self.embed(y)
            if self.attention is None or self.style == "luong":
                out, h = self.rnn(emb.reshape(B, 1, self.emb_dim), h)
                if self.attention is None:
                    logits = self.out(out)
                else:
                    logits, weights = self.luong_outputs(out, cache)
                    alignments.append(weights.data[:, 0])
                logits = logits.reshape(B, self.vocab_size)
            else:
                gi_emb = F.linear(emb, cache["w_emb"], self.cell.bias_ih)
                state, context, weights = self.bahdanau_step(gi_emb, state, cache)
                logits = self.out(concatenate([state, context], axis=-1))
                alignments.append(weights.data)
            y = logits.data.argmax(axis=-1)
            tokens.append(y)
        return np.stack(tokens, axis=1), (np.stack(alignments, axis=1) if alignments else None)


def make_attention(kind, query_dim: int, key_dim: int, hidden_dim: int, window=None,
                   rng: np.random.Generator | None = None, dtype=np.float32):
    """"additive" -> AdditiveAttention; "dot" | "general" | "concat" -> LuongAttention (with `window`
    for local-p); None -> None; a Module is returned as is."""
    if kind is None or isinstance(kind, Module):
        return kind
    if kind == "additive":
        return AdditiveAttention(query_dim, key_dim, hidden_dim, rng=rng, dtype=dtype)
    if kind in ("dot", "general", "concat"):
        return LuongAttention(query_dim, key_dim, kind, hidden_dim=hidden_dim, window=window, rng=rng, dtype=dtype)
    raise ValueError(f"attention must be 'additive', 'dot', 'general', 'concat', None or a Module; got {kind!r}")


class Seq2Seq(Module):
    """Encoder + decoder. `attention`: "additive" (Bahdanau), "dot" | "general" | "concat" (Luong), None
    (no attention), or an attention module taking queries of `hidden_dim` and keys of the encoder's width
    (2 * hidden_dim when bidirectional). A "dot" score needs query_dim == key_dim, so it is used with a
    unidirectional encoder or after a projection; here the keys are projected with `key_proj` when they
    differ."""

    def __init__(self, vocab_size: int, emb_dim: int = 16, hidden_dim: int = 32, attention="additive",
                 bidirectional: bool = True, style: str | None = None, attention_dim: int | None = None,
                 window=None, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng(0)
        self.encoder = Encoder(vocab_size, emb_dim, hidden_dim, bidirectional, rng=rng, dtype=dtype)
        enc_dim = self.encoder.out_dim
        self.key_proj = None
        if attention == "dot" and enc_dim != hidden_dim:
            self.key_proj = Linear(enc_dim, hidden_dim, bias=False, rng=rng, dtype=dtype)
            enc_dim = hidden_dim
        attn = make_attention(attention, hidden_dim, enc_dim, attention_dim or hidden_dim, window, rng, dtype)
        self.decoder = Decoder(vocab_size, emb_dim, hidden_dim, enc_dim, attn, style, rng=rng, dtype=dtype)

    def encode(self, src):
        annotations, final = self.encoder(src)
        if self.key_proj is not None:
            annotations, final = self.key_proj(annotations), self.key_proj(final)
        return annotations, final

    def forward(self, src, tgt_in, src_pad=None):
        """Teacher forcing: logits (B, T, vocab) and alignments (B, T, L) (None without attention)."""
        annotations, final = self.encode(src)
        return self.decoder(tgt_in, annotations, final, src_pad)

    def loss(self, batch: SeqBatch):
        """Mean cross-entropy of the next token over the non-PAD targets; returns (loss, logits)."""
        logits, _ = self(batch.src, batch.tgt_in, batch.src_pad if batch.src_pad.any() else None)
        B, T, V = logits.shape
        loss = F.cross_entropy(logits.reshape(B * T, V), batch.tgt_out.reshape(-1), ignore_index=PAD)
        return loss, logits

    def greedy_decode(self, src, src_pad=None, steps: int | None = None):
        """Greedy decoding without gradients: tokens (B, steps) and alignments (B, steps, L) (None without
        attention). `steps` defaults to L + 1 (the target and its EOS)."""
        src = np.asarray(getattr(src, "data", src))
        if src.ndim != 2:
            raise ValueError(f"greedy_decode: src must be token ids of shape (B, L); got shape {src.shape}")
        steps = src.shape[1] + 1 if steps is None else steps
        if steps < 1:
            raise ValueError(f"greedy_decode: steps must be positive; got {steps}")
        if src_pad is not None and not np.asarray(src_pad).any():
            src_pad = None
        with no_grad():
            annotations, final = self.encode(src)
            return self.decoder.greedy(annotations, final, src_pad, steps)


