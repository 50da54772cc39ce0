"""One figure style for the whole book."""

from __future__ import annotations

import matplotlib as mpl

#: Colours used throughout the book (colour-blind safe, Okabe-Ito).
COLORS = {
    "train": "#E69F00",  # orange, solid: training accuracy (as in the paper's Fig. 2)
    "val": "#0072B2",  # blue, dashed: validation accuracy
    "qnn": "#CC79A7",
    "mlp": "#009E73",
    "class0": "#0072B2",
    "class1": "#D55E00",
    "noise": "#999999",
    "retrain": "#000000",
    "finetune": "#E69F00",
    "scrub": "#009E73",
    "ga": "#CC79A7",
}


def use_style() -> None:
    """Apply the book's matplotlib style (called at the top of every chapter)."""
    mpl.rcParams.update(
        {
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "figure.figsize": (6.4, 4.0),
            "font.size": 10,
            "axes.titlesize": 10,
            "axes.labelsize": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "legend.frameon": False,
            "lines.linewidth": 1.8,
            "image.cmap": "RdBu_r",
        }
    )


def draw_circuit(circuit, ax=None, *, title: str | None = None):
    """Draw a ``tc.Circuit`` from its gate list (``to_qir``): one wire per qubit, a box
    per single-qubit gate, a vertical link per two-qubit gate. Wraps ring links."""
    import matplotlib.pyplot as plt

    qir = circuit.to_qir()
    n = circuit._nqubits
    # greedy layering: a gate goes in the first column after the last use of its qubits
    last = [0] * n
    placed = []
    for g in qir:
        idx = list(g["index"])
        span = range(min(idx), max(idx) + 1) if len(idx) > 1 and abs(idx[0] - idx[1]) == 1 else idx
        col = max(last[q] for q in span)
        for q in span:
            last[q] = col + 1
        placed.append((col, g["name"], idx))
    width = max(last)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(0.42 * width + 1.5, 18), 0.42 * n + 0.6))
    for q in range(n):
        ax.plot([-0.7, width - 0.3], [q, q], color="0.3", lw=0.8, zorder=0)
        ax.text(-0.9, q, f"q{q}", ha="right", va="center", fontsize=8)
    colors = {"rx": "#56B4E9", "ry": "#009E73", "rz": "#F0E442", "rzz": "#CC79A7"}
    for col, name, idx in placed:
        c = colors.get(name, "0.8")
        if len(idx) == 1:
            ax.add_patch(plt.Rectangle((col - 0.38, idx[0] - 0.32), 0.76, 0.64, fc=c, ec="0.2", lw=0.6))
            ax.text(col, idx[0], name[1:].upper(), ha="center", va="center", fontsize=6.5)
        else:
            a, b = sorted(idx)
            ax.plot([col, col], [a, b], color=c, lw=2.2 if b - a == 1 else 1.0,
                    ls="-" if b - a == 1 else ":", zorder=1)
            for q in idx:
                ax.plot(col, q, "o", color=c, ms=5, mec="0.2", mew=0.6)
    ax.set_xlim(-1.6, width)
    ax.set_ylim(n - 0.4, -0.6)
    ax.axis("off")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def image_grid(images, labels, titles=None, *, ncols: int = 8, ax_size: float = 0.9):
    """A grid of 28x28 images with their labels as titles."""
    import matplotlib.pyplot as plt
    import numpy as np

    n = len(images)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * ax_size, nrows * (ax_size + 0.2)), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(np.asarray(images[k]).reshape(28, 28), cmap="gray_r")
            ax.set_title(titles[k] if titles is not None else str(labels[k]), fontsize=7)
    return fig


def tsne(x, seed: int, perplexity: float = 30.0):
    """2-D t-SNE embedding (scikit-learn) of real feature vectors, seeded."""
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=int(seed)).fit_transform(x)
