"""The authors' published numbers for Figs. 2 and 3 and how far our curves are from them.

``data_files/published_fig2.csv`` holds every run behind Figs. 2c and 2d as the authors
released them, ``data_files/published_fig3.csv`` every run and step behind Figs. 3a and 3b
(MIT licence; provenance and licence in ``data_files/PUBLISHED_README.md``), each checked
against its SHA-256 on load. The resilience chapter overlays Fig. 2's on our panels and reads
them with the same code as ours (:mod:`qmu_core.reading`); the unlearning chapter compares its
mean curves with Fig. 3's (:func:`compare_fig3`).
"""

from __future__ import annotations

import io
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from .io import sha256_bytes

PUBLISHED_FILE = "published_fig2.csv"
FIG3_FILE = "published_fig3.csv"
FIG3_COLUMNS = ["dataset", "gauge", "model", "method", "n_steps", "val_rms", "ours_min", "ours_min_step",
                "published_min", "published_min_step"]
COMPARISON_COLUMNS = ["dataset", "gauge", "model", "corruption", "n_alphas"] + [
    f"{w}_{k}" for w in ("val", "train") for k in ("rms", "max_gap", "max_gap_alpha")]


@lru_cache(maxsize=2)
def _raw(name: str = PUBLISHED_FILE) -> bytes:
    """The bytes of the packaged file ``name``, checked against its ``.sha256`` file."""
    files = resources.files("qmu_core").joinpath("data_files")
    raw = files.joinpath(name).read_bytes()
    expected = files.joinpath(name.rsplit(".", 1)[0] + ".sha256").read_text().split()[0]
    digest = sha256_bytes(raw)
    if digest != expected:
        raise OSError(f"{name}: SHA-256 {digest} does not match the expected {expected}; "
                      "the packaged file is corrupted")
    return raw


def fig2() -> pd.DataFrame:
    """Every published run of Fig. 2: dataset, model, corruption, alpha, run, train_acc, val_acc."""
    return pd.read_csv(io.BytesIO(_raw(PUBLISHED_FILE)))


def fig3() -> pd.DataFrame:
    """Every published run and step of Figs. 3a (MNIST) and 3b (XXZ): figure, dataset, model,
    method (our names: retrain, finetune, scrub = the code's SCRUB, gradient_ascent), run
    (0..4), step (0..49: the code evaluates before each of its 50 epochs), train_acc,
    val_acc, retain_acc, forget_acc (clean labels for Retrain, Finetune and SCRUB, polluted
    labels for gradient ascent, as the code passes them)."""
    return pd.read_csv(io.BytesIO(_raw(FIG3_FILE)))


def compare_fig3(steps: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per (dataset, gauge, model, method) of our per-run step table (the unlearning chapter's
    ``steps``): the RMS distance of our mean validation-accuracy curve (mean over our runs) to
    the published mean curve of Fig. 3a/3b over the steps both record (0..49: the code never
    records the state after its last epoch; ours goes to 50), and each curve's dip: the lowest
    mean validation accuracy and the step where it happens (ours, published)."""
    published = fig3() if published is None else published
    pub = published.groupby(["dataset", "model", "method", "step"])["val_acc"].mean()
    keys = ["dataset", "gauge", "model", "method"]
    mine = steps.groupby(keys + ["step"], sort=False)["val_acc"].mean()
    rows = []
    for k, d in mine.groupby(level=[0, 1, 2, 3], sort=False):
        row = dict(zip(keys, k))
        try:
            p = pub.loc[(row["dataset"], row["model"], row["method"])]
        except KeyError:
            continue
        d = d.droplevel([0, 1, 2, 3])
        common = [s for s in d.index if s in p.index]
        if not common:
            continue
        o, q = d.loc[common].to_numpy(), p.loc[common].to_numpy()
        row.update(n_steps=len(common), val_rms=float(np.sqrt(np.mean((o - q) ** 2))),
                   ours_min=float(o.min()), ours_min_step=int(common[int(np.argmin(o))]),
                   published_min=float(q.min()), published_min_step=int(common[int(np.argmin(q))]))
        rows.append(row)
    return pd.DataFrame(rows, columns=FIG3_COLUMNS)


def fig3_gauge_closer(comparison: pd.DataFrame) -> dict:
    """Which XXZ MLP gauge's curves are the closer to the published Fig. 3b: per method the
    gauge of smaller RMS (``{method: gauge}``), and overall (``"all"``) the gauge of smaller
    mean RMS over the methods both gauges have; ``None`` where one gauge is missing."""
    c = comparison[(comparison.dataset == "xxz") & (comparison.model == "mlp")]
    t = c.pivot(index="method", columns="gauge", values="val_rms")
    if t.shape[1] < 2:
        return {"all": None}
    t = t.dropna()
    out = {m: str(r.idxmin()) for m, r in t.iterrows()}
    out["all"] = str(t.mean().idxmin()) if len(t) else None
    return out


def compare(ours: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Per curve of ``ours`` (per-run frame, with ``gauge``), the distance of our mean
    accuracies from the published means at the alphas both have: RMS difference and the
    largest gap (ours - published, signed, and where it is), for validation and training."""
    keys = ["dataset", "gauge", "model", "corruption"]
    mine = ours.groupby(keys + ["alpha"])[["train_acc", "val_acc"]].mean().reset_index()
    pub = published.groupby(["dataset", "model", "corruption", "alpha"])[["train_acc", "val_acc"]].mean()
    rows = []
    for k, d in mine.groupby(keys, sort=False):
        row = dict(zip(keys, k))
        key = (row["dataset"], row["model"], row["corruption"])
        try:
            p = pub.loc[key]
        except KeyError:
            continue
        d = d.set_index("alpha")
        common = [a for a in d.index if np.isclose(p.index, a).any()]
        if not common:
            continue
        pa = p.reindex([p.index[np.isclose(p.index, a)][0] for a in common])
        row["n_alphas"] = len(common)
        for what in ("val", "train"):
            diff = d.loc[common, f"{what}_acc"].to_numpy() - pa[f"{what}_acc"].to_numpy()
            i = int(np.argmax(np.abs(diff)))
            row[f"{what}_rms"] = float(np.sqrt(np.mean(diff**2)))
            row[f"{what}_max_gap"] = float(diff[i])
            row[f"{what}_max_gap_alpha"] = float(common[i])
        rows.append(row)
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


def glue_values(comparison: pd.DataFrame) -> dict[str, str]:
    """Preformatted strings for ``glue`` from :func:`compare`: per curve of
    :data:`qmu_core.reading.CURVES`, ``<id>_rms_val`` / ``_rms_train`` and ``<id>_gap_val``
    / ``_gap_train`` ('+0.12 at α = 0.3'); and, per corruption, which XXZ MLP gauge is the
    closer to the published curve (``gauge_closer_<corruption>``). 'n/a' where missing."""
    from .reading import CORRUPTIONS, CURVES, curve_id, select

    out = {}
    for ds, model, gauge in CURVES:
        for c in CORRUPTIONS:
            key = curve_id(ds, model, gauge, c)
            r = select(comparison, ds, model, gauge, c)
            for what in ("val", "train"):
                if len(r):
                    row = r.iloc[0]
                    out[f"{key}_rms_{what}"] = f"{row[f'{what}_rms']:.3f}"
                    out[f"{key}_gap_{what}"] = f"{row[f'{what}_max_gap']:+.2f} at α = {row[f'{what}_max_gap_alpha']:.1f}"
                else:
                    out[f"{key}_rms_{what}"] = out[f"{key}_gap_{what}"] = "n/a"
    for c in CORRUPTIONS:
        r = select(comparison, "xxz", "mlp", None, c)
        if len(r) >= 2:
            out[f"gauge_closer_{c}"] = r.sort_values("val_rms").iloc[0].gauge.replace("_", " ")
        else:
            out[f"gauge_closer_{c}"] = "n/a (needs both gauges)"
    return out
