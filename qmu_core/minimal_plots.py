"""The figures of the Hessian chapter: curvature maps, the dataset study, loss landscapes.

matplotlib is imported inside each function, so that importing :mod:`qmu_core.minimal`
(e.g. to check the chapter's parameters) does not load it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .minimal_models import MODEL_LABELS, MODELS

#: a jump of theta* larger than this between neighbouring alphas is a switch to another
#: branch of minima, not a continuous move: the line is broken there
BRANCH_JUMP = 1.0


def broken_at_jumps(a: np.ndarray, th: np.ndarray, jump: float = BRANCH_JUMP):
    """(alpha, theta*) with a NaN inserted between neighbours more than ``jump`` apart, so a
    line plot shows a switch of branch as a gap instead of a slope."""
    a, th = np.asarray(a, float), np.asarray(th, float)
    cut = np.flatnonzero(np.abs(np.diff(th)) > jump) + 1
    return np.insert(a, cut, np.nan), np.insert(th, cut, np.nan)


def plot_curvature_maps(maps: dict[str, np.ndarray], s: float, example: dict[str, float] | None = None):
    """2 x 3 panels: H_QNN, Term B's contribution, H_MLP; rows y = 0 and y = 1. The black
    line in each QNN panel is where the quantity shown changes sign (H_QNN = 0 on the left,
    B = 0 in the middle); H_MLP is never negative and gets a one-sided colour scale."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    fig, axes = plt.subplots(2, 3, figsize=(10.5, 6.2), sharex=True, sharey=True, constrained_layout=True)
    X, T = np.meshgrid(maps["x"], maps["theta"])
    titles = {"qnn": r"$H_\mathrm{QNN}$", "termb": r"Term B's part $-s(p-y)\cos(\pi x+\theta)$",
              "mlp": r"$H_\mathrm{MLP}$ (any $y$)"}
    for row, y in enumerate((0, 1)):
        for col, kind in enumerate(("qnn", "termb", "mlp")):
            ax = axes[row, col]
            Z = maps["mlp"] if kind == "mlp" else maps[f"{kind}_y{y}"]
            lim = max(float(np.max(np.abs(Z))), 1e-12)
            if kind == "mlp":  # x^2 p (1 - p) >= 0: a sequential scale from zero
                im = ax.pcolormesh(X, T, Z, vmin=0.0, vmax=lim, cmap="Reds", shading="auto", rasterized=True)
            else:
                norm = TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
                im = ax.pcolormesh(X, T, Z, norm=norm, cmap="RdBu_r", shading="auto", rasterized=True)
            if np.min(Z) < 0 < np.max(Z):
                ax.contour(X, T, Z, levels=[0.0], colors="k", linewidths=1.2)
            fig.colorbar(im, ax=ax, shrink=0.85)
            ax.set_title(f"{titles[kind]}, y = {y}" if kind != "mlp" else titles[kind])
            ax.grid(False)
            if example is not None and y == 0 and kind != "mlp":
                ax.plot(example["x_outlier"], example["theta"], marker="*", ms=13, mec="k", mfc="gold",
                        ls="none", label="confidently wrong (outlier)")
                ax.plot(example["x_clean"], example["theta"], marker="o", ms=7, mec="k", mfc="w",
                        ls="none", label="correctly classified")
        axes[row, 0].set_ylabel(r"$\theta$")
    for ax in axes[-1]:
        ax.set_xlabel("x")
    if example is not None:
        axes[0, 0].legend(loc="lower left", fontsize=8, frameon=True)
    fig.suptitle(f"Per-point curvature, s = {s:g} (black lines: where the quantity shown changes sign)")
    return fig


def plot_dataset_study(rows: list[dict], colors: dict[str, str], theta_max: float | None = None):
    """2 x 3 panels against alpha: theta* (qubit, neuron), clean accuracy; curvature ratio,
    curvature of the noisy loss at the clean optimum, and the qubit's Term A / Term B at theta*."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    scales = sorted({r["sigmoid_scale"] for r in rows})
    styles = ["-", "--", ":", "-."]
    for i, s in enumerate(scales):
        ls = styles[i % len(styles)]
        for model in MODELS:
            rs = sorted((r for r in rows if r["model"] == model and r["sigmoid_scale"] == s), key=lambda r: r["alpha"])
            a = np.array([r["alpha"] for r in rs])
            lab = f"{MODEL_LABELS[model]}, s = {s:g}"
            kw = dict(ls=ls, marker="o", ms=3, color=colors[model], label=lab)
            if model == "mlp" and i > 0:
                # the neuron's loss depends on s theta only: its curves other than theta*
                # coincide for every s, so draw them as open markers on top of the first
                kw.update(ls="none", marker="o", ms=6, mfc="none")
            th = np.array([r["theta_star"] for r in rs])
            ax = axes[0, 0] if model == "qnn" else axes[0, 1]
            if model == "qnn":
                ax.plot(*broken_at_jumps(a, th), **kw)
            else:
                ax.plot(a, th, **{**kw, "ls": ls, "ms": 3, "mfc": colors[model]})
            if model == "mlp":
                bound = np.array([r["theta_at_bound"] for r in rs], dtype=bool)
                if bound.any():
                    ax.plot(a[bound], th[bound], ls="none", marker="x", ms=8, color="k")
            axes[0, 2].plot(a, [r["clean_acc"] for r in rs], **kw)
            axes[1, 0].plot(a, [r["curvature_ratio"] for r in rs], **kw)
            axes[1, 1].plot(a, [r["curvature_at_clean_opt"] / r["clean_curvature"] for r in rs], **kw)
            if model == "qnn":
                axes[1, 2].plot(a, [r["term_a"] for r in rs], ls=ls, color=colors["qnn"], label=f"Term A, s = {s:g}")
                axes[1, 2].plot(a, [-r["term_b"] for r in rs], ls=ls, color="0.35", label=f"$-$Term B, s = {s:g}")
                ac = rs[0]["alpha_c_predicted"]
                if np.isfinite(ac) and ac < 1:
                    axes[1, 1].axvline(ac, color=colors["qnn"], ls=ls, lw=0.9)
    axes[0, 0].axhline(-np.pi / 2, color="0.5", lw=0.8)
    axes[0, 0].set_yticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], [r"$-\pi$", r"$-\pi/2$", "0", r"$\pi/2$", r"$\pi$"])
    axes[0, 0].set_title(r"qubit: $\theta^*(\alpha)$ (grey: $-\pi/2$; gaps: switch of branch)")
    title = r"neuron: $\theta^*(\alpha)$"
    if theta_max is not None:
        title += rf" (x: on the bound $|\theta|={theta_max:g}$)"
    axes[0, 1].set_title(title)
    axes[0, 2].set_title("accuracy on the clean labels at $\\theta^*$")
    axes[1, 0].set_yscale("log")
    axes[1, 0].set_title(r"curvature at $\theta^*(\alpha)$ / curvature at $\theta^*(0)$")
    axes[1, 1].axhline(0, color="k", lw=0.8)
    axes[1, 1].set_title("noisy curvature at the clean optimum / clean value\n(vertical: predicted $\\alpha_c$)")
    axes[1, 2].axhline(0, color="k", lw=0.8)
    axes[1, 2].set_title(r"qubit: mean Term A and $-$Term B at $\theta^*$")
    for ax in axes.flat:
        ax.axvline(0.5, color="0.6", lw=0.8, ls=":")
        ax.set_xlabel(r"flipped fraction $\alpha$")
        ax.legend(fontsize=7)
    return fig


def landscape_alphas(alphas, k: int = 5) -> list[float]:
    """Up to ``k`` alphas from the grid, evenly spread over those <= 0.5 (for the landscape figure)."""
    pool = sorted(a for a in alphas if a <= 0.5) or sorted(alphas)
    idx = np.unique(np.round(np.linspace(0, len(pool) - 1, min(k, len(pool)))).astype(int))
    return [float(pool[i]) for i in idx]


def plot_landscapes(curves: dict[str, Any], s: float):
    """The qubit's mean loss over theta for a few alphas: the clean minimum turns into a maximum."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), constrained_layout=True)
    alphas = sorted(curves["curves"])
    cmap = plt.get_cmap("viridis")
    for i, alpha in enumerate(alphas):
        # a sequential map from dark to light: every curve, alpha = 0 included, stays visible
        ax.plot(curves["theta"], curves["curves"][alpha], color=cmap(0.85 * i / max(1, len(alphas) - 1)),
                label=rf"$\alpha$ = {alpha:g}")
    ax.axvline(-np.pi / 2, color="0.5", lw=0.8)
    ax.set_xticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], [r"$-\pi$", r"$-\pi/2$", "0", r"$\pi/2$", r"$\pi$"])
    ax.set_xlabel(r"$\theta$")
    ax.set_ylabel("mean loss")
    ax.set_title(f"single-qubit model: loss landscape of the noisy data, s = {s:g}")
    ax.legend(fontsize=8)
    return fig
