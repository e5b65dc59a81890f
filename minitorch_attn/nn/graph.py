"""Graph attention networks (Veličković et al. 2018, "Graph Attention Networks") and the graph convolution they
are compared with (Kipf & Welling 2017, "Semi-supervised classification with graph convolutional networks").
Lesson 15.

A graph of N nodes is given as a dense N×N adjacency matrix `adj` (boolean, or 0/1 numbers; True / nonzero
where node i may read from node j) and node features x of shape (N, F). Dense matrices are fine at the size of
the lesson (a few hundred nodes); a library for large graphs would use edge lists and scatter ops.

**Graph attention** (one head). With a shared linear map W (F -> F') and an attention vector a = [a_dst ‖ a_src]
(2F' numbers), node i scores each neighbour j in N(i) ∪ {i}

    e_ij = LeakyReLU(a_dstᵀ W x_i + a_srcᵀ W x_j)          (= LeakyReLU(aᵀ [W x_i ‖ W x_j]), slope 0.2)
    α_ij = softmax_j(e_ij) over j ∈ N(i) ∪ {i}               (-inf everywhere else: weight exactly 0)
    h_i' = Σ_j α_ij W x_j + bias

K heads run side by side with their own W and a; a hidden layer concatenates them (K·F' features, then ELU),
the output layer averages them. The self-loop is added by the layer (`add_self_loops=True`, as in the
paper), so an isolated node attends to itself with weight 1. With `add_self_loops=False` a node with no
neighbours at all gets zero weights and output `bias` (not NaN). `gat_attention` is Exercise 15.1.

**Graph convolution**: H' = Â H W + b with the symmetric normalisation Â = D^-1/2 (A + I) D^-1/2, where D is
the degree matrix of A + I (`gcn_norm`, Exercise 15.2). Â fixes every edge's weight from the degrees alone;
graph attention learns it from the features.

Input checks: `adj` must be square and match the number of nodes; x must be (N, F) with F = in_features.
Anything else raises a ValueError that names the shapes.
"""

from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from ..autograd.ops import matmul
from ..autograd.tensor import Tensor, to_tensor
from ..functional.graph import check_adjacency, elu, gat_attention, gcn_norm, with_self_loops
from .layers import Linear, uniform
from .module import Module, ModuleList, Parameter


def _check_x(x, in_features: int, who: str) -> Tensor:
    x = to_tensor(x)
    if x.ndim != 2 or x.shape[1] != in_features:
        raise ValueError(f"{who}: node features x must have shape (N, {in_features}); got {tuple(x.shape)}")
    return x


class GATLayer(Module):
    """One graph-attention layer with `heads` heads of `out_features` each (see the module docstring).

    Parameters (PyTorch Geometric's GATConv names): `lin` (Linear, no bias: in -> heads·out), `att_src` and
    `att_dst` (heads, out), `bias` (heads·out when concat, else out). forward(x (N, in), adj (N, N)) returns
    (N, heads·out) when `concat`, else the mean over heads (N, out). The last attention weights
    (heads, N, N) are kept in `self.attention` for plotting.
    """

    def __init__(self, in_features: int, out_features: int, heads: int = 1, concat: bool = True,
                 negative_slope: float = 0.2, add_self_loops: bool = True, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        if heads < 1 or out_features < 1:
            raise ValueError(f"GATLayer needs heads >= 1 and out_features >= 1; got heads={heads}, "
                             f"out_features={out_features}")
        self.in_features, self.out_features, self.heads = in_features, out_features, heads
        self.concat, self.negative_slope, self.add_self_loops = concat, negative_slope, add_self_loops
        self.lin = Linear(in_features, heads * out_features, bias=False, rng=rng, dtype=dtype)
        bound = math.sqrt(6.0 / (1 + out_features))  # Glorot-uniform bound for a (1, out) vector
        self.att_src = uniform(rng, bound, (heads, out_features), dtype)
        self.att_dst = uniform(rng, bound, (heads, out_features), dtype)
        self.bias = Parameter(np.zeros(heads * out_features if concat else out_features, dtype))
        self.attention: np.ndarray | None = None

    def forward(self, x, adj) -> Tensor:
        x = _check_x(x, self.in_features, "GATLayer")
        n = x.shape[0]
        adj = check_adjacency(adj, n, "GATLayer")
        if self.add_self_loops:
            adj = with_self_loops(adj)
        wh = self.lin(x).reshape(n, self.heads, self.out_features).permute(1, 0, 2)  # (K, N, F')
        alpha = gat_attention(wh, self.att_dst, self.att_src, adj, self.negative_slope)
        self.attention = alpha.data
        out = matmul(alpha, wh)  # (K, N, F')
        if self.concat:
            out = out.permute(1, 0, 2).reshape(n, self.heads * self.out_features)
        else:
            out = out.mean(axis=0)
        return out + self.bias

    def extra_repr(self) -> str:
        return (f"{self.in_features}, {self.out_features}, heads={self.heads}, concat={self.concat}, "
                f"negative_slope={self.negative_slope}")


class GAT(Module):
    """Two graph-attention layers as in the paper's transductive model: `heads` concatenated heads of `hidden`
    features, ELU, then `out_heads` averaged heads producing `n_classes` logits. Dropout with probability
    `dropout` on the input of each layer while training (the paper uses 0.6; 0 turns it off)."""

    def __init__(self, in_features: int, hidden: int, n_classes: int, heads: int = 4, out_heads: int = 1,
                 dropout: float = 0.0, rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.dropout = dropout
        self.layers = ModuleList([
            GATLayer(in_features, hidden, heads, concat=True, rng=self.rng, dtype=dtype),
            GATLayer(hidden * heads, n_classes, out_heads, concat=False, rng=self.rng, dtype=dtype),
        ])

    def forward(self, x, adj) -> Tensor:
        h = F.dropout(x, self.dropout, self.training, rng=self.rng) if self.dropout else x
        h = elu(self.layers[0](h, adj))
        h = F.dropout(h, self.dropout, self.training, rng=self.rng) if self.dropout else h
        return self.layers[1](h, adj)


class GCNLayer(Module):
    """H' = Â (H W) + b with Â = gcn_norm(adj) (Kipf & Welling 2017). x (N, in), adj (N, N) -> (N, out).
    A self-loop already in adj counts once (the diagonal is cleared before `gcn_norm` adds I)."""

    def __init__(self, in_features: int, out_features: int, rng: np.random.Generator | None = None,
                 dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.lin = Linear(in_features, out_features, bias=False, rng=rng, dtype=dtype)
        self.bias = Parameter(np.zeros(out_features, dtype))
        self._cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def normalised(self, adj: np.ndarray, dtype) -> np.ndarray:
        """gcn_norm(adj without its diagonal), cached for the last adjacency seen (training reuses one graph)."""
        if self._cache is not None and self._cache[0] == id(adj) and np.array_equal(self._cache[1], adj):
            return self._cache[2]
        a = adj & ~np.eye(adj.shape[0], dtype=bool)
        a_hat = gcn_norm(a).astype(dtype)
        self._cache = (id(adj), adj.copy(), a_hat)
        return a_hat

    def forward(self, x, adj) -> Tensor:
        x = _check_x(x, self.in_features, "GCNLayer")
        adj = check_adjacency(adj, x.shape[0], "GCNLayer")
        return matmul(Tensor(self.normalised(adj, x.dtype)), self.lin(x)) + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}"


class GCN(Module):
    """Two graph-convolution layers with a ReLU between (and optional dropout, as `GAT`)."""

    def __init__(self, in_features: int, hidden: int, n_classes: int, dropout: float = 0.0,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.dropout = dropout
        self.layers = ModuleList([GCNLayer(in_features, hidden, rng=self.rng, dtype=dtype),
                                  GCNLayer(hidden, n_classes, rng=self.rng, dtype=dtype)])

    def forward(self, x, adj) -> Tensor:
        h = F.dropout(x, self.dropout, self.training, rng=self.rng) if self.dropout else x
        h = F.relu(self.layers[0](h, adj))
        h = F.dropout(h, self.dropout, self.training, rng=self.rng) if self.dropout else h
        return self.layers[1](h, adj)


class NodeMLP(Module):
    """The baseline that ignores the graph: Linear, ReLU, Linear on each node's own features. forward takes
    (x, adj) like the graph models so that one training loop serves all three; adj is only shape-checked."""

    def __init__(self, in_features: int, hidden: int, n_classes: int, dropout: float = 0.0,
                 rng: np.random.Generator | None = None, dtype=np.float32):
        super().__init__()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.in_features, self.dropout = in_features, dropout
        self.fc1 = Linear(in_features, hidden, rng=self.rng, dtype=dtype)
        self.fc2 = Linear(hidden, n_classes, rng=self.rng, dtype=dtype)

    def forward(self, x, adj=None) -> Tensor:
        x = _check_x(x, self.in_features, "NodeMLP")
        if adj is not None:
            check_adjacency(adj, x.shape[0], "NodeMLP")
        h = F.dropout(x, self.dropout, self.training, rng=self.rng) if self.dropout else x
        h = F.relu(self.fc1(h))
        h = F.dropout(h, self.dropout, self.training, rng=self.rng) if self.dropout else h
        return self.fc2(h)


