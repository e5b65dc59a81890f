"""The needle-in-a-haystack grid: a model's retrieval accuracy for every (sequence length, needle depth).

    acc = needle_grid(model, lengths=[16, 32, 48, 64], depths=[0, 0.5, 1], trials=100, seed=0)
    acc.shape == (4, 3)          # acc[i, j]: accuracy at lengths[i], depths[j]; rows lengths, columns depths
    viz.needle_heatmap(acc, lengths, depths)

The tasks are `minitorch_attn.data.needle.needle_task`'s (filler symbols, KEY and the value at the relative
depth, QUERY last; the answer is the value). A trial counts as right when the argmax of the model's logits at
the LAST position is the value (greedy answer).

The model: anything called as our `GPT` is, `model(idx)` with idx (B, L) int64, returning logits (B, L, V)
(a Tensor or an array), or a tuple whose first element they are. The vocabulary is the task's: n_symbols
filler/value symbols, then KEY and QUERY (`needle_vocab_size(n_symbols) = n_symbols + 2`); `n_symbols` is
read from `model.config.vocab_size` when the model has a config, else pass it.

Lengths beyond the model's context. When the model has `config.block_size`, a length longer than it cannot be
evaluated at all (the position table has no rows for it): its row of the grid is NaN, and a RuntimeWarning
names those lengths. (Lengths up to block_size but beyond those seen in training ARE evaluated: that is the
point of the grid.) Bad lengths (below 3), depths (outside [0, 1]) or trials raise ValueError before any
model call.

Each cell's samples come from a generator seeded by (seed, length, key position), so a cell's samples do not
depend on which other lengths and depths are in the grid. The tasks of one length are evaluated together, in
batches of at most `batch_size` rows; the model runs in eval mode without gradients (its mode is restored).
"""

from __future__ import annotations

import warnings

import numpy as np

from ..autograd.tensor import no_grad
from ..data.needle import MIN_LENGTH, key_position, needle_task

__all__ = ["SymbolCountBaseline", "needle_grid"]


def _n_symbols(model, n_symbols):
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    if n_symbols is None:
        if vocab is None:
            raise ValueError("needle_grid: the model has no config.vocab_size; pass n_symbols (the number of "
                             "filler/value symbols; the vocabulary is n_symbols + 2)")
        n_symbols = vocab - 2
    if n_symbols < 2:
        raise ValueError(f"needle_grid: n_symbols must be at least 2; got {n_symbols}")
    if vocab is not None and vocab < n_symbols + 2:
        raise ValueError(f"needle_grid: the model's vocab_size={vocab} has no room for {n_symbols} symbols plus "
                         f"KEY and QUERY (needs {n_symbols + 2})")
    return int(n_symbols)


def _last_logits(model, idx: np.ndarray) -> np.ndarray:
    out = model(idx)
    if isinstance(out, tuple):
        out = out[0]
    logits = np.asarray(getattr(out, "data", out))
    if logits.ndim != 3 or logits.shape[:2] != idx.shape:
        raise ValueError(f"needle_grid: the model must return logits of shape (B, L, V) = ({idx.shape[0]}, "
                         f"{idx.shape[1]}, V) for idx of shape {idx.shape}; got {logits.shape}")
    return logits[:, -1]


def needle_grid(model, lengths, depths, trials: int = 100, seed: int = 0, n_symbols: int | None = None,
                batch_size: int = 1024) -> np.ndarray:
    """Accuracy (float64, shape (len(lengths), len(depths))) of `model` on `trials` needle tasks per cell:
    row i is length lengths[i], column j depth depths[j]. NaN rows: lengths beyond `model.config.block_size`
    (with a RuntimeWarning). See the module docstring."""
    arr = np.atleast_1d(np.asarray(lengths))
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"needle_grid: lengths must be a sequence of integers; got {lengths!r}")
    lengths = [int(L) for L in arr]
    depths = [float(p) for p in np.atleast_1d(np.asarray(depths, dtype=np.float64))]
    if not lengths or not depths:
        raise ValueError(f"needle_grid: need at least one length and one depth; got lengths={lengths}, "
                         f"depths={depths}")
    if isinstance(trials, bool) or not isinstance(trials, (int, np.integer)) or trials < 1:
        raise ValueError(f"needle_grid: trials must be a positive integer; got {trials!r}")
    if batch_size < 1:
        raise ValueError(f"needle_grid: batch_size must be positive; got {batch_size}")
    n_symbols = _n_symbols(model, n_symbols)
    for L in lengths:  # every error before the first model call
        if L < MIN_LENGTH:
            raise ValueError(f"needle_grid: length {L} is too short; a needle task needs at least {MIN_LENGTH} "
                             f"tokens (KEY, value, QUERY)")
        key_position(L, depths)
    block_size = getattr(getattr(model, "config", None), "block_size", None)
    too_long = [L for L in lengths if block_size is not None and L > block_size]
    if too_long:
        warnings.warn(f"needle_grid: lengths {too_long} exceed the model's block_size={block_size}; their rows "
                      f"are NaN", RuntimeWarning, stacklevel=2)

    def cell(L, p):
        t = needle_task(trials, L, p, n_symbols, np.random.default_rng([seed, L, int(key_position(L, p))]))
        return t.tokens, t.targets

    return task_grid(model, lengths, depths, cell, batch_size, skip=too_long)


def task_grid(model, lengths, depths, cell, batch_size: int = 1024, skip=()) -> np.ndarray:
    """Greedy accuracy per (length, depth) cell: `cell(L, p)` returns (tokens (n, L), targets (n,)) and the
    model's answer is the argmax of its logits at the last position. Lengths in `skip` stay NaN. The model is
    evaluated without gradients in eval mode (restored afterwards), in batches of `batch_size` sequences.
    Used by `needle_grid` and by lesson 16's `data.two_hop.two_hop_grid`."""
    acc = np.full((len(lengths), len(depths)), np.nan)
    was_training = getattr(model, "training", None)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad():
            for i, L in enumerate(lengths):
                if L in skip:
                    continue
                tasks = [cell(L, p) for p in depths]
                idx = np.concatenate([tokens for tokens, _ in tasks])
                targets = np.concatenate([t for _, t in tasks])
                answers = np.concatenate([_last_logits(model, idx[s : s + batch_size]).argmax(-1)
                                          for s in range(0, len(idx), batch_size)])
                acc[i] = (answers == targets).reshape(len(depths), -1).mean(axis=1)
    finally:
        if was_training and hasattr(model, "train"):
            model.train(was_training)
    return acc


class SymbolCountBaseline:
    """A "model" that ignores order: at every position its logit for each symbol is how often that symbol
    occurs in the sequence (KEY and QUERY get -inf). Since the value is one extra occurrence of a uniformly
    drawn symbol among uniform filler, the most frequent symbol is the best guess from the bag of tokens, so
    this is what a model that cannot tell WHERE a token sits can reach (chance is 1 / n_symbols)."""

    def __init__(self, n_symbols: int = 16):
        self.n_symbols = n_symbols

    def __call__(self, idx):
        idx = np.asarray(idx)
        counts = np.zeros((idx.shape[0], self.n_symbols + 2))
        np.add.at(counts, (np.arange(idx.shape[0])[:, None], idx), 1.0)
        counts[:, self.n_symbols:] = -np.inf
        return np.broadcast_to(counts[:, None, :], (*idx.shape, self.n_symbols + 2)), None
