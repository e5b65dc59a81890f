"""Scoring the sequence-to-sequence models of lessons 03-04 (nn.Seq2Seq) by greedy decoding."""

from __future__ import annotations

import numpy as np

from ..data.sequences import PAD, SeqBatch
from ..nn.seq2seq import Seq2Seq


def token_accuracy(predicted, target) -> float:
    """Fraction of target tokens that are not PAD which `predicted` gets right (EOS included)."""
    predicted, target = np.asarray(predicted), np.asarray(target)
    T = min(predicted.shape[1], target.shape[1])
    keep = target[:, :T] != PAD
    return float((predicted[:, :T] == target[:, :T])[keep].mean())


def evaluate(model: Seq2Seq, batch: SeqBatch) -> dict:
    """Greedy-decode `batch`: token accuracy over the digits (not EOS), sequence accuracy (every digit
    right), the predictions and the alignments (B, T, L)."""
    tokens, alignments = model.greedy_decode(batch.src, batch.src_pad, steps=batch.tgt_out.shape[1])
    digits = (batch.tgt_out != PAD) & (batch.tgt_out > 2)
    right = tokens == batch.tgt_out
    return {
        "token_accuracy": float(right[digits].mean()),
        "sequence_accuracy": float(np.mean([right[i][digits[i]].all() for i in range(len(tokens))])),
        "tokens": tokens,
        "alignments": alignments,
    }
