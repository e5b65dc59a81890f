"""The sequence tasks (seeded, token conventions) and the GRU encoder-decoder: it learns a tiny reversal,
greedy decoding returns alignments of the right shape, errors name what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.data import BOS, EOS, PAD, copy_task, reversal_task
from minitorch_attn.data.sequences import DIGIT0, vocab_size
from minitorch_attn.evaluation.seq2seq import evaluate, token_accuracy
from minitorch_attn.nn import Seq2Seq
from minitorch_attn.training.seq2seq import train_seq2seq


def test_reversal_task_conventions_and_seeding():
    b = reversal_task(50, length=6, min_length=3, seed=7)
    assert b.src.shape == (50, 6) and b.tgt_in.shape == (50, 7) and b.tgt_out.shape == (50, 7)
    np.testing.assert_array_equal(reversal_task(50, length=6, min_length=3, seed=7).src, b.src)
    assert not np.array_equal(reversal_task(50, length=6, min_length=3, seed=8).src, b.src)
    assert set(np.unique(b.lengths)) <= {3, 4, 5, 6} and len(np.unique(b.lengths)) > 1
    for i in range(50):
        n = b.lengths[i]
        digits = b.src[i, :n]
        assert np.all(digits >= DIGIT0) and np.all(b.src[i, n:] == PAD)
        np.testing.assert_array_equal(b.src_pad[i], np.arange(6) >= n)
        np.testing.assert_array_equal(b.tgt_out[i, :n], digits[::-1])
        assert b.tgt_out[i, n] == EOS and np.all(b.tgt_out[i, n + 1:] == PAD)
        assert b.tgt_in[i, 0] == BOS
        np.testing.assert_array_equal(b.tgt_in[i, 1:n + 1], digits[::-1])
    c = copy_task(5, length=4, seed=0)
    np.testing.assert_array_equal(c.tgt_out[:, :4], c.src)
    assert np.all(c.tgt_out[:, 4] == EOS) and not c.src_pad.any()
    rng = np.random.default_rng(0)
    assert not np.array_equal(reversal_task(4, seed=rng).src, reversal_task(4, seed=rng).src)
    assert vocab_size() == 13


@pytest.mark.parametrize("kwargs", [dict(n=0), dict(n=2, length=0), dict(n=2, length=4, min_length=5),
                                    dict(n=2, num_digits=1)])
def test_task_errors(kwargs):
    with pytest.raises(ValueError):
        reversal_task(**kwargs)


def test_attention_learns_a_tiny_reversal_quickly():
    model = Seq2Seq(vocab_size(5), emb_dim=8, hidden_dim=16, attention="additive", rng=np.random.default_rng(0))
    hist = train_seq2seq(model, reversal_task, steps=150, batch_size=32, lr=2e-2, length=5, num_digits=5,
                         seed=0, progress=False)
    assert hist["seconds"] < 15 and len(hist["loss"]) == 150
    assert np.mean(hist["loss"][-10:]) < 0.5 * np.mean(hist["loss"][:10])
    r = evaluate(model, reversal_task(200, length=5, num_digits=5, seed=99))
    assert r["token_accuracy"] >= 0.9, r["token_accuracy"]


@pytest.mark.parametrize("attention", ["additive", "dot", "general", "concat", None])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_greedy_decoding_shapes(attention, bidirectional):
    model = Seq2Seq(vocab_size(), emb_dim=4, hidden_dim=6, attention=attention, bidirectional=bidirectional,
                    rng=np.random.default_rng(1))
    b = reversal_task(3, length=5, min_length=3 if attention else None, seed=0)
    logits, align = model(b.src, b.tgt_in, b.src_pad if b.src_pad.any() else None)
    assert logits.shape == (3, 6, vocab_size())
    tokens, alignments = model.greedy_decode(b.src, b.src_pad, steps=4)
    assert tokens.shape == (3, 4) and tokens.dtype.kind == "i"
    if attention is None:
        assert align is None and alignments is None
    else:
        assert align.shape == (3, 6, 5) and alignments.shape == (3, 4, 5)
        np.testing.assert_allclose(alignments.sum(-1), 1, rtol=1e-5)
        assert np.all(alignments[b.src_pad[:, None, :].repeat(4, 1)] == 0)
    loss, _ = model.loss(b)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_teacher_forcing_and_greedy_agree_on_the_first_step():
    model = Seq2Seq(vocab_size(), emb_dim=4, hidden_dim=6, attention="additive", rng=np.random.default_rng(2))
    b = reversal_task(4, length=5, seed=3)
    logits, align = model(b.src, b.tgt_in)
    tokens, alignments = model.greedy_decode(b.src, steps=1)
    np.testing.assert_array_equal(tokens[:, 0], logits.data[:, 0].argmax(-1))
    np.testing.assert_allclose(alignments[:, 0], align[:, 0], rtol=1e-5)


def test_token_accuracy_and_errors():
    assert token_accuracy([[3, 4, 2]], [[3, 5, 2]]) == pytest.approx(2 / 3)
    assert token_accuracy([[3, 4, 9]], [[3, 4, PAD]]) == 1.0
    model = Seq2Seq(vocab_size(), emb_dim=4, hidden_dim=6, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        model.greedy_decode(np.zeros(5, dtype=np.int64))
    with pytest.raises(ValueError, match="steps"):
        model.greedy_decode(np.zeros((2, 5), dtype=np.int64), steps=0)
    with pytest.raises(ValueError, match="attention must be"):
        Seq2Seq(vocab_size(), attention="cosine")
    with pytest.raises(ValueError, match="steps must be positive"):
        train_seq2seq(model, reversal_task, steps=0)
