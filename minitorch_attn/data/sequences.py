"""Sequence-to-sequence toy tasks for the encoder-decoder lessons: reverse a digit string, or copy it.

Token conventions (shared by every task here, and by `minitorch_attn.nn.seq2seq`):

    PAD = 0   padding, after the end of a shorter sequence; ignored by the loss and masked in attention
    BOS = 1   "begin of sequence": the decoder's first input
    EOS = 2   "end of sequence": the decoder's last target
    digits d = 0, 1, ..., num_digits - 1 are the tokens d + 3 (`DIGIT0 + d`); vocab_size = num_digits + 3

A batch is a `SeqBatch` of integer arrays:

    src      (n, L)      the source digits, PAD after each sequence's length (no BOS/EOS in the source)
    src_pad  (n, L)      bool, True where src is PAD (the attention's key_padding_mask)
    tgt_in   (n, L + 1)  BOS followed by the target (teacher forcing: the decoder reads this)
    tgt_out  (n, L + 1)  the target followed by EOS, then PAD (what the decoder must predict)
    lengths  (n,)        each source's length

For reversal the target of source x_0 ... x_{l-1} is x_{l-1} ... x_0, so output position i needs source
position l - 1 - i: the alignment is the anti-diagonal. For copying it is the diagonal.
Every generator takes a `seed` (or a `np.random.Generator`) and touches no global random state.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

PAD, BOS, EOS, DIGIT0 = 0, 1, 2, 3
SPECIALS = {PAD: "<pad>", BOS: "<bos>", EOS: "<eos>"}


class SeqBatch(NamedTuple):
    src: np.ndarray
    src_pad: np.ndarray
    tgt_in: np.ndarray
    tgt_out: np.ndarray
    lengths: np.ndarray


def vocab_size(num_digits: int = 10) -> int:
    return num_digits + DIGIT0


def _digit_batch(n: int, length: int, min_length: int | None, num_digits: int, seed, reverse: bool) -> SeqBatch:
    if n < 1 or length < 1:
        raise ValueError(f"need n >= 1 and length >= 1; got n={n}, length={length}")
    min_length = length if min_length is None else min_length
    if not 1 <= min_length <= length:
        raise ValueError(f"min_length must be in [1, length={length}]; got {min_length}")
    if num_digits < 2:
        raise ValueError(f"num_digits must be at least 2; got {num_digits}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    digits = rng.integers(0, num_digits, size=(n, length)) + DIGIT0
    lengths = rng.integers(min_length, length + 1, size=n) if min_length < length else np.full(n, length)
    pos = np.arange(length)
    src_pad = pos[None, :] >= lengths[:, None]
    src = np.where(src_pad, PAD, digits).astype(np.int64)
    if reverse:  # position i of the target is source position length - 1 - i
        idx = np.clip(lengths[:, None] - 1 - pos[None, :], 0, length - 1)
        tgt = np.where(src_pad, PAD, np.take_along_axis(src, idx, axis=1))
    else:
        tgt = src.copy()
    tgt_out = np.concatenate([tgt, np.full((n, 1), PAD)], axis=1)
    tgt_out[np.arange(n), lengths] = EOS
    tgt_in = np.concatenate([np.full((n, 1), BOS), tgt], axis=1)
    return SeqBatch(src, src_pad, tgt_in.astype(np.int64), tgt_out.astype(np.int64), lengths.astype(np.int64))


def reversal_task(n: int, length: int = 10, min_length: int | None = None, num_digits: int = 10,
                  seed: int | np.random.Generator = 0) -> SeqBatch:
    """`n` random digit strings of `length` (or of lengths drawn uniformly from [min_length, length]),
    each to be reversed. See the module docstring for the token conventions."""
    return _digit_batch(n, length, min_length, num_digits, seed, reverse=True)


def copy_task(n: int, length: int = 10, min_length: int | None = None, num_digits: int = 10,
              seed: int | np.random.Generator = 0) -> SeqBatch:
    """Like `reversal_task`, but the target is the source itself (the alignment is the diagonal)."""
    return _digit_batch(n, length, min_length, num_digits, seed, reverse=False)


def decode_tokens(tokens) -> str:
    """Token ids -> a readable string: digits as digits, specials as <pad>/<bos>/<eos>."""
    return " ".join(SPECIALS.get(t, str(t - DIGIT0)) for t in np.asarray(tokens).ravel().tolist())
