"""The resilience experiment (Fig. 2c, 2d; SI Fig. S1): sweeps over the corruption ratio.

Builds the sweeps of a chapter from its parameters, runs them, returns tidy tables
(one row per dataset/model/corruption/alpha/run) and reads them: the plateau, the
critical ratio alpha_c and the degradation rate, estimated from the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import TrainConfig, paper_setting
from .data import Dataset
from .sweep import SweepSpec, run_sweep
from .validation import check_choice, check_float, check_sequence

PAPER_ALPHAS = tuple(round(0.1 * k, 1) for k in range(10))
RESULT_COLUMNS = ["dataset", "model", "model_label", "corruption", "alpha", "run",
                  "train_acc", "val_acc", "train_loss", "val_loss", "n_corrupted", "seconds"]


def final_only(cfg: TrainConfig) -> TrainConfig:
    """The sweep only needs the final metrics: evaluate the full sets once, at the end."""
    return TrainConfig(cfg.epochs, cfg.batch_size, cfg.lr, eval_every=cfg.epochs)


def resilience_specs(
    dataset: str,
    *,
    alphas=PAPER_ALPHAS,
    n_runs: int = 5,
    epoch_scale: float = 1.0,
    seed: int = 0,
    corruptions=("label_flip", "feature_random"),
    models=None,
    mnist_mlp: str = "code",
    dtype: str = "complex64",
) -> list[SweepSpec]:
    """One :class:`SweepSpec` per (model, corruption) of a resilience figure.

    ``models`` is a list of (ModelSpec, TrainConfig); by default the paper's MLP and QNN
    of ``dataset`` (:func:`qmu_core.config.paper_setting`).
    """
    check_choice("dataset", dataset, ("mnist", "xxz"))
    check_float("epoch_scale", epoch_scale, min=0.0, min_inclusive=False)
    corruptions = check_sequence("corruptions", corruptions,
                                 lambda n, v: check_choice(n, v, ("label_flip", "feature_random")))
    if models is None:
        models = [paper_setting(dataset, m, mnist_mlp) for m in ("mlp", "qnn")]
    specs = []
    for spec, cfg in models:
        cfg = final_only(cfg.scaled(epoch_scale) if epoch_scale != 1.0 else cfg)
        for c in corruptions:
            specs.append(SweepSpec(spec, c, tuple(alphas), n_runs, cfg, seed=seed, dtype=dtype))
    return specs


def run(ds: Dataset, specs: list[SweepSpec], *, progress: bool = True) -> pd.DataFrame:
    """Run (or load from the cache) every sweep; a tidy frame, one row per run."""
    rows = []
    for s in specs:
        for rec in run_sweep(ds, s, progress=progress):
            rows.append({k: rec[k] for k in RESULT_COLUMNS})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def summarise(df: pd.DataFrame, by=("dataset", "model_label", "corruption", "alpha")) -> pd.DataFrame:
    """Mean and standard deviation over runs of the final accuracies."""
    g = df.groupby(list(by), sort=False)[["train_acc", "val_acc"]]
    out = g.agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    return out.reset_index()


def crossing(alphas: np.ndarray, values: np.ndarray, level: float) -> float:
    """First alpha where ``values`` falls below ``level``, by linear interpolation (nan if never)."""
    alphas, values = np.asarray(alphas, float), np.asarray(values, float)
    below = np.flatnonzero(values < level)
    if len(below) == 0:
        return float("nan")
    i = below[0]
    if i == 0:
        return float(alphas[0])
    a0, a1, v0, v1 = alphas[i - 1], alphas[i], values[i - 1], values[i]
    return float(a0 + (v0 - level) * (a1 - a0) / (v0 - v1))


def read_curve(alphas, val_mean, *, drop: float = 0.05) -> dict[str, float]:
    """Plateau end, critical ratio and initial slope of one validation-accuracy curve.

    * ``plateau_end``: the first alpha where accuracy falls ``drop`` below its clean value;
    * ``alpha_c``: where it crosses halfway between its clean value and chance (0.5);
    * ``slope_0_04``: least-squares slope of accuracy vs alpha over alpha in [0, 0.4].
    """
    alphas, v = np.asarray(alphas, float), np.asarray(val_mean, float)
    m = alphas <= 0.4 + 1e-9
    slope = float(np.polyfit(alphas[m], v[m], 1)[0]) if m.sum() >= 2 else float("nan")
    return {
        "clean": float(v[0]),
        "plateau_end": crossing(alphas, v, v[0] - drop),
        "alpha_c": crossing(alphas, v, 0.5 * (v[0] + 0.5)),
        "slope_0_04": slope,
    }


def plot(summary: pd.DataFrame, dataset: str, *, models=None, axes=None):
    """Fig. 2 layout: rows = models, columns = corruptions; train (solid) and val (dashed)."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS

    sub = summary[summary.dataset == dataset]
    models = models or list(dict.fromkeys(sub.model_label))
    corrs = list(dict.fromkeys(sub.corruption))
    if axes is None:
        fig, axes = plt.subplots(len(models), len(corrs), figsize=(3.3 * len(corrs), 2.6 * len(models)),
                                 sharex=True, sharey=True, squeeze=False)
    for i, m in enumerate(models):
        for j, c in enumerate(corrs):
            ax = axes[i][j]
            d = sub[(sub.model_label == m) & (sub.corruption == c)]
            for what, style in (("train", "-"), ("val", "--")):
                mu, sd = d[f"{what}_acc_mean"].to_numpy(), d[f"{what}_acc_std"].fillna(0).to_numpy()
                ax.plot(d.alpha, mu, style, color=COLORS[what], label="training" if what == "train" else "validation")
                ax.fill_between(d.alpha, mu - sd, mu + sd, color=COLORS[what], alpha=0.2, lw=0)
            ax.set_title(f"{m}, {c.replace('_', ' ')}")
            ax.set_ylim(0.3, 1.02)
            if i == len(models) - 1:
                ax.set_xlabel(r"noise ratio $\alpha$")
            if j == 0:
                ax.set_ylabel("accuracy")
    axes[0][0].legend(loc="lower left")
    return axes
