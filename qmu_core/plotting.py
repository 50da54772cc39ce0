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


#: the authors' published numbers on our figures: quiet, thin, grey, behind our curves
PUBLISHED_STYLE = dict(color="0.45", ls="none", ms=3, mfc="white", mew=0.8, elinewidth=0.8, capsize=1.5,
                       alpha=0.9, zorder=1)


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
    """Draw a ``tc.Circuit`` from its gate list (``to_qir``): one wire per qubit, a labelled
    box per single-qubit gate (RX, RY, RZ), a labelled vertical link per two-qubit gate
    (RZZ); a link that closes a ring is dotted. The models chapter's Fig. 4 analogue."""
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
        _, ax = plt.subplots(figsize=(min(0.5 * width + 1.5, 18), 0.45 * n + 0.7))
    for q in range(n):
        ax.plot([-0.7, width - 0.3], [q, q], color="0.3", lw=0.8, zorder=0)
        ax.text(-0.9, q, f"q{q}", ha="right", va="center", fontsize=8)
    colors = {"rx": "#56B4E9", "ry": "#009E73", "rz": "#F0E442", "rzz": "#CC79A7"}
    for col, name, idx in placed:
        c = colors.get(name, "0.8")
        if len(idx) == 1:
            ax.add_patch(plt.Rectangle((col - 0.42, idx[0] - 0.32), 0.84, 0.64, fc=c, ec="0.2", lw=0.6))
            ax.text(col, idx[0], name.upper(), ha="center", va="center", fontsize=5.5)
        else:
            a, b = sorted(idx)
            ring = b - a != 1
            ax.plot([col, col], [a, b], color=c, lw=1.0 if ring else 2.2, ls=":" if ring else "-", zorder=1)
            for q in idx:
                ax.plot(col, q, "o", color=c, ms=5, mec="0.2", mew=0.6)
            ax.text(col + 0.12, (a + b) / 2 if not ring else b - 0.5, name.upper(), ha="left", va="center",
                    fontsize=5, rotation=90, color="0.25")
    ax.set_xlim(-1.6, width)
    ax.set_ylim(n - 0.4, -0.6)
    ax.axis("off")
    ax.grid(False)
    if title:
        ax.set_title(title)
    return ax


def draw_mlp(n_inputs: int, hidden, ax=None, *, title: str | None = None, shown: int = 6):
    """Draw an MLP n_inputs -> hidden... -> 1 as columns of neurons (at most ``shown`` per
    layer, the rest elided), every unit of one layer linked to every unit of the next; the
    models chapter's Fig. 4b analogue."""
    import matplotlib.pyplot as plt

    sizes = [n_inputs, *hidden, 1]
    names = ["input"] + [f"hidden {i + 1}\nReLU" for i in range(len(hidden))] + ["output\nsigmoid"]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.7 * len(sizes) + 0.5, 3.2))
    dx = 2.6  # columns far enough apart for their labels
    pos = []
    for k, n in enumerate(sizes):
        m = min(n, shown)
        ys = [(m - 1) / 2 - i for i in range(m)]
        if n > shown:  # a gap for the elided units
            ys = [y + (0.5 if i < m // 2 else -0.5) for i, y in enumerate(ys)]
        pos.append([(k * dx, y) for y in ys])
    for a, b in zip(pos[:-1], pos[1:]):
        for xa, ya in a:
            for xb, yb in b:
                ax.plot([xa, xb], [ya, yb], color="0.75", lw=0.4, zorder=0)
    for k, (n, layer) in enumerate(zip(sizes, pos)):
        for x, y in layer:
            ax.add_patch(plt.Circle((x, y), 0.17, fc=COLORS["mlp"] if 0 < k < len(sizes) - 1 else "white",
                                    ec="0.2", lw=0.8, zorder=2))
        if n > shown:
            ax.text(k * dx, 0, "⋮", ha="center", va="center", fontsize=12)
        ax.text(k * dx, -(shown + 1) / 2 - 0.2, f"{n:,}\n{names[k]}", ha="center", va="top", fontsize=8)
    ax.set_xlim(-1.2, (len(sizes) - 1) * dx + 1.2)
    ax.set_ylim(-(shown + 1) / 2 - 2.0, (shown + 1) / 2 + 0.3)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
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
