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


def flash_tiles(n_q: int, n_k: int, Br: int, Bc: int, causal: bool = False, title: str = "", ax=None):
    """The (query tile × key tile) grid of a flash-attention forward (lesson 10): which tiles it computes in
    full, which straddle the causal diagonal (computed, partly masked) and which it skips. Returns the ax."""
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    n_qt, n_kt = -(-n_q // Br), -(-n_k // Bc)
    state = np.zeros((n_qt, n_kt), int)  # 0 skipped, 1 partly masked, 2 full
    for t in range(n_qt):
        i0, i1 = t * Br, min(n_q, (t + 1) * Br) - 1  # first and last query of the tile
        for s in range(n_kt):
            j0, j1 = s * Bc, min(n_k, (s + 1) * Bc) - 1
            state[t, s] = 2 if not causal or j1 <= i0 else (1 if j0 <= i1 else 0)
    ax = _axes(ax, figsize=(4, 4))
    colors = ["#eeeeee", "#f4a261", "#2a9d8f"]
    k_edges = np.minimum(np.arange(n_kt + 1) * Bc, n_k)  # the last tile may be shorter
    q_edges = np.minimum(np.arange(n_qt + 1) * Br, n_q)
    ax.pcolormesh(k_edges, q_edges, state, cmap=ListedColormap(colors), vmin=0, vmax=2, edgecolors="white",
                  linewidth=1)
    ax.set_xlim(0, n_k)
    ax.set_ylim(n_q, 0)  # queries downwards, as in a matrix
    if causal:
        ax.plot([0, min(n_q, n_k)], [0, min(n_q, n_k)], color="k", lw=1, ls="--")
    labels = ["skipped", "on the diagonal (masked inside)", "computed in full"]
    ax.legend(handles=[Patch(color=colors[i], label=labels[i]) for i in range(3) if (state == i).any()],
              loc="upper right", fontsize=7, framealpha=0.9)
    done = int((state > 0).sum())
    ax.set(title=title or f"{done} of {state.size} tiles computed", xlabel=f"keys (tiles of Bc = {Bc})",
           ylabel=f"queries (tiles of Br = {Br})")
    return ax


def needle_heatmap(acc, lengths, depths, title: str = "", ax=None, annotate: bool = True, colorbar: bool = True,
                   trained_max: int | None = None, cmap: str = "viridis"):
    """A needle-in-a-haystack grid (`minitorch_attn.evaluation.needle.needle_grid`): rows are sequence lengths (shortest
    on top), columns needle depths (0 = the start of the sequence, 1 = just before the query); colour is
    accuracy on a fixed 0-1 scale, NaN cells (lengths beyond the model's context) grey. With `trained_max`, a
    dashed line separates the lengths <= trained_max (seen in training) from the longer ones. Returns the ax."""
    import matplotlib.pyplot as plt

    a = np.asarray(acc, dtype=np.float64)
    lengths, depths = list(lengths), list(depths)
    if a.shape != (len(lengths), len(depths)):
        raise ValueError(f"needle_heatmap: acc must have shape (len(lengths), len(depths)) = "
                         f"({len(lengths)}, {len(depths)}); got {a.shape}")
    ax = _axes(ax, figsize=(6, 4))
    cm = plt.get_cmap(cmap).with_extremes(bad="#cccccc")
    im = ax.imshow(np.ma.masked_invalid(a), cmap=cm, vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(depths)), [f"{d:g}" for d in depths])
    ax.set_yticks(range(len(lengths)), [str(L) for L in lengths])
    if annotate:
        for (i, j), v in np.ndenumerate(a):
            ax.text(j, i, "n/a" if np.isnan(v) else f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="k" if np.isnan(v) or v > 0.6 else "w")
    if trained_max is not None:
        inside = sum(L <= trained_max for L in lengths)
        if 0 < inside < len(lengths) and lengths == sorted(lengths):
            ax.axhline(inside - 0.5, color="w", lw=1.5, ls="--")
    ax.set(title=title, xlabel="needle depth (0 = first position, 1 = just before the query)",
           ylabel="sequence length")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label="accuracy")
    return ax
