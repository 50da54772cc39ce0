"""The landscape chapter's figures (Fig. 3c, 3d and the spectra), in the book's style."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .landscape_study import LABELS
from .plotting import COLORS

SETTING_TITLES = {"paper": "paper's setting", "released_code": "released notebook's setting"}
MINIMUM_STYLE = {"clean": dict(ls="-"), "poisoned": dict(ls="--")}


def plot_lrr(summary: pd.DataFrame):
    """Fig. 3d: LRR (mean ± sd over runs) against alpha, per setting; dashed: LRR = 1."""
    settings = list(dict.fromkeys(summary.setting))
    fig, axes = plt.subplots(1, len(settings), figsize=(5.2 * len(settings), 3.6), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        s = summary[(summary.setting == setting) & (summary.alpha > 0)]
        for k, (model, d) in enumerate(s.groupby("model", sort=False)):
            x = d.alpha + (k - 0.5) * 0.012
            ax.errorbar(x, d.lrr, yerr=d.lrr_sd, fmt="o-", capsize=3, color=COLORS[model],
                        label=LABELS[(setting, model)])
            if (d.n_dead > 0).any():
                ax.errorbar(x, d.lrr_alive, yerr=d.lrr_alive_sd, fmt="x:", capsize=2, color=COLORS[model], alpha=0.7,
                            label=f"{LABELS[(setting, model)]}, dead runs left out")
        ax.axhline(1.0, color="0.3", ls="--", lw=1)
        ax.set_yscale("log")
        ax.set_xticks(sorted(set(s.alpha)))
        ax.set_xlabel("fraction of flipped labels α")
        ax.set_ylabel("LRR = Tr H(α) / Tr H(0)")
        ax.set_title(SETTING_TITLES[setting])
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _density(nodes, weights, grid, width):
    nodes, weights = np.asarray(nodes), np.asarray(weights)
    return (weights[None, :] * np.exp(-0.5 * ((grid[:, None] - nodes[None, :]) / width) ** 2)).sum(1) / (
        width * np.sqrt(2 * np.pi))


def plot_spectra(records: list[dict], setting: str, alpha: float, run: int = 0):
    """Hessian spectra of the clean (alpha = 0) and poisoned (``alpha``) model of run ``run``:
    exact eigenvalues sorted by value (the QNN), or the SLQ density estimate (the MLP, whose
    12,633 x 12,633 Hessian is not diagonalised), on a symmetric-log axis."""
    pick = {(r["model"], r["alpha"]): r for r in records if r["setting"] == setting and r["run"] == run}
    models = [m for m in ("mlp", "qnn") if (m, 0.0) in pick and (m, alpha) in pick]
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        for name, a in (("clean", 0.0), ("poisoned", alpha)):
            r = pick[(model, a)]
            e, w = np.asarray(r["eigs"]), np.asarray(r["eig_weights"])
            lab = f"{name} (α = {a:g}), Tr H = {r['trace']:.3g}"
            if r["exact_spectrum"]:
                ax.plot(np.sort(e), np.linspace(0, 1, len(e)), drawstyle="steps-post", color=COLORS[model],
                        label=lab, **MINIMUM_STYLE[name])
            else:
                ax.plot(np.sort(e), np.cumsum(w[np.argsort(e)]), drawstyle="steps-post", color=COLORS[model],
                        label=lab, **MINIMUM_STYLE[name])
        ax.axvline(0, color="0.5", lw=0.8)
        ax.set_xscale("symlog", linthresh=1e-3)
        ax.set_xlabel("Hessian eigenvalue")
        ax.set_ylabel("fraction of eigenvalues ≤ λ" + ("" if pick[(model, 0.0)]["exact_spectrum"] else " (SLQ)"))
        ax.set_title(LABELS[(setting, model)])
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def plot_trace_split(summary: pd.DataFrame, setting: str = "paper"):
    """Mean trace per alpha split into the contributions of the clean and the flipped samples
    among the Hessian's 100 (stacked; a negative part is drawn below zero)."""
    s = summary[summary.setting == setting]
    models = list(dict.fromkeys(s.model))
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 3.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        d = s[s.model == model]
        x = np.arange(len(d))
        clean, flipped = d.trace - d.trace_flipped, d.trace_flipped
        ax.bar(x, clean, color=COLORS[model], label="clean samples")
        ax.bar(x, flipped, bottom=np.where(flipped >= 0, clean, 0), color=COLORS["class1"], alpha=0.7,
               label="flipped samples")
        ax.plot(x, d.trace, "k_", ms=28, mew=2, label="net trace")
        ax.margins(y=0.08)
        ax.set_xticks(x, [f"{a:g}" for a in d.alpha])
        ax.set_xlabel("α")
        ax.set_ylabel("mean Tr H")
        ax.set_title(LABELS[(setting, model)])
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_slices(sl: dict):
    """Fig. 3c from data: 1-D slices (top, one log axis for both models) and 2-D slices
    (bottom, one logarithmic colour scale for all four) of the training loss around the clean
    and the poisoned minima."""
    models = list(sl)
    fig = plt.figure(figsize=(5.4 * len(models), 7.0), layout="constrained")
    gs = fig.add_gridspec(2, 2 * len(models), height_ratios=[1.1, 1])
    ax1 = [fig.add_subplot(gs[0, 2 * i:2 * i + 2]) for i in range(len(models))]
    for ax in ax1[1:]:
        ax.sharey(ax1[0])
    from matplotlib.colors import LogNorm

    vals = [np.asarray(sl[m][k]["slice_2d"]) for m in models for k in ("clean", "poisoned")]
    vmin, vmax = max(min(v.min() for v in vals), 1e-6), max(v.max() for v in vals)
    levels = np.geomspace(vmin, vmax * 1.0001, 17)
    for i, model in enumerate(models):
        rec = sl[model]
        for name in ("clean", "poisoned"):
            ax1[i].plot(rec["t_1d"], rec[name]["slice_1d"], color=COLORS[model], label=name, **MINIMUM_STYLE[name])
        ax1[i].set_yscale("log")
        ax1[i].set_title(LABELS[("paper", model)])
        ax1[i].set_xlabel("step along a filter-normalised direction")
        ax1[i].set_ylabel("training loss")
        ax1[i].legend(fontsize=8)
        for j, name in enumerate(("clean", "poisoned")):
            ax = fig.add_subplot(gs[1, 2 * i + j])
            t = rec["t_2d"]
            cs = ax.contourf(t, t, np.clip(rec[name]["slice_2d"], vmin, None), levels=levels, cmap="viridis",
                             norm=LogNorm(vmin, vmax))
            ax.plot(0, 0, "w+")
            ax.set_title(f"{model.upper()}, {name}", fontsize=9)
            ax.set_aspect("equal")
            ax.grid(False)
    cb = fig.colorbar(cs, ax=fig.axes[len(models):], shrink=0.9, label="training loss", ticks=levels[::4])
    cb.ax.set_yticklabels([f"{v:.2g}" for v in levels[::4]])
    return fig


def plot_path(sl: dict):
    """Losses along the straight line from the poisoned model (t = 0) to the model after
    unlearning (Finetune, t = 1)."""
    models = list(sl)
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 3.4), squeeze=False, sharey=True)
    names = {"train_polluted": "training set, polluted labels", "train_clean": "training set, clean labels",
             "retain": "retain set", "val": "validation set"}
    styles = {"train_polluted": "--", "train_clean": "-", "retain": ":", "val": "-."}
    for ax, model in zip(axes[0], models):
        p = sl[model]["path"]
        for k, lab in names.items():
            ax.plot(p["t"], p[k], ls=styles[k], color=COLORS[model] if k != "val" else COLORS["val"], label=lab)
        for t in (0, 1):
            ax.axvline(t, color="0.6", lw=0.8)
        ax.set_xlabel("t (0: poisoned, 1: after unlearning)")
        ax.set_ylabel("mean BCE")
        ax.set_title(f"{LABELS[('paper', model)]}: |Δθ| = {p['distance']:.3g}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
