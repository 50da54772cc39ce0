"""The unlearning hyperparameter study (SI section VI, known from the released code): SCRUB over
lambda_kl x lambda_fo and gradient ascent over beta, final validation accuracy, 5 runs per cell.

Each (dataset, gauge, model, run) is one task of :mod:`qmu_core.unlearning_study`: one
poisoned model (the unlearning chapter's: same flips, same seed), then every cell from it,
evaluated at the last step only; Retrain and Finetune run in the same task, so the study can
ask whether the MLP-vs-QNN contrast survives tuning each model's own best setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import data
from .paths import ResultsDir
from .resilience import SweepEngine, scale_sentence
from .unlearning import method
from .unlearning_chapter import UnlearningParams
from .unlearning_study import Task, run_tasks, setting
from .validation import ParameterError, check_float, check_sequence, check_str

PAPER_GRID = tuple(round(0.1 * k, 1) for k in range(10))
DEFAULT_BETA, DEFAULT_LAMBDA_FO, DEFAULT_LAMBDA_KL = 0.2, 0.2, 0.0


def _grid(name, value) -> tuple[float, ...]:
    v = check_sequence(name, value, lambda n, x: check_float(n, x, min=0.0))
    if list(v) != sorted(set(v)):
        raise ParameterError(f"parameter '{name}' must be strictly increasing, got {list(v)}")
    return v


@dataclass(frozen=True)
class GridParams(SweepEngine, ResultsDir):
    """Validated parameters of the hyperparameter chapter (their meaning: its parameters cell)."""

    datasets: tuple = ("mnist", "xxz")
    models: tuple = ("mlp", "qnn")
    lambdas: tuple = PAPER_GRID
    betas: tuple = PAPER_GRID
    n_runs: int = 5
    steps: int = 50
    alpha: float = 0.3
    protocol: str = "independent"
    scrub_kl: str = "code"
    epoch_scale: float = 1.0
    mnist_n_val: int = data.MNIST_VAL_AVAILABLE
    xxz_set: str = data.XXZ_DEFAULT_SET
    xxz_gauges: tuple = data.XXZ_GAUGES
    xxz_qnn_encoding: str = "amplitude"
    seed: int = 0
    scheduler: str = ""
    workers: int = 0
    results_dir: str = ""

    def __post_init__(self):
        object.__setattr__(self, "lambdas", _grid("lambdas", self.lambdas))
        object.__setattr__(self, "betas", _grid("betas", self.betas))
        check_str("results_dir", self.results_dir)
        # the fields shared with the unlearning chapter are validated (and normalised) by it
        c = self._chapter()
        for name in ("datasets", "models", "xxz_gauges"):
            object.__setattr__(self, name, getattr(c, name))

    def _chapter(self) -> UnlearningParams:
        """The unlearning chapter's parameters that give the same poisoned models."""
        return UnlearningParams(datasets=self.datasets, models=self.models, n_runs=self.n_runs, steps=self.steps,
                                alpha=self.alpha, protocol=self.protocol, epoch_scale=self.epoch_scale,
                                mnist_n_val=self.mnist_n_val, xxz_set=self.xxz_set, xxz_gauges=self.xxz_gauges,
                                xxz_qnn_encoding=self.xxz_qnn_encoding, seed=self.seed, scrub_kl=self.scrub_kl,
                                scheduler=self.scheduler, workers=self.workers)

    def cells(self, dataset: str, model: str) -> tuple:
        s = setting(dataset, model)
        common = {"epochs": self.steps, "batch_size": s.batch_size, "lr": s.lr}
        out = [("retrain", method("retrain", **common)), ("finetune", method("finetune", **common))]
        out += [(f"gradient_ascent beta={b:g}", method("gradient_ascent", **common, beta=b)) for b in self.betas]
        out += [(f"scrub kl={k:g} fo={f:g}", method("scrub", **common, lambda_kl=k, lambda_fo=f, kl=self.scrub_kl))
                for k in self.lambdas for f in self.lambdas]
        return tuple(out)

    def tasks(self) -> list[Task]:
        out = []
        for gauge, ds, models in self._chapter().variants():
            for model in models:
                s = setting(ds.name, model, self.epoch_scale)
                out += [Task(ds, gauge, model, r, s, self.cells(ds.name, model), self.alpha, self.protocol,
                             self.xxz_qnn_encoding, self.seed, record=False, extras=False)
                        for r in range(self.n_runs)]
        return out

    def run(self, progress: bool = True) -> list[dict]:
        return run_tasks(self.tasks(), progress=progress, desc="unlearning grid", **self.engine)


def frame(records: list[dict]) -> pd.DataFrame:
    """One row per (dataset, gauge, model, method, hyperparameters, run): final accuracies."""
    rows = []
    for rec in records:
        for label, m in rec["methods"].items():
            name, _, hp = label.partition(" ")
            h = dict(kv.split("=") for kv in hp.split()) if hp else {}
            rows.append({"dataset": rec["dataset"], "gauge": rec["gauge"], "model": rec["model"], "method": name,
                         "beta": float(h.get("beta", np.nan)), "lambda_kl": float(h.get("kl", np.nan)),
                         "lambda_fo": float(h.get("fo", np.nan)), "run": rec["run"],
                         **{k: m[k][-1] for k in ("val_acc", "retain_acc", "forget_acc_polluted", "train_acc")},
                         "poisoned_val_acc": rec["poisoned"]["val_acc"]})
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    keys = ["dataset", "gauge", "model", "method", "beta", "lambda_kl", "lambda_fo"]
    g = df.groupby(keys, sort=False, dropna=False)
    cols = ["val_acc", "forget_acc_polluted", "poisoned_val_acc"]
    return g[cols].mean().join(g[["val_acc"]].std(ddof=0).add_suffix("_sd")).reset_index()


def reading(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, gauge, model): Retrain's and Finetune's mean (and sd) final validation accuracy, the
    best SCRUB cell and gradient-ascent beta with their accuracy, the paper's defaults' accuracy
    and rank among the cells, and the best approximate method minus Retrain."""
    rows = []
    for key, s in summary.groupby(["dataset", "gauge", "model"], sort=False):
        row = dict(zip(["dataset", "gauge", "model"], key))
        row["poisoned"] = s["poisoned_val_acc"].iloc[0]
        for ref in ("retrain", "finetune"):
            r = s[s["method"] == ref].iloc[0]
            row[ref], row[f"{ref}_sd"] = r["val_acc"], r["val_acc_sd"]
        sc = s[s["method"] == "scrub"]
        ga = s[s["method"] == "gradient_ascent"]
        if len(sc):
            best = sc.loc[sc["val_acc"].idxmax()]
            row.update(scrub_best=best["val_acc"], scrub_best_kl=best["lambda_kl"], scrub_best_fo=best["lambda_fo"])
            d = sc[np.isclose(sc["lambda_kl"], DEFAULT_LAMBDA_KL) & np.isclose(sc["lambda_fo"], DEFAULT_LAMBDA_FO)]
            if len(d):
                row["scrub_default"] = d["val_acc"].iloc[0]
                row["scrub_default_rank"] = int((sc["val_acc"] > d["val_acc"].iloc[0]).sum()) + 1
            row["scrub_cells"] = len(sc)
            row["scrub_worst"] = sc["val_acc"].min()
        if len(ga):
            best = ga.loc[ga["val_acc"].idxmax()]
            row.update(ga_best=best["val_acc"], ga_best_beta=best["beta"], ga_worst=ga["val_acc"].min())
            d = ga[np.isclose(ga["beta"], DEFAULT_BETA)]
            if len(d):
                row["ga_default"] = d["val_acc"].iloc[0]
                row["ga_default_rank"] = int((ga["val_acc"] > d["val_acc"].iloc[0]).sum()) + 1
            row["ga_cells"] = len(ga)
        approx = [row.get(k, np.nan) for k in ("finetune", "scrub_best", "ga_best")]
        row["best_approx_minus_retrain"] = np.nanmax(approx) - row["retrain"]
        rows.append(row)
    return pd.DataFrame(rows)


def scale_note(P: GridParams) -> str:
    """Whether an execution is at the study's scale (the code's grid, 5 runs, 50 steps)."""
    gaps = []
    if P.n_runs != 5:
        gaps.append(f"{P.n_runs} run(s) per cell instead of 5")
    if tuple(P.lambdas) != PAPER_GRID or tuple(P.betas) != PAPER_GRID:
        gaps.append("a smaller grid than 0, 0.1, …, 0.9")
    if P.steps != 50:
        gaps.append(f"{P.steps} steps instead of 50")
    if P.epoch_scale != 1.0:
        gaps.append(f"{P.epoch_scale:g} × the paper's epochs for the poisoned models")
    return scale_sentence(gaps, "the code's grid, 5 runs per cell, 50 steps", "the study's scale")


def glue_values(table: pd.DataFrame) -> dict[str, str]:
    """The numbers the chapter's prose quotes, keyed ``g_<dataset>_<gauge>_<model>_<what>``."""
    f = lambda v: "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"  # noqa: E731
    out = {}
    for r in table.to_dict("records"):
        k = f"g_{r['dataset']}_{r['gauge']}_{r['model']}"
        for ref in ("retrain", "finetune"):
            out[f"{k}_{ref}"] = f"{f(r[ref])} ± {f(r[f'{ref}_sd'])}"
        if "scrub_best" in r and np.isfinite(r.get("scrub_best", np.nan)):
            out[f"{k}_scrub_default"] = (f"{f(r.get('scrub_default', np.nan))}, "
                                         f"{int(r['scrub_default_rank']) if np.isfinite(r.get('scrub_default_rank', np.nan)) else 'n/a'}"
                                         f" of {int(r['scrub_cells'])}")
            out[f"{k}_scrub_best"] = f"{f(r['scrub_best'])} ({r['scrub_best_kl']:g}, {r['scrub_best_fo']:g})"
            out[f"{k}_scrub_worst"] = f(r["scrub_worst"])
        if "ga_best" in r and np.isfinite(r.get("ga_best", np.nan)):
            out[f"{k}_ga_default"] = (f"{f(r.get('ga_default', np.nan))}, "
                                      f"{int(r['ga_default_rank']) if np.isfinite(r.get('ga_default_rank', np.nan)) else 'n/a'}"
                                      f" of {int(r['ga_cells'])}")
            out[f"{k}_ga_best"] = f"{f(r['ga_best'])} ({r['ga_best_beta']:g})"
        out[f"{k}_tuned_gap"] = f"{r['best_approx_minus_retrain']:+.3f}"
    return out
