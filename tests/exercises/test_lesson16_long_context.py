"""Graded tests for lesson 16, long-context evaluation and the anatomy of attention: exercises 16.1-16.3 in
`exercises/lesson16_long_context.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson16_long_context.py
    python -m minitorch_attn grade --lesson 16

The needle tasks are checked by their rules (who is the subject of which fact, where the needle sits), not by
the exact random draws, so any correct construction passes. The attention parts are checked against the
library's Bahdanau (`nn.AdditiveAttention`) and Vaswani (`F.scaled_dot_product_attention`) in float64.
"""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn import nn
from minitorch_attn.course.checks import assert_close, fail
from minitorch_attn.functional.anatomy import scaled_dot_score, softmax_normaliser, weighted_sum


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson16_long_context")


def _task(impl, kind, n, L, depth, E, seed):
    b = impl.fact_task(kind, n, L, depth, E, seed)
    if b is None or not hasattr(b, "tokens"):
        fail("fact_task", f"returned {type(b).__name__}, expected a FactBatch", "return FactBatch(tokens, ...)")
    if b.tokens.shape != (n, L):
        fail("fact_task", f"tokens have shape {b.tokens.shape}, expected (n, length) = {(n, L)}",
             "L - 1 facts, then the query token appended as the last column")
    return b


# ---- 16.1 fact_task -------------------------------------------------------------------------------------
@pytest.mark.exercise("16.1", points=1)
def test_literal_needle(impl):
    E, L, n = 6, 11, 400
    b = _task(impl, "literal", n, L, None, E, 0)
    subj, obj, rows = b.tokens[:, :-1] // E, b.tokens[:, :-1] % E, np.arange(n)
    a = b.tokens[:, -1] - E * E
    if not np.all((a >= 0) & (a < E)):
        fail("fact_task('literal')", "the last token is not a query token E·E + a", "append query_token(A, E)")
    if not np.all(b.tokens[:, :-1] < E * E):
        fail("fact_task('literal')", "a fact position holds a token >= E·E", "facts are fact_token(s, o, E) = s·E + o")
    if not (np.all(subj[rows, b.answer_pos] == a) and np.all(obj[rows, b.answer_pos] == b.targets)):
        fail("fact_task('literal')", "the fact at answer_pos is not 'A → v' (A = the queried subject, v = target)",
             "write fact_token(A, targets, E) at answer_pos")
    if not np.all((subj == a[:, None]).sum(1) == 1):
        fail("fact_task('literal')", "the queried subject A is the subject of more than one fact",
             "distractor subjects must be any entity BUT A, e.g. (A + integers(1, E)) % E")
    if not np.all(b.bridge_pos == -1):
        fail("fact_task('literal')", "bridge_pos should be -1 (there is no bridge)", "bridge_pos = np.full(n, -1)")
    for name, x in (("the queried subject", a), ("the answer", b.targets), ("the distractors' objects", obj)):
        counts = np.bincount(x.ravel(), minlength=E)
        if counts.min() < 0.7 * counts.mean():
            fail("fact_task('literal')", f"{name} is not uniform over the {E} entities: counts {counts}",
                 "draw it with rng.integers(0, E, ...)")


@pytest.mark.exercise("16.1", points=2)
def test_two_hop_needle(impl):
    for E, L in ((3, 3), (6, 12), (9, 20)):
        n = 300
        b = _task(impl, "two_hop", n, L, 0.5 if L == 12 else None, E, L)
        subj, obj, rows = b.tokens[:, :-1] // E, b.tokens[:, :-1] % E, np.arange(n)
        a = b.tokens[:, -1] - E * E
        where = f"fact_task('two_hop', n={n}, length={L}, n_entities={E})"
        if L == 12 and not np.all(b.answer_pos == 5):
            fail(where, f"depth 0.5 put the answer fact at {b.answer_pos[:5]}, expected fact_position(12, 0.5) = 5",
                 "answer_pos is computed for you above the block; do not draw it again")
        if not np.all((b.bridge_pos >= 0) & (b.bridge_pos < L - 1) & (b.bridge_pos != b.answer_pos)):
            fail(where, "bridge_pos must be a fact position other than answer_pos",
                 "e.g. (answer_pos + integers(1, L - 1)) % (L - 1)")
        bridge = obj[rows, b.bridge_pos]
        if not (np.all(subj[rows, b.bridge_pos] == a) and np.all(bridge != a)):
            fail(where, "the fact at bridge_pos is not 'A → B' with B != A", "write fact_token(A, B, E) there")
        if not (np.all(subj[rows, b.answer_pos] == bridge) and np.all(obj[rows, b.answer_pos] == b.targets)):
            fail(where, "the fact at answer_pos is not 'B → v' (B = the bridge's object, v = target)",
                 "write fact_token(B, targets, E) at answer_pos")
        if not (np.all((subj == a[:, None]).sum(1) == 1) and np.all((subj == bridge[:, None]).sum(1) == 1)):
            fail(where, "A or B is the subject of a distractor: the lookups are no longer unique",
                 "distractor subjects must avoid both A and B (draw from E - 2 values and skip A and B)")
        if L == 20:
            counts = np.bincount(subj.ravel(), minlength=E)
            if counts.min() < 0.7 * counts.mean():
                fail(where, f"some entity is never a subject: counts {counts}",
                     "distractor subjects: uniform over the entities other than A and B")


# ---- 16.2 compose_attention -----------------------------------------------------------------------------
@pytest.mark.exercise("16.2", points=2)
def test_compose_attention(impl):
    calls = []

    def score(q, k):
        calls.append("score")
        return mta.tensor(np.full((1, q.shape[-2], k.shape[-2]), 2.0))

    def normaliser(s, mask):
        calls.append(("normaliser", mask))
        return s * 0.5

    def combine(w, v):
        calls.append("combine")
        return w @ v

    v = np.arange(6.0).reshape(1, 3, 2)
    out = impl.compose_attention(score, normaliser, combine)(np.zeros((1, 2, 4)), np.zeros((1, 3, 4)), v, "M")
    if out is None:
        fail("compose_attention(...)(q, k, v, mask)", "returned None",
             "return combine(normaliser(score(q, k), mask), v)")
    if [c if isinstance(c, str) else c[0] for c in calls] != ["score", "normaliser", "combine"] or calls[1][1] != "M":
        fail("compose_attention", f"the parts were called as {calls}", "call score(q, k), then normaliser(scores, "
             "mask) with the mask passed through, then combine(weights, v)")
    assert_close(out, np.ones((1, 2, 3)) @ v, "compose_attention with scores 2, normaliser ×0.5, combine w @ v",
                 "return combine(normaliser(score(q, k), mask), v)", rtol=1e-15)
    rng = np.random.default_rng(0)
    q, k, vv = rng.normal(size=(2, 3, 5, 8)), rng.normal(size=(2, 3, 7, 8)), rng.normal(size=(2, 3, 7, 4))
    causal = np.tril(np.ones((5, 7), dtype=bool))
    got = impl.compose_attention(scaled_dot_score(), softmax_normaliser, weighted_sum)(q, k, vv, causal)
    ref = F.scaled_dot_product_attention(q, k, vv, attn_mask=causal, backend="naive")
    assert_close(got, ref.data, "compose_attention(scaled_dot_score(), softmax_normaliser, weighted_sum), causal",
                 "pass the mask to the normaliser", rtol=0, atol=0)


# ---- 16.3 additive_score --------------------------------------------------------------------------------
@pytest.mark.exercise("16.3", points=2)
def test_additive_score_values(impl):
    rng = np.random.default_rng(1)
    att = nn.AdditiveAttention(6, 5, 7, rng=rng, dtype=np.float64)
    q, k = rng.normal(size=(2, 3, 6)), rng.normal(size=(2, 4, 5))
    got = impl.additive_score(att.W, att.U, att.v)(mta.tensor(q), mta.tensor(k))
    Wq, Uk = q @ att.W.weight.data.T, k @ att.U.weight.data.T
    ref = np.tanh(Wq[:, :, None, :] + Uk[:, None, :, :]) @ att.v.data
    hint = ("score_ij = vᵀ tanh(W q_i + U k_j): broadcast W(q) (B, Nq, 1, H) against U(k) (B, 1, Nk, H), tanh, "
            "then matmul with v")
    assert_close(got, ref, "additive_score(W, U, v)(q (2, 3, 6), k (2, 4, 5)): scores (2, 3, 4)", hint, rtol=1e-12)
    got_big = impl.additive_score(att.W, att.U, att.v)(mta.tensor(q * 1e4), mta.tensor(k * 1e4))
    if not np.all(np.isfinite(getattr(got_big, "data", got_big))):
        fail("additive_score", "huge inputs gave non-finite scores", "tanh saturates at ±1: no overflow expected")


@pytest.mark.exercise("16.3", points=1)
def test_additive_score_reproduces_bahdanau_bitwise(impl):
    rng = np.random.default_rng(2)
    att = nn.AdditiveAttention(4, 4, 6, rng=rng, dtype=np.float64)
    q, k, v = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 5, 4)), rng.normal(size=(2, 5, 3))
    pad = np.zeros((2, 5), dtype=bool)
    pad[0, 3:] = True
    ref, _ = att(mta.tensor(q), mta.tensor(k), mta.tensor(v), pad)
    from minitorch_attn.functional.anatomy import compose_attention

    got = compose_attention(impl.additive_score(att.W, att.U, att.v), softmax_normaliser, weighted_sum)(
        q, k, v, ~pad[:, None, :])
    assert_close(got, ref.data, "Bahdanau through compose_attention with your additive_score vs AdditiveAttention",
                 "compute (W(q)[:, :, None, :] + U(k)[:, None, :, :]).tanh() and then matmul(hidden, v), in this "
                 "order, as additive_attention does", rtol=0, atol=0)
    ins = [mta.tensor(rng.normal(size=s), requires_grad=True) for s in ((1, 2, 4), (1, 3, 4))]
    if not mta.gradcheck(lambda a, b: impl.additive_score(att.W, att.U, att.v)(a, b).sum(), ins,
                         raise_exception=False):
        fail("additive_score", "its gradient disagrees with finite differences",
             "build it from Tensor operations (W(q), U(k), +, .tanh(), matmul) so autograd sees every step")
