"""Graded tests for lesson 08, Hopfield layers: exercises 8.1-8.2 in `exercises/lesson08_hopfield_layers.py`
(or `solutions/` with `--target=solutions`).

    pytest tests/exercises/test_lesson08_hopfield_layers.py
    python -m minitorch_attn grade --lesson 08

References are computed here with NumPy (float64). Each test checks one exercise.
"""

from __future__ import annotations

import numpy as np
import pytest

from minitorch_attn.autograd.tensor import Tensor
from minitorch_attn.course.checks import assert_close, call, fail, likely_mistake, randn, softmax_ref


@pytest.fixture(scope="module")
def impl(load_target):
    return load_target("lesson08_hopfield_layers")


def ref_association(q, k, v, beta, steps=1, tol=None, allowed=None):
    def weights(x):
        s = beta * x @ np.swapaxes(k, -1, -2)
        if allowed is not None:
            s = np.where(allowed, s, -np.inf)
        return softmax_ref(s)

    xi = q
    for _ in range(steps - 1):
        new = weights(xi) @ k
        done = tol is not None and np.abs(new - xi).max() < tol
        xi = new
        if done:
            break
    p = weights(xi)
    return p @ v, p


def association_mistakes(q, k, v, beta, steps):
    """Plausible wrong outputs of hopfield_association, by the message naming each mistake."""
    wrong = {"scale the scores by beta (scale=beta), not by 1/sqrt(d)":
             lambda: ref_association(q, k, v, 1 / np.sqrt(q.shape[-1]), steps)[0]}
    if steps > 1:
        wrong["do steps - 1 updates of the state before the read-out; one association in all is steps=1"] = \
            lambda: ref_association(q, k, v, beta, 1)[0]
        wrong["steps counts every association, the read-out included: steps - 1 updates, then the read-out"] = \
            lambda: ref_association(q, k, v, beta, steps + 1)[0]
        wrong["the updates stay in the association space: the new state is softmax(beta xi kᵀ) k, with the keys "
              "as values (v only in the read-out)"] = lambda: _updates_with_values(q, k, v, beta, steps)
    return wrong


def _updates_with_values(q, k, v, beta, steps):
    """A mistake: the updates read out v (only possible when v has the keys' width)."""
    xi = q
    for _ in range(steps - 1):
        xi = softmax_ref(beta * xi @ np.swapaxes(k, -1, -2)) @ v
    return softmax_ref(beta * xi @ np.swapaxes(k, -1, -2)) @ v


# ---- 8.1 hopfield_association ---------------------------------------------------------------------------
@pytest.mark.exercise("8.1", points=2)
def test_association_steps(impl):
    q, k, v = randn(2, 3, 4, 5, seed=1), randn(2, 3, 6, 5, seed=2), randn(2, 3, 6, 7, seed=3)
    for steps, beta in ((1, 0.5), (2, 0.5), (4, 1.5)):
        got = call(f"hopfield_association(q, k, v, beta={beta}, steps={steps})", impl.hopfield_association, Tensor(q),
                   Tensor(k), Tensor(v), beta, steps)
        if not isinstance(got, tuple) or len(got) != 2:
            fail("hopfield_association", f"returned {type(got).__name__}", "return (out, weights)")
        out, w = got
        eo, ew = ref_association(q, k, v, beta, steps)
        hint = likely_mistake(out, association_mistakes(q, k, v, beta, steps))
        assert_close(out, eo, f"hopfield_association(steps={steps}, beta={beta}): out", hint, rtol=1e-9, atol=1e-12)
        assert_close(w, ew, f"hopfield_association(steps={steps}, beta={beta}): weights", "the weights are the "
                     "softmax of the LAST association (the read-out)", rtol=1e-9, atol=1e-12)


@pytest.mark.exercise("8.1", points=1)
def test_association_mask_tolerance_and_gradient(impl):
    q, k, v = randn(2, 1, 3, 4, seed=4), randn(2, 1, 5, 4, seed=5), randn(2, 1, 5, 2, seed=6)
    allowed = np.ones((2, 1, 1, 5), bool)
    allowed[0, ..., 3:] = False
    got = call("hopfield_association(..., attn_mask)", impl.hopfield_association, Tensor(q), Tensor(k), Tensor(v),
               1.0, 3, attn_mask=allowed)
    eo, ew = ref_association(q, k, v, 1.0, 3, allowed=allowed)
    hint = "pass attn_mask to EVERY association, the updates too, or masked patterns leak into the state"
    assert_close(got[0], eo, "hopfield_association(steps=3) with padding masked out", hint, rtol=1e-9, atol=1e-12)
    k2 = np.where(randn(1, 1, 6, 8, seed=7) > 0, 1.0, -1.0)
    q2 = k2[:, :, :2] * 0.9
    got = call("hopfield_association(..., steps=50, tol=1e-9)", impl.hopfield_association, Tensor(q2), Tensor(k2),
               Tensor(k2), 2.0, 50, 1e-9)
    assert_close(got[0], ref_association(q2, k2, k2, 2.0, 50, 1e-9)[0], "hopfield_association with tol",
                 "stop updating once no entry changed by more than tol, then read out", rtol=1e-9, atol=1e-12)
    qt = Tensor(q, requires_grad=True)
    out, _ = call("hopfield_association", impl.hopfield_association, qt, Tensor(k), Tensor(v), 1.0, 2)
    if out._node is None:
        fail("hopfield_association", "the output records no graph", "use F.scaled_dot_product_attention on the Tensors")


# ---- 8.2 HopfieldPooling.forward ------------------------------------------------------------------------
@pytest.mark.exercise("8.2", points=2)
def test_pooling_forward(impl):
    from minitorch_attn import nn

    pool = call("HopfieldPooling(6, hidden_size=4, output_size=5, num_heads=2, quantity=3)", impl.HopfieldPooling,
                6, hidden_size=4, output_size=5, num_heads=2, quantity=3, rng=np.random.default_rng(0),
                dtype=np.float64)
    x = randn(2, 7, 6, seed=1)
    hint = ("state = pooling_weights (1, quantity, input_size) repeated over the batch; out = self.hopfield((x, "
            "state, x)) is (B, quantity, output_size); reshape it to (B, quantity * output_size)")
    xt = Tensor(x, requires_grad=True)
    got = call("HopfieldPooling.forward(x (2, 7, 6))", pool, xt, hint=hint)
    state = np.repeat(pool.pooling_weights.data, 2, axis=0)
    ref = nn.Hopfield.forward(pool.hopfield, (x, state, x)).data.reshape(2, 15)
    assert_close(got, ref, "HopfieldPooling.forward(x (2, 7, 6)) with quantity=3, output_size=5", hint,
                 rtol=1e-9, atol=1e-12)
    got.backward(randn(2, 15, seed=2))
    if pool.pooling_weights.grad is None or xt.grad is None:
        fail("HopfieldPooling.forward", "no gradient reached the pooling weights or the input",
             "build the state from self.pooling_weights with Tensor ops (e.g. * np.ones((B, 1, 1))), and pass the "
             "input itself as stored patterns and projections")
    pad = np.zeros((2, 7), bool)
    pad[0, 5:] = True
    got = call("HopfieldPooling.forward(x, stored_pattern_padding_mask)", pool, x, pad, hint=hint)
    ref = nn.Hopfield.forward(pool.hopfield, (x, state, x), stored_pattern_padding_mask=pad).data.reshape(2, 15)
    assert_close(got, ref, "HopfieldPooling.forward with a stored_pattern_padding_mask",
                 "pass stored_pattern_padding_mask on to self.hopfield", rtol=1e-9, atol=1e-12)
