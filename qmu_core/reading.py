"""Reading a resilience curve (Fig. 2, SI Fig. S1) with numbers instead of the eye.

The same functions read our curves and the authors' published ones
(:mod:`qmu_core.published`), so claims are compared number to number. What they
measure, for the mean validation accuracy v(alpha) of one curve:

* ``clean``: v at alpha = 0;
* ``flat_until``: the largest grid alpha up to which v stays within ``drop`` (0.05) of its
  clean value at every grid point (a grid value: no interpolation);
* ``drop_0_04``: how much v has lost by alpha = 0.4, clean - min v over alpha <= 0.4
  (small for a plateau, large for a steady decline);
* ``slope_0_04``: least-squares slope of v over alpha in [0, 0.4];
* ``alpha_c``: where v crosses halfway between its clean value and chance (0.5), by
  linear interpolation. Flips are drawn half from each class, so at alpha = 0.5 each
  class carries as many wrong labels as right ones and ANY learner that treats the labels
  symmetrically is at chance there: alpha_c near 0.5 is set by the protocol. The
  information about a model is in how flat v stays before it (``drop_0_04``, ``slope``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DROP = 0.05
#: the curves the book discusses: (dataset, model, gauge); None = whatever gauge it ran on
CURVES = (("mnist", "mlp", None), ("mnist", "qnn", None), ("xxz", "mlp", "fixed"),
          ("xxz", "mlp", "random_phase"), ("xxz", "qnn", None))
CORRUPTIONS = ("label_flip", "feature_random")
QUOTED_ALPHAS = (0.0, 0.3, 0.5, 0.7, 0.9)


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


def read_curve(alphas, val_mean, *, drop: float = DROP) -> dict[str, float]:
    """The numbers of the module docstring for one curve (alphas ascending, from 0)."""
    alphas, v = np.asarray(alphas, float), np.asarray(val_mean, float)
    if len(v) == 0:
        raise ValueError("an empty curve has no reading")
    ok = v >= v[0] - drop
    k = len(v) if ok.all() else int(np.argmin(ok))  # first grid point below the band
    m = alphas <= 0.4 + 1e-9
    slope = float(np.polyfit(alphas[m], v[m], 1)[0]) if m.sum() >= 2 else float("nan")
    return {
        "clean": float(v[0]),
        "flat_until": float(alphas[k - 1]),
        "drop_0_04": float(v[0] - v[m].min()),
        "slope_0_04": slope,
        "alpha_c": crossing(alphas, v, 0.5 * (v[0] + 0.5)),
    }


def select(df: pd.DataFrame, dataset: str, model: str, gauge: str | None, corruption: str) -> pd.DataFrame:
    """The rows of one curve; ``gauge=None`` takes the rows whatever their gauge."""
    m = (df.dataset == dataset) & (df.model == model) & (df.corruption == corruption)
    if gauge is not None and "gauge" in df.columns:
        m &= df.gauge == gauge
    return df[m]


def curve_id(dataset: str, model: str, gauge: str | None, corruption: str) -> str:
    """Glue-key stem of a curve: ``xxz_mlp_random_phase_label_flip``, ``mnist_qnn_label_flip``."""
    return "_".join([dataset, model] + ([gauge] if gauge else []) + [corruption])


def curves(df: pd.DataFrame) -> list[tuple[str, str, str | None]]:
    """:data:`CURVES`, or without the gauge split when ``df`` has no ``gauge`` column (the
    published runs: the authors' gauge is unknown)."""
    if "gauge" in df.columns:
        return list(CURVES)
    return list(dict.fromkeys((ds, m, None) for ds, m, _ in CURVES))


def readings(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`read_curve` of every curve of :func:`curves` present in the per-run frame
    ``df`` (columns dataset, model, corruption, alpha, run, val_acc[, gauge])."""
    rows = []
    for ds, model, gauge in curves(df):
        for c in CORRUPTIONS:
            d = select(df, ds, model, gauge, c)
            if len(d) == 0:
                continue
            mean = d.groupby("alpha").val_acc.mean()
            rows.append({"dataset": ds, "model": model, "gauge": gauge or "", "corruption": c,
                         **read_curve(mean.index, mean.to_numpy())})
    return pd.DataFrame(rows)


def fmt_mean_std(values) -> str:
    v = np.asarray(values, float)
    return f"{v.mean():.2f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2f}"


def fmt_alpha(a: float) -> str:
    return "not reached" if not np.isfinite(a) else f"{a:.2f}"


def glue_values(df: pd.DataFrame, prefix: str = "") -> dict[str, str]:
    """Preformatted strings for ``glue``: per curve of :data:`CURVES` its reading
    (``<id>_clean``, ``_flat_until``, ``_drop``, ``_slope``, ``_alpha_c``) and its mean ± sd
    validation and training accuracy at the quoted alphas (``<id>_val_3`` = alpha 0.3).
    Every key exists ('n/a' where ``df`` lacks the curve), so a page always builds."""
    out = {}
    table = readings(df)
    for ds, model, gauge in curves(df):
        for c in CORRUPTIONS:
            key = prefix + curve_id(ds, model, gauge, c)
            r = table[(table.dataset == ds) & (table.model == model) & (table.gauge == (gauge or ""))
                      & (table.corruption == c)]
            if len(r):
                r = r.iloc[0]
                out.update({f"{key}_clean": f"{r.clean:.3f}", f"{key}_flat_until": f"{r.flat_until:.1f}",
                            f"{key}_drop": f"{r.drop_0_04:.3f}", f"{key}_slope": f"{r.slope_0_04:+.2f}",
                            f"{key}_alpha_c": fmt_alpha(r.alpha_c)})
            else:
                out.update({f"{key}_{k}": "n/a" for k in ("clean", "flat_until", "drop", "slope", "alpha_c")})
            d = select(df, ds, model, gauge, c)
            for a in QUOTED_ALPHAS:
                sel = d[np.isclose(d.alpha, a)]
                for what in ("val", "train"):
                    out[f"{key}_{what}_{round(a * 10)}"] = fmt_mean_std(sel[f"{what}_acc"]) if len(sel) else "n/a"
    return out
