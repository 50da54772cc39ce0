"""The landscape chapter (Fig. 3c, 3d): its parameters, its runs, its tidy tables and the
numbers its prose quotes.

Tables: ``runs`` (:func:`frames`), one row per (setting, model, alpha, run) with the trace, its
clean/flipped split, LRR, the spectrum's summary, the Hutchinson check and the dead flags;
``summary`` (:func:`summarise`), mean and sd over runs per (setting, model, alpha); ``slices``
(:func:`slice_frame`), the 1-D slices and the unlearning path in long format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import data, paths
from .landscape_study import LABELS, MODELS, SETTINGS, Run, run_all, slices
from .paths import ResultsDir
from .resilience import SweepEngine, check_engine, scale_sentence
from .sweep import read_entry, write_entry
from .validation import (ParameterError, check_alpha, check_float, check_int, check_sequence, check_str,
                         check_unique_choices)

#: "orders of magnitude above 1" (the paper's MLP) and "approximately or smaller than 1" (its
#: QNN), as tested here: a mean LRR of at least LRR_LARGE, and of at most LRR_SMALL
LRR_LARGE = 10.0
LRR_SMALL = 2.0


@dataclass(frozen=True)
class LandscapeParams(SweepEngine, ResultsDir):
    """Validated parameters of the landscape chapter (their meaning: its parameters cell)."""

    settings: tuple = SETTINGS
    models: tuple = MODELS
    alphas: tuple = (0.0, 0.2, 0.3, 0.4)
    n_runs: int = 5
    n_hessian: int = 100
    epoch_scale: float = 1.0
    mnist_n_val: int = data.MNIST_VAL_AVAILABLE
    hutchinson_probes: int = 30
    slq_steps: int = 60
    slq_probes: int = 4
    slice_alpha: float = 0.3
    slice_points: int = 41
    slice_grid: int = 21
    unlearn_epochs: int = 50
    seed: int = 0
    scheduler: str = ""
    workers: int = 0
    results_dir: str = ""

    def __post_init__(self):
        object.__setattr__(self, "settings", check_unique_choices("settings", self.settings, SETTINGS))
        object.__setattr__(self, "models", check_unique_choices("models", self.models, MODELS))
        alphas = check_sequence("alphas", self.alphas, lambda n, v: check_alpha(v, n))
        if list(alphas) != sorted(set(alphas)) or alphas[0] != 0.0 or alphas[-1] >= 0.5:
            raise ParameterError(f"parameter 'alphas' must be strictly increasing, start at 0.0 (the clean "
                                 f"reference of the LRR) and stay below 0.5, got {list(alphas)}")
        object.__setattr__(self, "alphas", alphas)
        check_int("n_runs", self.n_runs, min=1, max=5)
        check_int("n_hessian", self.n_hessian, min=4, max=150)
        check_float("epoch_scale", self.epoch_scale, min=0.0, max=1.0, min_inclusive=False)
        check_int("mnist_n_val", self.mnist_n_val, min=10, max=data.MNIST_VAL_AVAILABLE)
        check_int("hutchinson_probes", self.hutchinson_probes, min=2)
        check_int("slq_steps", self.slq_steps, min=2)
        check_int("slq_probes", self.slq_probes, min=1)
        if check_alpha(self.slice_alpha, "slice_alpha") not in alphas or self.slice_alpha == 0.0:
            raise ParameterError(f"parameter 'slice_alpha' must be one of the non-zero alphas {list(alphas[1:])}, "
                                 f"got {self.slice_alpha}")
        check_int("slice_points", self.slice_points, min=3)
        check_int("slice_grid", self.slice_grid, min=3)
        check_int("unlearn_epochs", self.unlearn_epochs, min=1)
        check_int("seed", self.seed, min=0)
        check_engine(self)
        check_str("results_dir", self.results_dir)

    def run_spec(self, setting: str, model: str, alpha: float, run: int) -> Run:
        return Run(setting, model, alpha, run, self.n_hessian, self.epoch_scale, self.mnist_n_val,
                   self.hutchinson_probes, self.slq_steps, self.slq_probes, self.seed)

    def runs(self) -> list[Run]:
        return [self.run_spec(s, m, a, r) for s in self.settings for m in self.models for a in self.alphas
                for r in range(self.n_runs)]

    def run(self, progress: bool = True) -> list[dict]:
        return run_all(self.runs(), progress=progress, **self.engine)

    def slices(self, records: list[dict]) -> dict:
        """Fig. 3c per model of the paper's setting (run 0, clean and ``slice_alpha``), cached."""
        if "paper" not in self.settings:
            return {}
        out = {}
        for model in self.models:
            rc, rp = self.run_spec("paper", model, 0.0, 0), self.run_spec("paper", model, self.slice_alpha, 0)
            pick = {(r["model"], r["alpha"], r["run"]): r for r in records if r["setting"] == "paper"}
            opts = {"n_1d": self.slice_points, "n_2d": self.slice_grid, "unlearn_epochs": self.unlearn_epochs,
                    "seed": self.seed}
            key = hashlib.sha256(json.dumps([rc.key(), rp.key(), opts, "slices-v1"], sort_keys=True).encode()).hexdigest()[:20]
            f = paths.cache_dir() / "landscape" / "slices" / f"{model}_{key}.json"
            ident = {"model": model}
            rec, _ = read_entry(f, ident)
            if rec is None:
                rec = {"model": model, **slices(rc, pick[(model, 0.0, 0)], rp, pick[(model, self.slice_alpha, 0)], **opts)}
                write_entry(f, rec)
            out[model] = rec
        return out


# ----------------------------------------------------------------------------- tables
COLUMNS = ["setting", "model", "label", "alpha", "run", "n_params", "train_acc", "val_acc", "trace", "lrr",
           "trace_clean", "trace_flipped", "n_flipped_hessian", "eig_top", "eig_bottom", "neg_fraction", "neg_mass",
           "exact_spectrum", "hutchinson", "hutchinson_se", "dead", "dead_code_rule", "seconds"]


def frames(records: list[dict]) -> pd.DataFrame:
    """One row per run; LRR = trace / mean trace of the clean runs (alpha = 0) of the same
    setting and model, as in the released notebook."""
    df = pd.DataFrame([{k: r.get(k) for k in COLUMNS if k != "lrr"} for r in records])
    clean = df[df.alpha == 0.0].groupby(["setting", "model"])["trace"].mean()
    df["lrr"] = [t / clean.get((s, m), np.nan) for s, m, t in zip(df.setting, df.model, df.trace)]
    return df[COLUMNS]


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over runs per (setting, model, alpha); ``lrr_alive``: the LRR without the
    dead runs (the released notebook's convention), ``n_dead``: how many there were."""
    keys = ["setting", "model", "alpha"]
    cols = ["train_acc", "val_acc", "trace", "lrr", "trace_flipped", "neg_fraction", "neg_mass", "eig_top", "eig_bottom"]
    g = df.groupby(keys, sort=False)
    out = g[cols].mean().join(g[cols].std(ddof=0).add_suffix("_sd"))
    out["n_runs"] = g.size()
    out["n_dead"] = g["dead"].sum()
    out["n_dead_code_rule"] = g["dead_code_rule"].sum()
    alive = df[~df.dead]
    ga = alive.groupby(keys, sort=False)["lrr"]
    out = out.join(ga.mean().rename("lrr_alive")).join(ga.std(ddof=0).rename("lrr_alive_sd"))
    out["flipped_share"] = out["trace_flipped"] / out["trace"]
    return out.reset_index()


def slice_frame(sl: dict) -> pd.DataFrame:
    """The 1-D slices and the unlearning path in long format."""
    rows = []
    for model, rec in sl.items():
        for minimum in ("clean", "poisoned"):
            rows += [{"model": model, "curve": f"slice_{minimum}", "t": t, "loss": v}
                     for t, v in zip(rec["t_1d"], rec[minimum]["slice_1d"])]
        for what in ("train_polluted", "train_clean", "retain", "val"):
            rows += [{"model": model, "curve": f"path_{what}", "t": t, "loss": v}
                     for t, v in zip(rec["path"]["t"], rec["path"][what])]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- reading
def fmt(x, nd: int = 2) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x:.0f}" if abs(x) >= 100 else f"{x:.1f}" if abs(x) >= 10 else f"{x:.{nd}f}"


def verdicts(summary: pd.DataFrame) -> dict[str, str]:
    """Per setting: does the MLP's mean LRR reach :data:`LRR_LARGE` at every noisy alpha, and
    does the QNN's stay at or below :data:`LRR_SMALL`?"""
    out = {}
    for setting, s in summary[summary.alpha > 0].groupby("setting"):
        m, q = s[s.model == "mlp"], s[s.model == "qnn"]
        if len(m):
            out[f"{setting}_mlp"] = "agrees" if (m.lrr >= LRR_LARGE).all() else "disagrees"
        if len(q):
            out[f"{setting}_qnn"] = "agrees" if (q.lrr <= LRR_SMALL).all() else "disagrees"
    return out


def glue_values(df: pd.DataFrame, summary: pd.DataFrame, sl: dict) -> dict[str, str]:
    """The numbers the prose quotes, keyed ``l_<setting>_<model>_<alpha*10>_<what>``."""
    out = {}
    for r in summary.itertuples():
        k = f"l_{r.setting}_{r.model}_{round(r.alpha * 10)}"
        out[f"{k}_lrr"] = f"{fmt(r.lrr)} ± {fmt(r.lrr_sd)}"
        out[f"{k}_lrr_alive"] = f"{fmt(r.lrr_alive)} ± {fmt(r.lrr_alive_sd)}"
        out[f"{k}_trace"] = f"{r.trace:.3g} ± {r.trace_sd:.2g}"
        out[f"{k}_neg"] = f"{r.neg_fraction:.2f}"
        out[f"{k}_negmass"] = f"{r.neg_mass:.2f}"
        out[f"{k}_flipped"] = f"{r.flipped_share:.2f}"
        out[f"{k}_dead"] = f"{int(r.n_dead)} of {int(r.n_runs)}"
        out[f"{k}_val"] = f"{r.val_acc:.3f}"
        out[f"{k}_train"] = f"{r.train_acc:.3f}"
        out[f"{k}_bottom"] = f"{r.eig_bottom:.3g}"
        out[f"{k}_top"] = f"{r.eig_top:.3g}"
    for setting in SETTINGS:  # every key the prose quotes exists, "n/a" where not computed
        for model in MODELS:
            for a in (0, 2, 3, 4):
                for what in ("lrr", "lrr_alive", "trace", "neg", "negmass", "flipped", "dead", "val", "train",
                             "bottom", "top"):
                    out.setdefault(f"l_{setting}_{model}_{a}_{what}", "n/a")
            out.setdefault(f"l_{setting}_{model}_verdict", "not tested")
    for k, v in verdicts(summary).items():
        out[f"l_{k}_verdict"] = v
    out["l_dead_total"] = str(int(df.dead.sum()))
    out["l_dead_code_total"] = str(int(df.dead_code_rule.sum()))
    out["l_runs_total"] = str(len(df))
    h = df[np.isfinite(df.hutchinson_se) & (df.hutchinson_se > 0)]
    z = np.abs(h.hutchinson - h.trace) / h.hutchinson_se
    out["l_hutch_within2"] = f"{int((z <= 2).sum())} of {len(z)}"
    for model, rec in sl.items():
        p = rec["path"]
        out[f"l_path_{model}_dist"] = f"{p['distance']:.3g}"
        t = np.asarray(p["t"])
        i0, i1 = int(np.argmin(np.abs(t - 0))), int(np.argmin(np.abs(t - 1)))
        for what in ("train_clean", "train_polluted", "val"):
            seg = np.asarray(p[what])[i0:i1 + 1]  # the segment between the two models
            out[f"l_path_{model}_{what}_barrier"] = f"{seg.max() - max(seg[0], seg[-1]):.3g}"
        out[f"l_path_{model}_polluted"] = f"{p['train_polluted'][i0]:.3f} → {p['train_polluted'][i1]:.3f}"
        out[f"l_path_{model}_val"] = f"{p['val'][i0]:.3f} → {p['val'][i1]:.3f}"
        out[f"l_path_{model}_clean"] = f"{p['train_clean'][i0]:.3f} → {p['train_clean'][i1]:.3f}"
        for m in ("clean", "poisoned"):
            s1 = np.asarray(rec[m]["slice_1d"])
            out[f"l_slice_{model}_{m}_rise"] = f"{s1.max() - rec[m]['loss0']:.3g}"
            out[f"l_slice_{model}_{m}_loss0"] = f"{rec[m]['loss0']:.3g}"
    for model in MODELS:
        for what in ("dist", "train_clean_barrier", "train_polluted_barrier", "val_barrier", "val", "clean",
                     "polluted"):
            out.setdefault(f"l_path_{model}_{what}", "n/a")
        for m in ("clean", "poisoned"):
            out.setdefault(f"l_slice_{model}_{m}_rise", "n/a")
            out.setdefault(f"l_slice_{model}_{m}_loss0", "n/a")
    return out


def scale_note(P: LandscapeParams) -> str:
    gaps = []
    if P.n_runs != 5:
        gaps.append(f"{P.n_runs} run(s) instead of 5")
    if P.epoch_scale != 1.0:
        gaps.append(f"{P.epoch_scale:g} × the paper's epochs")
    if P.n_hessian != 100:
        gaps.append(f"the Hessian on {P.n_hessian} samples instead of 100")
    if tuple(P.alphas) != (0.0, 0.2, 0.3, 0.4):
        gaps.append(f"α ∈ {{{', '.join(f'{a:g}' for a in P.alphas)}}}")
    if P.mnist_n_val != data.MNIST_VAL_AVAILABLE:
        gaps.append(f"{P.mnist_n_val} validation images")
    return scale_sentence(gaps, "5 runs, α = 0, 0.2, 0.3, 0.4, 100 Hessian samples, the paper's epochs")


def label(setting: str, model: str) -> str:
    return LABELS[(setting, model)]
