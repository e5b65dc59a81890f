"""Every op's backward against float64 central differences (`mta.gradcheck`), on hypothesis-drawn shapes.

Values come from a seeded NumPy generator (hypothesis draws the seed), so each example is reproducible;
inputs are kept away from the points where an op is not differentiable (relu/abs at 0, ties in max).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minitorch_attn as mta
from minitorch_attn import functional as F

FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
seeds = st.integers(0, 2**32 - 1)
small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)
pair_shapes = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=1, max_side=3)


def make(shape, seed, kind="normal", requires_grad=True) -> mta.Tensor:
    """A float64 leaf: 'normal', 'positive' (in [0.5, 2]) or 'away' (|x| in [0.2, 2], either sign)."""
    rng = np.random.default_rng(seed)
    if kind == "normal":
        x = rng.standard_normal(shape)
    elif kind == "positive":
        x = rng.uniform(0.5, 2.0, shape)
    elif kind == "away":
        x = rng.uniform(0.2, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    else:  # pragma: no cover - a typo in a test
        raise ValueError(kind)
    return mta.tensor(np.asarray(x, dtype=np.float64), requires_grad=requires_grad)


def check(fn, *inputs):
    assert mta.gradcheck(fn, list(inputs))


# ---- elementwise ------------------------------------------------------------------------------
BINARY = {  # name: (fn, kind of a, kind of b)
    "add": (lambda a, b: a + b, "normal", "normal"),
    "sub": (lambda a, b: a - b, "normal", "normal"),
    "mul": (lambda a, b: a * b, "normal", "normal"),
    "div": (lambda a, b: a / b, "normal", "away"),
    "pow": (lambda a, b: a**b, "positive", "normal"),
    "maximum": (mta.maximum, "normal", "normal"),
}


@pytest.mark.parametrize("name", BINARY)
@FAST
@given(shapes=pair_shapes, seed=seeds, needs=st.sampled_from([(True, True), (True, False), (False, True)]))
def test_binary_ops_broadcast(name, shapes, seed, needs):
    fn, kind_a, kind_b = BINARY[name]
    a = make(shapes.input_shapes[0], seed, kind_a, requires_grad=needs[0])
    b = make(shapes.input_shapes[1], seed + 1, kind_b, requires_grad=needs[1])
    out = fn(a, b)
    assert out.shape == shapes.result_shape
    check(fn, a, b)


UNARY = {  # name: (fn, kind of input)
    "neg": (lambda x: -x, "normal"),
    "exp": (lambda x: x.exp(), "normal"),
    "log": (lambda x: x.log(), "positive"),
    "sqrt": (lambda x: x.sqrt(), "positive"),
    "tanh": (lambda x: x.tanh(), "normal"),
    "sigmoid": (lambda x: x.sigmoid(), "normal"),
    "relu": (lambda x: x.relu(), "away"),
    "abs": (lambda x: x.abs(), "away"),
    "F.tanh": (F.tanh, "normal"),
    "F.sigmoid": (F.sigmoid, "normal"),
    "F.relu": (F.relu, "away"),
    "gelu": (F.gelu, "normal"),
    "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), "normal"),
    "tensor**int": (lambda x: x**3, "normal"),
    "tensor**float": (lambda x: x**1.5, "positive"),
    "tensor**negative": (lambda x: x**-0.5, "positive"),
    "scalar**tensor": (lambda x: 2.5**x, "normal"),
    "scalar-tensor": (lambda x: 2.0 - x, "normal"),
    "scalar/tensor": (lambda x: 3.0 / x, "away"),
    "tensor/scalar": (lambda x: x / 4.0, "normal"),
    "array*tensor": (lambda x: np.linspace(-1, 1, x.shape[-1] if x.ndim else 1) * x, "normal"),
    "array+tensor": (lambda x: np.full(x.shape, 2.0) + x, "normal"),
    "cast_roundtrip": (lambda x: x.double() * 2, "normal"),
}


@pytest.mark.parametrize("name", UNARY)
@FAST
@given(shape=small_shapes, seed=seeds)
def test_unary_ops(name, shape, seed):
    fn, kind = UNARY[name]
    check(fn, make(shape, seed, kind))


# ---- matmul -----------------------------------------------------------------------------------
@FAST
@given(
    nkm=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3)),
    batch=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, min_side=1, max_side=3),
    vector=st.sampled_from(["none", "left", "right", "both"]),
    seed=seeds,
)
def test_matmul(nkm, batch, vector, seed):
    n, k, m = nkm
    a_shape = (k,) if vector in ("left", "both") else batch.input_shapes[0] + (n, k)
    b_shape = (k,) if vector in ("right", "both") else batch.input_shapes[1] + (k, m)
    a, b = make(a_shape, seed), make(b_shape, seed + 1)
    out = a @ b
    np.testing.assert_allclose(out.data, np.matmul(a.data, b.data), rtol=1e-12)
    check(lambda a, b: a @ b, a, b)
    check(mta.matmul, a, b)


def test_matmul_only_one_side_requires_grad():
    a, b = make((2, 3), 0), make((3, 4), 1, requires_grad=False)
    check(lambda a, b: a @ b, a, b)
    check(lambda a, b: b.T @ a.T, a, b)


# ---- reductions -------------------------------------------------------------------------------
@st.composite
def shape_and_axis(draw, min_dims=1):
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=1, max_side=3))
    nd = len(shape)
    how = draw(st.sampled_from(["none", "int", "tuple"]))
    if how == "none" or nd == 0:
        return shape, None
    if how == "int":
        return shape, draw(st.integers(-nd, nd - 1))
    axes = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
    return shape, tuple(a - nd if draw(st.booleans()) else a for a in axes)


def _reduced_count(shape, axis):
    if axis is None:
        return int(np.prod(shape))
    axes = (axis,) if isinstance(axis, int) else axis
    return int(np.prod([shape[a] for a in axes]))


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@FAST
@given(sa=shape_and_axis(min_dims=0), keepdims=st.booleans(), seed=seeds)
def test_reductions(name, sa, keepdims, seed):
    shape, axis = sa
    x = make(shape, seed)
    out = getattr(x, name)(axis=axis, keepdims=keepdims)
    np_fn = getattr(np, {"max": "amax", "min": "amin"}.get(name, name))
    expected = np_fn(x.data, axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12)
    check(lambda x: getattr(x, name)(axis=axis, keepdims=keepdims), x)


@FAST
@given(sa=shape_and_axis(), keepdims=st.booleans(), correction=st.sampled_from([0, 1]), seed=seeds)
def test_var(sa, keepdims, correction, seed):
    shape, axis = sa
    if _reduced_count(shape, axis) <= correction:
        correction = 0
    x = make(shape, seed)
    out = x.var(axis=axis, keepdims=keepdims, correction=correction)
    np.testing.assert_allclose(out.data, np.var(x.data, axis=axis, keepdims=keepdims, ddof=correction),
                               rtol=1e-10, atol=1e-14)
    check(lambda x: x.var(axis=axis, keepdims=keepdims, correction=correction), x)


def test_max_ties_share_the_gradient_equally():
    x = mta.tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), requires_grad=True)
    x.max(axis=1).sum().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    x.grad = None
    x.max().backward()
    np.testing.assert_allclose(x.grad, [[0, 0.5, 0.5], [0, 0, 0]])
    y = mta.tensor(np.array([1.0, 2.0]), requires_grad=True)
    mta.maximum(y, y).sum().backward()  # a == b everywhere: half to each side, which is the same tensor
    np.testing.assert_allclose(y.grad, [1.0, 1.0])


# ---- shapes -----------------------------------------------------------------------------------
@st.composite
def shape_and_reshape(draw):
    shape = draw(small_shapes)
    size, target = int(np.prod(shape)), []
    remaining = size
    for _ in range(draw(st.integers(0, 3))):
        divisors = [d for d in range(1, remaining + 1) if remaining % d == 0]
        d = draw(st.sampled_from(divisors))
        target.append(d)
        remaining //= d
    target.append(remaining)
    if draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    return shape, tuple(target)


@FAST
@given(sr=shape_and_reshape(), seed=seeds)
def test_reshape(sr, seed):
    shape, target = sr
    x = make(shape, seed)
    assert x.reshape(target).shape == x.data.reshape(target).shape
    check(lambda x: x.reshape(target), x)
    check(lambda x: x.reshape(*target) * 2, x)


@FAST
@given(shape=nonscalar_shapes, data=st.data(), seed=seeds)
def test_permute_transpose_T_mT(shape, data, seed):
    nd = len(shape)
    perm = data.draw(st.permutations(range(nd)))
    d0, d1 = data.draw(st.integers(-nd, nd - 1)), data.draw(st.integers(-nd, nd - 1))
    x = make(shape, seed)
    assert x.permute(*perm).shape == x.data.transpose(perm).shape
    check(lambda x: x.permute(perm), x)
    check(lambda x: x.transpose(d0, d1), x)
    check(lambda x: x.T, x)
    if nd >= 2:
        assert x.mT.shape == shape[:-2] + (shape[-1], shape[-2])
        check(lambda x: x.mT, x)


_MASK = np.random.default_rng(7).standard_normal((4, 3, 5)) > 0
INDEXES = {
    "int": 1,
    "negative int": -1,
    "slice": np.s_[1:3],
    "reverse": np.s_[::-1],
    "negative steps": np.s_[::-2, 1:, ::-1],
    "ellipsis": np.s_[..., 2],
    "newaxis": np.s_[None, 1:3],
    "int array with repeats": [0, 0, 3, 1, 0],
    "negative int array": np.array([-1, -1, 0]),
    "2-D int array": np.array([[0, 1], [1, 1]]),
    "int array on axis 1": np.s_[:, [2, 2, 0]],
    "two int arrays": np.s_[[0, 0, 1], :, [4, 4, 0]],
    "int arrays broadcast": np.s_[np.array([[0], [3]]), np.array([1, 1, 2])],
    "full boolean mask": _MASK,
    "boolean mask on axis 0": np.array([True, False, True, True]),
    "mixed mask + slice": np.s_[np.array([True, False, True, True]), 1:],
    "mixed slice + ints + reverse": np.s_[1:, [0, 0], ::-1],
    "index tensor": mta.tensor([2, 0, 2]),
    "bool tensor": mta.tensor(_MASK[:, :, 0]),
}


@pytest.mark.parametrize("name", INDEXES)
def test_indexing(name):
    x = make((4, 3, 5), 0)
    index = INDEXES[name]
    np_index = index.data if isinstance(index, mta.Tensor) else index
    np.testing.assert_array_equal(x[index].data, x.data[np_index])
    check(lambda x: x[index], x)


@FAST
@given(shape=nonscalar_shapes, data=st.data(), seed=seeds)
def test_basic_slicing(shape, data, seed):
    index = tuple(data.draw(st.slices(n)) for n in shape)
    x = make(shape, seed)
    np.testing.assert_array_equal(x[index].data, x.data[index])
    check(lambda x: x[index], x)


@FAST
@given(shape=nonscalar_shapes, data=st.data(), seed=seeds)
def test_concatenate_stack_split(shape, data, seed):
    nd = len(shape)
    axis = data.draw(st.integers(-nd, nd - 1))
    sizes = data.draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    parts = []
    for i, s in enumerate(sizes):
        sh = list(shape)
        sh[axis] = s
        parts.append(make(tuple(sh), seed + i))
    cat = mta.concatenate(parts, axis=axis)
    np.testing.assert_array_equal(cat.data, np.concatenate([p.data for p in parts], axis=axis))
    check(lambda *ps: mta.concatenate(ps, axis=axis), *parts)
    check(lambda *ps: mta.cat(list(ps), axis=axis), *parts)

    same = [make(shape, seed + 10 + i) for i in range(len(sizes))]
    stack_axis = data.draw(st.integers(-nd - 1, nd))
    np.testing.assert_array_equal(mta.stack(same, axis=stack_axis).data,
                                  np.stack([p.data for p in same], axis=stack_axis))
    check(lambda *ps: mta.stack(ps, axis=stack_axis), *same)

    whole = make(shape, seed + 20)
    n = shape[axis]
    chunk = data.draw(st.integers(1, n + 1))
    pieces = mta.split(whole, chunk, axis=axis)
    assert [p.shape[axis] for p in pieces] == [min(chunk, n - s) for s in range(0, n, chunk)]
    check(lambda x: mta.split(x, chunk, axis=axis), whole)
    sections = data.draw(st.lists(st.integers(0, n), min_size=1, max_size=3))
    sections = sections[:-1] + [n - sum(sections[:-1])] if sum(sections[:-1]) <= n else [n]
    check(lambda x: mta.split(x, sections, axis=axis), whole)


# ---- selection --------------------------------------------------------------------------------
@FAST
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3, max_side=3), seed=seeds)
def test_where(shapes, seed):
    cond_shape, a_shape, b_shape = shapes.input_shapes
    cond = np.random.default_rng(seed).random(cond_shape) > 0.5
    a, b = make(a_shape, seed + 1), make(b_shape, seed + 2)
    out = mta.where(cond, a, b)
    np.testing.assert_array_equal(out.data, np.where(cond, a.data, b.data))
    check(lambda a, b: mta.where(cond, a, b), a, b)
    check(lambda a: mta.where(mta.tensor(cond), a, 0.0), a)


@FAST
@given(shape=small_shapes, data=st.data(), seed=seeds)
def test_masked_fill(shape, data, seed):
    keep = data.draw(st.integers(0, len(shape)))
    mask_shape = tuple(n if data.draw(st.booleans()) else 1 for n in shape[len(shape) - keep:])
    mask = np.random.default_rng(seed).random(mask_shape) > 0.5
    x = make(shape, seed + 1)
    out = x.masked_fill(mask, -3.0)
    np.testing.assert_array_equal(out.data, np.where(mask, -3.0, x.data))
    check(lambda x: x.masked_fill(mask, -3.0), x)
    check(lambda x: mta.masked_fill(x, mta.tensor(mask), -np.inf).exp(), x)


# ---- fused: softmax family, layer norm, embedding, cross-entropy, dropout ----------------------
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp", "logsumexp_keepdims",
                                  "softmax_temperature", "method_softmax", "method_log_softmax"])
@FAST
@given(shape=nonscalar_shapes, data=st.data(), seed=seeds)
def test_softmax_family(name, shape, data, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    temperature = data.draw(st.sampled_from([0.5, 2.0, 7.0]))
    fn = {
        "softmax": lambda x: F.softmax(x, axis=axis),
        "log_softmax": lambda x: F.log_softmax(x, axis=axis),
        "logsumexp": lambda x: F.logsumexp(x, axis=axis),
        "logsumexp_keepdims": lambda x: F.logsumexp(x, axis=axis, keepdims=True),
        "softmax_temperature": lambda x: F.softmax(x, axis=axis, temperature=temperature),
        "method_softmax": lambda x: x.softmax(axis),
        "method_log_softmax": lambda x: x.log_softmax(axis) * 0.5 + x.logsumexp(axis, keepdims=True),
    }[name]
    check(fn, make(shape, seed))


def test_softmax_temperature_is_softmax_of_scaled_logits():
    x = make((3, 4), 0)
    np.testing.assert_allclose(F.softmax(x, temperature=0.25).data, F.softmax(x * 4.0).data, rtol=1e-12)


@FAST
@given(lead=hnp.array_shapes(min_dims=0, max_dims=2, max_side=3),
       norm=hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4),
       affine=st.sampled_from(["none", "weight", "bias", "both"]), seed=seeds)
def test_layer_norm(lead, norm, affine, seed):
    x = make(lead + norm, seed)
    weight = make(norm, seed + 1) if affine in ("weight", "both") else None
    bias = make(norm, seed + 2) if affine in ("bias", "both") else None
    params = [p for p in (weight, bias) if p is not None]

    def fn(x, *ps):
        w = ps[0] if weight is not None else None
        b = ps[-1] if bias is not None else None
        return F.layer_norm(x, norm, weight=w, bias=b)

    axes = tuple(range(len(lead), len(lead) + len(norm)))
    mean, var = x.data.mean(axis=axes, keepdims=True), x.data.var(axis=axes, keepdims=True)
    expected = (x.data - mean) / np.sqrt(var + 1e-5)
    expected = expected * (weight.data if weight is not None else 1) + (bias.data if bias is not None else 0)
    np.testing.assert_allclose(fn(x, *params).data, expected, rtol=1e-10, atol=1e-12)
    check(fn, x, *params)


@FAST
@given(vocab=st.integers(2, 5), dim=st.integers(1, 3),
       index_shape=hnp.array_shapes(min_dims=0, max_dims=2, max_side=4), seed=seeds)
def test_embedding_with_repeated_indices(vocab, dim, index_shape, seed):
    idx = np.random.default_rng(seed).integers(0, vocab, index_shape)
    idx.reshape(-1)[:2] = 1  # at least one repeat whenever there are two or more indices
    weight = make((vocab, dim), seed + 1)
    np.testing.assert_array_equal(F.embedding(idx, weight).data, weight.data[idx])
    check(lambda w: F.embedding(idx, w), weight)
    check(lambda w: F.embedding(mta.tensor(idx), w), weight)


@FAST
@given(n=st.integers(1, 4), c=st.integers(2, 4), extra=hnp.array_shapes(min_dims=0, max_dims=1, max_side=3),
       ignore_index=st.sampled_from([-100, 1]), label_smoothing=st.sampled_from([0.0, 0.1, 0.3]),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=seeds)
def test_cross_entropy(n, c, extra, ignore_index, label_smoothing, reduction, seed):
    rng = np.random.default_rng(seed)
    target = rng.integers(0, c, (n,) + extra)
    if ignore_index == -100:
        target[rng.random(target.shape) < 0.3] = -100
    target.reshape(-1)[0] = 0  # never ignore everything (the mean would be NaN)
    logits = make((n, c) + extra, seed + 1)
    out = F.cross_entropy(logits, target, ignore_index=ignore_index, label_smoothing=label_smoothing,
                          reduction=reduction)
    assert out.shape == (target.shape if reduction == "none" else ())
    check(lambda z: F.cross_entropy(z, target, ignore_index=ignore_index, label_smoothing=label_smoothing,
                                    reduction=reduction), logits)


def test_cross_entropy_value_by_hand():
    logits = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    target = np.array([1, 2])
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = -(logp[0, 1] + logp[1, 2]) / 2
    assert F.cross_entropy(mta.tensor(logits), target).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_gradient_is_the_mask(p):
    x = make((5, 7), 0)
    out = F.dropout(x, p=p, rng=np.random.default_rng(3))
    mask = np.where(out.data != 0, 1 / (1 - p), 0.0)
    np.testing.assert_allclose(out.data, x.data * mask, rtol=1e-12)
    out.backward(np.ones((5, 7)))
    np.testing.assert_allclose(x.grad, mask, rtol=1e-12)
    check(lambda x: F.dropout(x, p=p, rng=np.random.default_rng(3)), x)
    assert F.dropout(x, p=p, training=False) is x


# ---- the engine -------------------------------------------------------------------------------
def test_gradients_accumulate_over_backward_calls():
    x = make((3,), 0)
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * x.data + 3.0)
    x.zero_grad()
    assert x.grad is None


def test_no_grad_records_nothing():
    x = make((3,), 0)
    with mta.no_grad():
        y = (x * 2).exp().sum()
        assert not mta.autograd.is_grad_enabled()
    assert mta.autograd.is_grad_enabled()
    assert not y.requires_grad and y.is_leaf and y._node is None
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.backward()
    assert x.grad is None


def test_no_grad_restores_the_mode_after_an_exception():
    with pytest.raises(ZeroDivisionError), mta.no_grad():
        _ = 1 / 0
    assert mta.autograd.is_grad_enabled()


def test_retain_grad_keeps_an_intermediate_gradient():
    x = make((2, 3), 0)
    h = (x * 2.0).retain_grad()
    other = x * 3.0
    (h.tanh() + other).sum().backward()
    np.testing.assert_allclose(h.grad, 1 - np.tanh(h.data) ** 2)
    assert other.grad is None  # not retained: intermediates keep no .grad, as in torch
    np.testing.assert_allclose(x.grad, 2 * (1 - np.tanh(h.data) ** 2) + 3)


def test_shared_subexpression_gets_the_summed_gradient():
    x = make((4,), 0)
    s = x.sigmoid()  # used three times
    (s * s + s).sum().backward()
    sig = 1 / (1 + np.exp(-x.data))
    np.testing.assert_allclose(x.grad, (2 * sig + 1) * sig * (1 - sig), rtol=1e-12)
    check(lambda x: (lambda s: s * s + s @ s)(x.sigmoid()), x)


def test_diamond_graph_and_a_leaf_used_twice_in_one_op():
    x = make((3,), 0)
    check(lambda x: x * x + (x + x).exp() - x / (x * x + 1), x)


def test_long_chain_backprops_without_recursion_error():
    depth = max(3000, sys.getrecursionlimit() + 100)
    x = mta.tensor(np.array([0.5, -0.25]), requires_grad=True)
    y = x
    for _ in range(depth):
        y = y * 1.0001 + 0.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full(2, 1.0001**depth), rtol=1e-9)
    del y  # freeing a deep graph must not recurse either


def test_backward_with_explicit_gradient():
    x = make((2, 3), 0)
    g = np.random.default_rng(1).standard_normal((2, 3))
    (x * 2.0).backward(g)
    np.testing.assert_allclose(x.grad, 2 * g)
    x.grad = None
    (x * 2.0).backward(mta.tensor(g))
    np.testing.assert_allclose(x.grad, 2 * g)


def test_gradcheck_catches_a_wrong_backward():
    class BadSquare(mta.Function):
        @staticmethod
        def forward(ctx, a):
            ctx.save(a)
            return a * a

        @staticmethod
        def backward(ctx, grad):
            (a,) = ctx.saved
            return grad * a  # should be 2 * a

    with pytest.raises(mta.GradcheckError, match=r"input 0 of shape \(3,\)"):
        mta.gradcheck(BadSquare.apply, [make((3,), 0)])
    assert mta.gradcheck(BadSquare.apply, [make((3,), 0)], raise_exception=False) is False


def test_gradcheck_on_non_contiguous_and_non_writeable_inputs():
    base = np.random.default_rng(0).standard_normal((3, 4))
    x = mta.tensor(base.T, requires_grad=True)  # a transposed (non-contiguous) view
    check(lambda x: (x * x).sum(axis=0), x)
    ro = np.random.default_rng(1).standard_normal((2, 3))
    ro.flags.writeable = False
    check(lambda x: x.tanh(), mta.tensor(ro, requires_grad=True))


def test_slices_of_a_long_sequence_accumulate_in_place():
    """Indexing's backward adds into one buffer: reading every time step of a sequence (as an RNN
    does) gives the same gradient as the dense rule, without T full-size arrays of zeros."""
    rng = np.random.default_rng(0)
    x = mta.tensor(rng.standard_normal((3, 50, 4)), requires_grad=True)
    w = rng.standard_normal((50, 4))
    total = None
    for t in range(50):
        term = (x[:, t] * w[t]).tanh().sum() + x[1, t, [0, 0, 2]].sum()
        total = term if total is None else total + term
    total.backward()
    expected = (1 - np.tanh(x.data * w) ** 2) * w
    expected[1, :, 0] += 2
    expected[1, :, 2] += 1
    np.testing.assert_allclose(x.grad, expected, rtol=1e-12, atol=1e-12)


def test_dropout_is_identity_in_eval_even_at_p_one():
    x = mta.ones(2, 3)
    assert (F.dropout(x, p=1.0, training=False).data == 1).all()
    assert (F.dropout(x, p=1.0, training=True).data == 0).all()
