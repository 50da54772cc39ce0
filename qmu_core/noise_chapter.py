"""The noise chapter (beyond the paper): parameters, experiments, tables, readings, figures.

Resilience of the QNN trained under hardware noise and finite shots
(:mod:`qmu_core.noise_study`) and the depth study at 10 qubits (:mod:`qmu_core.depth_study`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .paths import ResultsDir
from .reading import fmt_alpha, read_curve
from .parallel import check_scheduler, check_workers
from .resilience import PAPER_ALPHAS, SweepEngine, check_alphas
from .validation import check_choice, check_float, check_int, check_sequence, check_str

from . import depth_study, noise_study
from .corruption import CORRUPTIONS
from .noise_study import DEFAULT_LEVELS, Setting, check_levels



@dataclass(frozen=True)
class NoiseParams(SweepEngine, ResultsDir):
    """Validated parameters of the noise chapter (meaning: the notebook's parameters cell)."""

    depolarizing: tuple = DEFAULT_LEVELS["depolarizing"]
    amplitude_damping: tuple = DEFAULT_LEVELS["amplitude_damping"]
    readout: tuple = DEFAULT_LEVELS["readout"]
    shots: tuple = DEFAULT_LEVELS["shots"]
    mnist_depolarizing: tuple = (1e-2,)
    corruptions: tuple = CORRUPTIONS
    mnist_corruptions: tuple = CORRUPTIONS
    n_runs: int = 5
    mnist_runs: int = 5
    alphas: tuple = PAPER_ALPHAS
    epoch_scale: float = 1.0
    depths: tuple = depth_study.DEPTHS
    depth_runs: int = 5
    hessian_runs: int = 2
    n_draws: int = 200
    seed: int = 0
    scheduler: str = ""
    workers: int = 0
    results_dir: str = ""

    def __post_init__(self):
        set_ = object.__setattr__
        for name in ("depolarizing", "amplitude_damping", "readout", "shots"):
            set_(self, name, check_levels(name, getattr(self, name), name))
        set_(self, "mnist_depolarizing", check_levels("mnist_depolarizing", self.mnist_depolarizing, "depolarizing"))
        for name in ("corruptions", "mnist_corruptions"):
            set_(self, name, check_sequence(name, getattr(self, name), lambda n, v: check_choice(n, v, CORRUPTIONS),
                                            min_len=0))
        for name, low in (("n_runs", 1), ("mnist_runs", 0), ("depth_runs", 0), ("hessian_runs", 0), ("n_draws", 2),
                          ("seed", 0)):
            check_int(name, getattr(self, name), min=low)
        set_(self, "alphas", check_alphas(self.alphas))
        check_float("epoch_scale", self.epoch_scale, min=0.0, min_inclusive=False)
        set_(self, "depths", check_sequence("depths", self.depths, lambda n, v: check_int(n, v, min=1, max=20),
                                            min_len=0))
        set_(self, "scheduler", check_scheduler(self.scheduler))
        check_workers(self.workers)
        check_str("results_dir", self.results_dir)

    @property
    def xxz_levels(self) -> dict:
        return {k: getattr(self, k) for k in ("depolarizing", "amplitude_damping", "readout", "shots")}

    @property
    def mnist_levels(self) -> dict:
        return {"depolarizing": self.mnist_depolarizing}

    def runs(self) -> list[noise_study.Run]:
        """Every noisy resilience run: the XXZ QNN under every XXZ setting and corruption, the
        MNIST QNN under the MNIST settings (``mnist_runs`` runs per point; 0: none). The MNIST
        noiseless curves are the resilience chapter's D = 6 sweeps (:meth:`sweep_jobs`, by the
        adjoint kernel: 10x faster than the Pauli simulation of all 10 qubits)."""
        out = noise_study.plan("xxz", noise_study.settings(self.xxz_levels), alphas=self.alphas,
                               n_runs=self.n_runs, corruptions=self.corruptions, epoch_scale=self.epoch_scale,
                               seed=self.seed)
        if self.mnist_runs and self.mnist_corruptions:
            out += noise_study.plan("mnist", noise_study.settings(self.mnist_levels, noiseless=False),
                                    alphas=self.alphas, n_runs=self.mnist_runs, corruptions=self.mnist_corruptions,
                                    epoch_scale=self.epoch_scale, seed=self.seed)
        return out

    def sweep_jobs(self):
        """The noiseless resilience sweeps of the chapter (MNIST QNN, the adjoint kernel, shared
        with the resilience chapter through the cache): label flipping at every depth of the
        depth study, and the paper's D = 6 under each MNIST corruption with noisy curves."""
        ds = depth_study.mnist()
        specs = [depth_study.sweep_spec(d, "label_flip", self.alphas, self.depth_runs, self.epoch_scale, self.seed)
                 for d in self.depths] if self.depth_runs else []
        if self.mnist_runs and self.mnist_depolarizing:
            specs += [depth_study.sweep_spec(6, c, self.alphas, 5, self.epoch_scale, self.seed)
                      for c in self.mnist_corruptions]
        return [(ds, s) for s in dict.fromkeys(specs)]

    def depth_tasks(self) -> list[depth_study.Task]:
        return [depth_study.Task(d, hessian_runs=self.hessian_runs, n_draws=self.n_draws,
                                 epoch_scale=self.epoch_scale, seed=self.seed) for d in self.depths]


# ----------------------------------------------------------------------------- readings
def curves(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over runs per (dataset, setting, corruption, alpha)."""
    g = df.groupby(["dataset", "noise", "level", "corruption", "alpha"], sort=False)
    out = g.agg(val_mean=("val_acc", "mean"), val_min=("val_acc", "min"), val_max=("val_acc", "max"),
                train_mean=("train_acc", "mean"), runs=("run", "count")).reset_index()
    return out


def readings(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`qmu_core.reading.read_curve` of every (dataset, setting, corruption) curve, with
    its change from the same dataset and corruption's noiseless curve and its :func:`verdict`."""
    c = curves(df)
    rows = []
    for (ds, noise, level, corr), d in c.groupby(["dataset", "noise", "level", "corruption"], sort=False):
        d = d.sort_values("alpha")
        rows.append({"dataset": ds, "noise": noise, "level": level, "corruption": corr,
                     "setting": Setting.of(noise, level).label, "runs": int(d.runs.min()),
                     **read_curve(d.alpha, d.val_mean)})
    t = pd.DataFrame(rows)
    if len(t):
        base = t[t.noise == "noiseless"].set_index(["dataset", "corruption"])
        for col in ("clean", "drop_0_04", "flat_until"):
            t[f"{col}_change"] = [getattr(r, col) - base.loc[(r.dataset, r.corruption), col]
                                  if (r.dataset, r.corruption) in base.index else np.nan for r in t.itertuples()]
        # the noiseless curve, read against itself, "survives"
        t["verdict"] = [verdict(r, base.loc[(r.dataset, r.corruption)]) if (r.dataset, r.corruption) in base.index
                        else "n/a" for r in t.itertuples()]
    return t


#: the spacing of the alphas of the paper's grid: the tolerance of :func:`verdict`, both ways
GRID_STEP = 0.1


def verdict(row, base) -> str:
    """Does the plateau survive this setting? 'widens' when the noisy curve stays within the
    reading's band (0.05) more than one grid step (0.1) further than the noiseless curve's
    ``flat_until``; 'survives' when it stays flat up to at least that ``flat_until`` minus one
    grid step and loses at most 0.05 more by alpha = 0.4 than the noiseless curve; else
    'shrinks'. One step either way is tolerated because float32 rounding alone moves a
    reading by a step: when the noise kernel's gradient roundings changed (v2 -> v3), the
    noiseless XXZ feature-randomisation curve's ``flat_until`` went from 0.8 to 0.9 and the
    noisy MNIST label-flip curve's from 0.4 to 0.3, nothing else changed: eleven one-step
    'widens' became 'survives'."""
    if row.flat_until > base.flat_until + GRID_STEP + 1e-9:
        return "widens"
    if row.flat_until >= base.flat_until - GRID_STEP - 1e-9 and row.drop_0_04 <= base.drop_0_04 + 0.05:
        return "survives"
    return "shrinks"


def glue_values(table: pd.DataFrame) -> dict[str, str]:
    """Preformatted strings for ``glue`` per curve of the readings ``table``:
    ``noise_<dataset>_<corruption>_<noise>_<level>_{clean,flat,drop,alpha_c,verdict}``."""
    out = {}
    for r in table.itertuples():
        key = f"noise_{r.dataset}_{r.corruption}_{r.noise}_{r.level:g}".replace(".", "_")
        out.update({f"{key}_clean": f"{r.clean:.3f}", f"{key}_flat": f"{r.flat_until:.1f}",
                    f"{key}_drop": f"{r.drop_0_04:.3f}", f"{key}_alpha_c": fmt_alpha(r.alpha_c),
                    f"{key}_verdict": r.verdict})
    return out


# ----------------------------------------------------------------------------- frames
def sweep_rows(sweeps: pd.DataFrame, depths: dict[str, int]) -> pd.DataFrame:
    """Noiseless QNN sweep records of :func:`qmu_core.resilience.run` (:meth:`NoiseParams.sweep_jobs`)
    in the layout of :data:`qmu_core.noise_study.RESULT_COLUMNS`, each run once (two sweeps
    may hold the same run); ``depths``: model label -> depth."""
    d = sweeps.drop_duplicates(subset=["dataset", "model_label", "corruption", "alpha", "run"]).copy()
    d["noise"], d["level"], d["shots"], d["trace"] = "noiseless", 0.0, noise_study.EXACT, np.nan
    d["depth"] = d.model_label.map(depths)
    return d[noise_study.RESULT_COLUMNS]


def tidy(noisy: pd.DataFrame, depth_rows: pd.DataFrame) -> pd.DataFrame:
    """``results/noise.csv``: every run of the chapter, one row per (study, dataset, noise,
    level, shots, depth, corruption, alpha, run), with the simulation that trained it."""
    a = noisy.assign(study="noise", kernel=noisy["dataset"].map(noise_study.kernel_of))
    b = depth_rows.assign(study="noiseless sweeps", kernel="adjoint (resilience sweeps)")
    return pd.concat([a, b], ignore_index=True)[["study", "kernel", *noise_study.RESULT_COLUMNS]]


def with_mnist_baseline(noisy: pd.DataFrame, depth_rows: pd.DataFrame) -> pd.DataFrame:
    """The noisy runs plus, for MNIST, the noiseless curve of the paper's depth (D = 6) from
    the depth study's sweeps (the MNIST noisy settings have no noiseless run of their own)."""
    base = depth_rows[(depth_rows.dataset == "mnist") & (depth_rows.depth == 6)
                      & depth_rows.corruption.isin(noisy[noisy.dataset == "mnist"].corruption.unique())]
    return pd.concat([noisy, base], ignore_index=True)


def lrr(noisy: pd.DataFrame) -> pd.DataFrame:
    """LRR per (dataset, setting, corruption, alpha > 0) of the runs with a trace: each run's
    trace over the mean trace of the same setting's clean (alpha = 0) runs (the landscape
    chapter's definition); mean, sd and number of runs."""
    d = noisy.dropna(subset=["trace"])
    rows = []
    for (ds, noise, level, corr), g in d.groupby(["dataset", "noise", "level", "corruption"], sort=False):
        clean = g[np.isclose(g.alpha, 0.0)].trace.mean()
        for a, ga in g[~np.isclose(g.alpha, 0.0)].groupby("alpha"):
            ratio = ga.trace / clean
            rows.append({"dataset": ds, "noise": noise, "level": level, "setting": Setting.of(noise, level).label,
                         "corruption": corr, "alpha": a, "clean_trace": clean, "lrr_mean": ratio.mean(),
                         "lrr_sd": ratio.std(ddof=1) if len(ratio) > 1 else 0.0, "runs": len(ratio)})
    return pd.DataFrame(rows)


def summary_glue(table: pd.DataFrame, lrr_table: pd.DataFrame) -> dict[str, str]:
    """Sentences for the chapter's reading, from the readings and LRR tables: per dataset and
    corruption which settings keep, shrink or widen the plateau, and the LRR range."""
    out = {}
    for (ds, corr), t in table.groupby(["dataset", "corruption"], sort=False):
        key = f"noise_{ds}_{corr}"
        base = t[t.noise == "noiseless"]
        noisy = t[t.noise != "noiseless"]
        if not len(base) or not len(noisy):
            continue
        v = dict(zip(noisy.setting, noisy.verdict))
        for word in ("survives", "shrinks", "widens"):
            names = [s for s, w in v.items() if w == word]
            out[f"{key}_{word}"] = ", ".join(names) if names else "none"
            out[f"{key}_n_{word}"] = str(len(names))
        out[f"{key}_n_settings"] = str(len(v))
        worst = noisy.loc[noisy.drop_0_04.idxmax()]
        out[f"{key}_worst"] = f"{worst.setting} (loses {worst.drop_0_04:.3f} by α = 0.4)"
        out[f"{key}_base_drop"] = f"{base.iloc[0].drop_0_04:.3f}"
        out[f"{key}_base_flat"] = f"{base.iloc[0].flat_until:.1f}"
        out[f"{key}_clean_range"] = f"{noisy.clean.min():.3f} to {noisy.clean.max():.3f}"
    for (ds, corr), t in lrr_table.groupby(["dataset", "corruption"], sort=False) if len(lrr_table) else []:
        for a, ta in t.groupby("alpha"):
            key = f"noise_{ds}_{corr}_lrr_{round(a * 10)}"
            base = ta[ta.noise == "noiseless"]
            out[f"{key}_noiseless"] = f"{base.lrr_mean.iloc[0]:.2f}" if len(base) else "n/a"
            noisy = ta[ta.noise != "noiseless"]
            if len(noisy):
                out[f"{key}_range"] = f"{noisy.lrr_mean.min():.2f} to {noisy.lrr_mean.max():.2f}"
                out[f"{key}_max"] = f"{noisy.lrr_mean.max():.2f}"
    return out


def depth_glue(curve_rows: pd.DataFrame, train: pd.DataFrame, traces: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Per depth: the label-flip curve's reading, the gradient variances and the mean trace of
    the trained runs per alpha; and sentences for the reading."""
    rows = []
    # the depth study is label flipping; the sweeps also hold the MNIST references under the other corruption
    for dep, d in curve_rows[curve_rows.corruption == "label_flip"].groupby("depth"):
        m = d.groupby("alpha").val_acc.mean()
        r = {"depth": dep, **read_curve(m.index, m.to_numpy()), "train_3": d[np.isclose(d.alpha, 0.3)].train_acc.mean()}
        rows.append(r)
    t = pd.DataFrame(rows)
    if len(train):
        t = t.merge(train, on="depth", how="outer") if len(t) else train.copy()
    if len(traces):
        tr = traces.groupby(["depth", "alpha"]).trace.mean().unstack("alpha")
        tr.columns = [f"trace_{a:g}" for a in tr.columns]
        t = t.merge(tr.reset_index(), on="depth", how="outer")
    t = t.sort_values("depth").reset_index(drop=True)
    out = {}
    if len(t):
        fmt = lambda col, f: ", ".join(f.format(v) for v in t[col]) if col in t else "n/a"  # noqa: E731
        out["depth_list"] = ", ".join(str(int(d)) for d in t.depth)
        out["depth_clean"] = fmt("clean", "{:.2f}")
        out["depth_drops"] = fmt("drop_0_04", "{:.3f}")
        out["depth_train_3"] = fmt("train_3", "{:.2f}")
        out["depth_var_uniform"] = fmt("grad_var_uniform", "{:.1e}")
        out["depth_var_init"] = fmt("grad_var_init", "{:.1e}")
        for col in [c for c in t.columns if c.startswith("trace_")]:
            out[f"depth_{col.replace('.', '_')}"] = fmt(col, "{:.1f}")
    return t, out


#: every key the chapter's prose glues from this module (tests/test_noise_study.py checks the
#: notebook against it): an execution without some curve glues 'n/a' there, so the page builds
PROSE_KEYS = (
    "noise_mnist_feature_random_depolarizing_0_01_clean",
    "noise_mnist_feature_random_depolarizing_0_01_drop",
    "noise_mnist_feature_random_depolarizing_0_01_flat",
    "noise_mnist_feature_random_depolarizing_0_01_verdict",
    "noise_mnist_feature_random_noiseless_0_clean",
    "noise_mnist_feature_random_noiseless_0_flat",
    "noise_check_feature_random",
    "noise_check_label_flip",
    "depth_clean",
    "depth_drops",
    "depth_list",
    "depth_trace_0",
    "depth_trace_0_3",
    "depth_train_3",
    "depth_var_init",
    "depth_var_uniform",
    "noise_mnist_label_flip_depolarizing_0_01_clean",
    "noise_mnist_label_flip_depolarizing_0_01_drop",
    "noise_mnist_label_flip_depolarizing_0_01_flat",
    "noise_mnist_label_flip_depolarizing_0_01_verdict",
    "noise_mnist_label_flip_noiseless_0_clean",
    "noise_mnist_label_flip_noiseless_0_drop",
    "noise_mnist_label_flip_noiseless_0_flat",
    "noise_xxz_feature_random_base_drop",
    "noise_xxz_feature_random_base_flat",
    "noise_xxz_feature_random_n_settings",
    "noise_xxz_feature_random_n_shrinks",
    "noise_xxz_feature_random_n_survives",
    "noise_xxz_feature_random_n_widens",
    "noise_xxz_feature_random_shrinks",
    "noise_xxz_feature_random_survives",
    "noise_xxz_feature_random_widens",
    "noise_xxz_feature_random_worst",
    "noise_xxz_label_flip_base_drop",
    "noise_xxz_label_flip_base_flat",
    "noise_xxz_label_flip_clean_range",
    "noise_xxz_label_flip_depolarizing_0_01_alpha_c",
    "noise_xxz_label_flip_depolarizing_0_01_drop",
    "noise_xxz_label_flip_depolarizing_0_01_flat",
    "noise_xxz_label_flip_depolarizing_0_01_verdict",
    "noise_xxz_label_flip_lrr_2_noiseless",
    "noise_xxz_label_flip_lrr_2_range",
    "noise_xxz_label_flip_lrr_3_noiseless",
    "noise_xxz_label_flip_lrr_3_range",
    "noise_xxz_label_flip_lrr_4_max",
    "noise_xxz_label_flip_lrr_4_noiseless",
    "noise_xxz_label_flip_lrr_4_range",
    "noise_xxz_label_flip_n_settings",
    "noise_xxz_label_flip_n_shrinks",
    "noise_xxz_label_flip_n_survives",
    "noise_xxz_label_flip_n_widens",
    "noise_xxz_label_flip_noiseless_0_clean",
    "noise_xxz_label_flip_shrinks",
    "noise_xxz_label_flip_survives",
    "noise_xxz_label_flip_widens",
    "noise_xxz_label_flip_worst",
)


def complete(values: dict[str, str]) -> dict[str, str]:
    """``values`` with 'n/a' for every :data:`PROSE_KEYS` entry it lacks."""
    return {**{k: "n/a" for k in PROSE_KEYS}, **values}


def scale_note(P: NoiseParams) -> str:
    """Whether this execution is at the chapter's full scale (the paper's protocol, 10 alphas,
    5 runs; MNIST 3 runs), and if not, how not."""
    from .resilience import scale_sentence

    gaps = []
    if P.n_runs != 5:
        gaps.append(f"{P.n_runs} XXZ run(s) per point instead of 5")
    if P.mnist_runs != 5:
        gaps.append(f"{P.mnist_runs} MNIST run(s) per point instead of 5")
    if tuple(P.alphas) != PAPER_ALPHAS:
        gaps.append(f"α ∈ {{{', '.join(f'{a:g}' for a in P.alphas)}}} instead of 0, 0.1, …, 0.9")
    if P.epoch_scale != 1.0:
        gaps.append(f"{P.epoch_scale:g} × the paper's epochs")
    if P.depth_runs != 5:
        gaps.append(f"{P.depth_runs} run(s) per depth instead of 5")
    return scale_sentence(gaps, "the paper's training protocol, α = 0, 0.1, …, 0.9, 5 runs per point",
                          "the chapter's full scale")


def noiseless_check(noisy: pd.DataFrame, resilience_rows: pd.DataFrame | None) -> dict[str, str]:
    """How far this chapter's noiseless XXZ QNN curves (the Pauli simulation, float32) lie from
    the resilience chapter's (the adjoint kernel; same data, seeds and algorithm, other
    rounding): the largest difference of the mean validation accuracy over the shared alphas,
    per corruption, as ``noise_check_<corruption>``."""
    out = {f"noise_check_{c}": "n/a" for c in CORRUPTIONS}
    if resilience_rows is None:
        return out
    ours = noisy[(noisy.dataset == "xxz") & (noisy.noise == "noiseless")]
    theirs = resilience_rows[(resilience_rows.dataset == "xxz") & (resilience_rows.model == "qnn")
                             & (resilience_rows.gauge == "fixed")]
    for c in CORRUPTIONS:
        a = ours[ours.corruption == c].groupby("alpha").val_acc.mean()
        b = theirs[theirs.corruption == c].groupby("alpha").val_acc.mean()
        shared = a.index.intersection(b.index)
        if len(shared):
            out[f"noise_check_{c}"] = f"{np.max(np.abs(a[shared] - b[shared])):.3f}"
    return out
