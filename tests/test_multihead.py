"""nn.MultiheadAttention against torch.nn.MultiheadAttention with the same weights (loaded from torch's
state_dict): outputs, attention weights (averaged and per head), gradients of the inputs and of every
parameter, float32 to 1e-5; split/merge against a loop over heads; float64 gradcheck; parameter counts."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_attn as mta
from minitorch_attn import nn
from minitorch_attn.functional.multihead import merge_heads, split_heads

torch = pytest.importorskip("torch")

TOL = dict(rtol=1e-5, atol=1e-5)


def randn(shape, seed, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def pair(E, H, kdim=None, vdim=None, bias=True, batch_first=True, seed=0):
    torch.manual_seed(seed)
    theirs = torch.nn.MultiheadAttention(E, H, bias=bias, kdim=kdim, vdim=vdim, batch_first=batch_first)
    with torch.no_grad():  # torch's biases start at 0: make them non-zero so that they are tested
        for name, p in theirs.named_parameters():
            if "bias" in name:
                p.copy_(torch.randn(p.shape) * 0.3)
    ours = nn.MultiheadAttention(E, H, bias=bias, kdim=kdim, vdim=vdim, batch_first=batch_first)
    ours.load_state_dict(theirs.state_dict())
    return ours, theirs


def run_both(ours, theirs, q, k, v, *, mask_ours=None, mask_theirs=None, **kw):
    """Forward both, backward a random weighting of (out, weights); return outputs and gradients."""
    Q, K, V = (mta.tensor(a, requires_grad=True) for a in (q, k, v))
    kw_ours = dict(kw)
    kw_ours.update(mask_ours or {})
    out, w = ours(Q, K, V, **kw_ours)
    tq, tk, tv = (torch.tensor(a, requires_grad=True) for a in (q, k, v))
    kw_theirs = dict(kw)
    kw_theirs.update(mask_theirs if mask_theirs is not None else
                     {n: (torch.tensor(m) if m is not None else None) for n, m in (mask_ours or {}).items()})
    tout, tw = theirs(tq, tk, tv, **kw_theirs)
    g_out = randn(out.shape, 11)
    loss = (out * g_out).sum()
    tloss = (tout * torch.tensor(g_out)).sum()
    if w is not None:
        g_w = randn(w.shape, 12)
        loss = loss + (w * g_w).sum()
        tloss = tloss + (tw * torch.tensor(g_w)).sum()
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(out.data, tout.detach().numpy(), err_msg="output", **TOL)
    if w is None:
        assert tw is None
    else:
        np.testing.assert_allclose(w.data, tw.detach().numpy(), err_msg="attention weights", **TOL)
    for name, a, b in (("query", Q, tq), ("key", K, tk), ("value", V, tv)):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), err_msg=f"grad of {name}", **TOL)
    params = dict(ours.named_parameters())
    tparams = dict(theirs.named_parameters())
    assert set(params) == set(tparams)
    for name, p in params.items():
        np.testing.assert_allclose(p.grad, tparams[name].grad.numpy(), err_msg=f"grad of {name}", **TOL)
    return out, w


@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("E,H,kdim,vdim,nq,nk", [
    (8, 2, None, None, 5, 5),
    (8, 2, None, None, 3, 7),  # cross-attention, Nq != Nk
    (12, 3, 5, 7, 4, 6),  # kdim != vdim != embed_dim
    (12, 1, 5, 7, 4, 6),
    (16, 4, 16, 6, 2, 9),
])
def test_parity_shapes(E, H, kdim, vdim, nq, nk, average):
    ours, theirs = pair(E, H, kdim, vdim)
    q, k, v = randn((2, nq, E), 0), randn((2, nk, kdim or E), 1), randn((2, nk, vdim or E), 2)
    _, w = run_both(ours, theirs, q, k, v, average_attn_weights=average)
    assert w.shape == ((2, nq, nk) if average else (2, H, nq, nk))


def test_parity_self_attention_and_no_weights():
    ours, theirs = pair(8, 4)
    x = randn((3, 6, 8), 0)
    run_both(ours, theirs, x, x, x)
    out, w = run_both(ours, theirs, x, x, x, need_weights=False)
    assert w is None


def test_parity_key_padding_masks_bool_and_float():
    ours, theirs = pair(12, 3, 5, 7)
    q, k, v = randn((3, 4, 12), 0), randn((3, 6, 5), 1), randn((3, 6, 7), 2)
    kpm = np.zeros((3, 6), dtype=bool)
    kpm[0, 4:] = True  # torch's MHA convention: True = padding, ignore this key
    kpm[2, 1:3] = True
    run_both(ours, theirs, q, k, v, mask_ours={"key_padding_mask": kpm})
    run_both(ours, theirs, q, k, v, mask_ours={"key_padding_mask": kpm}, need_weights=False)
    float_kpm = np.where(kpm, -1e4, 0.0).astype(np.float32) + randn((3, 6), 5) * 0.1
    run_both(ours, theirs, q, k, v, mask_ours={"key_padding_mask": float_kpm})


def test_parity_attn_masks_bool_float_3d_and_combined():
    ours, theirs = pair(8, 2)
    q, k, v = randn((2, 4, 8), 0), randn((2, 6, 8), 1), randn((2, 6, 8), 2)
    am = np.random.default_rng(3).random((4, 6)) < 0.4  # True = NOT allowed
    am[:, 0] = False
    run_both(ours, theirs, q, k, v, mask_ours={"attn_mask": am})
    run_both(ours, theirs, q, k, v, mask_ours={"attn_mask": randn((4, 6), 4)})
    am3 = np.random.default_rng(5).random((2 * 2, 4, 6)) < 0.4
    am3[..., 1] = False
    run_both(ours, theirs, q, k, v, mask_ours={"attn_mask": am3}, average_attn_weights=False)
    kpm = np.zeros((2, 6), bool)
    kpm[1, 3:] = True
    run_both(ours, theirs, q, k, v, mask_ours={"attn_mask": am, "key_padding_mask": kpm})


@pytest.mark.parametrize("need_weights", [True, False])
def test_parity_causal(need_weights):
    ours, theirs = pair(8, 2)
    x = randn((2, 5, 8), 0)
    torch_mask = torch.ones(5, 5, dtype=torch.bool).triu(1)  # torch needs the mask with its is_causal hint
    run_both(ours, theirs, x, x, x, mask_ours={"is_causal": True},
             mask_theirs={"attn_mask": torch_mask, "is_causal": True}, need_weights=need_weights)
    kpm = np.zeros((2, 5), bool)
    kpm[0, 3:] = True
    run_both(ours, theirs, x, x, x, mask_ours={"is_causal": True, "key_padding_mask": kpm},
             mask_theirs={"attn_mask": torch_mask, "is_causal": True, "key_padding_mask": torch.tensor(kpm)})


def test_parity_sequence_first_unbatched_and_no_bias():
    ours, theirs = pair(8, 2, batch_first=False)
    q, k = randn((4, 3, 8), 0), randn((6, 3, 8), 1)  # (N, B, E)
    run_both(ours, theirs, q, k, k)
    ours, theirs = pair(8, 2)
    run_both(ours, theirs, randn((4, 8), 0), randn((6, 8), 1), randn((6, 8), 2))  # unbatched (N, E)
    ours, theirs = pair(12, 3, 5, 7, bias=False)
    assert [n for n, _ in ours.named_parameters()] == ["q_proj_weight", "k_proj_weight", "v_proj_weight",
                                                      "out_proj.weight"]
    run_both(ours, theirs, randn((2, 4, 12), 0), randn((2, 6, 5), 1), randn((2, 6, 7), 2))


def test_fully_masked_rows_are_zero_attention_not_nan():
    ours, _ = pair(8, 2)
    x = randn((2, 4, 8), 0)
    kpm = np.zeros((2, 4), bool)
    kpm[0] = True  # every key of batch 0 is padding: torch's module returns NaN here with need_weights=True
    X = mta.tensor(x, requires_grad=True)
    out, w = ours(X, X, X, key_padding_mask=kpm)
    assert np.isfinite(out.data).all() and np.isfinite(w.data).all()
    np.testing.assert_allclose(out.data[0], np.broadcast_to(ours.out_proj.bias.data, (4, 8)), rtol=1e-6)
    assert np.all(w.data[0] == 0)
    out.sum().backward()
    assert np.isfinite(X.grad).all()


def test_state_dict_names_shapes_and_init_match_torch():
    for kdim, vdim in ((None, None), (5, 7)):
        t = torch.nn.MultiheadAttention(12, 3, kdim=kdim, vdim=vdim, batch_first=True)
        m = nn.MultiheadAttention(12, 3, kdim=kdim, vdim=vdim, rng=np.random.default_rng(0))
        assert [(k, tuple(v.shape)) for k, v in t.state_dict().items()] == \
            [(k, v.shape) for k, v in m.state_dict().items()]
        for name, p in m.named_parameters():
            if "bias" in name:
                assert np.all(p.data == 0), name  # torch's _reset_parameters zeros every bias
    m = nn.MultiheadAttention(64, 4, rng=np.random.default_rng(0))
    bound = np.sqrt(6 / (64 + 3 * 64))  # xavier_uniform on the (3E, E) packed matrix
    w = m.in_proj_weight.data
    assert w.max() <= bound and w.min() >= -bound and w.max() > 0.9 * bound
    assert np.abs(m.out_proj.weight.data).max() <= 1 / 8  # Linear's U(-1/sqrt(E), 1/sqrt(E))


@pytest.mark.parametrize("E", [16, 64])
def test_parameter_count_is_4E2_plus_4E_for_any_head_count(E):
    counts = {H: nn.MultiheadAttention(E, H).num_parameters() for H in (1, 2, 4, 8)}
    assert set(counts.values()) == {4 * E * E + 4 * E}, counts
    assert nn.MultiheadAttention(E, 4, bias=False).num_parameters() == 4 * E * E
    t = torch.nn.MultiheadAttention(E, 4)
    assert sum(p.numel() for p in t.parameters()) == 4 * E * E + 4 * E


def loop_over_heads(m, query, key, value):
    """A deliberately plain reference: one head at a time, slicing the projection matrices by hand."""
    E, H = m.embed_dim, m.num_heads
    d = E // H
    if m._qkv_same_embed_dim:
        W = m.in_proj_weight.data
        wq, wk, wv = W[:E], W[E : 2 * E], W[2 * E :]
    else:
        wq, wk, wv = m.q_proj_weight.data, m.k_proj_weight.data, m.v_proj_weight.data
    b = m.in_proj_bias.data
    heads = []
    for h in range(H):
        sl = slice(h * d, (h + 1) * d)
        q = query @ wq[sl].T + b[:E][sl]
        k = key @ wk[sl].T + b[E : 2 * E][sl]
        v = value @ wv[sl].T + b[2 * E :][sl]
        s = q @ np.swapaxes(k, -1, -2) / np.sqrt(d)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        heads.append(p @ v)
    return np.concatenate(heads, axis=-1) @ m.out_proj.weight.data.T + m.out_proj.bias.data


@pytest.mark.parametrize("E,H,kdim,vdim,nq,nk", [(12, 3, 5, 7, 4, 9), (12, 4, 12, 12, 7, 3), (10, 5, 3, 3, 1, 6)])
def test_matches_a_loop_over_heads(E, H, kdim, vdim, nq, nk):
    m = nn.MultiheadAttention(E, H, kdim=kdim, vdim=vdim, rng=np.random.default_rng(1), dtype=np.float64)
    with mta.no_grad():
        for name, p in m.named_parameters():
            if "bias" in name:
                p.data[...] = randn(p.shape, 7, np.float64)
    q, k, v = randn((3, nq, E), 0, np.float64), randn((3, nk, kdim), 1, np.float64), randn((3, nk, vdim), 2, np.float64)
    out, _ = m(q, k, v)
    np.testing.assert_allclose(out.data, loop_over_heads(m, q, k, v), rtol=1e-12, atol=1e-12)


def test_split_and_merge_heads():
    x = randn((2, 5, 12), 0, np.float64)
    s = split_heads(mta.tensor(x), 3)
    assert s.shape == (2, 3, 5, 4)
    for h in range(3):
        np.testing.assert_array_equal(s.data[:, h], x[..., 4 * h : 4 * h + 4])
    np.testing.assert_array_equal(merge_heads(s).data, x)
    with pytest.raises(ValueError, match="not divisible by num_heads=5"):
        split_heads(mta.tensor(x), 5)


def test_gradcheck_float64_module():
    m = nn.MultiheadAttention(6, 2, kdim=4, vdim=3, rng=np.random.default_rng(0), dtype=np.float64)
    with mta.no_grad():
        for name, p in m.named_parameters():
            if "bias" in name:
                p.data[...] = randn(p.shape, 3, np.float64)
    q = mta.tensor(randn((2, 3, 6), 0, np.float64), requires_grad=True)
    k = mta.tensor(randn((2, 4, 4), 1, np.float64), requires_grad=True)
    v = mta.tensor(randn((2, 4, 3), 2, np.float64), requires_grad=True)
    kpm = np.array([[False, False, True, False], [False, False, False, False]])
    params = list(m.parameters())

    def f(q, k, v, *ps):
        out, w = m(q, k, v, key_padding_mask=kpm, average_attn_weights=False)
        return out, w

    assert mta.gradcheck(f, [q, k, v, *params])


def test_errors():
    m = nn.MultiheadAttention(8, 2, kdim=5, vdim=3)
    q, k, v = randn((2, 4, 8), 0), randn((2, 6, 5), 1), randn((2, 6, 3), 2)
    with pytest.raises(ValueError, match="key has 3 features"):
        m(q, v, v)
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(B, Nk\) = \(2, 6\)"):
        m(q, k, v, key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match=r"2-D attn_mask must have shape \(Nq, Nk\) = \(4, 6\)"):
        m(q, k, v, attn_mask=np.zeros((6, 4), bool))
    with pytest.raises(TypeError, match="True = NOT allowed"):
        m(q, k, v, attn_mask=np.zeros((4, 6), np.int64))
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(10, 3)
