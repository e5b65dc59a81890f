"""Bad input raises, and the message names what was wrong: the shapes, the dtypes, the values."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import functional as F


def t(*shape, dtype=np.float32, requires_grad=False):
    return mta.tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


# ---- shapes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("op, name", [
    (lambda a, b: a + b, "add"),
    (lambda a, b: a - b, "sub"),
    (lambda a, b: a * b, "mul"),
    (lambda a, b: a / b, "div"),
    (lambda a, b: a**b, "pow"),
    (mta.maximum, "maximum"),
])
def test_mismatched_broadcast_names_both_shapes(op, name):
    with pytest.raises(ValueError, match=rf"{name}: shapes \(2, 3\) and \(4,\) cannot be broadcast"):
        op(t(2, 3), t(4))


def test_mismatched_broadcast_with_a_numpy_constant():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(2,\)"):
        t(2, 3) * np.ones(2)


def test_where_mismatched_shapes_names_all_three():
    with pytest.raises(ValueError, match=r"where: shapes \(3,\) \(condition\), \(2, 2\) and \(2, 1\)"):
        mta.where(np.ones(3, dtype=bool), t(2, 2), t(2, 1))
    with pytest.raises(TypeError, match=r"condition must be boolean; got dtype float64 of shape \(2,\)"):
        mta.where(np.ones(2), t(2), t(2))


def test_masked_fill_errors():
    with pytest.raises(ValueError, match=r"\(4,\) \(condition\), \(\) and \(2, 3\)"):
        t(2, 3).masked_fill(np.ones(4, dtype=bool), 0.0)
    with pytest.raises(TypeError, match=r"mask must be boolean; got dtype int64 of shape \(2, 3\)"):
        t(2, 3).masked_fill(np.ones((2, 3), dtype=np.int64), 0.0)


@pytest.mark.parametrize("a, b, pattern", [
    ((2, 3), (4, 5), r"shapes \(2, 3\) and \(4, 5\) are not aligned: 3 .* != 4"),
    ((5, 2, 3), (5, 4, 2), r"shapes \(5, 2, 3\) and \(5, 4, 2\) are not aligned"),
    ((2, 3), (4,), r"shapes \(2, 3\) and \(4,\) are not aligned"),
    ((3,), (4, 5), r"shapes \(3,\) and \(4, 5\) are not aligned"),
    ((2, 2, 3), (3, 3, 4), r"batch axes of shapes \(2, 2, 3\) and \(3, 3, 4\) cannot be broadcast"),
    ((), (3,), r"at least one axis; got shapes \(\) and \(3,\)"),
])
def test_matmul_shape_errors(a, b, pattern):
    with pytest.raises(ValueError, match=pattern):
        t(*a) @ t(*b)
    with pytest.raises(ValueError, match=pattern):
        mta.matmul(t(*a), t(*b))


def test_reshape_to_a_wrong_size():
    with pytest.raises(ValueError, match=r"reshape .* shape \(2, 3\) \(6 elements\) into \(4, 2\)"):
        t(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match=r"\(2, 3\) \(6 elements\) into \(4, -1\)"):
        t(2, 3).reshape((4, -1))


@pytest.mark.parametrize("axes", [(0, 1, 5), (0, 0, 1), (0, 1), (2, 1, 0, 3), (0, 1, -4)])
def test_permute_with_a_bad_permutation(axes):
    with pytest.raises(ValueError, match=r"axes .* not a permutation of the 3 axes of shape \(2, 3, 4\)"):
        t(2, 3, 4).permute(*axes)


def test_transpose_axis_out_of_range():
    with pytest.raises(ValueError, match=r"transpose: axis 3 is out of range .* shape \(2, 3, 4\)"):
        t(2, 3, 4).transpose(0, 3)
    with pytest.raises(ValueError, match=r"axis -2 is out of range .* shape \(3,\)"):
        _ = t(3).mT


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min", "var"])
@pytest.mark.parametrize("axis", [2, -3, (0, 2)])
def test_reduction_axis_out_of_range(reduce, axis):
    with pytest.raises(ValueError, match=r"axis -?\d is out of range for a tensor with 2 axes"):
        getattr(t(2, 3), reduce)(axis=axis)


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax, F.logsumexp])
def test_softmax_axis_out_of_range(fn):
    with pytest.raises(ValueError, match=r"axis 2 is out of range for a tensor of shape \(2, 3\)"):
        fn(t(2, 3), axis=2)


def test_concatenate_stack_split_errors():
    with pytest.raises(ValueError, match=r"along axis 0: shapes \[\(2, 3\), \(2, 4\)\] do not match"):
        mta.concatenate([t(2, 3), t(2, 4)])
    with pytest.raises(ValueError, match=r"axis 2 is out of range for shapes \[\(2, 3\), \(2, 3\)\]"):
        mta.concatenate([t(2, 3), t(2, 3)], axis=2)
    with pytest.raises(ValueError, match="at least one tensor"):
        mta.concatenate([])
    with pytest.raises(ValueError, match=r"stack needs tensors of one shape; got \[\(2, 3\), \(3, 2\)\]"):
        mta.stack([t(2, 3), t(3, 2)])
    with pytest.raises(ValueError, match=r"sizes \[1, 1\] add up to 2 but axis 0 of shape \(3, 2\) has 3"):
        mta.split(t(3, 2), [1, 1])
    with pytest.raises(ValueError, match="split size must be positive; got 0"):
        mta.split(t(3, 2), 0)


def test_indexing_errors():
    with pytest.raises(IndexError, match=r"index into a tensor of shape \(2, 3\)"):
        t(2, 3)[5]
    with pytest.raises(IndexError, match=r"shape \(2, 3\)"):
        t(2, 3)[[0, 2]]
    with pytest.raises(TypeError, match=r"must be integer or boolean; got dtype float64 of shape \(2,\)"):
        t(2, 3)[np.array([0.0, 1.0])]


# ---- backward ---------------------------------------------------------------------------------
def test_backward_on_a_non_scalar_needs_a_gradient():
    y = t(2, 3, requires_grad=True) * 2
    with pytest.raises(RuntimeError, match=r"non-scalar tensor of shape \(2, 3\) needs a gradient"):
        y.backward()


def test_backward_gradient_of_the_wrong_shape():
    y = t(2, 3, requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"grad has shape \(3, 2\) but the tensor has shape \(2, 3\)"):
        y.backward(np.ones((3, 2)))


def test_backward_without_requires_grad():
    with pytest.raises(RuntimeError, match=r"on a tensor of shape \(2,\) that does not require grad"):
        (t(2) * 2).backward(np.ones(2))


# ---- dtypes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("op", [
    lambda a, b: a + b, lambda a, b: a * b, lambda a, b: a @ b, lambda a, b: mta.maximum(a, b),
    lambda a, b: mta.where(np.ones(3, bool), a, b), lambda a, b: mta.concatenate([a, b]),
])
def test_mixing_float32_and_float64_names_both_dtypes(op):
    a, b = t(3, 3), t(3, 3, dtype=np.float64)
    with pytest.raises(TypeError, match=r"mix float dtypes \(float32 \(3, 3\), float64 \(3, 3\)\).*double"):
        op(a, b)
    with pytest.raises(TypeError, match=r"float64 \(3, 3\), float32 \(3, 3\)"):
        op(b, a)


def test_requires_grad_on_an_integer_tensor():
    with pytest.raises(TypeError, match=r"only floating-point tensors can require gradients; got dtype int64 "
                                        r"for a tensor of shape \(3,\)"):
        mta.tensor(np.arange(3), requires_grad=True)
    with pytest.raises(TypeError, match="got bool"):
        mta.tensor([True, False]).requires_grad_()


def test_gradcheck_refuses_float32_and_inputs_without_grad():
    with pytest.raises(TypeError, match=r"needs float64 inputs; input 0 of shape \(3,\) is float32"):
        mta.gradcheck(lambda x: x * 2, [t(3, requires_grad=True)])
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        mta.gradcheck(lambda x: x * 2, [t(3, dtype=np.float64)])


# ---- functional -------------------------------------------------------------------------------
def test_cross_entropy_errors():
    z = t(4, 3)
    with pytest.raises(TypeError, match=r"integer class indices; got dtype float64 of shape \(4,\)"):
        F.cross_entropy(z, np.zeros(4))
    with pytest.raises(IndexError, match=r"must be in \[0, 3\) or ignore_index=-100; found \[3, -1\]"):
        F.cross_entropy(z, np.array([0, 3, 1, -1]))
    with pytest.raises(ValueError, match=r"of shape \(4, 3\) need target of shape \(4,\); got \(4, 1\)"):
        F.cross_entropy(z, np.zeros((4, 1), dtype=np.int64))
    with pytest.raises(ValueError, match=r"of shape \(2, 3, 5\) need target of shape \(2, 5\); got \(2,\)"):
        F.cross_entropy(t(2, 3, 5), np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match=r"logits need shape \(N, C\); got \(3,\)"):
        F.cross_entropy(t(3), np.zeros((), dtype=np.int64))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none'; got 'avg'"):
        F.cross_entropy(z, np.zeros(4, dtype=np.int64), reduction="avg")
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]; got 1.5"):
        F.cross_entropy(z, np.zeros(4, dtype=np.int64), label_smoothing=1.5)


def test_embedding_errors():
    w = t(5, 2, requires_grad=True)
    with pytest.raises(TypeError, match=r"indices must be integers; got dtype float64 of shape \(2,\)"):
        F.embedding(np.array([0.0, 1.0]), w)
    with pytest.raises(IndexError, match=r"indices must be in \[0, 5\); got min 0 and max 5"):
        F.embedding(np.array([0, 5]), w)
    with pytest.raises(IndexError, match=r"got min -1 and max 2"):
        F.embedding(mta.tensor([[2, -1]]), w)


def test_layer_norm_errors():
    with pytest.raises(ValueError, match=r"input of shape \(2, 3\) does not end in normalized_shape \(4,\)"):
        F.layer_norm(t(2, 3), 4)
    with pytest.raises(ValueError, match=r"input of shape \(2, 3\) does not end in normalized_shape \(\)"):
        F.layer_norm(t(2, 3), ())
    with pytest.raises(ValueError, match=r"weight has shape \(4,\), expected \(3,\)"):
        F.layer_norm(t(2, 3), 3, weight=t(4))
    with pytest.raises(ValueError, match=r"bias has shape \(2, 3\), expected \(3,\)"):
        F.layer_norm(t(2, 3), 3, bias=t(2, 3))


def test_other_functional_errors():
    with pytest.raises(ValueError, match="dropout probability must be in"):
        F.dropout(t(3), p=1.5)
    with pytest.raises(ValueError, match="softmax temperature must be positive; got 0"):
        F.softmax(t(3), temperature=0)
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'; got 'fast'"):
        F.gelu(t(3), approximate="fast")
    with pytest.raises(ValueError, match=r"input of shape \(2, 3\) has 3 features; weight of shape \(4, 5\)"):
        F.linear(t(2, 3), t(4, 5))


# ---- tensors ----------------------------------------------------------------------------------
def test_item_needs_one_element():
    with pytest.raises(ValueError, match=r"item\(\) needs a tensor with one element; got shape \(2,\)"):
        t(2).item()


def test_truth_value_of_a_multi_element_tensor_is_ambiguous():
    a = t(2, 3)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(a == a)
    with pytest.raises(ValueError, match="ambiguous"):
        assert a == t(2, 3) * 2  # without the error this assert would pass
    assert bool(t(1) == 1.0) and not bool(mta.tensor(0.0))
