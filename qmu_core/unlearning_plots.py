"""Figures of the two unlearning chapters (Fig. 3a, 3b; SI Figs. S2, S3; SI section VI), in the
book's style: one panel per (dataset variant, model), the paper's layout (MLP left, QNN right)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .plotting import COLORS
from .unlearning import METHOD_LABELS
from .unlearning_grid import DEFAULT_BETA, DEFAULT_LAMBDA_FO, DEFAULT_LAMBDA_KL

METHOD_COLORS = {"retrain": COLORS["retrain"], "finetune": COLORS["finetune"], "gradient_ascent": COLORS["ga"],
                 "scrub": COLORS["scrub"], "scrub_original": "#56B4E9", "finetune_warmup": "#D55E00"}
LABELS = {**METHOD_LABELS, "finetune_warmup": "Finetune, lr warm-up", "poisoned": "poisoned", "oracle": "oracle"}
MODEL_NAMES = {"mlp": "MLP", "qnn": "QNN"}


def _panels(df: pd.DataFrame):
    """(dataset, gauge) rows and model columns present in ``df``, and a figure with their axes."""
    rows = list(dict.fromkeys(zip(df["dataset"], df["gauge"])))
    cols = [m for m in ("mlp", "qnn") if m in set(df["model"])]
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(3.6 * len(cols), 2.6 * len(rows)), squeeze=False,
                             sharex=True)
    return rows, cols, fig, axes


def _each_panel(df: pd.DataFrame, rows, cols, axes, ready=lambda d: not d.empty):
    """(i, j, ax, rows of ``df`` for the panel) for each panel, titled; panels whose rows are
    not ``ready`` are hidden and skipped."""
    for i, (ds, g) in enumerate(rows):
        for j, model in enumerate(cols):
            ax, d = axes[i][j], df[(df.dataset == ds) & (df.gauge == g) & (df.model == model)]
            if not ready(d):
                ax.set_visible(False)
                continue
            ax.set_title(_title(ds, g, model), fontsize=9)
            yield i, j, ax, d


def _title(dataset, gauge, model) -> str:
    v = "MNIST" if dataset == "mnist" else f"XXZ, {gauge.replace('_', ' ')} gauge"
    return f"{v}: {MODEL_NAMES[model]}"


def _legend(fig, axes) -> None:
    handles = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=min(len(handles), 4), fontsize=8,
               bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.07 if len(handles) > 4 else 0.04, 1, 1))


def plot_curves(summary: pd.DataFrame, refs: pd.DataFrame, metric: str = "val_acc", *, methods=None,
                x: str = "step", ylabel: str = "validation accuracy", steps: int | None = None,
                published: pd.DataFrame | None = None):
    """Mean (line) +- sd (band) over runs of ``metric`` against ``x`` (the step, or the cumulative
    ``sample_grads``) for each method; the oracle's value (``refs``) as a dotted line; with
    ``published`` (:func:`qmu_core.published.fig3`, ``x="step"`` only), the published mean
    curve of each method (Fig. 3a/3b, steps 0..49) as a thin dashed line of the same colour."""
    if steps is not None:
        summary = summary[summary.step <= steps]
    rows, cols, fig, axes = _panels(summary)
    methods = methods or [m for m in METHOD_COLORS if m in set(summary["method"]) and m != "finetune_warmup"]
    for i, j, ax, d in _each_panel(summary, rows, cols, axes):
        for m in methods:
            s = d[d.method == m]
            mu, sd = s[metric].to_numpy(), s[f"{metric}_sd"].fillna(0).to_numpy()
            ax.plot(s[x], mu, color=METHOD_COLORS[m], lw=1.4, label=LABELS[m])
            ax.fill_between(s[x], mu - sd, mu + sd, color=METHOD_COLORS[m], alpha=0.15, lw=0)
            if published is not None and x == "step" and metric in published:
                p = published[(published.dataset == d.dataset.iloc[0]) & (published.model == d.model.iloc[0])
                              & (published.method == m)]
                if len(p):
                    pm = p.groupby("step")[metric].mean()
                    pm = pm[pm.index <= s[x].max()]  # no further than our own curve
                    ax.plot(pm.index, pm.to_numpy(), color=METHOD_COLORS[m], lw=0.9, ls="--")
                    if m == methods[0]:
                        ax.plot([], [], color="0.3", lw=0.9, ls="--", label="published mean (Fig. 3)")
        r = refs[(refs.dataset == d.dataset.iloc[0]) & (refs.gauge == d.gauge.iloc[0]) & (refs.model == d.model.iloc[0])
                 & (refs.method == "oracle")]
        if len(r) and metric in r:
            ax.axhline(r[metric].iloc[0], color="0.3", ls=":", lw=1.2, label="oracle (retain set only)")
        ax.set_ylim(-0.02, 1.02)
        if j == 0:
            ax.set_ylabel(ylabel)
        if i == len(rows) - 1:
            ax.set_xlabel("unlearning step (epoch)" if x == "step" else "cumulative sample-gradients")
    _legend(fig, axes)
    return fig


def plot_disagreement(summary: pd.DataFrame, *, methods=None):
    """Fraction of predictions that differ from the oracle's, on the validation set (solid) and
    on the forget set (dashed), mean over runs."""
    rows, cols, fig, axes = _panels(summary)
    methods = methods or [m for m in METHOD_COLORS if m in set(summary["method"]) and m != "finetune_warmup"]
    for i, j, ax, d in _each_panel(summary, rows, cols, axes, lambda d: not d.empty and "disagree_val" in d):
        for m in methods:
            s = d[d.method == m]
            ax.plot(s.step, s.disagree_val, color=METHOD_COLORS[m], lw=1.4, label=LABELS[m])
            ax.plot(s.step, s.disagree_forget, color=METHOD_COLORS[m], lw=1.0, ls="--")
        ax.set_ylim(-0.02, 1.02)
        if j == 0:
            ax.set_ylabel("disagreement with oracle")
        if i == len(rows) - 1:
            ax.set_xlabel("unlearning step (epoch)")
    _legend(fig, axes)
    return fig


def plot_mia(final: pd.DataFrame, *, methods=None):
    """Membership-inference AUC on the forget set at the last step (bars: loss-based attack;
    dots: entropy-based), mean +- sd over runs, with the poisoned model and the oracle."""
    rows, cols, fig, axes = _panels(final)
    order = ["poisoned", *(methods or [m for m in METHOD_COLORS if m in set(final["method"])]), "oracle"]
    for _, j, ax, d in _each_panel(final, rows, cols, axes):
        st = d.groupby("method")[["mia_loss_auc", "mia_entropy_auc"]].agg(["mean", "std"])
        present = [m for m in order if m in st.index]
        xs = np.arange(len(present))
        colors = [METHOD_COLORS.get(m, "0.6" if m == "poisoned" else "0.3") for m in present]
        ax.bar(xs, st.loc[present, ("mia_loss_auc", "mean")], yerr=st.loc[present, ("mia_loss_auc", "std")].fillna(0),
               color=colors, alpha=0.8, capsize=2)
        ax.plot(xs, st.loc[present, ("mia_entropy_auc", "mean")], "o", color="k", ms=3)
        ax.axhline(0.5, color="0.5", lw=0.8, ls=":")
        ax.set_xticks(xs, [LABELS[m] for m in present], rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1.05)
        if j == 0:
            ax.set_ylabel("attack AUC (forget vs unseen)")
    fig.tight_layout()
    return fig


def plot_scrub_grid(gsum: pd.DataFrame):
    """SCRUB's mean final validation accuracy over lambda_kl x lambda_fo, one map per model; the
    paper's default (0, 0.2) boxed, the best cell starred."""
    sc = gsum[gsum.method == "scrub"]
    rows, cols, fig, axes = _panels(sc)
    for _, _, ax, d in _each_panel(sc, rows, cols, axes):
        t = d.pivot_table(index="lambda_kl", columns="lambda_fo", values="val_acc")
        im = ax.imshow(t.to_numpy(), origin="lower", cmap="viridis", vmin=max(0.0, np.nanmin(t.to_numpy()) - 0.01),
                       vmax=min(1.0, np.nanmax(t.to_numpy()) + 0.01), aspect="auto")
        ax.set_xticks(range(len(t.columns)), [f"{v:g}" for v in t.columns], fontsize=7)
        ax.set_yticks(range(len(t.index)), [f"{v:g}" for v in t.index], fontsize=7)
        kl, fo = list(t.index), list(t.columns)
        if DEFAULT_LAMBDA_KL in kl and DEFAULT_LAMBDA_FO in fo:
            ax.add_patch(plt.Rectangle((fo.index(DEFAULT_LAMBDA_FO) - 0.5, kl.index(DEFAULT_LAMBDA_KL) - 0.5), 1, 1,
                                       fill=False, ec="w", lw=1.5))
        bi = np.unravel_index(np.nanargmax(t.to_numpy()), t.shape)
        ax.plot(bi[1], bi[0], "*", color="r", ms=8)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
        ax.grid(False)
        ax.set_xlabel(r"$\lambda_{fo}$")
        ax.set_ylabel(r"$\lambda_{kl}$")
    fig.tight_layout()
    return fig


def plot_ga_grid(gsum: pd.DataFrame):
    """Gradient ascent's mean final validation accuracy (+- sd) against beta, one panel per model,
    with Retrain's and Finetune's as horizontal lines."""
    ga = gsum[gsum.method == "gradient_ascent"]
    rows, cols, fig, axes = _panels(ga)
    for _, j, ax, d in _each_panel(ga, rows, cols, axes):
        d = d.sort_values("beta")
        mu, sd = d.val_acc.to_numpy(), d.val_acc_sd.fillna(0).to_numpy()
        ax.plot(d.beta, mu, "o-", color=METHOD_COLORS["gradient_ascent"], ms=3, label=LABELS["gradient_ascent"])
        ax.fill_between(d.beta, mu - sd, mu + sd, color=METHOD_COLORS["gradient_ascent"], alpha=0.15, lw=0)
        for ref in ("retrain", "finetune"):
            r = gsum[(gsum.dataset == d.dataset.iloc[0]) & (gsum.gauge == d.gauge.iloc[0]) & (gsum.model == d.model.iloc[0])
                     & (gsum.method == ref)]
            if len(r):
                ax.axhline(r.val_acc.iloc[0], color=METHOD_COLORS[ref], ls="--", lw=1.2, label=LABELS[ref])
        ax.axvline(DEFAULT_BETA, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel(r"$\beta$")
        if j == 0:
            ax.set_ylabel("final validation accuracy")
    _legend(fig, axes)
    return fig
