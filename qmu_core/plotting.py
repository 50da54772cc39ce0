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
