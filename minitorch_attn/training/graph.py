"""Training a node classifier of lesson 15 (nn.GAT, nn.GCN, nn.NodeMLP) on one graph."""

from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import optim
from ..autograd import no_grad
from ..autograd.tensor import Tensor
from ..nn.module import Module


def train_node_classifier(model: Module, graph, steps: int = 200, lr: float = 0.01, weight_decay: float = 5e-4,
                          ignore_index: int = -100) -> dict:
    """Full-batch training on the labelled nodes of `graph` (a data.graphs.Graph) with Adam and cross-entropy;
    the weights from the step with the best validation accuracy are kept (ties: the earliest).

    Returns {"train_loss": list per step, "val_acc": list per step, "best_step": int, "test_acc": float}.
    """
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
