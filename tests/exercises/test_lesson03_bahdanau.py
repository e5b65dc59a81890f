"""Graded tests for lesson 03, additive (Bahdanau) attention: exercises 3.1-3.2 in
`exercises/lesson03_bahdanau.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson03_bahdanau.py
    python -m minitorch_attn grade --lesson 03

References are computed here in float64 with NumPy. Each test checks one exercise: the 3.2 tests give
`bahdanau_step` the graders' own attention function, so a mistake in 3.1 does not cost points in 3.2.
"""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn.course.checks import assert_close, fail, randn, softmax_ref
from minitorch_attn.functional.rnn import gru_step


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson03_bahdanau")


def ref_additive(pq, pk, v, values, mask=None):
    """Float64 reference: (context, weights) of additive attention on projected queries and keys."""
    scores = np.tanh(pq[:, :, None, :] + pk[:, None, :, :]) @ v  # (B, Nq, Nk)
    if mask is not None:
        scores = np.where(mask[:, None, :], -np.inf, scores)
    w = softmax_ref(scores)
    return w @ values, w


def call_additive(impl, pq, pk, v, values, mask=None, requires_grad=False):
    ts = [mta.tensor(a, requires_grad=requires_grad) for a in (pq, pk, v, values)]
    out = impl.additive_attention(*ts, key_padding_mask=mask)
    if not isinstance(out, tuple) or len(out) != 2:
        fail("additive_attention", f"returned {type(out).__name__}, expected the pair (context, weights)")
    return ts, out


def example(seed=0, B=2, Nq=3, Nk=5, H=4, dv=3):
    return randn(B, Nq, H, seed=seed), randn(B, Nk, H, seed=seed + 1), randn(H, seed=seed + 2), \
        randn(B, Nk, dv, seed=seed + 3)


# ---- 3.1 additive_attention -----------------------------------------------------------------------------
@pytest.mark.exercise("3.1", points=1)
def test_additive_attention_scores_and_context(impl):
    pq, pk, v, values = example(0)
    _, (context, weights) = call_additive(impl, pq, pk, v, values)
    ec, ew = ref_additive(pq, pk, v, values)
    hint = ("e_ij = v . tanh(Wq_i + Uk_j): broadcast projected_query[:, :, None, :] against "
            "projected_keys[:, None, :, :] to (B, Nq, Nk, H), tanh, then matmul with v")
    assert_close(weights, ew, "additive_attention weights on (B, Nq, Nk) = (2, 3, 5)",
                 hint + "; softmax over the keys (axis=-1)", rtol=1e-9)
    assert_close(context, ec, "additive_attention context (B, Nq, dv) = (2, 3, 3)",
                 "context = matmul(weights, values)", rtol=1e-9)
    pq1, pk1, v1, values1 = example(5, B=1, Nq=1, Nk=1, H=2, dv=2)
    _, (context, weights) = call_additive(impl, pq1, pk1, v1, values1)
    assert_close(weights, np.ones((1, 1, 1)), "additive_attention with a single key",
                 "one key always gets weight 1", rtol=1e-12)


@pytest.mark.exercise("3.1", points=1)
def test_additive_attention_masks_padding(impl):
    pq, pk, v, values = example(1, B=3, Nk=6)
    mask = np.zeros((3, 6), dtype=bool)
    mask[0, 4:] = True  # two padded keys
    mask[2, :] = True  # every key padded: defined as zero weights and a zero context
    with np.errstate(all="ignore"):
        _, (context, weights) = call_additive(impl, pq, pk, v, values, mask)
    ec, ew = ref_additive(pq, pk, v, values, mask)
    assert_close(weights, ew, "additive_attention weights with key_padding_mask (rows 0: 2 keys padded, "
                 "2: all padded)", "masked_fill the scores with -inf where key_padding_mask[:, None, :] is True "
                 "BEFORE the softmax (padding gets weight exactly 0); a row with every key padded must be all "
                 "zeros, not NaN: replace it with where(...)", rtol=1e-9, atol=0)
    assert_close(context, ec, "additive_attention context with key_padding_mask",
                 "the context of a fully padded row is 0 (its weights are 0)", rtol=1e-9)


@pytest.mark.exercise("3.1", points=1)
def test_additive_attention_gradients(impl):
    pq, pk, v, values = example(2, Nk=4)
    mask = np.zeros((2, 4), dtype=bool)
    mask[1, 3] = True

    def f(a, b, c, d):
        return impl.additive_attention(a, b, c, d, key_padding_mask=mask)[0]

    inputs = [mta.tensor(a, requires_grad=True) for a in (pq, pk, v, values)]
    try:
        mta.gradcheck(f, inputs)
    except mta.GradcheckError as e:
        fail("additive_attention: gradient against finite differences", str(e).splitlines()[0],
             "build everything from Tensor ops (x.tanh(), matmul, masked_fill, F.softmax, where); NumPy calls "
             "on .data cut the graph")


# ---- 3.2 bahdanau_step ----------------------------------------------------------------------------------
def step_example(seed=0, B=2, L=4, H=3, E=2, enc=5):
    rng = np.random.default_rng(seed)
    annotations = rng.standard_normal((B, L, enc))
    Wa = rng.standard_normal((H, 2))
    calls = []

    def attend(state):  # the graders' attention: softmax(annotations . (state W_a-ish)) on any query
        calls.append(state)
        q = mta.matmul(state, mta.tensor(Wa @ np.ones((2, enc)) / 2))  # (B, enc)
        scores = mta.matmul(mta.tensor(annotations), q.reshape(B, enc, 1)).reshape(B, L)
        w = mta.functional.softmax(scores, axis=-1)
        return mta.matmul(w.reshape(B, 1, L), mta.tensor(annotations)).reshape(B, enc), w

    arrays = dict(gi_emb=rng.standard_normal((B, 3 * H)), state=rng.standard_normal((B, H)),
                  w_ctx_t=rng.standard_normal((enc, 3 * H)), w_hh_t=rng.standard_normal((H, 3 * H)),
                  b_hh=rng.standard_normal(3 * H))
    return attend, arrays, calls


def ref_step(attend, a):
    context, weights = attend(mta.tensor(a["state"]))
    gi = mta.tensor(a["gi_emb"]) + mta.matmul(context, mta.tensor(a["w_ctx_t"]))
    return gru_step(gi, mta.tensor(a["state"]), mta.tensor(a["w_hh_t"]), mta.tensor(a["b_hh"])).data, \
        context.data, weights.data


@pytest.mark.exercise("3.2", points=1)
def test_bahdanau_step_matches_the_equations(impl):
    attend, a, calls = step_example(0)
    es, ec, ew = ref_step(attend, a)
    calls.clear()
    out = impl.bahdanau_step(attend, *(mta.tensor(a[k]) for k in ("gi_emb", "state", "w_ctx_t", "w_hh_t",
                                                                   "b_hh")))
    if not isinstance(out, tuple) or len(out) != 3:
        fail("bahdanau_step", f"returned {type(out).__name__}, expected (state, context, weights)")
    state, context, weights = out
    if not calls:
        fail("bahdanau_step", "never called attend(state)", "the context comes from attend(previous state)")
    assert_close(calls[0], a["state"], "bahdanau_step: the query passed to attend",
                 "Bahdanau attends with the PREVIOUS state s_{i-1} (the `state` argument), before the GRU update",
                 rtol=1e-12)
    assert_close(context, ec, "bahdanau_step: the context it returns", "return attend(state)'s context",
                 rtol=1e-12)
    assert_close(weights, ew, "bahdanau_step: the weights it returns", "return attend(state)'s weights",
                 rtol=1e-12)
    assert_close(state, es, "bahdanau_step: the new state s_i",
                 "the GRU's input gates are gi_emb + matmul(context, w_ctx_t) (the input is [emb; context]); "
                 "then gru_step(gates, state, w_hh_t, b_hh)", rtol=1e-10)


@pytest.mark.exercise("3.2", points=1)
def test_bahdanau_step_gradients_reach_the_context(impl):
    attend, a, _ = step_example(1)
    names = ("gi_emb", "state", "w_ctx_t", "w_hh_t", "b_hh")

    def f(*ts):
        return impl.bahdanau_step(attend, *ts)[0]

    inputs = [mta.tensor(a[k], requires_grad=True) for k in names]
    try:
        mta.gradcheck(f, inputs)
    except mta.GradcheckError as e:
        fail("bahdanau_step: gradient against finite differences", str(e).splitlines()[0],
             "use Tensor ops (matmul, +, gru_step) so that the loss reaches the context weights w_ctx_t and, "
             "through attend, the previous state")
