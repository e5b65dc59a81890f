"""Needle in a haystack (lesson 09, section 5): the generator puts the needle at the exact index its depth
asks for and the answer is recoverable from the tokens; impossible (length, depth) combinations are named in
the error; `needle_grid` is oriented (rows lengths, columns depths), all ones for an oracle and zeros where a
model cannot see; lengths beyond block_size are NaN rows; a short seeded training run of a 2-layer GPT
retrieves far above chance."""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn import nn
from minitorch_attn.data.needle import (
    decode_needle,
    key_position,
    needle_lm_batch,
    needle_task,
    needle_vocab_size,
)
from minitorch_attn.evaluation.needle import SymbolCountBaseline, needle_grid
from minitorch_attn.training.loop import train_loop

NS = 16
KEY, QUERY = NS, NS + 1


# ---- the generator ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("length, depth, expected", [
    (13, 0.0, 0), (13, 1.0, 10), (13, 0.5, 5), (13, 0.25, 3),  # 0.25 * 10 = 2.5 rounds half up to 3
    (13, 0.24, 2), (3, 0.0, 0), (3, 1.0, 0), (64, 1.0, 61), (64, 0.5, 31), (4, 0.5, 1), (4, 0.49, 0),
])
def test_needle_sits_at_the_requested_index(length, depth, expected):
    b = needle_task(50, length, depth, NS, seed=3)
    assert key_position(length, depth) == expected
    assert b.tokens.shape == (50, length) and b.tokens.dtype == np.int64
    np.testing.assert_array_equal(b.key_pos, expected)
    np.testing.assert_array_equal(b.tokens[:, expected], KEY)
    np.testing.assert_array_equal(b.tokens[:, expected + 1], b.targets)
    np.testing.assert_array_equal(b.tokens[:, -1], QUERY)
    # exactly one KEY and one QUERY per row; every other token is a symbol
    assert ((b.tokens == KEY).sum(axis=1) == 1).all() and ((b.tokens == QUERY).sum(axis=1) == 1).all()
    assert b.tokens.min() >= 0 and b.tokens.max() == QUERY and b.targets.max() < NS


def test_answer_is_recoverable_from_the_tokens_alone():
    b = needle_task(200, 40, None, NS, seed=0)  # random depths
    found = (b.tokens == KEY).argmax(axis=1)
    np.testing.assert_array_equal(found, b.key_pos)
    np.testing.assert_array_equal(b.tokens[np.arange(200), found + 1], b.targets)
    # random depths cover the whole range 0 .. L-3, and depth = key_pos / (L - 3)
    assert b.key_pos.min() == 0 and b.key_pos.max() == 37
    np.testing.assert_allclose(b.depth, b.key_pos / 37)
    # values and filler are both spread over all the symbols
    assert len(np.unique(b.targets)) == NS and len(np.unique(b.tokens[b.tokens < NS])) == NS


def test_per_sample_depths_and_seeding():
    depths = np.array([0.0, 0.5, 1.0])
    b = needle_task(3, 23, depths, NS, seed=7)
    np.testing.assert_array_equal(b.key_pos, [0, 10, 20])
    again = needle_task(3, 23, depths, NS, seed=7)
    np.testing.assert_array_equal(b.tokens, again.tokens)
    other = needle_task(3, 23, depths, NS, seed=8)
    assert not np.array_equal(b.tokens, other.tokens)
    state = np.random.get_state()[1].copy()
    needle_task(3, 23, depths, NS, seed=np.random.default_rng(0))
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # no global random state touched


def test_decode_and_vocab():
    b = needle_task(1, 6, 0.0, NS, seed=0)
    text = decode_needle(b.tokens[0], NS).split()
    assert text[0] == "=" and text[-1] == "?" and text[1] == chr(ord("a") + int(b.targets[0]))
    assert needle_vocab_size(NS) == NS + 2


@pytest.mark.parametrize("length, depth, match", [
    (2, 0.5, "length=2 is too short"),
    (0, 0.0, "length=0 is too short"),
    (10, 1.5, r"depth must be in \[0, 1\]; got depth=1.5 \(length=10\)"),
    (10, -0.1, r"got depth=-0.1 \(length=10\)"),
    (10, float("nan"), r"got depth=nan \(length=10\)"),
])
def test_impossible_length_depth_combinations_are_named(length, depth, match):
    with pytest.raises(ValueError, match=match):
        needle_task(4, length, depth, NS)
    with pytest.raises(ValueError, match=match):
        key_position(length, depth)


def test_other_bad_arguments():
    with pytest.raises(ValueError, match=r"array of n=4 depths; got shape \(3,\)"):
        needle_task(4, 10, [0.1, 0.2, 0.3], NS)
    with pytest.raises(ValueError, match="n must be a positive integer; got 0"):
        needle_task(0, 10, 0.5, NS)
    with pytest.raises(ValueError, match="n_symbols must be at least 2"):
        needle_task(4, 10, 0.5, n_symbols=1)
    with pytest.raises(TypeError, match="length must be an integer; got 10.5"):
        needle_task(4, 10.5, 0.5, NS)
    with pytest.raises(ValueError, match="lengths must be an int or a non-empty sequence of ints"):
        needle_lm_batch(4, [], NS)


def test_lm_batch_trains_only_the_answer():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(30):
        idx, targets = needle_lm_batch(8, [5, 9], NS, rng)
        seen.add(idx.shape[1])
        assert idx.shape == targets.shape and idx.shape[0] == 8
        assert (targets[:, :-1] == -1).all()
        key = (idx == KEY).argmax(axis=1)
        np.testing.assert_array_equal(targets[:, -1], idx[np.arange(8), key + 1])
    assert seen == {5, 9}


# ---- the grid -----------------------------------------------------------------------------------------------
class _Config:
    def __init__(self, vocab_size, block_size):
        self.vocab_size, self.block_size = vocab_size, block_size


class Oracle:
    """Called like our GPT: finds KEY among the positions it can see and puts all the logit mass on the token
    after it; where it cannot see the needle it answers QUERY, which is never a target (so accuracy 0)."""

    def __init__(self, n_symbols=NS, block_size=64, blind_before=0, max_length=None):
        self.config = _Config(n_symbols + 2, block_size)
        self.blind_before, self.max_length = blind_before, max_length
        self.lengths_called = []
        self.training = True

    def eval(self):
        self.training = False

    def train(self, mode=True):
        self.training = mode

    def __call__(self, idx):
        B, L = idx.shape
        self.lengths_called.append(L)
        logits = np.zeros((B, L, self.config.vocab_size), dtype=np.float32)
        visible = (idx == KEY) & (np.arange(L) >= self.blind_before)
        has = visible.any(axis=1)
        if self.max_length is not None and L > self.max_length:
            has[:] = False
        pos = visible.argmax(axis=1)
        answer = np.where(has, idx[np.arange(B), np.minimum(pos + 1, L - 1)], QUERY)
        logits[np.arange(B), -1, answer] = 10.0
        return logits, None


def test_oracle_scores_all_ones():
    lengths, depths = [3, 8, 17, 64], [0.0, 0.3, 0.5, 1.0]
    acc = needle_grid(Oracle(), lengths, depths, trials=20, seed=0)
    assert acc.shape == (4, 4) and acc.dtype == np.float64
    np.testing.assert_array_equal(acc, 1.0)


def test_grid_orientation_rows_are_lengths_columns_depths():
    # blind to positions < 10: shallow needles are lost, deep ones found (columns are depths)
    lengths, depths = [20, 40], [0.0, 0.2, 0.8, 1.0]
    acc = needle_grid(Oracle(blind_before=10), lengths, depths, trials=30, seed=0)
    np.testing.assert_array_equal(acc[:, :2], 0.0)  # key at 0, 3 (L=20) and 0, 7 (L=40): unseen
    np.testing.assert_array_equal(acc[:, 2:], 1.0)  # key at 14, 17 (L=20) and 30, 37 (L=40)
    # a model that fails beyond length 16: rows are lengths
    acc = needle_grid(Oracle(max_length=16), [8, 16, 24, 32], [0.0, 1.0], trials=10, seed=0)
    np.testing.assert_array_equal(acc, [[1, 1], [1, 1], [0, 0], [0, 0]])


def test_lengths_beyond_block_size_are_nan_and_never_run():
    model = Oracle(block_size=32)
    with pytest.warns(RuntimeWarning, match=r"lengths \[40, 64\] exceed the model's block_size=32"):
        acc = needle_grid(model, [16, 40, 32, 64], [0.0, 1.0], trials=5, seed=0)
    assert np.isnan(acc[[1, 3]]).all() and (acc[[0, 2]] == 1.0).all()
    assert max(model.lengths_called) == 32
    assert model.training  # the mode is restored


def test_grid_with_our_gpt_and_a_block_size_beyond_training():
    cfg = nn.GPTConfig(vocab_size=needle_vocab_size(8), block_size=16, n_layer=1, n_head=2, n_embd=16, bias=False)
    gpt = nn.GPT(cfg, rng=np.random.default_rng(0))
    with pytest.warns(RuntimeWarning, match="block_size=16"):
        acc = needle_grid(gpt, [4, 16, 17], [0.0, 1.0], trials=40, seed=0)
    assert np.isfinite(acc[:2]).all() and np.isnan(acc[2]).all() and (0 <= acc[:2]).all() and (acc[:2] <= 1).all()
    assert gpt.training  # needle_grid ran it in eval mode and put it back


def test_cells_do_not_depend_on_the_rest_of_the_grid_or_the_batch_size():
    base = SymbolCountBaseline(NS)
    big = needle_grid(base, [10, 30, 50], [0.0, 0.5, 1.0], trials=64, seed=5, n_symbols=NS)
    small = needle_grid(base, [30], [0.5], trials=64, seed=5, n_symbols=NS, batch_size=7)
    assert small[0, 0] == big[1, 1]
    other_seed = needle_grid(base, [10, 30, 50], [0.0, 0.5, 1.0], trials=64, seed=6, n_symbols=NS)
    assert not np.array_equal(big, other_seed)


def test_counting_baseline_is_above_chance_on_short_and_falls_with_length():
    acc = needle_grid(SymbolCountBaseline(NS), [6, 64], [0.5], trials=2000, seed=0, n_symbols=NS)
    assert acc[0, 0] > 2.5 / NS  # few filler symbols: the value is often the most frequent one
    assert acc[1, 0] < acc[0, 0] - 0.1


def test_grid_errors_are_clear():
    m = Oracle()
    with pytest.raises(ValueError, match="lengths must be a sequence of integers; got"):
        needle_grid(m, [8.5], [0.5])
    with pytest.raises(ValueError, match="length 2 is too short"):
        needle_grid(m, [8, 2], [0.5])
    with pytest.raises(ValueError, match=r"depth=1.2 \(length=8\)"):
        needle_grid(m, [8], [0.5, 1.2])
    with pytest.raises(ValueError, match="trials must be a positive integer; got 0"):
        needle_grid(m, [8], [0.5], trials=0)
    with pytest.raises(ValueError, match="pass n_symbols"):
        needle_grid(lambda idx: idx, [8], [0.5])
    with pytest.raises(ValueError, match=r"vocab_size=5 has no room for 16 symbols"):
        needle_grid(Oracle(n_symbols=3), [8], [0.5], n_symbols=16)
    with pytest.raises(ValueError, match=r"logits of shape \(B, L, V\) = \(3, 8, V\) .* got \(3, 18\)"):
        needle_grid(lambda idx: np.zeros((len(idx), 18)), [8], [0.5], trials=3, n_symbols=NS)
    assert m.lengths_called == []  # every error before the first model call


def test_heatmap_draws_nan_cells_and_checks_its_shape():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minitorch_attn import viz

    acc = np.array([[1.0, 0.5], [np.nan, np.nan]])
    ax = viz.needle_heatmap(acc, [8, 16], [0.0, 1.0], trained_max=8, title="t")
    assert [t.get_text() for t in ax.texts] == ["1.00", "0.50", "n/a", "n/a"]
    assert ax.get_ylabel() == "sequence length" and len(ax.lines) == 1  # the trained-lengths line
    with pytest.raises(ValueError, match=r"shape \(len\(lengths\), len\(depths\)\) = \(2, 3\); got \(2, 2\)"):
        viz.needle_heatmap(acc, [8, 16], [0.0, 0.5, 1.0])
    plt.close("all")


# ---- training -----------------------------------------------------------------------------------------------
def test_a_short_seeded_run_retrieves_far_above_chance():
    """400 steps of a 2-layer GPT on lengths 6-16 (about 2 s on an idle 2-core machine); chance is 1/8."""
    ns = 8
    cfg = nn.GPTConfig(vocab_size=needle_vocab_size(ns), block_size=16, n_layer=2, n_head=2, n_embd=32, bias=False)
    gpt = nn.GPT(cfg, rng=np.random.default_rng(0))
    before = needle_grid(gpt, [8, 12, 16], [0.0, 0.5, 1.0], trials=100, seed=1)
    train_loop(gpt, lambda r: needle_lm_batch(32, range(6, 17), ns, r), lambda m, b: m(*b)[1],
               gpt.configure_optimizers(0.0, 3e-3, (0.9, 0.99)), 400, warmup_steps=40, min_lr=3e-4, seed=0,
               progress=False)
    acc = needle_grid(gpt, [8, 12, 16], [0.0, 0.5, 1.0], trials=100, seed=1)
    assert before.mean() < 0.3, f"an untrained model should be near chance (1/{ns}); got {before.mean():.2f}"
    assert acc.mean() >= 0.8 and acc.min() >= 0.5, (
        f"after 400 steps the 2-layer model should retrieve the needle (chance 1/{ns}); got\n{acc.round(2)}")
