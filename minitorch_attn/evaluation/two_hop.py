"""The two-hop grid of lesson 16: a model's accuracy on `data.two_hop`'s fact tasks for every (length,
depth), as evaluation/needle.py's `needle_grid` does for the plain needle."""

from __future__ import annotations

import numpy as np

from ..data.two_hop import _check, answer_token, fact_position, fact_task, fact_vocab_size
from .needle import task_grid


def two_hop_grid(model, kind: str, lengths, depths, trials: int = 100, seed: int = 0,
                 n_entities: int | None = None) -> np.ndarray:
    """Accuracy (float64, (len(lengths), len(depths))) of `model` on `trials` `kind` tasks per cell, as
    `minitorch_attn.evaluation.needle.needle_grid` does for the plain needle: greedy answer (argmax of the last
    position's logits) against the answer token "!v". `n_entities` is read from `model.config.vocab_size`
    (= E·E + 2E) when not given. Each cell's samples come from a generator seeded by (seed, length, position)."""
    if n_entities is None:
        vocab = model.config.vocab_size
        n_entities = int(round(np.sqrt(1 + vocab) - 1))
        if fact_vocab_size(n_entities) != vocab:
            raise ValueError(f"two_hop_grid: vocab_size={vocab} is not E·E + 2E for any E; pass n_entities")
    lengths = [int(L) for L in np.atleast_1d(lengths)]
    depths = [float(p) for p in np.atleast_1d(np.asarray(depths, dtype=np.float64))]
    for L in lengths:  # every error before the first model call
        _check(kind, L, n_entities)
        fact_position(L, depths)
    def cell(L, p):
        t = fact_task(kind, trials, L, p, n_entities, np.random.default_rng([seed, L, int(fact_position(L, p))]))
        return t.tokens, answer_token(t.targets, n_entities)

    return task_grid(model, lengths, depths, cell)
