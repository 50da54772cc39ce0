"""The unlearning chapter (Fig. 3a, 3b; SI Figs. S2, S3): its parameters, its tasks, its tidy
tables and the numbers its prose quotes.

Tables (:func:`frames`): ``steps``, one row per (dataset, gauge, model, method, run, step) with
the accuracies, oracle disagreements and cumulative cost; ``final``, one row per (dataset,
gauge, model, method, run) at the last step with the membership-inference AUCs, including the
rows ``poisoned`` and ``oracle`` (the references).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import data
from .paths import ResultsDir
from .resilience import NO_GAUGE, SweepEngine, XXZData, check_engine, scale_sentence
from .unlearning import KL_KINDS, METHODS, method
from .unlearning_study import QNN_ENCODINGS, Task, check_protocol, run_tasks, setting
from .validation import (ParameterError, check_alpha, check_choice, check_float, check_int, check_str,
                         check_unique_choices)

DIP = "finetune_warmup"  # the Finetune run with a learning-rate warm-up (the dip's test)
STEP_METRICS = ["train_acc", "val_acc", "val_loss", "retain_acc", "forget_acc_clean", "forget_acc_polluted",
                "disagree_val", "disagree_forget", "sample_grads", "seconds"]


@dataclass(frozen=True)
class UnlearningParams(SweepEngine, ResultsDir):
    """Validated parameters of the unlearning chapter (their meaning: its parameters cell)."""

    datasets: tuple = ("mnist", "xxz")
    models: tuple = ("mlp", "qnn")
    methods: tuple = METHODS
    n_runs: int = 5
    steps: int = 50
    alpha: float = 0.3
    protocol: str = "independent"
    scrub_kl: str = "code"
    beta: float = 0.2
    lambda_kl: float = 0.0
    lambda_fo: float = 0.2
    dip_warmup: int = 10
    ga_trial_runs: int = 5
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
        object.__setattr__(self, "datasets", check_unique_choices("datasets", self.datasets, ("mnist", "xxz")))
        object.__setattr__(self, "models", check_unique_choices("models", self.models, ("mlp", "qnn")))
        object.__setattr__(self, "methods", check_unique_choices("methods", self.methods, METHODS))
        check_int("n_runs", self.n_runs, min=1)
        check_int("steps", self.steps, min=1)
        if not 0 < check_alpha(self.alpha) < 0.5:
            raise ParameterError(f"parameter 'alpha' must lie in (0, 0.5) for unlearning (a forget set, and a "
                                 f"majority of clean labels), got {self.alpha}")
        check_protocol(self.protocol)
        check_choice("scrub_kl", self.scrub_kl, KL_KINDS)
        for n in ("beta", "lambda_kl", "lambda_fo"):
            check_float(n, getattr(self, n), min=0.0)
        check_int("dip_warmup", self.dip_warmup, min=0)
        check_int("ga_trial_runs", self.ga_trial_runs, min=0)
        check_float("epoch_scale", self.epoch_scale, min=0.0, max=1.0, min_inclusive=False)
        check_int("mnist_n_val", self.mnist_n_val, min=10, max=data.MNIST_VAL_AVAILABLE)
        object.__setattr__(self, "xxz_gauges", self.xxz.xxz_gauges)
        check_choice("xxz_qnn_encoding", self.xxz_qnn_encoding, QNN_ENCODINGS)
        check_int("seed", self.seed, min=0)
        check_engine(self)
        check_str("results_dir", self.results_dir)

    @property
    def xxz(self) -> XXZData:
        return XXZData(self.xxz_set, self.xxz_gauges)

    def variants(self) -> list[tuple[str, data.Dataset, tuple[str, ...]]]:
        """(gauge, dataset, models) per dataset variant: MNIST once; XXZ per gauge, the QNN under
        the first gauge only (its output does not depend on the gauge; the resilience chapter's
        convention)."""
        out = []
        if "mnist" in self.datasets:
            out.append((NO_GAUGE, data.mnist_1v9(n_val=self.mnist_n_val), self.models))
        if "xxz" in self.datasets:
            for i, (g, ds) in enumerate(self.xxz.datasets().items()):
                out.append((g, ds, tuple(m for m in self.models if m == "mlp" or i == 0)))
        return out

    def method_configs(self, dataset: str, model: str) -> tuple:
        """(label, configuration) of every method run on ``model``, with the setting's batch size
        and learning rate; plus the Finetune run with a warm-up (``dip_warmup`` updates)."""
        s = setting(dataset, model)
        common = {"epochs": self.steps, "batch_size": s.batch_size, "lr": s.lr}
        extra = {"gradient_ascent": {"beta": self.beta},
                 "scrub": {"lambda_kl": self.lambda_kl, "lambda_fo": self.lambda_fo, "kl": self.scrub_kl}}
        out = [(name, method(name, **common, **extra.get(name, {}))) for name in self.methods]
        if self.dip_warmup:
            out.append((DIP, method("finetune", **common, warmup=self.dip_warmup)))
        return tuple(out)

    def tasks(self) -> list[Task]:
        out = []
        for gauge, ds, models in self.variants():
            for model in models:
                s = setting(ds.name, model, self.epoch_scale)
                out += [Task(ds, gauge, model, r, s, self.method_configs(ds.name, model), self.alpha, self.protocol,
                             self.xxz_qnn_encoding, self.seed) for r in range(self.n_runs)]
        return out

    def run(self, progress: bool = True) -> list[dict]:
        return run_tasks(self.tasks(), progress=progress, **self.engine)


def frames(records: list[dict]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The chapter's two tidy tables (module doc) from its task records."""
    steps, final = [], []
    for rec in records:
        ident = {k: rec[k] for k in ("dataset", "gauge", "model")}
        for label, m in rec["methods"].items():
            n = len(m["val_acc"])
            for s in range(n):
                steps.append({**ident, "method": label, "run": rec["run"], "step": s,
                              **{k: m[k][s] for k in STEP_METRICS if k in m}})
            final.append({**ident, "method": label, "run": rec["run"],
                          **{k: m[k][-1] for k in STEP_METRICS if k in m}, **rec["mia"][label]})
        for ref in ("poisoned", "oracle"):
            final.append({**ident, "method": ref, "run": rec["run"], **rec[ref], **rec["mia"][ref]})
    return pd.DataFrame(steps), pd.DataFrame(final)


def summarise(steps: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over runs per (dataset, gauge, model, method, step)."""
    keys = ["dataset", "gauge", "model", "method", "step"]
    g = steps.groupby(keys, sort=False)
    cols = [c for c in STEP_METRICS if c in steps]
    return g[cols].mean().join(g[cols].std(ddof=0).add_suffix("_sd")).reset_index()


def variant_label(dataset: str, gauge: str) -> str:
    return "MNIST" if dataset == "mnist" else f"XXZ ({gauge.replace('_', ' ')})"


def reading(summary: pd.DataFrame, final: pd.DataFrame, at=(0, 1, 10, 50)) -> pd.DataFrame:
    """Per (dataset, gauge, model, method): the mean validation accuracy at the steps ``at``
    (those that exist), the step of its lowest value in the first ten steps, the final
    forgetting accuracy (polluted labels), the final disagreement with the oracle and the
    membership-inference AUCs (means over runs)."""
    rows = []
    last = int(summary["step"].max())
    for key, s in summary.groupby(["dataset", "gauge", "model", "method"], sort=False):
        s = s.set_index("step")
        row = dict(zip(["dataset", "gauge", "model", "method"], key))
        for a in at:
            if a <= last:
                row[f"val_{a}"] = s.loc[a, "val_acc"]
        early = s.loc[: min(10, last), "val_acc"]
        row["val_min_early"], row["step_min_early"] = early.min(), int(early.idxmin())
        row["val_final_sd"] = s.loc[last, "val_acc_sd"]
        row["forget_polluted_final"] = s.loc[last, "forget_acc_polluted"]
        if "disagree_val" in s:
            row["disagree_val_final"] = s.loc[last, "disagree_val"]
            row["disagree_forget_final"] = s.loc[last, "disagree_forget"]
        row["seconds_total"] = s.loc[last, "seconds"]
        row["sample_grads_total"] = s.loc[last, "sample_grads"]
        rows.append(row)
    out = pd.DataFrame(rows)
    mia = final.groupby(["dataset", "gauge", "model", "method"], sort=False)[["mia_loss_auc", "mia_entropy_auc"]].mean()
    refs = final[final["method"].isin(["poisoned", "oracle"])].groupby(
        ["dataset", "gauge", "model", "method"], sort=False)[["val_acc", "forget_acc_polluted"]].mean()
    out = out.merge(mia.reset_index(), how="left", on=["dataset", "gauge", "model", "method"])
    return out, refs.reset_index().merge(mia.reset_index(), how="left", on=["dataset", "gauge", "model", "method"])


def fmt(x: float, nd: int = 3) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


#: the paper's three approximate methods (Fig. 3)
APPROXIMATE = ("finetune", "gradient_ascent", "scrub")
#: two methods "match" when their mean validation accuracies differ by at most this
MATCH = 0.01
#: a "transient dip": the mean validation accuracy falls at least this far below its step-0
#: value within the first ten steps
DIP_MIN = 0.01


def _at(summary, ds, g, model, method, step, col="val_acc"):
    s = summary[(summary.dataset == ds) & (summary.gauge == g) & (summary.model == model) & (summary.method == method)]
    s = s[s.step == (s.step.max() if step is None else step)]
    return float(s[col].iloc[0]) if len(s) else float("nan")


def contrast(summary: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, gauge, model): Retrain's mean validation accuracy at the last step, the best
    of the paper's approximate methods there (and which), their difference, and the deepest
    early dip (step 0 minus the lowest mean in steps 1-10) among the approximate methods."""
    rows = []
    for (ds, g, model), s in summary.groupby(["dataset", "gauge", "model"], sort=False):
        approx = [m for m in APPROXIMATE if m in set(s.method)]
        if "retrain" not in set(s.method) or not approx:
            continue
        fin = {m: _at(summary, ds, g, model, m, None) for m in approx}
        best = max(fin, key=fin.get)
        dips = {m: _at(summary, ds, g, model, m, 0) - s[(s.method == m) & (s.step.between(1, 10))].val_acc.min()
                for m in approx}
        deepest = max(dips, key=dips.get)
        rows.append({"dataset": ds, "gauge": g, "model": model, "retrain_final": _at(summary, ds, g, model, "retrain", None),
                     "best_approx": best, "best_approx_final": fin[best],
                     "best_minus_retrain": fin[best] - _at(summary, ds, g, model, "retrain", None),
                     "deepest_dip_method": deepest, "deepest_dip": dips[deepest]})
    return pd.DataFrame(rows)


def published_summary(published: pd.DataFrame) -> pd.DataFrame:
    """The published Fig. 3 runs (:func:`qmu_core.published.fig3`) as a :func:`summarise` table
    (mean and sd of the accuracies per step 0..49), so that :func:`contrast` and :func:`claims`
    read them with our code; the XXZ rows carry the gauge ``"published"`` (their file's)."""
    d = published.rename(columns={"forget_acc": "forget_acc_published"}).copy()
    d["gauge"] = np.where(d.dataset == "mnist", NO_GAUGE, "published")
    keys = ["dataset", "gauge", "model", "method", "step"]
    g = d.groupby(keys, sort=False)[["train_acc", "val_acc", "retain_acc"]]
    return g.mean().join(g.std(ddof=0).add_suffix("_sd")).reset_index()


def _claim_tests(c: pd.DataFrame, model: str) -> tuple[list, list]:
    tests, words = [], []
    for r in c[c.model == model].itertuples():
        name = variant_label(r.dataset, r.gauge)
        if model == "mlp":
            tests.append(-r.best_minus_retrain >= MATCH)
            words.append(f"{name}: Retrain {r.retrain_final:.3f}, best approximate ({r.best_approx}) "
                         f"{r.best_approx_final:.3f}")
        else:
            tests.append(r.best_minus_retrain >= -MATCH and r.deepest_dip >= DIP_MIN)
            words.append(f"{name}: Retrain {r.retrain_final:.3f}, best approximate ({r.best_approx}) "
                         f"{r.best_approx_final:.3f}, deepest early dip {r.deepest_dip:.3f} ({r.deepest_dip_method})")
    return tests, words


def claims(summary: pd.DataFrame | None, published: pd.DataFrame | None = None,
           mlp_gauge: str | None = None) -> list[dict]:
    """The two unlearning claims of Fig. 3 tested per curve (the scorecard's format): for the MLP,
    Retrain ends at least :data:`MATCH` above every approximate method; for the QNN, the best
    approximate method ends within :data:`MATCH` of Retrain or above it, after a dip of at least
    :data:`DIP_MIN` in the first ten steps. ``mlp_gauge``: read the XXZ MLP under this gauge only
    (the one the published Fig. 3b matches, :func:`qmu_core.published.fig3_gauge_closer`);
    ``published``: the published runs (:func:`qmu_core.published.fig3`), read by the same test
    at their last recorded step (49)."""
    from .scorecard import MISSING, combine

    texts = {"mlp": ("unlearning_mlp", "Unlearning: for the MLP, Retrain is the clear upper bound and approximate "
                     "methods lag."),
             "qnn": ("unlearning_qnn", "Unlearning: for the QNN, approximate methods match or beat Retrain within 50 "
                     "steps, after a transient dip.")}
    c = contrast(summary) if summary is not None and len(summary) else pd.DataFrame()
    if mlp_gauge is not None and len(c):
        c = c[~((c.dataset == "xxz") & (c.model == "mlp") & (c.gauge != mlp_gauge))]
    pc = contrast(published_summary(published)) if published is not None else pd.DataFrame()
    rows = []
    for model, (key, text) in texts.items():
        row = {"claim": key, "text": text, "chapter": "unlearning", "published_verdict": "n/a",
               "published_numbers": "not released"}
        if len(pc):
            tests, words = _claim_tests(pc, model)
            row.update(published_verdict=combine(tests), published_numbers="; ".join(words) + " (step 49)")
        tests, words = _claim_tests(c, model) if len(c) else ([], [])
        if not tests:
            row.update(ours_verdict=MISSING, ours_numbers="n/a")
        else:
            row.update(ours_verdict=combine(tests), ours_numbers="; ".join(words))
        rows.append(row)
    return rows


def glue_values(read: pd.DataFrame, refs: pd.DataFrame, summary: pd.DataFrame) -> dict[str, str]:
    """The numbers the chapter's prose quotes (rounded), keyed ``u_<dataset>_<gauge>_<model>_<what>``."""
    out = {}
    for r in read.itertuples():
        k = f"u_{r.dataset}_{r.gauge}_{r.model}_{r.method}"
        vals = [getattr(r, f"val_{a}", np.nan) for a in (0, 1, 10, 50)]
        out[f"{k}_val"] = " / ".join(fmt(v) for v in vals)
        out[f"{k}_final"] = f"{fmt(vals[-1])} ± {fmt(r.val_final_sd)}"
        out[f"{k}_forget"] = fmt(r.forget_polluted_final)
        out[f"{k}_dis"] = f"{fmt(getattr(r, 'disagree_val_final', np.nan))} / {fmt(getattr(r, 'disagree_forget_final', np.nan))}"
        out[f"{k}_mia"] = fmt(r.mia_loss_auc, 2)
        out[f"{k}_mia_entropy"] = fmt(r.mia_entropy_auc, 2)
        out[f"{k}_dip"] = f"{fmt(r.val_0 - r.val_min_early)} (step {r.step_min_early})"
        out[f"{k}_grads"] = f"{r.sample_grads_total:,.0f}"
    for r in refs.itertuples():
        k = f"u_{r.dataset}_{r.gauge}_{r.model}_{r.method}"
        out[f"{k}_val"] = fmt(r.val_acc)
        out[f"{k}_forget"] = fmt(r.forget_acc_polluted)
        out[f"{k}_mia"] = fmt(r.mia_loss_auc, 2)
        out[f"{k}_mia_entropy"] = fmt(r.mia_entropy_auc, 2)
    for r in contrast(summary).itertuples():
        k = f"u_{r.dataset}_{r.gauge}_{r.model}"
        out[f"{k}_gap"] = f"{r.best_minus_retrain:+.3f}"
        out[f"{k}_best"] = r.best_approx.replace("_", " ")
    for c in claims(summary):
        out[f"{c['claim']}_verdict"] = c["ours_verdict"]
    return out


def scale_note(P) -> str:
    """One sentence saying whether an execution is at the paper's scale, and if not, how not."""
    gaps = []
    if P.n_runs != 5:
        gaps.append(f"{P.n_runs} run(s) instead of 5")
    if P.steps != 50:
        gaps.append(f"{P.steps} unlearning steps instead of 50")
    if P.epoch_scale != 1.0:
        gaps.append(f"{P.epoch_scale:g} × the paper's epochs for the poisoned models")
    if abs(P.alpha - 0.3) > 1e-12:
        gaps.append(f"α = {P.alpha:g} instead of 0.3")
    return scale_sentence(gaps, "5 runs, 50 steps, α = 0.3, the paper's epochs")


def published_glue(comparison: pd.DataFrame) -> dict[str, str]:
    """The numbers the chapter quotes from :func:`qmu_core.published.compare_fig3`: per curve
    ``up_<dataset>_<gauge>_<model>_<method>_rms`` (RMS distance of our mean validation curve to
    the published one over steps 0..49) and ``_dip`` (lowest mean and its step, ours vs
    published); ``up_gauge_fig3b`` (the XXZ MLP gauge closer to Fig. 3b over all methods) and
    ``up_gauge_fig3b_<method>`` per method."""
    from .published import fig3_gauge_closer

    out = {}
    for r in comparison.itertuples():
        k = f"up_{r.dataset}_{r.gauge}_{r.model}_{r.method}"
        out[f"{k}_rms"] = fmt(r.val_rms)
        out[f"{k}_dip"] = (f"{fmt(r.ours_min)} at step {r.ours_min_step} vs {fmt(r.published_min)} at step "
                           f"{r.published_min_step}")
    closer = fig3_gauge_closer(comparison)
    out["up_gauge_fig3b"] = "n/a (needs both gauges)" if closer["all"] is None else closer["all"].replace("_", " ")
    for m in METHODS:
        out[f"up_gauge_fig3b_{m}"] = closer.get(m, "n/a").replace("_", " ")
    return out
