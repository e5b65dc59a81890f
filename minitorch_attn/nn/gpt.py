"""A decoder-only language model in the style of GPT-2, after Karpathy's nanoGPT (same names, same init).

    config = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False)
    model = GPT(config, rng=np.random.default_rng(0))
    logits, loss = model(idx, targets)                  # idx, targets (B, T) int; logits (B, T, vocab)
    out = model.generate(idx, max_new_tokens=100, temperature=0.8, top_k=10, rng=np.random.default_rng(0))

Architecture (names as nanoGPT's, so its checkpoints' keys match): token embedding `transformer.wte` plus a
learned position embedding `transformer.wpe`, then `n_layer` pre-LN blocks `transformer.h.i`

    x = x + attn(ln_1(x))          causal self-attention, through F.scaled_dot_product_attention
    x = x + mlp(ln_2(x))           Linear(n, 4n) -> GELU -> Linear(4n, n)

a final LayerNorm `transformer.ln_f` and `lm_head`, a Linear without bias whose weight IS the token
embedding (weight tying: one Parameter under two names). Initialisation as nanoGPT: every Linear and Embedding
weight N(0, 0.02²), biases 0, and the projections back into the residual stream (`c_proj`) N(0, (0.02/√(2L))²).

Unlike nanoGPT, `forward` returns the logits of every position also when `targets` is None (the lessons look
at them); `generate` runs its own path that only projects the last position.

Generation with a key/value cache: each block keeps the keys and values it computed for the positions seen so
far, so a new token costs one query against n cached keys, O(n), instead of re-running the whole prefix,
O(n²). The new queries are the LAST positions of the keys, so the causal mask is aligned to the bottom-right
corner: `causal_mask(T_new, T, offset=T - T_new)` (`cached_attention`, Exercise 9.2). Positions are learned
absolute ones, so once the sequence is longer than `block_size` the window slides and every position changes:
then the cache is rebuilt from the last `block_size` tokens each step (nanoGPT crops the same way).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from .. import functional as F
from .. import optim
from ..autograd.tensor import no_grad
from ..functional.multihead import merge_heads, split_heads
from ..functional.sdpa import cached_attention
from ..functional.transformer import next_token_probs, residual, sample_tokens
from ..random import default_rng
from .layers import GELU, Dropout, Embedding, LayerNorm, Linear
from .module import Module, ModuleList

__all__ = ["GPT", "GPTConfig"]


@dataclass
class GPTConfig:
    """nanoGPT's GPTConfig (its defaults are GPT-2 small's; the presets in `minitorch_attn.training.char_lm` are tiny),
    plus `gelu`: the MLP's GELU, "none" (exact, torch's nn.GELU, nanoGPT since May 2023) or "tanh" (the tanh
    formula, nanoGPT's `new_gelu` before then)."""

    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    gelu: str = "none"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GPTConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class CausalSelfAttention(Module):
    """Multi-head causal self-attention with one fused projection `c_attn` (n -> 3n) and `c_proj` (n -> n)."""

    def __init__(self, config: GPTConfig, rng, dtype):
        super().__init__()
        n = config.n_embd
        if n % config.n_head:
            raise ValueError(f"GPT: n_embd={n} must be divisible by n_head={config.n_head}")
        self.c_attn = Linear(n, 3 * n, bias=config.bias, rng=rng, dtype=dtype)
        self.c_proj = Linear(n, n, bias=config.bias, rng=rng, dtype=dtype)
        self.resid_dropout = Dropout(config.dropout, rng=rng)
        self.n_head, self.n_embd, self.dropout = config.n_head, n, config.dropout
        self.rng = rng

    def forward(self, x, past=None):
        """x (B, T, n) -> (y (B, T, n), (k, v) the keys and values of every position so far)."""
        n = self.n_embd
        # c_attn(x) split into q, k, v, computed as three products with the weight's row blocks: the same
        # numbers, but slicing the small (3n, n) weight instead of the (B, T, 3n) output makes the backward
        # scatter into a (3n, n) gradient instead of zero-filling and strided-adding three (B, T, 3n) buffers
        w, b = self.c_attn.weight, self.c_attn.bias
        q, k, v = (split_heads(F.linear(x, w[i * n : (i + 1) * n], None if b is None else b[i * n : (i + 1) * n]),
                               self.n_head) for i in range(3))
        if past is None:  # no cache: is_causal lets "auto" pick its fastest causal path (no mask array)
            p = self.dropout if self.training else 0.0  # attention dropout, as nanoGPT
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True, rng=self.rng)
            present = (k, v)
        else:
            y, present = cached_attention(q, k, v, past)
        return self.resid_dropout(self.c_proj(merge_heads(y))), present


class MLP(Module):
    def __init__(self, config: GPTConfig, rng, dtype):
        super().__init__()
        n = config.n_embd
        self.c_fc = Linear(n, 4 * n, bias=config.bias, rng=rng, dtype=dtype)
        self.gelu = GELU(approximate=config.gelu)
        self.c_proj = Linear(4 * n, n, bias=config.bias, rng=rng, dtype=dtype)
        self.dropout = Dropout(config.dropout, rng=rng)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(Module):
    """A pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x)) (`residual`, Exercise 9.1)."""

    def __init__(self, config: GPTConfig, rng, dtype):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias, dtype=dtype)
        self.attn = CausalSelfAttention(config, rng, dtype)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias, dtype=dtype)
        self.mlp = MLP(config, rng, dtype)

    def forward(self, x, past=None):
        box = {}

        def attend(h):
            y, box["present"] = self.attn(h, past)
            return y

        x = residual(x, attend, self.ln_1, norm_first=True)
        x = residual(x, self.mlp, self.ln_2, norm_first=True)
        return x, box["present"]


class _Trunk(Module):
    """nanoGPT's `transformer` ModuleDict: wte, wpe, drop, h, ln_f."""

    def __init__(self, config: GPTConfig, rng, dtype):
        super().__init__()
        self.wte = Embedding(config.vocab_size, config.n_embd, rng=rng, dtype=dtype)
        self.wpe = Embedding(config.block_size, config.n_embd, rng=rng, dtype=dtype)
        self.drop = Dropout(config.dropout, rng=rng)
        self.h = ModuleList([Block(config, rng, dtype) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(config.n_embd, bias=config.bias, dtype=dtype)


class GPT(Module):
    """Decoder-only transformer LM (see the module docstring). `forward(idx, targets=None)` -> (logits, loss)."""

    def __init__(self, config: GPTConfig, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        if config.vocab_size < 1 or config.block_size < 1:
            raise ValueError(f"GPT: vocab_size and block_size must be positive; got {config}")
        rng = rng if rng is not None else default_rng()
        self.config = config
        self.transformer = _Trunk(config, rng, dtype)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False, rng=rng, dtype=dtype)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying: one Parameter, two names
        std_proj = 0.02 / math.sqrt(2 * config.n_layer)
        for name, p in self.named_parameters():  # nanoGPT's _init_weights, then the scaled c_proj
            if name.endswith("c_proj.weight"):
                p.data = rng.normal(0.0, std_proj, size=p.shape).astype(dtype)
            elif p.ndim == 2:
                p.data = rng.normal(0.0, 0.02, size=p.shape).astype(dtype)
            elif name.endswith(".bias") and "ln_" not in name:
                p.data = np.zeros(p.shape, dtype=dtype)

    def _trunk(self, idx, past=None, pos0: int = 0):
        idx = np.asarray(getattr(idx, "data", idx))
        if idx.ndim != 2 or idx.dtype.kind not in "iu":
            raise ValueError(f"GPT: idx must be integer token ids of shape (B, T); got {idx.dtype} {idx.shape}")
        t = idx.shape[1]
        if pos0 + t > self.config.block_size:
            raise ValueError(f"GPT: cannot forward a sequence of length {pos0 + t}, block_size is only "
                             f"{self.config.block_size}")
        tr = self.transformer
        x = tr.drop(tr.wte(idx) + tr.wpe.weight[pos0 : pos0 + t])
        presents = []
        for i, block in enumerate(tr.h):
            x, present = block(x, None if past is None else past[i])
            presents.append(present)
        return tr.ln_f(x), presents

    def forward(self, idx, targets=None):
        x, _ = self._trunk(idx)
        logits = self.lm_head(x)
        loss = None
        if targets is not None:
            t = np.asarray(getattr(targets, "data", targets))
            B, T, V = logits.shape
            loss = F.cross_entropy(logits.reshape(B * T, V), t.reshape(-1), ignore_index=-1)
        return logits, loss

    def forward_cached(self, idx, past=None):
        """The logits of the LAST position (B, vocab) for new tokens `idx` (B, T_new) that follow the positions
        in `past` (None, or what the previous call returned), and the updated cache (one (k, v) per block)."""
        pos0 = 0 if past is None else past[0][0].shape[-2]
        x, presents = self._trunk(idx, past, pos0)
        return self.lm_head(x[:, -1]), presents

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas=(0.9, 0.99),
                             eps: float = 1e-8, decay: str = "matrices") -> list:
        """nanoGPT's two parameter groups as two AdamW optimizers (the first decays, the second does not).

        decay="matrices" (nanoGPT since May 2023): every matrix decays (ndim >= 2: Linear weights and the
        embeddings, the tied wte/lm_head included); biases and LayerNorm parameters do not.
        decay="linear" (nanoGPT before, so when its README reported the CPU baby run's 1.88): only the weights
        of Linear layers decay, and not the tied lm_head (it is the token embedding); the embeddings, biases
        and LayerNorm parameters do not."""
        if decay not in ("matrices", "linear"):
            raise ValueError(f"configure_optimizers: decay must be 'matrices' or 'linear'; got {decay!r}")
        params = list(self.parameters())
        if decay == "matrices":
            decayed = {id(p) for p in params if p.ndim >= 2}
        else:
            tied = id(self.transformer.wte.weight)
            decayed = {id(m.weight) for m in self.modules() if isinstance(m, Linear) and id(m.weight) != tied}
        no_decay = [p for p in params if id(p) not in decayed]
        opts = [optim.AdamW([p for p in params if id(p) in decayed], lr=learning_rate, betas=betas, eps=eps,
                            weight_decay=weight_decay)]
        if no_decay:
            opts.append(optim.AdamW(no_decay, lr=learning_rate, betas=betas, eps=eps, weight_decay=0.0))
        return opts

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 rng: np.random.Generator | None = None, use_cache: bool = True) -> np.ndarray:
        """Append `max_new_tokens` sampled tokens to `idx` (B, T) and return the (B, T + max_new_tokens) array.

        Each token is drawn from `next_token_probs(last logits, temperature, top_k)` with one uniform draw of
        `rng` per row (temperature=0: greedy). `use_cache=False` re-runs the (cropped) prefix each step, as
        nanoGPT does; both give the same tokens. Runs in eval mode without gradients."""
        idx = np.asarray(getattr(idx, "data", idx)).astype(np.int64)
        if idx.ndim != 2 or idx.shape[1] < 1:
            raise ValueError(f"generate: idx must be (B, T) token ids with T >= 1; got shape {idx.shape}")
        rng = rng if rng is not None else default_rng()
        bs = self.config.block_size
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                past = None
                for _ in range(max_new_tokens):
                    if not use_cache:
                        logits, _ = self(idx[:, -bs:])
                        last = logits.data[:, -1]
                    else:
                        if past is not None and past[0][0].shape[-2] < bs:
                            logits, past = self.forward_cached(idx[:, -1:], past)  # one new position: O(n)
                        else:  # first step, or the window slid: (re)build the cache from the cropped context
                            logits, past = self.forward_cached(idx[:, -bs:], None)
                        last = logits.data
                    nxt = sample_tokens(next_token_probs(last, temperature, top_k), rng)
                    idx = np.concatenate([idx, nxt[:, None]], axis=1)
        finally:
            self.train(was_training)
        return idx

    def extra_repr(self) -> str:
        return f"{self.num_parameters():,} parameters"
