"""Graph attention and graph convolution (functional/graph.py, nn/graph.py), the SBM graph (data/graphs.py): lesson 15.

Oracles: the same layers written with torch ops and loaded with the same weights (torch's autograd gives the
reference gradients), the formula D^-1/2 (A + I) D^-1/2 written out, and float64 finite differences
(`mta.gradcheck`) for every backward. Edges: isolated nodes, nodes whose neighbours are all masked, huge
attention logits, and wrong shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import minitorch_attn as mta
from minitorch_attn import nn
from minitorch_attn.data.graphs import sbm_graph
from minitorch_attn.functional import graph as G
from minitorch_attn.training.graph import train_node_classifier


def random_graph(n=7, p=0.4, seed=0, isolated=()):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < p, 1)
    adj = upper | upper.T
    for i in isolated:
        adj[i, :] = adj[:, i] = False
    return adj


def gat_layer(in_f=5, out_f=3, heads=2, concat=True, seed=0, scale=1.0, **kw):
    layer = nn.GATLayer(in_f, out_f, heads, concat=concat, rng=np.random.default_rng(seed), dtype=np.float64, **kw)
    rng = np.random.default_rng(seed + 100)
    layer.att_src.data[...] *= scale
    layer.att_dst.data[...] *= scale
    layer.bias.data[...] = rng.standard_normal(layer.bias.shape)
    return layer


def torch_gat(layer, x, adj, add_self_loops=True):
    """The GAT layer in torch, from `layer`'s weights: returns (output, parameter tensors, x tensor)."""
    w = torch.tensor(layer.lin.weight.data, requires_grad=True)
    a_src = torch.tensor(layer.att_src.data, requires_grad=True)
    a_dst = torch.tensor(layer.att_dst.data, requires_grad=True)
    b = torch.tensor(layer.bias.data, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    n, k, f = x.shape[0], layer.heads, layer.out_features
    mask = torch.tensor(adj | np.eye(n, dtype=bool) if add_self_loops else adj)
    wh = (xt @ w.T).view(n, k, f).permute(1, 0, 2)  # (K, N, F')
    e = (wh @ a_dst[:, :, None]) + (wh @ a_src[:, :, None]).transpose(1, 2)  # e[k, i, j]
    e = torch.nn.functional.leaky_relu(e, 0.2).masked_fill(~mask, float("-inf"))
    alpha = torch.nan_to_num(torch.softmax(e, dim=-1), nan=0.0)
    out = alpha @ wh
    out = out.permute(1, 0, 2).reshape(n, k * f) if layer.concat else out.mean(0)
    return out + b, (w, a_src, a_dst, b), xt, alpha


@pytest.mark.parametrize("concat", [True, False])
def test_gat_layer_matches_torch_forward_and_gradients(concat):
    layer = gat_layer(concat=concat)
    adj = random_graph(seed=1, isolated=(3,))
    x = np.random.default_rng(2).standard_normal((7, 5))
    xm = mta.tensor(x, requires_grad=True)
    out = layer(xm, adj)
    ref, params, xt, alpha = torch_gat(layer, x, adj)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.attention, alpha.detach().numpy(), rtol=1e-10, atol=1e-12)
    up = np.random.default_rng(3).standard_normal(out.shape)
    out.backward(up)
    ref.backward(torch.tensor(up))
    ours = (layer.lin.weight, layer.att_src, layer.att_dst, layer.bias)
    for name, p, t in zip(("lin.weight", "att_src", "att_dst", "bias"), ours, params):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_gat_attention_gradcheck_float64():
    rng = np.random.default_rng(4)
    wh = mta.tensor(rng.standard_normal((2, 6, 3)), requires_grad=True)
    a_dst = mta.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    a_src = mta.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    adj = G.with_self_loops(random_graph(6, seed=5))
    adj[2] = False  # a row with no entry at all: zero weights, zero gradient
    assert mta.gradcheck(lambda w, d, s: G.gat_attention(w, d, s, adj), [wh, a_dst, a_src])


def test_gat_layer_gradcheck_float64():
    layer = gat_layer(heads=3, concat=True)
    adj = random_graph(seed=6, isolated=(0,))
    x = mta.tensor(np.random.default_rng(7).standard_normal((7, 5)), requires_grad=True)
    assert mta.gradcheck(lambda x_: layer(x_, adj), [x])
    for p in (layer.lin.weight, layer.att_src, layer.att_dst):
        assert mta.gradcheck(lambda _p, x_=x: layer(x_, adj), [p])


def test_gat_weights_rows_sum_to_one_and_follow_the_mask():
    layer = gat_layer(heads=2)
    adj = random_graph(seed=8)
    layer(np.random.default_rng(9).standard_normal((7, 5)), adj)
    alpha = layer.attention
    np.testing.assert_allclose(alpha.sum(-1), 1.0, rtol=1e-12)
    allowed = G.with_self_loops(adj)
    assert (alpha[:, ~allowed] == 0).all(), "a non-edge must get weight exactly 0"
    assert (alpha[:, allowed] > 0).all()


def test_isolated_node_attends_to_itself_only():
    layer = gat_layer(heads=2, concat=True)
    adj = random_graph(seed=10, isolated=(4,))
    x = np.random.default_rng(11).standard_normal((7, 5))
    out = layer(x, adj).data
    assert layer.attention[:, 4, 4] == pytest.approx(1.0) and layer.attention[:, 4].sum() == pytest.approx(2.0)
    np.testing.assert_allclose(out[4], x[4] @ layer.lin.weight.data.T + layer.bias.data, rtol=1e-12)


def test_node_with_all_neighbours_masked_gets_zero_weights_not_nan():
    layer = gat_layer(heads=2, concat=False, add_self_loops=False)
    adj = random_graph(seed=12, isolated=(2,))
    x = mta.tensor(np.random.default_rng(13).standard_normal((7, 5)), requires_grad=True)
    out = layer(x, adj)
    assert np.isfinite(out.data).all()
    assert (layer.attention[:, 2] == 0).all()
    np.testing.assert_allclose(out.data[2], layer.bias.data)
    out.sum().backward()
    assert np.isfinite(x.grad).all() and np.isfinite(layer.att_src.grad).all()
    # the torch oracle (softmax of an all -inf row is NaN there; we define it as 0)
    ref, *_ = torch_gat(layer, x.data, adj, add_self_loops=False)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_huge_attention_logits_stay_finite():
    layer = gat_layer(heads=2, scale=1e4)
    adj = random_graph(seed=14)
    x = mta.tensor(np.random.default_rng(15).standard_normal((7, 5)) * 100, requires_grad=True)
    out = layer(x, adj)
    assert np.isfinite(out.data).all()
    np.testing.assert_allclose(layer.attention.sum(-1), 1.0, rtol=1e-12)
    out.sum().backward()
    assert np.isfinite(x.grad).all()


def test_gat_is_permutation_equivariant():
    layer = gat_layer(heads=2)
    adj = random_graph(seed=16)
    x = np.random.default_rng(17).standard_normal((7, 5))
    perm = np.random.default_rng(18).permutation(7)
    out = layer(x, adj).data
    out_p = layer(x[perm], adj[perm][:, perm]).data
    np.testing.assert_allclose(out_p, out[perm], rtol=1e-10, atol=1e-12)


def test_single_node_graph():
    layer = gat_layer(heads=2)
    x = np.random.default_rng(19).standard_normal((1, 5))
    out = layer(x, np.zeros((1, 1), bool)).data
    np.testing.assert_allclose(out[0], x[0] @ layer.lin.weight.data.T + layer.bias.data, rtol=1e-12)


@pytest.mark.parametrize("cls", [nn.GATLayer, nn.GCNLayer])
def test_wrong_shapes_raise_clear_errors(cls):
    layer = cls(5, 3, rng=np.random.default_rng(0))
    x = np.zeros((7, 5), np.float32)
    with pytest.raises(ValueError, match=r"square.*\(7, 6\)"):
        layer(x, np.zeros((7, 6), bool))
    with pytest.raises(ValueError, match=r"\(6, 6\).*7 nodes"):
        layer(x, np.zeros((6, 6), bool))
    with pytest.raises(ValueError, match=r"square.*\(7,\)"):
        layer(x, np.zeros(7, bool))
    with pytest.raises(ValueError, match=r"\(N, 5\); got \(7, 4\)"):
        layer(np.zeros((7, 4), np.float32), np.zeros((7, 7), bool))
    with pytest.raises(ValueError, match=r"\(N, 5\); got \(2, 7, 5\)"):
        layer(np.zeros((2, 7, 5), np.float32), np.zeros((7, 7), bool))


def test_leaky_relu_and_elu_match_torch():
    x = np.linspace(-5, 5, 41)
    np.testing.assert_allclose(G.leaky_relu(mta.tensor(x)).data,
                               torch.nn.functional.leaky_relu(torch.tensor(x), 0.2).numpy())
    np.testing.assert_allclose(G.elu(mta.tensor(x)).data, torch.nn.functional.elu(torch.tensor(x)).numpy(),
                               rtol=1e-12, atol=1e-15)
    xs = mta.tensor(np.array([-2.0, -0.3, 0.4, 3.0]), requires_grad=True)
    assert mta.gradcheck(lambda t: G.leaky_relu(t) * G.elu(t), [xs])
    with pytest.raises(ValueError, match="negative_slope"):
        G.leaky_relu(xs, 2.0)


# ---- graph convolution -------------------------------------------------------------------------------------
def test_gcn_norm_formula_and_isolated_nodes():
    adj = random_graph(seed=20, isolated=(1,))
    a_hat = G.gcn_norm(adj)
    a = adj + np.eye(7)
    deg = a.sum(1)
    np.testing.assert_allclose(a_hat, a / np.sqrt(np.outer(deg, deg)), rtol=1e-14)
    np.testing.assert_allclose(a_hat, a_hat.T)
    assert a_hat[1, 1] == 1.0 and a_hat[1].sum() == 1.0
    # the largest eigenvalue of D^-1/2 (A+I) D^-1/2 is 1 (it is similar to the random-walk matrix)
    assert np.linalg.eigvalsh(a_hat).max() == pytest.approx(1.0)


def test_gcn_layer_matches_torch_and_gradcheck():
    layer = nn.GCNLayer(5, 3, rng=np.random.default_rng(21), dtype=np.float64)
    layer.bias.data[...] = np.arange(3.0)
    adj = random_graph(seed=22)
    x = np.random.default_rng(23).standard_normal((7, 5))
    xm = mta.tensor(x, requires_grad=True)
    out = layer(xm, adj)
    a = torch.tensor(adj, dtype=torch.float64) + torch.eye(7, dtype=torch.float64)
    d = a.sum(1).rsqrt()
    w = torch.tensor(layer.lin.weight.data, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    ref = (d[:, None] * a * d[None, :]) @ (xt @ w.T) + torch.arange(3.0, dtype=torch.float64)
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12)
    out.sum().backward()
    ref.sum().backward()
    np.testing.assert_allclose(layer.lin.weight.grad, w.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(xm.grad, xt.grad.numpy(), rtol=1e-10)
    assert mta.gradcheck(lambda x_: layer(x_, adj), [mta.tensor(x, requires_grad=True)])
    # a self-loop already in adj counts once
    np.testing.assert_allclose(layer(x, G.with_self_loops(adj)).data, out.data, rtol=1e-12)


# ---- the SBM graph -----------------------------------------------------------------------------------------
def test_sbm_graph_structure_and_determinism():
    g = sbm_graph(n_per_class=30, n_classes=3, p_in=0.2, p_out=0.01, labels_per_class=5, seed=3)
    assert g.adj.shape == (90, 90) and g.adj.dtype == bool
    assert (g.adj == g.adj.T).all() and not g.adj.diagonal().any()
    assert g.features.shape == (90, 16) and g.features.dtype == np.float32
    assert g.train_mask.sum() == 15 and g.val_mask.sum() == 15 and g.test_mask.sum() == 60
    assert not (g.train_mask & g.val_mask).any() and (g.train_mask | g.val_mask | g.test_mask).all()
    assert all((g.labels[g.train_mask] == c).sum() == 5 for c in range(3))
    assert g.edge_homophily() > 0.8
    g2 = sbm_graph(n_per_class=30, n_classes=3, p_in=0.2, p_out=0.01, labels_per_class=5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(g[:6], g2[:6]))
    g3 = sbm_graph(n_per_class=30, n_classes=3, p_in=0.2, p_out=0.01, labels_per_class=5, seed=4)
    assert not np.array_equal(g.adj, g3.adj)


def test_sbm_graph_bad_arguments():
    with pytest.raises(ValueError, match="n_classes"):
        sbm_graph(n_classes=1)
    with pytest.raises(ValueError, match="labels_per_class"):
        sbm_graph(n_per_class=10, labels_per_class=5)
    with pytest.raises(ValueError, match="probabilities"):
        sbm_graph(p_in=1.5)


def test_graph_models_learn_the_sbm_task():
    """A small version of the lesson's comparison: neighbours carry the signal, so GAT and GCN beat the MLP."""
    g = sbm_graph(n_per_class=60, n_classes=3, p_in=0.1, p_out=0.005, signal=0.35, labels_per_class=10, seed=1)
    acc = {}
    for name, cls in (("mlp", nn.NodeMLP), ("gcn", nn.GCN), ("gat", nn.GAT)):
        model = cls(16, 8, 3, rng=np.random.default_rng(0))
        acc[name] = train_node_classifier(model, g, steps=60)["test_acc"]
    assert acc["gat"] > acc["mlp"] + 0.15 and acc["gcn"] > acc["mlp"] + 0.15, acc
