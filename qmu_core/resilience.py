"""The resilience experiment (Fig. 2c, 2d): sweeps over the corruption ratio alpha.

Builds the sweeps of a chapter from its parameters, runs them and returns a tidy table
(one row per dataset/gauge/model/corruption/alpha/run). Reading the curves is
:mod:`qmu_core.reading`, the comparison with the authors' numbers
:mod:`qmu_core.published`, SI Fig. S1 :mod:`qmu_core.capacity`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from . import data
from .config import TrainConfig, paper_setting
from .data import Dataset
from .io import atomic_write_text
from .paths import ResultsDir
from .parallel import check_scheduler, check_workers, run_sweeps
from .sweep import SweepSpec
from .validation import (ParameterError, check_alpha, check_choice, check_float, check_int,
                         check_sequence, check_str)

PAPER_ALPHAS = tuple(round(0.1 * k, 1) for k in range(10))
RESULT_COLUMNS = ["dataset", "gauge", "model", "model_label", "corruption", "alpha", "run",
                  "train_acc", "val_acc", "train_loss", "val_loss", "n_corrupted", "seconds"]
CORRUPTION_NAMES = {"label_flip": "label flipping", "feature_random": "feature randomisation"}
#: the ``gauge`` column of a dataset without a phase freedom (MNIST)
NO_GAUGE = "none"

#: a sweep job: the dataset it runs on and its spec
Job = tuple[Dataset, SweepSpec]


def final_only(cfg: TrainConfig) -> TrainConfig:
    """The sweep only needs the final metrics: evaluate the full sets once, at the end."""
    return replace(cfg, eval_every=cfg.epochs)


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


def gauge_of(ds: Dataset) -> str:
    """The ``gauge`` column of ``ds``'s rows: 'fixed'/'random_phase' for XXZ, 'none' else."""
    return ds.meta.get("gauge", NO_GAUGE)


def run(jobs: list[Job], *, progress: bool = True, scheduler: str | None = None,
        workers: int | None = None) -> pd.DataFrame:
    """Every sweep of ``jobs`` = [(Dataset, SweepSpec), ...] through one pool of workers
    (:func:`qmu_core.parallel.run_sweeps`: cached runs are read, the others computed on one
    worker per core by default, on the Dask cluster at ``scheduler``, or in this process
    with ``workers=1``); one tidy frame, one row per run, in the order of ``jobs``."""
    if not isinstance(jobs, list) or not all(isinstance(j, tuple) and len(j) == 2 for j in jobs):
        raise ParameterError(f"parameter 'jobs' must be a list of (Dataset, SweepSpec) pairs, got {jobs!r:.80}")
    records = run_sweeps(jobs, progress=progress, scheduler=scheduler, workers=workers)
    rows = [{**{k: rec[k] for k in RESULT_COLUMNS if k != "gauge"}, "gauge": gauge_of(ds)}
            for (ds, _), recs in zip(jobs, records) for rec in recs]
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def curve_key(df: pd.DataFrame) -> pd.Series:
    """A short name per curve: 'MLP [64,16]', 'MLP [64,16], random phase', 'QNN D=4'.

    The gauge is named only where the frame holds the same model under two gauges."""
    label = df.model_label.astype(str)
    two = df.groupby(["dataset", "model_label"]).gauge.transform("nunique") > 1
    return label.where(~two, label + ", " + df.gauge.str.replace("_", " "))


def summarise(df: pd.DataFrame, by=("dataset", "gauge", "model", "model_label", "corruption", "alpha")
              ) -> pd.DataFrame:
    """Mean and standard deviation over runs of the final accuracies."""
    by = [b for b in by if b in df.columns]
    g = df.groupby(by, sort=False)[["train_acc", "val_acc"]]
    out = g.agg(["mean", "std"])
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    return out.reset_index()


def plot(summary: pd.DataFrame, dataset: str, *, published: pd.DataFrame | None = None, axes=None):
    """Fig. 2 layout: rows = curves (model, and gauge where there are two), columns =
    corruptions; training accuracy solid, validation dashed, bands = ± 1 sd over runs.
    ``published`` (a :func:`summarise` of the authors' runs) is overlaid as grey error bars
    on the panels of the same dataset, model and corruption."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS, PUBLISHED_STYLE

    sub = summary[summary.dataset == dataset].copy()
    sub["curve"] = curve_key(sub)
    # the paper's order: MLP rows (one per gauge) above the QNN
    curves = sorted(dict.fromkeys(sub.curve), key=lambda c: (not c.startswith("MLP"), list(sub.curve).index(c)))
    corrs = list(dict.fromkeys(sub.corruption))
    if axes is None:
        _, axes = plt.subplots(len(curves), len(corrs), figsize=(3.4 * len(corrs), 2.5 * len(curves)),
                               sharex=True, sharey=True, squeeze=False)
    for i, m in enumerate(curves):
        for j, c in enumerate(corrs):
            ax = axes[i][j]
            d = sub[(sub.curve == m) & (sub.corruption == c)]
            for what, style in (("train", "-"), ("val", "--")):
                mu, sd = d[f"{what}_acc_mean"].to_numpy(), d[f"{what}_acc_std"].fillna(0).to_numpy()
                ax.plot(d.alpha, mu, style, color=COLORS[what], label="training" if what == "train" else "validation")
                ax.fill_between(d.alpha, mu - sd, mu + sd, color=COLORS[what], alpha=0.2, lw=0)
            if published is not None and len(d):
                p = published[(published.dataset == dataset) & (published.model == d.model.iloc[0])
                              & (published.corruption == c)]
                for what, marker in (("train", "s"), ("val", "o")):
                    ax.errorbar(p.alpha, p[f"{what}_acc_mean"], yerr=p[f"{what}_acc_std"].fillna(0),
                                marker=marker, label=f"published {'training' if what == 'train' else 'validation'}",
                                **PUBLISHED_STYLE)
            ax.set_title(f"{m}, {CORRUPTION_NAMES.get(c, c)}", fontsize=9)
            ax.set_ylim(0.0, 1.04)
            if i == len(curves) - 1:
                ax.set_xlabel(r"noise ratio $\alpha$")
            if j == 0:
                ax.set_ylabel("accuracy")
    handles, labels = axes[0][0].get_legend_handles_labels()
    axes[0][0].figure.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8,
                             bbox_to_anchor=(0.5, -0.01))
    return axes


@dataclass(frozen=True)
class XXZData:
    """Which XXZ data a chapter uses: the set (:func:`qmu_core.data.xxz_grids`) and the
    gauges; every model runs under the first gauge, the MLPs under each of them (the QNN's
    output does not depend on the gauge, the MLP's input does)."""

    xxz_set: str = data.XXZ_DEFAULT_SET
    xxz_gauges: tuple = data.XXZ_GAUGES

    def __post_init__(self):
        check_choice("xxz_set", self.xxz_set, data.XXZ_SETS)
        gauges = check_sequence("xxz_gauges", self.xxz_gauges,
                                lambda n, v: check_choice(n, v, data.XXZ_GAUGES))
        if len(set(gauges)) != len(gauges):
            raise ParameterError(f"parameter 'xxz_gauges' lists a gauge twice: {list(gauges)}")
        object.__setattr__(self, "xxz_gauges", gauges)

    def datasets(self) -> dict[str, Dataset]:
        return {g: data.xxz(self.xxz_set, g) for g in self.xxz_gauges}

    def jobs(self, specs: list[SweepSpec]) -> list[Job]:
        """The QNN sweeps on the first gauge's data, the MLP sweeps on every gauge's."""
        sets = self.datasets()
        first = self.xxz_gauges[0]
        return [(ds, s) for g, ds in sets.items() for s in specs if s.model.kind == "mlp" or g == first]


def check_engine(params) -> None:
    """Validate a chapter's ``scheduler`` and ``workers`` (:mod:`qmu_core.parallel`)."""
    object.__setattr__(params, "scheduler", check_scheduler(params.scheduler))
    object.__setattr__(params, "workers", check_workers(params.workers))
    if params.scheduler and params.workers:
        raise ParameterError(f"parameters 'scheduler' ({params.scheduler!r}) and 'workers' ({params.workers}) "
                             "exclude each other: a cluster has its own workers; leave 'workers' at 0")


class SweepEngine:
    """For the parameter classes of chapters that train through :func:`run`: their
    ``scheduler`` and ``workers`` as :func:`run`'s keywords."""

    scheduler: str
    workers: int

    @property
    def engine(self) -> dict:
        return {"scheduler": self.scheduler or None, "workers": self.workers}


def check_alphas(alphas) -> tuple[float, ...]:
    alphas = check_sequence("alphas", alphas, lambda n, v: check_alpha(v, n))
    if list(alphas) != sorted(set(alphas)):
        raise ParameterError(f"parameter 'alphas' must be strictly increasing, got {list(alphas)}")
    return alphas


@dataclass(frozen=True)
class ResilienceParams(SweepEngine, ResultsDir):
    """Validated parameters of the resilience chapter (their meaning: the notebook's
    parameters cell)."""

    dataset: str = "both"
    n_runs: int = 5
    alphas: tuple = PAPER_ALPHAS
    epoch_scale: float = 1.0
    mnist_mlp: str = "code"
    mnist_n_val: int = data.MNIST_VAL_AVAILABLE
    xxz_set: str = data.XXZ_DEFAULT_SET
    xxz_gauges: tuple = data.XXZ_GAUGES
    dtype: str = "complex64"
    xxz_qnn_trial_runs: int = 20
    seed: int = 0
    scheduler: str = ""
    workers: int = 0
    results_dir: str = ""

    def __post_init__(self):
        check_choice("dataset", self.dataset, ("mnist", "xxz", "both"))
        check_int("n_runs", self.n_runs, min=1)
        object.__setattr__(self, "alphas", check_alphas(self.alphas))
        check_float("epoch_scale", self.epoch_scale, min=0.0, max=1.0, min_inclusive=False)
        check_choice("mnist_mlp", self.mnist_mlp, ("code", "si"))
        check_int("mnist_n_val", self.mnist_n_val, min=1, max=data.MNIST_VAL_AVAILABLE)
        object.__setattr__(self, "xxz_gauges", self.xxz.xxz_gauges)
        check_choice("dtype", self.dtype, ("complex64", "complex128"))
        check_int("xxz_qnn_trial_runs", self.xxz_qnn_trial_runs, min=0)
        check_int("seed", self.seed, min=0)
        check_engine(self)
        check_str("results_dir", self.results_dir)

    @property
    def xxz(self) -> XXZData:
        return XXZData(self.xxz_set, self.xxz_gauges)

    @property
    def datasets(self) -> tuple[str, ...]:
        return ("mnist", "xxz") if self.dataset == "both" else (self.dataset,)

    def specs(self, name: str) -> list[SweepSpec]:
        return resilience_specs(name, alphas=self.alphas, n_runs=self.n_runs, epoch_scale=self.epoch_scale,
                                seed=self.seed, mnist_mlp=self.mnist_mlp, dtype=self.dtype)

    def mnist(self) -> Dataset:
        return data.mnist_1v9(n_val=self.mnist_n_val)

    def jobs(self) -> list[Job]:
        """Every sweep of the chapter with the dataset it runs on."""
        out: list[Job] = []
        if "mnist" in self.datasets:
            ds = self.mnist()
            out += [(ds, s) for s in self.specs("mnist")]
        if "xxz" in self.datasets:
            out += self.xxz.jobs(self.specs("xxz"))
        return out



def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """Tidy CSV, written atomically, numbers rounded to what the runs resolve."""
    return atomic_write_text(path, df.round(6).to_csv(index=False))


def scale_sentence(gaps: list[str], full: str, scale: str = "the paper's scale") -> str:
    """The chapters' scale note: executed at ``scale`` (``full`` says what that is), or not,
    with the ``gaps`` that make the difference."""
    if not gaps:
        return f"This page was executed at {scale} ({full})."
    return f"This page was NOT executed at {scale}: " + "; ".join(gaps) + "."


def scale_note(n_runs: int, alphas, epoch_scale: float) -> str:
    """One sentence saying whether an execution is at the paper's scale, and if not, how not."""
    gaps = []
    if n_runs != 5:
        gaps.append(f"{n_runs} run(s) per point instead of 5")
    if tuple(alphas) != PAPER_ALPHAS:
        gaps.append(f"α ∈ {{{', '.join(f'{a:g}' for a in alphas)}}} instead of 0, 0.1, …, 0.9")
    if epoch_scale != 1.0:
        gaps.append(f"{epoch_scale:g} × the paper's epochs")
    return scale_sentence(gaps, "5 runs per point, α = 0, 0.1, …, 0.9, the paper's epochs")


def neighbour_overlap(ds: Dataset) -> float:
    """Smallest |<psi_i|psi_i+1>| between consecutive training states of one phase: how
    alike neighbouring samples of a grid are (the resilience chapter's XXZ discussion)."""
    x = ds.x_train[np.argsort(ds.meta["train_deltas"])]
    y = ds.y_train[np.argsort(ds.meta["train_deltas"])]
    return float(min(data.neighbour_overlaps(x[y == c]).min() for c in (0, 1)))
