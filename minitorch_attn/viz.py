"""Plots the lessons share: heatmaps (attention and alignment), curves, decision boundaries.

Every function draws on the `ax` it is given (or a new one) and returns it, so lessons can lay out
several panels and the tour can save figures headless.
"""

from __future__ import annotations

import numpy as np


def _axes(ax=None, figsize=(5, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def heatmap(matrix, xlabels=None, ylabels=None, title: str = "", ax=None, cmap: str = "viridis",
            colorbar: bool = True, xlabel: str = "", ylabel: str = "", annotate: bool = False):
    """A matrix as an image with optional tick labels (e.g. attention weights: queries × keys)."""
    m = np.asarray(getattr(matrix, "data", matrix))
    if m.ndim != 2:
        raise ValueError(f"heatmap needs a 2-D matrix; got shape {m.shape}")
    ax = _axes(ax)
    im = ax.imshow(m, cmap=cmap, aspect="auto")
    from matplotlib.ticker import MaxNLocator

    if xlabels is not None:
        ax.set_xticks(range(len(xlabels)), [str(s) for s in xlabels])
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ylabels is not None:
        ax.set_yticks(range(len(ylabels)), [str(s) for s in ylabels])
    else:
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if annotate:
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="w" if v < m.max() / 2 else "k")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if colorbar:
        ax.figure.colorbar(im, ax=ax)
    return ax


def curves(series: dict, title: str = "", xlabel: str = "step", ylabel: str = "", ax=None, logy: bool = False):
    """Several named 1-D series on one axis (loss curves, accuracies)."""
    ax = _axes(ax)
    for name, ys in series.items():
        ax.plot(np.asarray(ys), label=name)
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if len(series) > 1:
        ax.legend()
    return ax


def decision_boundary(predict, X, y, title: str = "", ax=None, resolution: int = 200):
    """Colour the plane by `predict(points) -> class ids`, with the data points on top."""
    ax = _axes(ax)
    X = np.asarray(X)
    pad = 0.2
    (x0, y0), (x1, y1) = X.min(0) - pad, X.max(0) + pad
    gx, gy = np.meshgrid(np.linspace(x0, x1, resolution), np.linspace(y0, y1, resolution))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(X.dtype)
    z = np.asarray(predict(grid)).reshape(gx.shape)
    ax.contourf(gx, gy, z, alpha=0.3, cmap="coolwarm")
    ax.scatter(X[:, 0], X[:, 1], c=y, s=8, cmap="coolwarm", edgecolors="k", linewidths=0.2)
    ax.set(title=title, xticks=[], yticks=[])
    return ax
