"""The claims scorecard: each headline claim of the paper, tested on our results and, with
the same test, on the authors' published numbers (the book's second page).

Every verdict is computed from the chapters' CSVs by the explicit rules below, never typed
in. A claim that spans several curves (two datasets, two gauges) agrees when every curve
passes, disagrees when none does, and agrees partly otherwise. Claims whose chapter does not
have not been executed (no CSV) are listed as "not yet reproduced".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import paths
from .data import XXZ_GAUGES
from .paths import ResultsDir
from .reading import read_curve, select
from .validation import check_str

#: a curve "declines steadily" when it has lost at least this much by alpha = 0.4 ...
DECLINE = 0.10
#: ... and "holds a plateau" when it has lost at most this much by alpha = 0.4
PLATEAU = 0.05
#: training accuracy at alpha = 0.3 at or above which the flipped labels count as fitted
FITS = 0.90
#: ... and at or below which as refused (a model that ignores every flip scores 0.70)
REFUSES = 0.80
#: the collapse is "near 0.5" when alpha_c lies in this interval
NEAR_HALF = (0.4, 0.55)

AGREES, PARTLY, DISAGREES, MISSING = "agrees", "partly", "disagrees", "not yet reproduced"


@dataclass(frozen=True)
class ScorecardParams(ResultsDir):
    """Validated parameters of the scorecard chapter."""

    input_dir: str = ""
    results_dir: str = ""

    def __post_init__(self):
        check_str("input_dir", self.input_dir)
        check_str("results_dir", self.results_dir)

    @property
    def input_path(self) -> Path:
        return paths.results_path(self.input_dir)


    def read(self, name: str) -> pd.DataFrame | None:
        """A chapter's CSV from ``input_dir``, or None if that chapter has not written it."""
        f = self.input_path / name
        return pd.read_csv(f) if f.exists() else None


def combine(verdicts: list[bool | None]) -> str:
    """All True: agrees; all False: disagrees; a mix: partly; nothing testable: missing."""
    v = [x for x in verdicts if x is not None]
    if not v:
        return MISSING
    return AGREES if all(v) else DISAGREES if not any(v) else PARTLY


def _curve(df, dataset, model, gauge, corruption):
    d = select(df, dataset, model, gauge, corruption)
    if len(d) == 0:
        return None
    mean = d.groupby("alpha")[["train_acc", "val_acc"]].mean()
    r = read_curve(mean.index, mean.val_acc.to_numpy())
    at = {round(a, 1): mean.loc[a] for a in mean.index}
    r["train_3"] = float(at[0.3].train_acc) if 0.3 in at else float("nan")
    r["val_9"] = float(at[0.9].val_acc) if 0.9 in at else float("nan")
    return r


def _label(dataset, model, gauge) -> str:
    name = {"mnist": "MNIST", "xxz": "XXZ"}[dataset] + " " + model.upper()
    return name + (f" ({gauge.replace('_', ' ')})" if gauge else "")


def _curves_for(df, dataset, model):
    """The (dataset, model, gauge) curves of ``df``: one per gauge for an XXZ MLP with a
    gauge column, else one."""
    if df is None:
        return []
    if dataset == "xxz" and model == "mlp" and "gauge" in df.columns:
        gauges = [g for g in XXZ_GAUGES if (select(df, dataset, model, g, "label_flip")).size]
        return [(dataset, model, g) for g in gauges]
    return [(dataset, model, None)]


def _test(df, curves, corruption, passes, describe) -> tuple[str, str]:
    results, words = [], []
    for ds, model, gauge in curves:
        r = _curve(df, ds, model, gauge, corruption)
        if r is None:
            continue
        results.append(bool(passes(r)))
        words.append(f"{_label(ds, model, gauge)}: {describe(r)}")
    return combine(results), "; ".join(words) if words else "n/a"


def resilience_claims(ours: pd.DataFrame | None, published: pd.DataFrame | None) -> list[dict]:
    """The Fig. 2 claims, each tested on our runs and on the published runs."""
    claims = [
        ("lf_mlp", "Label flipping: the MLP's validation accuracy falls steadily from α = 0.",
         "mlp", "label_flip", lambda r: r["drop_0_04"] >= DECLINE,
         lambda r: f"loses {r['drop_0_04']:.2f} by α = 0.4"),
        ("lf_mlp_fit", "Label flipping: the MLP memorises the flipped labels.",
         "mlp", "label_flip", lambda r: r["train_3"] >= FITS,
         lambda r: f"training accuracy {r['train_3']:.2f} at α = 0.3"),
        ("lf_qnn", "Label flipping: the QNN's validation accuracy stays on a plateau until it collapses.",
         "qnn", "label_flip", lambda r: r["drop_0_04"] <= PLATEAU,
         lambda r: f"loses {r['drop_0_04']:.3f} by α = 0.4"),
        ("lf_qnn_refuse", "Label flipping: the QNN refuses to fit the flipped labels.",
         "qnn", "label_flip", lambda r: r["train_3"] <= REFUSES,
         lambda r: f"training accuracy {r['train_3']:.2f} at α = 0.3"),
        ("lf_qnn_alpha_c", "Label flipping: the QNN collapses near α_c = 0.5 (a property of the "
         "class-balanced protocol for any symmetric learner).",
         "qnn", "label_flip", lambda r: NEAR_HALF[0] <= r["alpha_c"] <= NEAR_HALF[1],
         lambda r: f"α_c = {r['alpha_c']:.2f}"),
        ("fr_both", "Feature randomisation: both models are robust at moderate α.",
         None, "feature_random", lambda r: r["drop_0_04"] <= PLATEAU,
         lambda r: f"loses {r['drop_0_04']:.3f} by α = 0.4"),
    ]
    out = []
    for key, text, model, corruption, passes, describe in claims:
        row = {"claim": key, "text": text, "chapter": "resilience"}
        for side, df in (("ours", ours), ("published", published)):
            models = [model] if model else ["mlp", "qnn"]
            curves = [c for ds in ("mnist", "xxz") for m in models for c in _curves_for(df, ds, m)]
            row[f"{side}_verdict"], row[f"{side}_numbers"] = _test(df, curves, corruption, passes, describe) \
                if df is not None else (MISSING, "n/a")
        out.append(row)
    # XXZ feature randomisation: the MLP degrades above 0.8, the QNN does not
    row = {"claim": "fr_xxz", "text": "Feature randomisation on XXZ: the MLP degrades for α > 0.8, the QNN does not.",
           "chapter": "resilience"}
    for side, df in (("ours", ours), ("published", published)):
        if df is None:
            row[f"{side}_verdict"], row[f"{side}_numbers"] = MISSING, "n/a"
            continue
        mlp = [(c, _curve(df, *c, "feature_random")) for c in _curves_for(df, "xxz", "mlp")]
        qnn = [(c, _curve(df, *c, "feature_random")) for c in _curves_for(df, "xxz", "qnn")]
        tests = [r["clean"] - r["val_9"] >= DECLINE for _, r in mlp if r] + \
                [r["clean"] - r["val_9"] <= PLATEAU for _, r in qnn if r]
        row[f"{side}_verdict"] = combine(tests)
        row[f"{side}_numbers"] = "; ".join(f"{_label(*c)}: {r['clean'] - r['val_9']:.2f} lost by α = 0.9"
                                           for c, r in mlp + qnn if r) or "n/a"
    out.append(row)
    return out


def capacity_claims(cap: pd.DataFrame | None) -> list[dict]:
    """SI Fig. S1: every MLP size declines steadily; every QNN depth keeps a plateau."""
    rows = []
    for key, text, kind, passes, word in (
        ("cap_mlp", "Size study: every MLP, from [64, 16] down to [8, 2], declines steadily under label flipping.",
         "mlp", lambda r: r["drop_0_04"] >= DECLINE, "decline"),
        ("cap_qnn", "Size study: every QNN depth (4 to 7) keeps the plateau.",
         "qnn", lambda r: r["drop_0_04"] <= PLATEAU, "stay flat"),
    ):
        row = {"claim": key, "text": text, "chapter": "capacity", "published_verdict": "n/a",
               "published_numbers": "not released"}
        if cap is None:
            row["ours_verdict"], row["ours_numbers"] = MISSING, "n/a"
            rows.append(row)
            continue
        d = cap[cap.model == kind]
        tests, words = [], []
        keys = ["model_label", "gauge"] if kind == "mlp" and "gauge" in d.columns else ["model_label"]
        groups = d.groupby(keys, sort=False)
        for k, g in groups:
            mean = g.groupby("alpha").val_acc.mean()
            r = read_curve(mean.index, mean.to_numpy())
            tests.append(bool(passes(r)))
            name = " ".join(str(x).replace("_", " ") for x in (k if isinstance(k, tuple) else (k,)))
            words.append(f"{name}: {r['drop_0_04']:.2f}")
        row["ours_verdict"] = combine(tests)
        row["ours_numbers"] = f"{sum(tests)} of {len(tests)} curves {word}; lost by α = 0.4: " + "; ".join(words)
        rows.append(row)
    return rows


def hessian_claims(verification: pd.DataFrame | None, study: pd.DataFrame | None) -> list[dict]:
    """SI section I: the derivation, and the reading of negative curvature as stability."""
    rows = []
    row = {"claim": "si1_formula", "text": "SI section I: a neuron's per-point curvature is never negative; "
           "a qubit's turns negative for confidently misclassified points.", "chapter": "hessian",
           "published_verdict": "n/a", "published_numbers": "analytic"}
    if verification is None:
        row["ours_verdict"], row["ours_numbers"] = MISSING, "n/a"
    else:
        worst = float(verification.max_abs_diff[verification.pair.str.contains("autodiff")].max())
        row["ours_verdict"] = AGREES if worst < 1e-8 else DISAGREES
        row["ours_numbers"] = f"SymPy, autodiff and closed forms agree to {worst:.0e}"
    rows.append(row)
    row = {"claim": "si1_stability", "text": "SI section I: this negative curvature keeps the qubit's optimum "
           "in place under label noise.", "chapter": "hessian", "published_verdict": "n/a",
           "published_numbers": "analytic"}
    if study is None:
        row["ours_verdict"], row["ours_numbers"] = MISSING, "n/a"
    else:
        tests, words = [], []
        for s, d in study[study.model == "qnn"].groupby("sigmoid_scale"):
            moved = d[d["shift"] > 0.1].alpha
            a = float(moved.min()) if len(moved) else float("nan")
            tests.append(not (a < 0.45))
            words.append(f"s = {s:g}: optimum moved by α = {a:.2f}" if np.isfinite(a) else f"s = {s:g}: never moved")
        row["ours_verdict"] = combine(tests)
        row["ours_numbers"] = "; ".join(words)
    rows.append(row)
    return rows


def landscape_claims(summary: pd.DataFrame | None) -> list[dict]:
    """Fig. 3d: the MLP's LRR (poisoned over clean Hessian trace) is much greater than 1 and the
    QNN's about 1 or below, tested at every poisoned alpha of the landscape chapter's paper
    setting with that chapter's thresholds (mean over runs; the released notebook's setting is
    quoted alongside)."""
    from .landscape_chapter import LRR_LARGE, LRR_SMALL, fmt

    row = {"claim": "lrr", "text": "Landscape: poisoning raises the MLP's Hessian trace by orders of magnitude "
           "(LRR ≫ 1); the QNN's stays put (LRR ≈ 1 or below).", "chapter": "landscape", "published_verdict": "n/a",
           "published_numbers": "not released"}
    d = None if summary is None else summary[summary.alpha > 0]
    if d is None or not len(d[d.setting == "paper"]):
        row["ours_verdict"], row["ours_numbers"] = MISSING, "n/a"
        return [row]
    tests, words = [], []
    for setting, g in d.groupby("setting", sort=False):
        for model, m in g.groupby("model", sort=False):
            lrr = m.sort_values("alpha")
            if setting == "paper":
                tests += [v >= LRR_LARGE if model == "mlp" else v <= LRR_SMALL for v in lrr.lrr]
            vals = ", ".join(fmt(v) for v in lrr.lrr)
            words.append(f"{setting} {model.upper()} (α = {', '.join(f'{a:g}' for a in lrr.alpha)}): {vals}")
    row["ours_verdict"] = combine(tests)
    row["ours_numbers"] = "; ".join(words)
    return [row]


def classical_claims(cl: pd.DataFrame | None) -> list[dict]:
    """Main text: every other classical model declines steadily under label flipping, and
    none holds the QNN's plateau (MNIST; each family's standard and alternative setting)."""
    rows = []
    for key, text in (
        ("classical_decline", "Other classical models (SVM, logistic regression, random Fourier features, CNN, "
         "ResNet) lose validation accuracy steadily from α = 0 under label flipping."),
        ("classical_unique", "No classical model holds a plateau like the QNN's: the plateau is unique to the QNN."),
    ):
        row = {"claim": key, "text": text, "chapter": "classical", "published_verdict": "n/a",
               "published_numbers": "not released"}
        d = None if cl is None else cl[(cl.dataset == "mnist") & (cl.corruption == "label_flip")]
        if d is None or len(d) == 0:
            row["ours_verdict"], row["ours_numbers"] = MISSING, "n/a"
            rows.append(row)
            continue
        from .classical import FAMILIES, ClassicalSpec

        standard = {ClassicalSpec(f).label for f in FAMILIES}
        tests, words = [], []
        for label, g in d.groupby("model_label", sort=False):
            if key == "classical_decline" and label not in standard:
                continue
            mean = g.groupby("alpha").val_acc.mean()
            r = read_curve(mean.index, mean.to_numpy())
            tests.append(r["drop_0_04"] >= DECLINE if key == "classical_decline" else r["drop_0_04"] > PLATEAU)
            words.append(f"{label}: {r['drop_0_04']:.2f}")
        # "every model declines" agrees partly when some do; "no model holds a plateau" is a
        # universal negative, refuted by a single classical plateau
        row["ours_verdict"] = combine(tests) if key == "classical_decline" else \
            (MISSING if not tests else AGREES if all(tests) else DISAGREES)
        word = "decline steadily" if key == "classical_decline" else "lose more than 0.05"
        row["ours_numbers"] = f"{sum(tests)} of {len(tests)} {word}; lost by α = 0.4: " + "; ".join(words)
        rows.append(row)
    return rows


def unlearning_claims(steps: pd.DataFrame | None) -> list[dict]:
    """Fig. 3's two claims, tested on the unlearning chapter's runs and on the published runs of
    Figs. 3a/3b (:func:`qmu_core.unlearning_chapter.claims`). The XXZ MLP is read under the gauge
    whose curves are the closer to the published Fig. 3b (smaller mean RMS over the methods,
    :func:`qmu_core.published.fig3_gauge_closer`); the row's numbers name that gauge."""
    from . import published as pub
    from .unlearning_chapter import claims, summarise

    if steps is None:
        return claims(None, pub.fig3())
    gauge = pub.fig3_gauge_closer(pub.compare_fig3(steps))["all"]
    rows = claims(summarise(steps), pub.fig3(), mlp_gauge=gauge)
    if gauge is not None:
        rows[0]["ours_numbers"] += f" (XXZ MLP under the {gauge.replace('_', ' ')} gauge, the one Fig. 3b matches)"
    return rows


def table(P: ScorecardParams, published: pd.DataFrame) -> pd.DataFrame:
    """Every claim with our verdict, the published numbers' verdict and the numbers behind them."""
    rows = resilience_claims(P.read("resilience.csv"), published)
    rows += capacity_claims(P.read("capacity.csv"))
    rows += classical_claims(P.read("classical.csv"))
    rows += unlearning_claims(P.read("unlearning_steps.csv"))
    rows += landscape_claims(P.read("landscape_summary.csv"))
    rows += hessian_claims(P.read("hessian_verification.csv"), P.read("hessian_dataset.csv"))
    return pd.DataFrame(rows)


#: verdict words of the findings beyond the paper (our questions, not the paper's claims)
HOLDS, HOLDS_PARTLY, FAILS = "holds", "holds partly", "does not hold"
BEYOND_WORDS = {AGREES: HOLDS, PARTLY: HOLDS_PARTLY, DISAGREES: FAILS, MISSING: "not yet computed"}


def beyond_findings(reading: pd.DataFrame | None, lrr: pd.DataFrame | None,
                    depth: pd.DataFrame | None) -> pd.DataFrame:
    """The noise chapter's questions, each with a verdict computed from its CSVs by the rule in
    its text (``noise_reading.csv``'s verdicts, ``noise_lrr.csv``, ``noise_depth.csv``): rows
    marked as beyond the paper, kept out of the claim counts."""
    from .landscape_chapter import LRR_SMALL

    rows = []

    def add(key, text, tests, words):
        rows.append({"claim": key, "text": text, "chapter": "noise",
                     "ours_verdict": BEYOND_WORDS[combine(tests)], "ours_numbers": "; ".join(words) or "n/a"})

    def plateau(key, text, dataset, corruption, kinds):
        d = None if reading is None else reading[(reading.dataset == dataset) & (reading.corruption == corruption)
                                                 & reading.noise.isin(kinds)]
        if d is None or not len(d):
            return add(key, text, [], [])
        add(key, text, [v in ("survives", "widens") for v in d.verdict],
            [f"{r.setting}: {r.verdict} (lost by α = 0.4: {r.drop_0_04:.2f})" for r in d.itertuples()])

    gate, read = ("depolarizing", "amplitude_damping"), ("readout", "shots")
    plateau("noise_xxz_gate", "Beyond the paper: the XXZ QNN's label-flip plateau survives gate noise "
            "(depolarising or amplitude damping after every gate) in training.", "xxz", "label_flip", gate)
    plateau("noise_xxz_read", "Beyond the paper: the XXZ QNN's label-flip plateau survives readout error and "
            "finite shots in training.", "xxz", "label_flip", read)
    plateau("noise_xxz_fr", "Beyond the paper: under feature randomisation the XXZ QNN's curve keeps its "
            "noiseless shape under every imperfection.", "xxz", "feature_random", gate + read)
    plateau("noise_mnist", "Beyond the paper: the MNIST QNN's label-flip plateau survives depolarising noise.",
            "mnist", "label_flip", ("depolarizing",))
    d = None if lrr is None else lrr[(lrr.dataset == "xxz") & (lrr.corruption == "label_flip") & (lrr.noise != "noiseless")]
    if d is None or not len(d):
        add("noise_lrr", "Beyond the paper: with noise the XXZ QNN's LRR stays about 1 or below.", [], [])
    else:
        worst = d.groupby("setting", sort=False).lrr_mean.max()
        add("noise_lrr", f"Beyond the paper: with noise the XXZ QNN's LRR stays about 1 or below (at most {LRR_SMALL:g} "
            "at α = 0.2, 0.3, 0.4, the landscape chapter's rule).", [v <= LRR_SMALL for v in worst],
            [f"{k}: largest {v:.2f}" for k, v in worst.items()])
    t = None if depth is None or "grad_var_uniform" not in depth else depth.dropna(subset=["grad_var_uniform"])
    if t is None or len(t) < 2 or not (t.depth == 2).any():
        add("depth_bp", "Beyond the paper: deeper circuits start with smaller gradients (random angles): the variance "
            "at the largest depth is at most half the variance at D = 2.", [], [])
    else:
        at2, last = t[t.depth == 2].grad_var_uniform.iloc[0], t.sort_values("depth").iloc[-1]
        add("depth_bp", "Beyond the paper: deeper circuits start with smaller gradients (random angles): the variance "
            "at the largest depth is at most half the variance at D = 2.", [last.grad_var_uniform <= at2 / 2],
            [f"D = 2: {at2:.1e}; D = {int(last.depth)}: {last.grad_var_uniform:.1e}"])
    t = None if depth is None or "drop_0_04" not in depth else depth.dropna(subset=["drop_0_04"])
    t = None if t is None else t[t.depth >= 2]
    add("depth_plateau", f"Beyond the paper: every depth from D = 2 up keeps the label-flip plateau (lost by α = 0.4 "
        f"at most {PLATEAU:g}).", [] if t is None else [v <= PLATEAU for v in t.drop_0_04],
        [] if t is None else [f"D = {int(r.depth)}: {r.drop_0_04:.3f}" for r in t.itertuples()])
    return pd.DataFrame(rows)


def beyond_glue(t: pd.DataFrame) -> dict[str, str]:
    """``<key>_text``, ``<key>_ours``, ``<key>_ours_numbers`` per finding beyond the paper."""
    out = {}
    for r in t.itertuples():
        out.update({f"{r.claim}_text": r.text, f"{r.claim}_ours": r.ours_verdict, f"{r.claim}_ours_numbers": r.ours_numbers})
    return out


def glue_values(t: pd.DataFrame) -> dict[str, str]:
    """``<claim>_ours``, ``<claim>_ours_numbers``, ``<claim>_pub``, ``<claim>_pub_numbers`` per claim,
    and the counts of each verdict (``n_agrees``, ...)."""
    out = {}
    for r in t.itertuples():
        out[f"{r.claim}_ours"] = r.ours_verdict
        out[f"{r.claim}_ours_numbers"] = r.ours_numbers
        out[f"{r.claim}_pub"] = r.published_verdict
        out[f"{r.claim}_pub_numbers"] = r.published_numbers or "—"
    for v, k in ((AGREES, "agrees"), (PARTLY, "partly"), (DISAGREES, "disagrees"), (MISSING, "missing")):
        out[f"n_{k}"] = str(int((t.ours_verdict == v).sum()))
    out["n_claims"] = str(len(t))
    return out

