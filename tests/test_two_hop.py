"""Lesson 16's fact tasks (`data.two_hop`): the literal and two-hop needles' structure, depths, errors, the LM
batch and the grid, and `anatomy.attention_maps` against the GPT's own forward."""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn import nn
from minitorch_attn.data.two_hop import (
    answer_token,
    decode_facts,
    fact_lm_batch,
    fact_position,
    fact_task,
    fact_token,
    fact_vocab_size,
    query_token,
)
from minitorch_attn.evaluation.anatomy import attention_maps
from minitorch_attn.evaluation.two_hop import two_hop_grid


def split(tokens, E):
    facts = tokens[:, :-1]
    return facts // E, facts % E, tokens[:, -1] - E * E


@pytest.mark.parametrize("E", [3, 6, 11])
@pytest.mark.parametrize("L", [3, 4, 17])
def test_two_hop_structure(E, L):
    b = fact_task("two_hop", 300, L, None, E, seed=L * E)
    subj, obj, a = split(b.tokens, E)
    assert b.tokens.shape == (300, L) and b.tokens.dtype == np.int64
    assert np.all(b.tokens[:, :-1] < E * E) and np.all((a >= 0) & (a < E))  # facts, then one query
    rows = np.arange(300)
    assert np.all(b.answer_pos != b.bridge_pos) and np.all((b.bridge_pos >= 0) & (b.bridge_pos < L - 1))
    bridge_obj = obj[rows, b.bridge_pos]
    assert np.all(subj[rows, b.bridge_pos] == a) and np.all(bridge_obj != a)  # A → B, B != A
    assert np.all(subj[rows, b.answer_pos] == bridge_obj) and np.all(obj[rows, b.answer_pos] == b.targets)
    # A and B are the subjects of exactly one fact each: both lookups are unique
    assert np.all((subj == a[:, None]).sum(1) == 1) and np.all((subj == bridge_obj[:, None]).sum(1) == 1)


def test_literal_structure_and_uniformity():
    E, L = 5, 12
    b = fact_task("literal", 4000, L, None, E, seed=1)
    subj, obj, a = split(b.tokens, E)
    rows = np.arange(4000)
    assert np.all(b.bridge_pos == -1)
    assert np.all(subj[rows, b.answer_pos] == a) and np.all(obj[rows, b.answer_pos] == b.targets)
    assert np.all((subj == a[:, None]).sum(1) == 1)  # one needle; distractors never have subject A
    for x in (a, b.targets, obj.ravel(), b.answer_pos):  # uniform: no frequency shortcut
        counts = np.bincount(x)
        assert counts.min() > 0.8 * counts.mean()
    assert np.bincount(b.answer_pos, minlength=L - 1).size == L - 1


def test_depths_positions_and_determinism():
    assert fact_position(10, 0.0) == 0 and fact_position(10, 1.0) == 8 and fact_position(10, 0.5) == 4
    np.testing.assert_array_equal(fact_position(6, [0, 0.125, 0.375, 1]), [0, 1, 2, 4])  # round half up
    b = fact_task("two_hop", 50, 9, 0.75, 6, seed=0)
    assert np.all(b.answer_pos == 5) and np.all(b.depth == 0.75)  # floor(0.75 * 7 + 0.5)
    d = np.linspace(0, 1, 50)
    np.testing.assert_array_equal(fact_task("literal", 50, 9, d, 6, seed=0).answer_pos, fact_position(9, d))
    x, y = fact_task("two_hop", 20, 9, None, 6, seed=5), fact_task("two_hop", 20, 9, None, 6, seed=5)
    np.testing.assert_array_equal(x.tokens, y.tokens)
    state = np.random.get_state()
    fact_task("two_hop", 5, 9, seed=np.random.default_rng(0))
    assert np.array_equal(state[1], np.random.get_state()[1])  # no global random state touched


def test_minimal_sizes():
    b = fact_task("two_hop", 10, 3, None, 3, seed=0)  # bridge and answer fact only, E = 3
    assert set(map(tuple, np.sort(np.stack([b.answer_pos, b.bridge_pos], 1), 1))) == {(0, 1)}
    b = fact_task("literal", 10, 2, 0.5, 2, seed=0)
    assert np.all(b.answer_pos == 0)


@pytest.mark.parametrize("call, match", [
    (lambda: fact_task("three_hop", 1, 5), "kind must be one of"),
    (lambda: fact_task("two_hop", 1, 2), "length=2 is too short for a two_hop"),
    (lambda: fact_task("literal", 1, 1), "length=1 is too short for a literal"),
    (lambda: fact_task("two_hop", 1, 5, n_entities=2), "n_entities >= 3"),
    (lambda: fact_task("literal", 0, 5), "n must be a positive integer"),
    (lambda: fact_task("literal", 3, 5, depth=[0.1, 0.2]), "array of n=3 depths"),
    (lambda: fact_position(5, 1.5), "depth must be in"),
    (lambda: fact_position(5, np.nan), "depth must be in"),
    (lambda: fact_position(1, 0.5), "length must be an integer >= 2"),
    (lambda: fact_lm_batch("literal", 2, [], 4), "lengths must be"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_tokens_lm_batch_and_decode():
    E = 4
    assert fact_vocab_size(E) == 24 and fact_token(2, 3, E) == 11 and query_token(1, E) == 17
    assert answer_token(3, E) == 23
    assert decode_facts([fact_token(0, 3, E), query_token(2, E), answer_token(1, E)], E) == "A→D ?C !B"
    idx, tgt = fact_lm_batch("two_hop", 8, [5, 7], E, seed=0)
    assert idx.shape == tgt.shape and idx.shape[1] in (5, 7)
    assert np.all(tgt[:, :-1] == -1) and np.all((tgt[:, -1] >= E * E + E) & (tgt[:, -1] < fact_vocab_size(E)))


class Oracle:
    """A perfect two-hop reader, as a 'model' for the grid: answers by looking the facts up."""

    def __init__(self, E, hops):
        self.E, self.hops, self.config = E, hops, nn.GPTConfig(vocab_size=fact_vocab_size(E), block_size=64)

    def __call__(self, idx):
        E = self.E
        subj, obj = idx[:, :-1] // E, idx[:, :-1] % E
        key = idx[:, -1] - E * E
        for _ in range(self.hops):
            key = obj[np.arange(len(idx)), np.argmax(subj == key[:, None], axis=1)]
        logits = np.zeros((*idx.shape, fact_vocab_size(E)))
        logits[np.arange(len(idx)), -1, answer_token(key, E)] = 1.0
        return logits, None


def test_grid_with_oracles():
    lengths, depths = [3, 9, 20], [0, 0.5, 1]
    np.testing.assert_array_equal(two_hop_grid(Oracle(5, 2), "two_hop", lengths, depths, trials=40), 1.0)
    one_hop = two_hop_grid(Oracle(5, 1), "two_hop", lengths, depths, trials=200)  # answers B, never v (mostly)
    assert one_hop.shape == (3, 3) and one_hop.max() < 0.4
    np.testing.assert_array_equal(two_hop_grid(Oracle(5, 1), "literal", lengths, depths, trials=40), 1.0)
    with pytest.raises(ValueError, match="too short"):
        two_hop_grid(Oracle(5, 2), "two_hop", [2], depths)


def test_attention_maps_reproduce_the_forward():
    cfg = nn.GPTConfig(vocab_size=fact_vocab_size(4), block_size=16, n_layer=2, n_head=2, n_embd=16, bias=True)
    m = nn.GPT(cfg, rng=np.random.default_rng(0), dtype=np.float64)
    idx = fact_task("two_hop", 3, 9, None, 4, seed=0).tokens
    maps = attention_maps(m, idx)
    assert maps.shape == (2, 3, 2, 9, 9) and m.training  # mode restored
    np.testing.assert_allclose(maps.sum(-1), 1.0, atol=1e-12)
    assert np.all(np.triu(maps, 1) == 0)  # causal
    # the first layer's weights times its values, through c_proj, is what the block adds to the residual
    tr, blk = m.transformer, m.transformer.h[0]
    x = tr.wte(idx).data + tr.wpe.weight.data[:9]
    h = blk.ln_1(x).data
    w, b = blk.attn.c_attn.weight.data, blk.attn.c_attn.bias.data
    v = (h @ w[32:].T + b[32:]).reshape(3, 9, 2, 8).transpose(0, 2, 1, 3)
    y = (maps[0] @ v).transpose(0, 2, 1, 3).reshape(3, 9, 16)
    np.testing.assert_allclose(blk.attn(blk.ln_1(x))[0].data, blk.attn.c_proj(y).data, atol=1e-12)
