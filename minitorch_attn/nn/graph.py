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
from ..autograd.ops import matmul, maximum, where
from ..autograd.tensor import Tensor, to_tensor
from ..linear_attention import elu_plus_one
from .layers import Linear, uniform
from .module import Module, ModuleList, Parameter


# ---- small pieces -----------------------------------------------------------------------------------------
def leaky_relu(x: Tensor, negative_slope: float = 0.2) -> Tensor:
    """max(x, slope · x) for 0 <= slope <= 1: x where x > 0, slope · x elsewhere."""
    if not 0.0 <= negative_slope <= 1.0:
        raise ValueError(f"leaky_relu: negative_slope must be in [0, 1]; got {negative_slope}")
    return maximum(x, x * negative_slope)


def elu(x: Tensor) -> Tensor:
    """x for x > 0, exp(x) - 1 otherwise (the nonlinearity between GAT layers)."""
    return elu_plus_one(x) - 1.0


def check_adjacency(adj, n_nodes: int, who: str) -> np.ndarray:
    """`adj` as a boolean (N, N) array (nonzero = edge), or a ValueError naming the shapes."""
    adj = adj.data if isinstance(adj, Tensor) else np.asarray(adj)
    if adj.ndim != 2 or adj.shape[0] != adj.shape[1]:
        raise ValueError(f"{who}: adj must be a square (N, N) adjacency matrix; got shape {adj.shape}")
    if adj.shape[0] != n_nodes:
        raise ValueError(f"{who}: adj of shape {adj.shape} does not match the {n_nodes} nodes of x "
                         f"(x has shape ({n_nodes}, F)); adj must be ({n_nodes}, {n_nodes})")
    return adj.astype(bool) if adj.dtype != bool else adj


def with_self_loops(adj: np.ndarray) -> np.ndarray:
    """adj | I: every node also reads from itself."""
    return adj | np.eye(adj.shape[0], dtype=bool)


def _check_x(x, in_features: int, who: str) -> Tensor:
    x = to_tensor(x)
    if x.ndim != 2 or x.shape[1] != in_features:
        raise ValueError(f"{who}: node features x must have shape (N, {in_features}); got {tuple(x.shape)}")
    return x


# ---- graph attention ---------------------------------------------------------------------------------------
def gat_attention(wh: Tensor, a_dst: Tensor, a_src: Tensor, adj: np.ndarray, negative_slope: float = 0.2) -> Tensor:
    """Graph attention weights for K heads (Exercise 15.1).

        wh: (K, N, F') the projected features W x of every node, per head;  a_dst, a_src: (K, F')
        adj: (N, N) bool, True where node i reads from node j (self-loops already in it)

    Returns α of shape (K, N, N): α[k, i, j] = softmax over {j : adj[i, j]} of
    e_ij = LeakyReLU(a_dst[k]·wh[k, i] + a_src[k]·wh[k, j]); exactly 0 where adj[i, j] is False, and a row
    with no True entry at all is all zeros (not NaN).
    """
    ### BEGIN SOLUTION
    k, n, f = wh.shape
    score_dst = matmul(wh, a_dst.reshape(k, f, 1))  # (K, N, 1): the part that depends on i
    score_src = matmul(wh, a_src.reshape(k, f, 1)).reshape(k, 1, n)  # (K, 1, N): the part that depends on j
    e = leaky_relu(score_dst + score_src, negative_slope)  # (K, N, N)
    mask = np.broadcast_to(adj, e.shape)
    weights = F.softmax(where(mask, e, np.array(-np.inf, e.dtype)), axis=-1)
    empty = ~adj.any(axis=-1, keepdims=True)  # (N, 1): nodes with no neighbour at all
    if empty.any():
        weights = where(np.broadcast_to(empty, weights.shape), np.zeros((), weights.dtype), weights)
    return weights
    ### END SOLUTION


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


# ---- graph convolution -------------------------------------------------------------------------------------
def gcn_norm(adj: np.ndarray) -> np.ndarray:
    """Â = D^-1/2 (A + I) D^-1/2 with D = diag of the row sums of A + I (Exercise 15.2).

    adj: (N, N) bool or 0/1 (symmetric for the usual GCN). Returns a float64 (N, N) array; every degree is
    >= 1 thanks to the self-loop, so an isolated node gets Â_ii = 1 and nothing else.
    """
    ### BEGIN SOLUTION
    a = np.asarray(adj, dtype=np.float64)
    a_hat = a + np.eye(a.shape[0])
    d_inv_sqrt = 1.0 / np.sqrt(a_hat.sum(axis=1))
    return d_inv_sqrt[:, None] * a_hat * d_inv_sqrt[None, :]
    ### END SOLUTION


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


# ---- training ----------------------------------------------------------------------------------------------
def train_node_classifier(model: Module, graph, steps: int = 200, lr: float = 0.01, weight_decay: float = 5e-4,
                          ignore_index: int = -100) -> dict:
    """Full-batch training on the labelled nodes of `graph` (a data.graphs.Graph) with Adam and cross-entropy;
    the weights from the step with the best validation accuracy are kept (ties: the earliest).

    Returns {"train_loss": list per step, "val_acc": list per step, "best_step": int, "test_acc": float}.
    """
    from .. import optim
    from ..autograd import no_grad

    x, adj = Tensor(graph.features), graph.adj
    target = np.where(graph.train_mask, graph.labels, ignore_index)
    opt = optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses, val_accs, best = [], [], (-1.0, 0, None)
    for step in range(steps):
        model.train()
        opt.zero_grad()
        logits = model(x, adj)
        loss = F.cross_entropy(logits, target, ignore_index=ignore_index)
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
        model.eval()
        with no_grad():
            pred = model(x, adj).data.argmax(axis=1)
        val = float((pred[graph.val_mask] == graph.labels[graph.val_mask]).mean())
        val_accs.append(val)
        if val > best[0]:
            best = (val, step, {k: v.copy() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    model.eval()
    with no_grad():
        pred = model(x, adj).data.argmax(axis=1)
    test = float((pred[graph.test_mask] == graph.labels[graph.test_mask]).mean())
    return {"train_loss": losses, "val_acc": val_accs, "best_step": best[1], "test_acc": test}
