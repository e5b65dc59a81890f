"""A stochastic-block-model graph for node classification (lesson 15): a stand-in for Cora, built on the fly.

`sbm_graph` draws `n_classes` blocks of `n_per_class` nodes. Each pair of nodes is joined (undirected, no
self-loops) with probability `p_in` when both lie in the same class and `p_out` otherwise, so a node's
neighbours mostly share its class (homophily, as in citation graphs). Node features are a noisy class signal:

    x_i = signal · μ_{y_i} + ε_i,     μ_c ~ N(0, I_F),   ε_i ~ N(0, I_F)

With a small `signal` one node's features say little about its class (an MLP that sees only x_i does
poorly), while the average over its neighbourhood says a lot (a graph network does well): the comparison
of lesson 15 is meaningful only in that regime.

The split is semi-supervised, as Cora's: `labels_per_class` labelled nodes per class for training, the same
number again for validation, and every other node for testing. Everything comes from `seed`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Graph(NamedTuple):
    adj: np.ndarray  # (N, N) bool, symmetric, False on the diagonal: True where i and j are joined
    features: np.ndarray  # (N, F) float32
    labels: np.ndarray  # (N,) int64 in [0, n_classes)
    train_mask: np.ndarray  # (N,) bool: labelled nodes used for training
    val_mask: np.ndarray  # (N,) bool
    test_mask: np.ndarray  # (N,) bool: every node in neither of the other two
    n_classes: int

    @property
    def n_nodes(self) -> int:
        return self.adj.shape[0]

    def edge_homophily(self) -> float:
        """The fraction of edges that join two nodes of the same class."""
        i, j = np.nonzero(np.triu(self.adj, 1))
        return float((self.labels[i] == self.labels[j]).mean()) if len(i) else float("nan")


def sbm_graph(n_per_class: int = 100, n_classes: int = 4, p_in: float = 0.05, p_out: float = 0.005,
              n_features: int = 16, signal: float = 0.5, labels_per_class: int = 20, seed: int = 0,
              dtype=np.float32) -> Graph:
    """A stochastic-block-model graph with noisy class features and a semi-supervised split (see module doc)."""
    if n_classes < 2 or n_per_class < 1:
        raise ValueError(f"sbm_graph needs n_classes >= 2 and n_per_class >= 1; got n_classes={n_classes}, "
                         f"n_per_class={n_per_class}")
    if not (0 <= p_out <= 1 and 0 <= p_in <= 1):
        raise ValueError(f"sbm_graph: p_in and p_out are probabilities; got p_in={p_in}, p_out={p_out}")
    if not 1 <= 2 * labels_per_class < n_per_class:
        raise ValueError(f"sbm_graph: 2 * labels_per_class ({2 * labels_per_class}) must be < n_per_class "
                         f"({n_per_class}) so that some nodes of each class are left to test")
    rng = np.random.default_rng(seed)
    n = n_per_class * n_classes
    labels = np.repeat(np.arange(n_classes), n_per_class)
    same = labels[:, None] == labels[None, :]
    upper = np.triu(rng.random((n, n)) < np.where(same, p_in, p_out), 1)
    adj = upper | upper.T
    means = rng.standard_normal((n_classes, n_features))
    features = (signal * means[labels] + rng.standard_normal((n, n_features))).astype(dtype)
    train_mask, val_mask = np.zeros(n, bool), np.zeros(n, bool)
    for c in range(n_classes):
        members = rng.permutation(np.flatnonzero(labels == c))
        train_mask[members[:labels_per_class]] = True
        val_mask[members[labels_per_class:2 * labels_per_class]] = True
    return Graph(adj=adj, features=features, labels=labels.astype(np.int64), train_mask=train_mask,
                 val_mask=val_mask, test_mask=~(train_mask | val_mask), n_classes=n_classes)
