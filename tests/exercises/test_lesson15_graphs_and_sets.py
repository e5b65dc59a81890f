"""Graded tests for lesson 15, attention over graphs and sets: exercises 15.1-15.3 in
`exercises/lesson15_graphs_and_sets.py` (or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson15_graphs_and_sets.py
    python -m minitorch_attn grade --lesson 15

The references are written here in float64 NumPy (the formulas of the lesson, one loop or one line each);
gradients are checked against central differences of the learner's own forward. Shapes are awkward on
purpose: K != F', a node with no neighbour, a single node, Nt != Nc, one context point.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.autograd.tensor import Tensor
from minitorch_attn.course.checks import assert_close, fail, likely_mistake, numeric_vjp, randn, run_fn, softmax_ref


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson15_graphs_and_sets")


def random_adj(n, seed, p=0.4, empty_rows=()):
    rng = np.random.default_rng(seed)
    adj = (rng.random((n, n)) < p) | np.eye(n, dtype=bool)
    for i in empty_rows:
        adj[i] = False
    return adj


def ref_gat(wh, a_dst, a_src, adj, slope=0.2):
    k, n, _ = wh.shape
    out = np.zeros((k, n, n))
    for h in range(k):
        for i in range(n):
            js = np.flatnonzero(adj[i])
            if len(js) == 0:
                continue
            e = wh[h, i] @ a_dst[h] + wh[h, js] @ a_src[h]
            e = np.where(e > 0, e, slope * e)
            out[h, i, js] = softmax_ref(e)
    return out


# ---- 15.1 gat_attention ------------------------------------------------------------------------------------
def gat_mistakes(wh, a_dst, a_src, adj):
    """Plausible wrong weights of gat_attention, by the message naming each mistake."""
    return {
        "a_dst and a_src are swapped: a_dst multiplies the receiving node i (the row), a_src the neighbour j":
            lambda: ref_gat(wh, a_src, a_dst, adj),
        "no LeakyReLU on the scores: e = leaky_relu(s_i + s_j, negative_slope)":
            lambda: ref_gat(wh, a_dst, a_src, adj, slope=1.0),
        "the softmax runs over the neighbours j of node i (the last axis), not over the nodes that see j":
            lambda: np.swapaxes(ref_gat(wh, a_src, a_dst, adj.T), -1, -2),
    }


@pytest.mark.exercise("15.1", points=1)
def test_gat_attention_matches_the_formula(impl):
    for (k, n, f), seed in (((2, 6, 3), 0), ((3, 5, 4), 1), ((1, 1, 2), 2)):
        wh, a_dst, a_src = randn(k, n, f, seed=seed), randn(k, f, seed=seed + 10), randn(k, f, seed=seed + 20)
        adj = random_adj(n, seed)
        out, _ = run_fn(lambda w, d, s, adj=adj: impl.gat_attention(w, d, s, adj), wh, a_dst, a_src,
                        what=f"gat_attention with wh {wh.shape}")
        expected = ref_gat(wh, a_dst, a_src, adj)
        hint = likely_mistake(out, gat_mistakes(wh, a_dst, a_src, adj)) if n > 1 else ""
        assert_close(out, expected, f"gat_attention with wh {wh.shape}, adj {adj.shape}", hint,
                     rtol=1e-10, atol=1e-12)
    wh, a_dst, a_src = randn(2, 4, 3, seed=5), randn(2, 3, seed=6), randn(2, 3, seed=7)
    adj = random_adj(4, 5)
    out, _ = run_fn(lambda w, d, s: impl.gat_attention(w, d, s, adj, negative_slope=0.5), wh, a_dst, a_src,
                    what="gat_attention(negative_slope=0.5)", hint="use the negative_slope argument, not a fixed 0.2")
    assert_close(out, ref_gat(wh, a_dst, a_src, adj, slope=0.5), "gat_attention(negative_slope=0.5)",
                 "use the negative_slope argument, not a fixed 0.2", rtol=1e-10)


@pytest.mark.exercise("15.1", points=1)
def test_gat_attention_masks_non_edges_and_empty_rows(impl):
    wh, a_dst, a_src = randn(2, 6, 3, seed=8) * 50, randn(2, 3, seed=9), randn(2, 3, seed=10)  # huge scores
    adj = random_adj(6, 11, empty_rows=(3,))
    out, _ = run_fn(lambda w, d, s: impl.gat_attention(w, d, s, adj), wh, a_dst, a_src, what="gat_attention")
    if out.shape != (2, 6, 6):
        fail("gat_attention", f"expected shape (2, 6, 6), got {out.shape}", "one N×N matrix per head")
    if np.isnan(out[:, 3]).any():
        fail("gat_attention", "a node with no neighbour at all got NaN weights",
             "softmax of a row that is all -inf is 0/0; replace such rows by 0 (where(...) on ~adj.any(axis=-1))")
    if not np.isfinite(out).all():
        fail("gat_attention", "non-finite weights with large scores", "F.softmax subtracts the row max for you")
    if (out[:, ~adj] != 0).any():
        fail("gat_attention", "a non-edge (adj[i, j] False) got a nonzero weight",
             "fill the scores with -inf where adj is False before the softmax, so exp gives exactly 0")
    assert_close(out, ref_gat(wh, a_dst, a_src, adj), "gat_attention with a masked row and large scores",
                 likely_mistake(out, gat_mistakes(wh, a_dst, a_src, adj)), rtol=1e-9, atol=1e-12)


@pytest.mark.exercise("15.1", points=1)
def test_gat_attention_gradients(impl):
    xs = [randn(2, 5, 3, seed=12), randn(2, 3, seed=13), randn(2, 3, seed=14)]
    adj = random_adj(5, 15, empty_rows=(1,))

    def f(w, d, s):
        return impl.gat_attention(w, d, s, adj)

    up = randn(2, 5, 5, seed=16)
    _, grads = run_fn(f, *xs, what="gat_attention backward", grad=up,
                      hint="use Tensor ops only (matmul, reshape, where, F.softmax) so autograd can follow")
    numeric = numeric_vjp(lambda *a: f(*(Tensor(x) for x in a)).data, xs, up)
    for name, g, n in zip(("wh", "a_dst", "a_src"), grads, numeric):
        if g is None:
            fail("gat_attention backward", f"no gradient reached {name}", "do not go through .data or NumPy")
        assert_close(g, n, f"gat_attention: gradient of {name} (float64 finite differences)",
                     "use Tensor ops only", rtol=1e-5, atol=1e-8)


# ---- 15.2 gcn_norm -----------------------------------------------------------------------------------------
def ref_gcn_norm(adj):
    a = adj.astype(float) + np.eye(len(adj))
    d = a.sum(1)
    return a / np.sqrt(np.outer(d, d))


@pytest.mark.exercise("15.2", points=1)
def test_gcn_norm_formula(impl):
    hint = "Â = D^-1/2 (A + I) D^-1/2: add the identity first, D = row sums of A + I, divide entry ij by √(d_i d_j)"
    rng = np.random.default_rng(0)
    upper = np.triu(rng.random((7, 7)) < 0.4, 1)
    adj = upper | upper.T
    adj[5], adj[:, 5] = False, False  # an isolated node
    out, _ = run_fn(impl.gcn_norm, adj, what="gcn_norm", hint=hint, tensors=False)
    expected = ref_gcn_norm(adj)
    if out.shape == expected.shape:
        a = adj.astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            no_loop = a / np.sqrt(np.outer(a.sum(1), a.sum(1)))
        if np.allclose(out, np.nan_to_num(no_loop), rtol=1e-8) or np.isnan(out).any():
            fail("gcn_norm", "the self-loops are missing", "add np.eye(N) to A before taking the degrees")
        a_loop = a + np.eye(7)
        if np.allclose(out, a_loop / a_loop.sum(1, keepdims=True), rtol=1e-8):
            fail("gcn_norm", "you computed D^-1 (A + I) (the random-walk normalisation)",
                 "divide by √d_i AND √d_j, so that Â stays symmetric")
    assert_close(out, expected, "gcn_norm on a 7-node graph with an isolated node", hint, rtol=1e-12)
    assert_close(out[5, 5], 1.0, "gcn_norm: an isolated node's self weight", "its degree with the self-loop is 1")


@pytest.mark.exercise("15.2", points=1)
def test_gcn_norm_accepts_numbers_and_single_node(impl):
    hint = "convert adj to float (np.asarray(adj, dtype=np.float64)) so 0/1 integers and booleans both work"
    adj = np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]])
    out, _ = run_fn(impl.gcn_norm, adj, what="gcn_norm on an integer 0/1 matrix", hint=hint, tensors=False)
    assert_close(out, ref_gcn_norm(adj), "gcn_norm on a 3-node star (integer 0/1)", hint, rtol=1e-12)
    out, _ = run_fn(impl.gcn_norm, np.zeros((1, 1), bool), what="gcn_norm on one node", hint=hint, tensors=False)
    assert_close(out, np.ones((1, 1)), "gcn_norm on a single node", "Â = [[1]]: the node keeps its own features")


# ---- 15.3 cross_attention_aggregate ----------------------------------------------------------------------
def ref_cross(q, k, v):
    s = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    return softmax_ref(s) @ v


def cross_mistakes(q, k, v):
    """Plausible wrong outputs of cross_attention_aggregate, by the message naming each mistake."""
    d = q.shape[-1]
    s = q @ np.swapaxes(k, -1, -2)
    return {
        "the scores are not scaled: divide q·k by √d, d = query.shape[-1]": lambda: softmax_ref(s) @ v,
        "scale by 1/√d, not 1/d": lambda: softmax_ref(s / d) @ v,
        "every target got the mean of the values (mean pooling): weight them by softmax(query · keys / √d)":
            lambda: np.broadcast_to(v.mean(1, keepdims=True), (*q.shape[:-1], v.shape[-1])),
    }


@pytest.mark.exercise("15.3", points=1)
def test_cross_attention_matches_the_formula(impl):
    for shapes, seed in ((((2, 7, 4), (2, 5, 4), (2, 5, 3)), 0), (((1, 3, 2), (1, 1, 2), (1, 1, 6)), 1)):
        q, k, v = (randn(*s, seed=seed + i) for i, s in enumerate(shapes))
        out, _ = run_fn(impl.cross_attention_aggregate, q, k, v, what="cross_attention_aggregate")
        hint = likely_mistake(out, cross_mistakes(q, k, v)) if k.shape[1] > 1 else ""
        assert_close(out, ref_cross(q, k, v), f"cross_attention_aggregate with query {q.shape}, keys {k.shape}, "
                     f"values {v.shape}", hint, rtol=1e-10, atol=1e-12)


@pytest.mark.exercise("15.3", points=1)
def test_cross_attention_is_a_weighted_average_over_the_context(impl):
    q, k = randn(2, 6, 4, seed=3) * 30, randn(2, 5, 4, seed=4) * 30  # huge scores
    ones = np.ones((2, 5, 1))
    out, _ = run_fn(impl.cross_attention_aggregate, q, k, ones, what="cross_attention_aggregate")
    if not np.isfinite(out).all():
        fail("cross_attention_aggregate", "non-finite output with large scores", "use F.softmax (it is stable)")
    assert_close(out, np.ones((2, 6, 1)), "cross_attention_aggregate with values = 1 (the weights of each target "
                 "must sum to 1 over the context)", "softmax over axis -1, the context axis", rtol=1e-10)
    perm = np.array([3, 0, 4, 2, 1])
    v = randn(2, 5, 3, seed=5)
    a, _ = run_fn(impl.cross_attention_aggregate, q / 30, k / 30, v, what="cross_attention_aggregate")
    b, _ = run_fn(impl.cross_attention_aggregate, q / 30, k[:, perm] / 30, v[:, perm], what="cross_attention_aggregate")
    assert_close(b, a, "cross_attention_aggregate after reordering the context points (a set: the result must "
                 "not change)", "pair key i with value i; do not mix the context axis with another", rtol=1e-10)


@pytest.mark.exercise("15.3", points=1)
def test_cross_attention_gradients(impl):
    xs = [randn(2, 4, 3, seed=6), randn(2, 5, 3, seed=7), randn(2, 5, 2, seed=8)]
    up = randn(2, 4, 2, seed=9)
    _, grads = run_fn(impl.cross_attention_aggregate, *xs, what="cross_attention_aggregate backward", grad=up,
                      hint="use Tensor ops only: matmul, .transpose(-2, -1), F.softmax")
    numeric = numeric_vjp(lambda *a: impl.cross_attention_aggregate(*(Tensor(x) for x in a)).data, xs, up)
    for name, g, n in zip(("query", "keys", "values"), grads, numeric):
        if g is None:
            fail("cross_attention_aggregate backward", f"no gradient reached {name}", "use Tensor ops only")
        assert_close(g, n, f"cross_attention_aggregate: gradient of {name} (float64 finite differences)",
                     "use Tensor ops only", rtol=1e-5, atol=1e-8)
