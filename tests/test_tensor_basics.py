"""Tensor basics: dtype rules, repr, conversions, comparisons, constructors and seeding."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import functional as F


# ---- dtype rules ------------------------------------------------------------------------------
@pytest.mark.parametrize("data, dtype", [
    ([1.0, 2.0], np.float32),  # Python floats: float32, the default
    (1.5, np.float32),
    ([[1, 2.5]], np.float32),
    (np.array([1.0, 2.0]), np.float64),  # a NumPy array keeps its dtype
    (np.float64(1.0), np.float64),
    (np.ones(2, dtype=np.float32), np.float32),
    ([1, 2], np.int64),  # integers stay integers (indices)
    ([True, False], np.bool_),
])
def test_constructor_dtypes(data, dtype):
    assert mta.tensor(data).dtype == dtype


def test_explicit_dtype_and_casts():
    x = mta.tensor([1, 2], dtype=np.float64)
    assert x.dtype == np.float64
    assert x.float().dtype == np.float32 and x.float().double().dtype == np.float64
    assert x.astype(np.float32).dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", [
    lambda x: x * 2.5, lambda x: 2.5 - x, lambda x: x / 3, lambda x: 1 / x, lambda x: x**2, lambda x: 2**x,
    lambda x: x + np.float64(1.0), lambda x: np.ones(3) * x, lambda x: x + np.arange(3),
    lambda x: mta.maximum(x, 0.5), lambda x: mta.where(np.array([True, False, True]), x, 0.0),
    lambda x: x.masked_fill(np.array([True, False, False]), -np.inf), lambda x: x + mta.tensor([1, 2, 3]),
    lambda x: mta.concatenate([x, np.zeros(2)]), lambda x: x @ np.ones((3, 2)), lambda x: np.ones((2, 3)) @ x,
])
def test_constants_adopt_the_tensor_dtype(op, dtype):
    x = mta.tensor(np.array([1.0, 2.0, 3.0], dtype=dtype), requires_grad=True)
    out = op(x)
    assert out.dtype == dtype
    out.sum().backward()
    assert x.grad.dtype == dtype


def test_integer_tensors_in_ops():
    i = mta.tensor([1, 2, 3])
    assert (i * 2).dtype == np.int64  # integers alone stay integers
    assert (i + 0.5).dtype == np.float32  # a float constant gives the default float
    assert (i / 2).dtype == np.float32  # true division gives a float, as in torch
    assert (mta.tensor([1.0, 2.0, 3.0]) * i).dtype == np.float32
    assert (mta.tensor(np.ones(3)) + i).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_have_the_parameter_dtype(dtype):
    rng = np.random.default_rng(0)
    w = mta.tensor(rng.standard_normal((4, 3)).astype(dtype), requires_grad=True)
    b = mta.tensor(np.zeros(3, dtype=dtype), requires_grad=True)
    x = rng.standard_normal((5, 4))  # a float64 NumPy constant: takes the parameters' dtype
    h = F.layer_norm(mta.maximum(x @ w + b, 0.0), 3, weight=b + 1)
    other = np.float64 if dtype == np.float32 else np.float32
    loss = F.cross_entropy(h, np.array([0, 1, 2, 0, 1])) + h.max()
    loss = loss + h.astype(other).sum().astype(dtype) * 1e-3  # Cast's backward casts back
    assert loss.dtype == dtype
    loss.backward()
    assert w.grad.dtype == dtype and b.grad.dtype == dtype


# ---- conversions and repr ---------------------------------------------------------------------
def test_repr():
    assert repr(mta.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(mta.tensor([1.0, 2.5], requires_grad=True)) == "tensor([1. , 2.5], requires_grad=True)"
    assert repr(mta.tensor(np.array([1.0]))) == "tensor([1.], dtype=float64)"
    assert repr(mta.tensor([1, 2])) == "tensor([1, 2], dtype=int64)"
    assert repr(mta.tensor(0.5)) == "tensor(0.5)"
    assert repr(mta.tensor([[1.0, 2.0], [3.0, 4.0]])) == "tensor([[1., 2.],\n        [3., 4.]])"


def test_item_tolist_numpy_detach():
    x = mta.tensor([[1.5, 2.0]], requires_grad=True)
    assert x[0, 0].item() == 1.5 and isinstance(x[0, 0].item(), float)
    assert mta.tensor([7]).item() == 7
    assert x.tolist() == [[1.5, 2.0]]
    assert x.numpy() is x.data
    y = (x * 2).detach()
    assert not y.requires_grad and y.is_leaf and y.grad is None
    np.testing.assert_array_equal(y.data, [[3.0, 4.0]])
    assert x.detach().data is x.data  # shares memory, as in torch


def test_basic_facts():
    x = mta.tensor(np.zeros((2, 3, 4), dtype=np.float32))
    assert (x.shape, x.ndim, x.size, len(x)) == ((2, 3, 4), 3, 24, 2)
    assert x.is_leaf and not x.requires_grad
    assert x.requires_grad_().requires_grad
    y = x * 2
    assert not y.is_leaf and y.requires_grad


# ---- comparisons ------------------------------------------------------------------------------
@pytest.mark.parametrize("op, expected", [
    (lambda a, b: a < b, [True, False, False]),
    (lambda a, b: a <= b, [True, True, False]),
    (lambda a, b: a > b, [False, False, True]),
    (lambda a, b: a >= b, [False, True, True]),
    (lambda a, b: a == b, [False, True, False]),
    (lambda a, b: a != b, [True, False, True]),
])
def test_comparisons_give_bool_tensors_without_grad(op, expected):
    a = mta.tensor([1.0, 2.0, 3.0], requires_grad=True)
    for b in (2.0, mta.tensor([2.0, 2.0, 2.0]), np.array([2.0, 2.0, 2.0])):
        out = op(a, b)
        assert isinstance(out, mta.Tensor)
        assert out.dtype == np.bool_ and not out.requires_grad and out.is_leaf
        assert out.tolist() == expected


def test_tensors_are_hashable_by_identity():
    a, b = mta.tensor([1.0]), mta.tensor([1.0])
    assert len({a, b}) == 2 and {a: 1}[a] == 1


# ---- constructors and seeding -----------------------------------------------------------------
@pytest.mark.parametrize("make, value", [(mta.zeros, 0.0), (mta.ones, 1.0)])
def test_zeros_ones(make, value):
    for x in (make(2, 3), make((2, 3)), make([2, 3])):
        assert x.shape == (2, 3) and x.dtype == np.float32 and (x.data == value).all()
    assert make(3, dtype=np.float64).dtype == np.float64
    assert make(3, requires_grad=True).requires_grad
    assert make(()).shape == ()


def test_randn_with_rng():
    x = mta.randn(2, 3, rng=np.random.default_rng(5))
    assert x.shape == (2, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x.data, np.random.default_rng(5).standard_normal((2, 3)).astype(np.float32))
    assert mta.randn((4,), dtype=np.float64, rng=np.random.default_rng(0)).dtype == np.float64
    assert mta.randn(3, requires_grad=True, rng=np.random.default_rng(0)).requires_grad


def test_manual_seed_makes_the_library_generator_repeatable():
    mta.manual_seed(123)
    a = mta.randn(4)
    d1 = F.dropout(mta.ones(8), p=0.5)
    mta.manual_seed(123)
    b = mta.randn(4)
    d2 = F.dropout(mta.ones(8), p=0.5)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(d1.data, d2.data)
    assert mta.manual_seed(124) is mta.default_rng()
    assert not np.array_equal(mta.randn(4).data, a.data)


def test_numpy_float64_constants_alone_keep_their_dtype():
    """With no tensor among an op's inputs, NumPy arrays keep their float dtype (as mta.tensor does);
    Python floats alone give the float32 default."""
    from minitorch_attn.autograd.ops import Add

    assert Add.apply(np.ones(2), np.ones(2)).dtype == np.float64
    assert Add.apply(1.0, 2.0).dtype == np.float32
    assert Add.apply(np.ones(2, np.float32), 1.0).dtype == np.float32
