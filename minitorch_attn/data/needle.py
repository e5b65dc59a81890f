"""Needle in a haystack: one fact hidden at a chosen depth of a sequence of filler, asked for at the end.

A sample of length L is L token ids:

    haystack   random filler symbols (ids 0 .. n_symbols - 1), drawn uniformly and independently
    needle     two tokens, KEY then the value v (v is itself a filler symbol, drawn uniformly)
    query      one token, QUERY, at the last position L - 1; the target is v

    e.g. (n_symbols=16, L=12, depth 0.5):   c j a n d = g b p e o ?     target g
                                            ^         ^ ^           ^
                                            0   key_pos=5 value=6   L-1=11

with KEY = n_symbols ("=") and QUERY = n_symbols + 1 ("?"), so `needle_vocab_size(n_symbols) = n_symbols + 2`.
The value is drawn from the same symbols as the filler, so a model cannot find it by what it is, only by
where it is: right after the KEY. A one-layer attention model cannot do that: at the query, the weight of
each position depends on that position's own token and index only, and v looks like any filler token, so the
model sees a weighted bag of symbols and can at best guess the most frequent one (above chance, 1/n_symbols,
only because v adds one occurrence; `minitorch_attn.evaluation.needle.SymbolCountBaseline`). Two layers can: one head
copies "the previous token was KEY" into the value's position, a second head at the query finds that position
and copies v (an induction-head circuit). Lesson 09 measures both.

Depth. The KEY may sit at positions 0 .. L - 3 (the value follows it, the query is last); a relative depth
p in [0, 1] puts it at

    key_pos = floor(p * (L - 3) + 0.5)          (round half up: p = 0 is the first position, p = 1 the deepest)

so the value sits at key_pos + 1. A task needs L >= 3 (key, value, query: no filler at all when L == 3).
Every generator takes a seed (or a np.random.Generator) and touches no global random state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["NeedleBatch", "decode_needle", "key_position", "needle_lm_batch", "needle_task", "needle_vocab_size"]

MIN_LENGTH = 3  # KEY, value, QUERY


class NeedleBatch(NamedTuple):
    tokens: np.ndarray  # (n, L) int64: haystack with the needle inside, QUERY last
    targets: np.ndarray  # (n,) int64: the value, the token the model must predict at the last position
    key_pos: np.ndarray  # (n,) int64: the index of KEY in each row (the value is at key_pos + 1)
    depth: np.ndarray  # (n,) float64: the relative depth each needle was placed at


def needle_vocab_size(n_symbols: int = 16) -> int:
    """Filler/value symbols, then KEY and QUERY."""
    return n_symbols + 2


def _check_length(length: int) -> None:
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)):
        raise TypeError(f"needle task: length must be an integer; got {length!r}")
    if length < MIN_LENGTH:
        raise ValueError(f"needle task: length={length} is too short; a task needs at least {MIN_LENGTH} tokens "
                         f"(KEY, value, QUERY)")


def key_position(length: int, depth) -> np.ndarray:
    """The index of KEY for a needle at relative depth `depth` (a float or an array, each in [0, 1]) in a
    sequence of `length` tokens: floor(depth * (length - 3) + 0.5). Raises ValueError, naming the offending
    (length, depth), for a length below 3 or a depth outside [0, 1] (NaN included)."""
    _check_length(length)
    d = np.asarray(depth, dtype=np.float64)
    bad = ~((d >= 0.0) & (d <= 1.0))  # catches NaN too
    if bad.any():
        raise ValueError(f"needle task: depth must be in [0, 1]; got depth={float(d[bad].ravel()[0])!r} "
                         f"(length={length})")
    return np.floor(d * (length - MIN_LENGTH) + 0.5).astype(np.int64)


def needle_task(n: int, length: int, depth=None, n_symbols: int = 16,
                seed: int | np.random.Generator = 0) -> NeedleBatch:
    """`n` needle-in-a-haystack samples of `length` tokens (see the module docstring).

    depth: a float in [0, 1] (every needle at the same depth), an array of n depths, or None (each needle at a
    uniformly random position 0 .. length - 3, i.e. depth = key_pos / (length - 3)).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"needle task: n must be a positive integer; got {n!r}")
    if n_symbols < 2:
        raise ValueError(f"needle task: n_symbols must be at least 2 (else the value is known); got {n_symbols}")
    _check_length(length)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    span = length - MIN_LENGTH  # the deepest key position
    if depth is None:
        key_pos = rng.integers(0, span + 1, size=n)
        depths = key_pos / span if span else np.zeros(n)
    else:
        depths = np.asarray(depth, dtype=np.float64)
        if depths.ndim == 1 and depths.shape != (n,):
            raise ValueError(f"needle task: depth must be a float or an array of n={n} depths; got shape "
                             f"{depths.shape}")
        if depths.ndim > 1:
            raise ValueError(f"needle task: depth must be a float or a 1-D array; got shape {depths.shape}")
        depths = np.broadcast_to(depths, (n,)).copy()
        key_pos = key_position(length, depths)
    tokens = rng.integers(0, n_symbols, size=(n, length))
    targets = rng.integers(0, n_symbols, size=n)
    rows = np.arange(n)
    tokens[rows, key_pos] = n_symbols  # KEY
    tokens[rows, key_pos + 1] = targets
    tokens[:, -1] = n_symbols + 1  # QUERY
    return NeedleBatch(tokens.astype(np.int64), targets.astype(np.int64), key_pos.astype(np.int64), depths)


def decode_needle(tokens, n_symbols: int = 16) -> str:
    """Token ids -> a readable string: symbols as letters a, b, ... (ids beyond 'z' as <id>), KEY as '=',
    QUERY as '?'."""
    def one(t):
        if t == n_symbols:
            return "="
        if t == n_symbols + 1:
            return "?"
        return chr(ord("a") + t) if t < 26 else f"<{t}>"

    return " ".join(one(t) for t in np.asarray(tokens).ravel().tolist())


def needle_lm_batch(n: int, lengths, n_symbols: int = 16,
                    seed: int | np.random.Generator = 0) -> tuple[np.ndarray, np.ndarray]:
    """A training batch for a language model, `(idx, targets)` as `GPT(idx, targets)` takes them: one length
    drawn uniformly from `lengths` (an int or a sequence of ints) for the whole batch, needles at uniformly
    random depths, and targets -1 (ignored by the loss) everywhere except the last position, which holds the
    value: the model is trained to answer the query and nothing else."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    choices = np.atleast_1d(np.asarray(lengths))
    if choices.ndim != 1 or choices.size == 0 or choices.dtype.kind not in "iu":
        raise ValueError(f"needle_lm_batch: lengths must be an int or a non-empty sequence of ints; got {lengths!r}")
    length = int(rng.choice(choices))
    batch = needle_task(n, length, None, n_symbols, rng)
    targets = np.full_like(batch.tokens, -1)
    targets[:, -1] = batch.targets
    return batch.tokens, targets
