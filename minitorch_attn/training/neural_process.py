"""Training a neural process of lesson 15 (nn.ConditionalNP) on fresh Gaussian-process curves."""

from __future__ import annotations

import numpy as np

from .. import optim
from ..data.gp_curves import gp_curves
from ..functional.neural_process import gaussian_nll
from ..nn.neural_process import ConditionalNP


def train_neural_process(model: ConditionalNP, steps: int = 500, batch_size: int = 16, lr: float = 1e-3,
                         n_points: int = 40, context_range: tuple[int, int] = (3, 20), seed: int = 0,
                         **gp_kwargs) -> list[float]:
    """Adam on the Gaussian NLL of all target points of fresh GP batches (data.gp_curves); the number of
    context points of each batch is drawn from [context_range[0], context_range[1]]. Returns the losses."""
    rng = np.random.default_rng(seed)
    opt = optim.Adam(model.parameters(), lr=lr)
    model.train()
    losses = []
    for _ in range(steps):
        nc = int(rng.integers(context_range[0], context_range[1] + 1))
        batch = gp_curves(batch_size, n_points, nc, seed=int(rng.integers(2**31)), **gp_kwargs)
        opt.zero_grad()
        mu, sigma = model(batch.x_context, batch.y_context, batch.x_target)
        loss = gaussian_nll(mu, sigma, batch.y_target)
        loss.backward()
        opt.step()
        losses.append(float(loss.data))
    model.eval()
    return losses
