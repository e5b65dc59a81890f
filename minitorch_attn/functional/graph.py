"""Graph attention and graph convolution as functions (lesson 15): `gat_attention` (Exercise 15.1), the
symmetric normalisation `gcn_norm` (Exercise 15.2), the adjacency checks and the two nonlinearities of GAT.
The layers and models (GATLayer, GAT, GCNLayer, GCN, NodeMLP) are in nn/graph.py, whose docstring has the
formulas; training one on a graph: training/graph.py.
"""

from __future__ import annotations

import numpy as np

from ..autograd.ops import matmul, maximum, where
from ..autograd.tensor import Tensor
from .common import softmax
from .linear_attention import elu_plus_one


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
    weights = softmax(where(mask, e, np.array(-np.inf, e.dtype)), axis=-1)
    empty = ~adj.any(axis=-1, keepdims=True)  # (N, 1): nodes with no neighbour at all
    if empty.any():
        weights = where(np.broadcast_to(empty, weights.shape), np.zeros((), weights.dtype), weights)
    return weights
    ### END SOLUTION


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
