"""The noise chapter's figures, in the book's style (:mod:`qmu_core.plotting`)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .noise_study import Setting
from .plotting import COLORS
from .resilience import CORRUPTION_NAMES

KIND_TITLES = {"depolarizing": "depolarising noise", "amplitude_damping": "amplitude damping",
               "readout": "readout error", "shots": "finite shots"}


def _shades(n: int):
    """Darker for stronger noise (fewer shots count as stronger)."""
    return [plt.get_cmap("Purples")(0.45 + 0.5 * i / max(n - 1, 1)) for i in range(n)]


def _curve(ax, d: pd.DataFrame, what: str, **style):
    g = d.groupby("alpha")[f"{what}_acc"]
    m, lo, hi = g.mean(), g.min(), g.max()
    # clipped: when every run agrees, the mean can sit a rounding error outside [min, max]
    yerr = np.clip([m.values - lo.values, hi.values - m.values], 0.0, None)
    ax.errorbar(m.index, m.values, yerr=yerr, capsize=2, elinewidth=0.8, **style)


def plot_resilience(df: pd.DataFrame, dataset: str, mlp: pd.DataFrame | None = None, what: str = "val"):
    """One panel per (corruption, noise kind): the QNN's mean accuracy (bars: lowest to highest
    run) under each level, the noiseless curve in black, the MLP of the resilience chapter in
    green where given."""
    d = df[df.dataset == dataset]
    kinds = [k for k in KIND_TITLES if (d.noise == k).any()]
    corrs = list(dict.fromkeys(d.corruption))
    if not kinds or not corrs:
        return None
    fig, axes = plt.subplots(len(corrs), len(kinds), figsize=(3.2 * len(kinds), 2.8 * len(corrs)), squeeze=False,
                             sharex=True, sharey=True)
    for i, c in enumerate(corrs):
        for j, k in enumerate(kinds):
            ax = axes[i, j]
            if mlp is not None:
                m = mlp[mlp.corruption == c]
                if len(m):
                    _curve(ax, m, what, color=COLORS["mlp"], ls=":", lw=1.2, label="MLP (noiseless)")
            base = d[(d.corruption == c) & (d.noise == "noiseless")]
            if len(base):
                _curve(ax, base, what, color="black", lw=1.4, label="QNN noiseless")
            levels = sorted(d[(d.noise == k)].level.unique(), reverse=(k == "shots"))
            for lv, col in zip(levels, _shades(len(levels))):
                _curve(ax, d[(d.corruption == c) & (d.noise == k) & (d.level == lv)], what, color=col, marker="o",
                       ms=3, lw=1.2, label=Setting.of(k, lv).label)
            ax.axhline(0.5, color=COLORS["noise"], lw=0.8, ls="--")
            ax.set_ylim(0.0, 1.05)
            if i == 0:
                ax.set_title(KIND_TITLES[k])
            if i == len(corrs) - 1:
                ax.set_xlabel("corruption ratio α")
            if j == 0:
                ax.set_ylabel(f"{CORRUPTION_NAMES[c]}\n{'validation' if what == 'val' else 'training'} accuracy")
            if i == 0:
                ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def plot_depth(curves: pd.DataFrame, train: pd.DataFrame, traces: pd.DataFrame):
    """The depth study in one figure: (a) the label-flip validation curve per depth, (b) the
    gradient variance at the start against depth, (c) the Hessian trace of trained models."""
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(12, 3.4))
    curves = curves[curves.corruption == "label_flip"]
    depths = sorted(curves.depth.unique()) if len(curves) else []
    cols = plt.get_cmap("viridis")(np.linspace(0.0, 0.9, max(len(depths), 1)))
    for dep, col in zip(depths, cols):
        _curve(a, curves[curves.depth == dep], "val", color=col, marker="o", ms=3, lw=1.2, label=f"D = {dep}")
    a.axhline(0.5, color=COLORS["noise"], lw=0.8, ls="--")
    a.set(xlabel="label-flip ratio α", ylabel="validation accuracy", title="(a) resilience", ylim=(0.0, 1.05))
    a.legend(fontsize=7, loc="lower left")
    if len(train):
        t = train.sort_values("depth")
        b.semilogy(t.depth, t.grad_var_uniform, "o-", color=COLORS["qnn"], label="angles uniform in [0, 2π)")
        b.semilogy(t.depth, t.grad_var_init, "s--", color=COLORS["val"], label="paper's start N(0, 0.01²)")
        b.legend(fontsize=7)
    b.set(xlabel="depth D", ylabel="Var ∂L/∂θ (mean over angles)", title="(b) gradient variance at the start")
    if len(traces):
        for (alpha, grp), marker in zip(traces.groupby("alpha"), "os^v"):
            m = grp.groupby("depth").trace.agg(["mean", "min", "max"])
            c.errorbar(m.index, m["mean"], yerr=np.clip([m["mean"] - m["min"], m["max"] - m["mean"]], 0.0, None),
                       marker=marker,
                       capsize=2, label=f"trained, α = {alpha:g}")
        c.legend(fontsize=7)
    c.set(xlabel="depth D", ylabel="Hessian trace", title="(c) curvature after training")
    fig.tight_layout()
    return fig
