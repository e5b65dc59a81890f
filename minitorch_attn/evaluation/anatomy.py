"""Reading a trained GPT's attention (lesson 16): the weights of every layer and head on a batch of tokens."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from ..autograd.tensor import no_grad
from ..functional.multihead import split_heads


def attention_maps(model, idx) -> np.ndarray:
    """The causal attention weights of every layer and head of a GPT (`nn.GPT`) on token ids idx (B, T):
    an array (n_layer, B, n_head, T, T), row i = what position i attends to. Recomputes each block's queries
    and keys from its own `c_attn` weights on ln_1 of the block's input, in eval mode without gradients."""
    idx = np.asarray(idx)
    cfg, tr = model.config, model.transformer
    n = cfg.n_embd
    was_training = model.training
    model.eval()
    maps = []
    try:
        with no_grad():
            x = tr.wte(idx) + tr.wpe.weight[: idx.shape[1]]
            for block in tr.h:
                h = block.ln_1(x)
                w, b = block.attn.c_attn.weight, block.attn.c_attn.bias
                q, k, v = (split_heads(F.linear(h, w[i * n : (i + 1) * n], None if b is None else
                                                b[i * n : (i + 1) * n]), cfg.n_head) for i in range(3))
                _, weights = F.scaled_dot_product_attention(q, k, v, is_causal=True, backend="naive",
                                                            return_weights=True)
                maps.append(weights.data)
                x, _ = block(x)
    finally:
        model.train(was_training)
    return np.stack(maps)
