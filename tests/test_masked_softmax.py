"""F.masked_softmax, the one masked softmax of the library (anatomy's softmax_normaliser and nn.LuongAttention
call it): torch 2.13 is the oracle; fully masked rows give weight 0 and gradient 0, never NaN."""

import numpy as np
import pytest
import torch

import minitorch_attn as mta
from minitorch_attn import functional as F
from minitorch_attn import nn
from minitorch_attn.functional.additive import padding_to_may_attend
from minitorch_attn.functional.anatomy import softmax_normaliser


def _case(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 5))
    may = rng.random((2, 3, 5)) < 0.6
    may[0, 1] = False  # a row with nothing to attend to
    may[1, 2] = True
    return x, may


def _torch(x, may, g):
    xt = torch.tensor(x, requires_grad=True)
    w = torch.softmax(xt.masked_fill(~torch.tensor(may), float("-inf")), dim=-1)
    w = torch.where(torch.tensor(may).any(-1, keepdim=True), w, torch.zeros(()))  # torch's SDPA convention
    w.backward(torch.tensor(g))
    return w.detach().numpy(), xt.grad.numpy()


def test_matches_torch_forward_and_backward_with_a_fully_masked_row():
    x, may = _case()
    g = np.random.default_rng(1).standard_normal(x.shape)
    t = mta.tensor(x, requires_grad=True)
    w = F.masked_softmax(t, may)
    w.backward(g)
    w_ref, g_ref = _torch(x, may, g)
    assert np.all(np.isfinite(w.data)) and np.all(np.isfinite(t.grad)), "a fully masked row must not give NaN"
    np.testing.assert_allclose(w.data, w_ref, atol=1e-12, err_msg="weights differ from torch's")
    np.testing.assert_allclose(t.grad, g_ref, atol=1e-12, err_msg="gradient differs from torch's")
    assert np.all(w.data[0, 1] == 0) and np.all(t.grad[0, 1] == 0), "the dead row: weights 0 and gradient 0"
    assert np.all(w.data[~may] == 0), "masked entries must get weight exactly 0"


def test_gradcheck_float64():
    x, may = _case(2)
    mta.gradcheck(lambda t: F.masked_softmax(t, may) * mta.tensor(np.arange(30.0).reshape(2, 3, 5)),
                  [mta.tensor(x, requires_grad=True)])


def test_no_mask_is_softmax_and_minus_inf_scores_count_as_masked():
    x, _ = _case(3)
    np.testing.assert_array_equal(F.masked_softmax(mta.tensor(x)).data, F.softmax(mta.tensor(x)).data)
    x[0, 0] = -np.inf
    w = F.masked_softmax(mta.tensor(x), axis=-1)
    assert np.all(w.data[0, 0] == 0) and np.isfinite(w.data).all()
    w1 = F.masked_softmax(mta.tensor(x.swapaxes(1, 2)), axis=1)  # another axis
    np.testing.assert_allclose(w1.data.swapaxes(1, 2), w.data, atol=1e-15)


def test_the_callers_agree_with_it():
    x, may = _case(4)
    ref = F.masked_softmax(mta.tensor(x), may).data
    np.testing.assert_array_equal(softmax_normaliser(mta.tensor(x), may).data, ref)
    padding = ~may[:, 0, :]  # a key-padding mask: (B, Nk), True = padding, the same keys for every query
    padding[0] = True  # a batch row whose keys are all padding
    np.testing.assert_array_equal(padding_to_may_attend(padding), ~padding[:, None, :])
    luong = nn.LuongAttention(4, 4, score="dot")
    rng = np.random.default_rng(5)
    q, keys = mta.tensor(rng.standard_normal((2, 3, 4))), mta.tensor(rng.standard_normal((2, 5, 4)))
    _, w = luong(q, keys, keys, key_padding_mask=padding)
    scores = q @ keys.transpose(-2, -1)
    np.testing.assert_array_equal(w.data, F.masked_softmax(scores, ~padding[:, None, :]).data)
    assert np.all(w.data[0] == 0), "a query whose keys are all padding gets weights 0"


def test_there_is_one_masked_softmax():
    assert not hasattr(nn, "masked_softmax"), "nn.masked_softmax (True = padding) was a second masked softmax"
    assert F.masked_softmax is mta.functional.common.masked_softmax


def test_bad_masks_raise_naming_the_shapes():
    x = mta.tensor(np.zeros((2, 3)))
    with pytest.raises(TypeError, match=r"boolean.*int64.*\(2, 3\)"):
        F.masked_softmax(x, np.ones((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(2, 3\)"):
        F.masked_softmax(x, np.ones((4, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"\(2, 2, 3\).*\(2, 3\)"):
        F.masked_softmax(x, np.ones((2, 2, 3), dtype=bool))  # may not enlarge the scores
