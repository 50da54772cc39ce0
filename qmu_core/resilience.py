"""The resilience experiment (Fig. 2c, 2d; SI Fig. S1): sweeps over the corruption ratio.

Builds the sweeps of a chapter from its parameters, runs them, returns tidy tables
(one row per dataset/model/corruption/alpha/run) and reads them: the plateau, the
critical ratio alpha_c and the degradation rate, estimated from the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import data, paths
from .config import ModelSpec, TrainConfig, paper_setting
from .data import Dataset
from .io import atomic_write_text
from .parallel import run_sweeps
from .sweep import SweepSpec
from .validation import (ParameterError, check_alpha, check_choice, check_float, check_int,
                         check_sequence, check_str)

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


def run(ds: Dataset, specs: list[SweepSpec], *, progress: bool = True, scheduler: str | None = None,
        workers: int | None = None) -> pd.DataFrame:
    """Run (or load from the cache) every sweep of ``specs`` on ``ds``; a tidy frame, one row
    per run. :func:`run_many` for one dataset (``scheduler``, ``workers`` as there)."""
    return run_many([(ds, specs)], progress=progress, scheduler=scheduler, workers=workers)


def run_many(sweeps, *, progress: bool = True, scheduler: str | None = None,
             workers: int | None = None) -> pd.DataFrame:
    """Every sweep of ``sweeps`` = [(Dataset, [SweepSpec, ...]), ...] through one pool of
    workers (:func:`qmu_core.parallel.run_sweeps`: cached runs are read, the others computed
    on one worker per core by default, on the Dask cluster at ``scheduler``, or in this
    process with ``workers=1``); one tidy frame, rows in the order of ``sweeps`` and specs.
    The resilience and capacity chapters call it with all their sweeps at once."""
    if not isinstance(sweeps, list) or not all(isinstance(x, tuple) and len(x) == 2 for x in sweeps):
        raise ParameterError(f"parameter 'sweeps' must be a list of (Dataset, [SweepSpec, ...]) pairs, got {sweeps!r:.80}")
    jobs = [(ds, s) for ds, specs in sweeps for s in specs]
    records = run_sweeps(jobs, progress=progress, scheduler=scheduler, workers=workers)
    rows = [{k: rec[k] for k in RESULT_COLUMNS} for recs in records for rec in recs]
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
            ax.set_ylim(0.0, 1.02)
            if i == len(models) - 1:
                ax.set_xlabel(r"noise ratio $\alpha$")
            if j == 0:
                ax.set_ylabel("accuracy")
    axes[0][0].legend(loc="lower left")
    return axes


@dataclass(frozen=True)
class ResilienceParams:
    """Validated parameters of the resilience and capacity chapters."""

    dataset: str = "both"
    n_runs: int = 5
    alphas: tuple = PAPER_ALPHAS
    epoch_scale: float = 1.0
    mnist_mlp: str = "code"
    dtype: str = "complex64"
    seed: int = 0
    xxz_n_per_class: int = 0
    results_dir: str = ""

    def __post_init__(self):
        check_choice("dataset", self.dataset, ("mnist", "xxz", "both"))
        data.xxz_train_grid(self.xxz_n_per_class)  # validates it
        check_int("n_runs", self.n_runs, min=1)
        alphas = check_sequence("alphas", self.alphas, lambda n, v: check_alpha(v, n))
        if list(alphas) != sorted(set(alphas)):
            raise ParameterError(f"parameter 'alphas' must be strictly increasing, got {list(alphas)}")
        object.__setattr__(self, "alphas", alphas)
        check_float("epoch_scale", self.epoch_scale, min=0.0, max=1.0, min_inclusive=False)
        check_choice("mnist_mlp", self.mnist_mlp, ("code", "si"))
        check_choice("dtype", self.dtype, ("complex64", "complex128"))
        check_int("seed", self.seed, min=0)
        check_str("results_dir", self.results_dir)

    @property
    def datasets(self) -> tuple[str, ...]:
        return ("mnist", "xxz") if self.dataset == "both" else (self.dataset,)

    def load(self, name: str) -> Dataset:
        """The dataset ``name`` as this chapter's parameters define it."""
        if name == "xxz":
            return data.xxz_dataset(train_deltas=data.xxz_train_grid(self.xxz_n_per_class))
        return data.load(name)

    @property
    def results_path(self) -> Path:
        return paths.results_path(self.results_dir)


def fmt_mean_std(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2f}"


def fmt_alpha(a: float) -> str:
    return "not reached" if not np.isfinite(a) else f"{a:.2f}"


def reading(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per (dataset, model, corruption): clean accuracy, plateau end, alpha_c, slope.

    Returns a table and a dict of preformatted strings for ``glue`` (keys like
    ``mnist_qnn_label_flip_alpha_c``); every key exists for every combination of the
    paper, 'n/a' where the chapter did not run it, so the page always builds.
    """
    summ = summarise(df, by=("dataset", "model", "corruption", "alpha"))
    rows, glue = [], {}
    for ds in ("mnist", "xxz"):
        for model in ("mlp", "qnn"):
            for c in ("label_flip", "feature_random"):
                key = f"{ds}_{model}_{c}"
                d = summ[(summ.dataset == ds) & (summ.model == model) & (summ.corruption == c)]
                if len(d) == 0:
                    for k in ("clean", "plateau_end", "alpha_c", "slope"):
                        glue[f"{key}_{k}"] = "n/a"
                    for a in (0.0, 0.3, 0.5, 0.7, 0.9):
                        glue[f"{key}_val_{round(a * 10)}"] = "n/a"
                        glue[f"{key}_train_{round(a * 10)}"] = "n/a"
                    continue
                r = read_curve(d.alpha, d.val_acc_mean)
                rows.append({"dataset": ds, "model": model, "corruption": c, **r})
                glue[f"{key}_clean"] = f"{r['clean']:.3f}"
                glue[f"{key}_plateau_end"] = fmt_alpha(r["plateau_end"])
                glue[f"{key}_alpha_c"] = fmt_alpha(r["alpha_c"])
                glue[f"{key}_slope"] = f"{r['slope_0_04']:+.2f}"
                for a in (0.0, 0.3, 0.5, 0.7, 0.9):
                    sel = df[(df.dataset == ds) & (df.model == model) & (df.corruption == c)
                             & np.isclose(df.alpha, a)]
                    glue[f"{key}_val_{round(a * 10)}"] = fmt_mean_std(sel.val_acc) if len(sel) else "n/a"
                    glue[f"{key}_train_{round(a * 10)}"] = fmt_mean_std(sel.train_acc) if len(sel) else "n/a"
    return pd.DataFrame(rows), glue


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Tidy CSV, written atomically, numbers rounded to what the runs resolve."""
    return atomic_write_text(path, df.round(6).to_csv(index=False))


@dataclass(frozen=True)
class CapacityParams:
    """Validated parameters of the capacity chapter (SI Fig. S1: XXZ, label flipping)."""

    mlp_sizes: tuple = ((64, 16), (32, 8), (16, 4), (8, 2), (8, 4))
    qnn_depths: tuple = (4, 5, 6, 7)
    n_runs: int = 5
    alphas: tuple = PAPER_ALPHAS
    epoch_scale: float = 1.0
    seed: int = 0
    results_dir: str = ""

    def __post_init__(self):
        sizes = check_sequence(
            "mlp_sizes", self.mlp_sizes,
            lambda n, v: check_sequence(n, v, lambda m, h: check_int(m, h, min=1)), min_len=0)
        object.__setattr__(self, "mlp_sizes", sizes)
        object.__setattr__(self, "qnn_depths", check_sequence(
            "qnn_depths", self.qnn_depths, lambda n, v: check_int(n, v, min=1, max=20), min_len=0))
        if not sizes and not self.qnn_depths:
            raise ParameterError("parameters 'mlp_sizes' and 'qnn_depths' are both empty: nothing to run")
        common = ResilienceParams(dataset="xxz", n_runs=self.n_runs, alphas=self.alphas,
                                  epoch_scale=self.epoch_scale, seed=self.seed, results_dir=self.results_dir)
        object.__setattr__(self, "alphas", common.alphas)

    @property
    def results_path(self) -> Path:
        return paths.results_path(self.results_dir)

    def models(self):
        """(ModelSpec, TrainConfig) of every model of the study, with the XXZ hyperparameters."""
        mlp_spec, mlp_cfg = paper_setting("xxz", "mlp")
        qnn_spec, qnn_cfg = paper_setting("xxz", "qnn")
        out = [(ModelSpec("mlp", hidden=tuple(h)), mlp_cfg) for h in self.mlp_sizes]
        out += [(ModelSpec("qnn", depth=d), qnn_cfg) for d in self.qnn_depths]
        return out

    def specs(self) -> list[SweepSpec]:
        """The sweeps of the study: every model of :meth:`models` under label flipping."""
        return resilience_specs("xxz", alphas=self.alphas, n_runs=self.n_runs, epoch_scale=self.epoch_scale,
                                seed=self.seed, corruptions=("label_flip",), models=self.models())


def capacity_reading(summary: pd.DataFrame, models, *, n_inputs: int, n_qubits: int
                     ) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per model of the capacity study (SI Fig. S1): size, angles reaching the output,
    and :func:`read_curve` of its validation accuracy; plus preformatted strings for
    ``glue`` ('n/a' where the execution did not cover them, so the page always builds).

    ``models``: :meth:`CapacityParams.models`; ``n_inputs``/``n_qubits``: the MLP's input
    size and the QNN's register for the dataset.
    """
    from .mlp import MLP
    from .qnn import QNN

    rows = []
    for spec, _ in models:
        d = summary[summary.model_label == spec.label]
        if spec.kind == "mlp":
            size = live = MLP(n_inputs, spec.hidden).n_params
        else:
            qnn = QNN(n_qubits, spec.depth)
            size, live = qnn.n_params, qnn.n_live_params
        rows.append({"model": spec.label, "parameters": size, "reaching the output": live,
                     **read_curve(d.alpha, d.val_acc_mean)})
    table = pd.DataFrame(rows)

    def family(kind: str, col: str):
        return table[table.model.str.startswith(kind)][col]

    def at_alpha(a: float, col: str, kind: str) -> pd.Series:
        d = summary[np.isclose(summary.alpha, a) & summary.model_label.str.startswith(kind)]
        return d.set_index("model_label")[col]

    glue = {}
    for kind in ("MLP", "QNN"):
        k = kind.lower()
        glue[f"cap_{k}_slopes"] = ", ".join(f"{v:+.2f}" for v in family(kind, "slope_0_04")) or "n/a"
        glue[f"cap_{k}_alpha_c"] = ", ".join(fmt_alpha(a) for a in family(kind, "alpha_c")) or "n/a"
        v4 = at_alpha(0.4, "val_acc_mean", kind)
        glue[f"cap_{k}_val_4"] = ", ".join(f"{m} {v:.2f}" for m, v in v4.items()) or "n/a"
    tr3 = at_alpha(0.3, "train_acc_mean", "MLP")
    glue["cap_mlp_train_3"] = f"{tr3.min():.2f} to {tr3.max():.2f}" if len(tr3) else "n/a"
    return table, glue


def plot_capacity(summary: pd.DataFrame, what: str = "val"):
    """SI Fig. S1 layout: one panel per model family, one curve per size/depth."""
    import matplotlib.pyplot as plt

    fams = [f for f in ("MLP", "QNN") if summary.model_label.str.startswith(f).any()]
    fig, axes = plt.subplots(1, len(fams), figsize=(4.2 * len(fams), 3.2), sharey=True, squeeze=False)
    for ax, fam in zip(axes[0], fams):
        labels = [m for m in dict.fromkeys(summary.model_label) if m.startswith(fam)]
        cmap = plt.get_cmap("viridis")
        for k, m in enumerate(labels):
            d = summary[summary.model_label == m]
            mu, sd = d[f"{what}_acc_mean"].to_numpy(), d[f"{what}_acc_std"].fillna(0).to_numpy()
            col = cmap(k / max(1, len(labels) - 1) * 0.85)
            ax.plot(d.alpha, mu, "-o", ms=3, color=col, label=m)
            ax.fill_between(d.alpha, mu - sd, mu + sd, color=col, alpha=0.15, lw=0)
        ax.set_title(f"{fam}: {'validation' if what == 'val' else 'training'} accuracy")
        ax.set_xlabel(r"noise ratio $\alpha$")
        ax.set_ylim(0.0, 1.02)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("accuracy")
    return axes


def scale_note(n_runs: int, alphas, epoch_scale: float) -> str:
    """One sentence saying whether an execution is at the paper's scale, and if not, how not."""
    gaps = []
    if n_runs != 5:
        gaps.append(f"{n_runs} run(s) per point instead of 5")
    if tuple(alphas) != PAPER_ALPHAS:
        gaps.append(f"α ∈ {{{', '.join(f'{a:g}' for a in alphas)}}} instead of 0, 0.1, …, 0.9")
    if epoch_scale != 1.0:
        gaps.append(f"{epoch_scale:g} × the paper's epochs")
    if not gaps:
        return "This page was executed at the paper's scale (5 runs per point, α = 0, 0.1, …, 0.9, the paper's epochs)."
    return "This page was NOT executed at the paper's scale: " + "; ".join(gaps) + "."
