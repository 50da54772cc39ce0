"""Trials of the XXZ QNN under label flipping against the published Fig. 2d curve (issue #19).

With the paper's five runs per point, our XXZ QNN label-flip curve was the Fig. 2 curve
furthest from the published one, the gap sitting at alpha = 0.5. Each trial reruns that one
curve under one protocol that the sources leave open: more runs of the same protocol (is the
gap sampling noise?), the paper text's XXZ grids instead of the released code's interleaved
set, and Keras's form of Adam (the released code's optimizer) instead of optax's. Per trial:
the mean validation accuracy at alpha = 0.3 / 0.5 / 0.7, the RMS distance of the mean curves
to the published means over the ten alphas (:func:`qmu_core.published.compare`), and where the
runs end at alpha = 0.5: right (validation accuracy above 0.6), near chance, or inverted (below
0.4).

Two analyses read the larger runs: how far the RMS of five of those runs scatters
(:func:`five_run_rms`), and what decides the side a run ends on at alpha = 0.5
(:func:`flip_geometry`). Every run goes through the sweep cache like the chapter's own: the
trial of the chapter's protocol shares its first runs with the chapter.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from . import data
from . import published as pub
from .config import paper_setting
from .resilience import gauge_of, resilience_specs
from .resilience import run as run_jobs
from .sweep import SweepSpec, _corrupted
from .validation import check_int

#: name: (xxz_set, adam, runs: "chapter" = the chapter's n_runs, "trial" = the trials' n_runs)
TRIALS = {
    "chapter's protocol, the chapter's runs": ("released_code", "optax", "chapter"),
    "chapter's protocol, more runs": ("released_code", "optax", "trial"),
    "paper text's grids (97 + 100 / 199 states)": ("paper_text", "optax", "trial"),
    "Keras Adam (the released code's optimizer)": ("released_code", "keras", "trial"),
}
#: the trial whose runs the two analyses read
REFERENCE_TRIAL = "chapter's protocol, more runs"
READ_ALPHAS = (0.3, 0.5, 0.7)
COLUMNS = ["trial", "xxz_set", "adam", "n_runs", "val_0.3", "val_0.5", "val_0.7", "val_rms", "train_rms",
           "sides_0.5"]
#: a run at alpha = 0.5 is on the right side above, inverted below (else near chance)
SIDES = (0.6, 0.4)


def sides(val_acc) -> str:
    """'right / near chance / inverted' counts of the validation accuracies ``val_acc``."""
    v = np.asarray(val_acc, float)
    if not len(v):
        return "n/a"
    right, inverted = int((v > SIDES[0]).sum()), int((v < SIDES[1]).sum())
    return f"{right} / {len(v) - right - inverted} / {inverted}"


def spec(P, adam: str, n_runs: int) -> SweepSpec:
    """The XXZ QNN label-flip sweep of the resilience chapter's parameters ``P`` with
    ``n_runs`` runs and the Adam form ``adam``."""
    model, cfg = paper_setting("xxz", "qnn")
    s = resilience_specs("xxz", alphas=P.alphas, n_runs=n_runs, epoch_scale=P.epoch_scale, seed=P.seed,
                         corruptions=("label_flip",), models=[(model, cfg)], dtype=P.dtype)[0]
    return replace(s, cfg=replace(s.cfg, adam=adam))


def jobs(P, n_runs: int) -> dict:
    """name: (Dataset, SweepSpec) of every trial of :data:`TRIALS`."""
    check_int("n_runs", n_runs, min=1)
    out = {}
    for name, (xxz_set, adam, runs) in TRIALS.items():
        ds = data.xxz(xxz_set, P.xxz_gauges[0])
        out[name] = (ds, spec(P, adam, P.n_runs if runs == "chapter" else n_runs))
    return out


def run(P, n_runs: int) -> pd.DataFrame:
    """Every run of every trial, one row each (the resilience table's columns and ``trial``)."""
    named = jobs(P, n_runs)
    df = run_jobs(list(named.values()), **P.engine)
    sizes = [len(s.alphas) * s.n_runs for _, s in named.values()]
    df.insert(0, "trial", np.repeat(list(named), sizes))
    return df


def _published():
    p = pub.fig2()
    return p[(p.dataset == "xxz") & (p.model == "qnn") & (p.corruption == "label_flip")]


def _at(curve: pd.Series, alpha: float) -> float:
    """The value of ``curve`` (indexed by alpha) at ``alpha``; NaN where it has none."""
    hit = np.isclose(curve.index, alpha)
    return float(curve[hit].iloc[0]) if hit.any() else np.nan


def _reading(d: pd.DataFrame) -> dict:
    """Runs, mean validation accuracy at :data:`READ_ALPHAS` and the sides at alpha = 0.5 of
    one curve's per-run frame ``d`` (a trial's or the published one)."""
    mean = d.groupby("alpha").val_acc.mean()
    return {"n_runs": int(d.run.nunique()), **{f"val_{a}": _at(mean, a) for a in READ_ALPHAS},
            "sides_0.5": sides(d.val_acc[np.isclose(d.alpha, 0.5)])}


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial (:data:`COLUMNS`)."""
    published = _published()
    rows = []
    for name, d in runs.groupby("trial", sort=False):
        xxz_set, adam, _ = TRIALS[name]
        c = pub.compare(d.drop(columns="trial"), published).iloc[0]
        rows.append({"trial": name, "xxz_set": xxz_set, "adam": adam, **_reading(d),
                     "val_rms": c.val_rms, "train_rms": c.train_rms})
    return pd.DataFrame(rows, columns=COLUMNS)


def published_row() -> dict:
    """The published curve in the trials table's terms."""
    return {"trial": "published (5 runs)", **_reading(_published())}


def five_run_rms(runs: pd.DataFrame, trial: str = REFERENCE_TRIAL, k: int = 5, draws: int = 2000,
                 seed: int = 0) -> dict:
    """How far the RMS of a ``k``-run curve scatters: ``draws`` times, ``k`` of the trial's
    runs (the same ``k`` run indices at every alpha, as a sweep of ``k`` runs would have),
    the RMS of their mean validation curve to the published mean. Median and 5-95 % range."""
    d = runs[runs.trial == trial]
    n = int(d.run.nunique())
    check_int("k", k, min=1, max=n)
    published = _published().groupby("alpha").val_acc.mean()
    wide = d.pivot(index="alpha", columns="run", values="val_acc")
    target = np.array([_at(published, a) for a in wide.index])
    rng = np.random.default_rng(seed)
    rms = np.empty(draws)
    for i in range(draws):
        pick = rng.choice(n, size=k, replace=False)
        rms[i] = np.sqrt(np.mean((wide.to_numpy()[:, pick].mean(axis=1) - target) ** 2))
    lo, med, hi = np.quantile(rms, [0.05, 0.5, 0.95])
    return {"k": k, "n_runs": n, "draws": draws, "median": float(med), "q05": float(lo), "q95": float(hi)}


def flip_geometry(P, runs: pd.DataFrame, trial: str = REFERENCE_TRIAL, alpha: float = 0.5) -> pd.DataFrame:
    """Per run of ``trial`` at ``alpha``: the validation accuracy and where its flipped
    training states lie, as the mean distance |Delta - 1| of the flipped states from the
    critical point (the corrupted set rebuilt from the run's seed, exactly as it was trained)."""
    xxz_set, adam, _ = TRIALS[trial]
    ds = data.xxz(xxz_set, P.xxz_gauges[0])
    train_deltas, _ = data.xxz_grids(xxz_set)
    d = runs[(runs.trial == trial) & np.isclose(runs.alpha, alpha)]
    s = spec(P, adam, int(d.run.max()) + 1)
    rows = []
    for r in d.itertuples():
        cs = _corrupted(ds, s, float(r.alpha), int(r.run))
        dist = np.abs(train_deltas[cs.order[cs.forget]] - data.XXZ_CRITICAL_DELTA)
        rows.append({"run": int(r.run), "alpha": float(r.alpha), "gauge": gauge_of(ds), "val_acc": float(r.val_acc),
                     "train_acc": float(r.train_acc), "n_flipped": len(cs.forget),
                     "flipped_mean_distance": float(dist.mean())})
    return pd.DataFrame(rows)


def geometry_reading(geo: pd.DataFrame) -> dict:
    """The correlation of a run's validation accuracy with the mean distance of its flips
    from the critical point, and the mean validation accuracy of the runs whose flips lie
    nearer / farther than the median distance."""
    med = geo.flipped_mean_distance.median()
    near, far = geo[geo.flipped_mean_distance <= med], geo[geo.flipped_mean_distance > med]
    return {"n_runs": len(geo), "corr": float(np.corrcoef(geo.val_acc, geo.flipped_mean_distance)[0, 1]),
            "median_distance": float(med), "val_near": float(near.val_acc.mean()), "val_far": float(far.val_acc.mean())}


def plot(runs: pd.DataFrame, ax=None):
    """The mean validation curve of every trial, the published runs as grey error bars."""
    import matplotlib.pyplot as plt

    from .plotting import COLORS, PUBLISHED_STYLE

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.4))
    p = _published().groupby("alpha").val_acc.agg(["mean", "std"])
    ax.errorbar(p.index, p["mean"], yerr=p["std"], marker="s", label="published (5 runs)", **PUBLISHED_STYLE)
    colors = [COLORS[k] for k in ("val", "class1", "mlp", "qnn")]
    for i, (name, d) in enumerate(runs.groupby("trial", sort=False)):
        m = d.groupby("alpha").val_acc.mean()
        ax.plot(m.index, m.values, marker="o", ms=3, color=colors[i % len(colors)],
                label=f"{name} ({d.run.nunique()})")
    ax.axhline(0.5, color="0.6", lw=0.6, ls=":")
    ax.set_xlabel("α (fraction of flipped labels)")
    ax.set_ylabel("validation accuracy")
    ax.set_title("XXZ QNN, label flipping: trials")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return ax


def glue_values(P, runs: pd.DataFrame | None) -> dict[str, str]:
    """Preformatted strings for the chapter's ``glue`` (``xt_*``): per trial row ``i`` of
    :func:`summary` ``xt_<i>_rms`` / ``_val5`` / ``_sides``, the published ``val5`` / ``sides``,
    the scatter of a ``P.n_runs``-run RMS (``xt_spread``) and the flip geometry (``xt_geo_*``).
    'not run' where ``runs`` is None or lacks what a value needs."""
    keys = [f"xt_{i}_{w}" for i in range(len(TRIALS)) for w in ("rms", "val3", "val5", "sides")]
    keys += ["xt_published_val3", "xt_published_val5", "xt_published_sides", "xt_spread", "xt_geo_corr", "xt_geo_near", "xt_geo_far",
             "xt_geo_median"]
    out = dict.fromkeys(keys, "not run")
    out["xxz_qnn_trial_runs"] = str(P.xxz_qnn_trial_runs)
    if runs is None:
        return out
    for i, r in summary(runs).iterrows():
        out.update({f"xt_{i}_rms": f"{r.val_rms:.3f}", f"xt_{i}_val3": f"{r['val_0.3']:.3f}",
                    f"xt_{i}_val5": f"{r['val_0.5']:.2f}",
                    f"xt_{i}_sides": r["sides_0.5"]})
    p = published_row()
    out.update(xt_published_val3=f"{p['val_0.3']:.3f}", xt_published_val5=f"{p['val_0.5']:.2f}",
               xt_published_sides=p["sides_0.5"])
    ref = runs[runs.trial == REFERENCE_TRIAL]
    if P.n_runs < ref.run.nunique():
        s = five_run_rms(runs, k=P.n_runs)
        out["xt_spread"] = f"{s['median']:.3f} (5 to 95 %: {s['q05']:.3f} to {s['q95']:.3f})"
    if (np.isclose(ref.alpha, 0.5)).sum() > 2:
        g = geometry_reading(flip_geometry(P, runs))
        out.update(xt_geo_corr=f"{g['corr']:+.2f}", xt_geo_near=f"{g['val_near']:.2f}",
                   xt_geo_far=f"{g['val_far']:.2f}", xt_geo_median=f"{g['median_distance']:.2f}")
    return out
