"""The authors' published numbers for Fig. 2 and how far our curves are from them.

``data_files/published_fig2.csv`` holds every run behind Figs. 2c and 2d as the authors
released them (MIT licence; provenance and licence in ``data_files/PUBLISHED_README.md``),
checked against its SHA-256 on load. The resilience chapter overlays them on our panels and
reads them with the same code as ours (:mod:`qmu_core.reading`).
"""

from __future__ import annotations

import io
from functools import lru_cache
from importlib import resources

import numpy as np
import pandas as pd

from .io import sha256_bytes

PUBLISHED_FILE = "published_fig2.csv"
COMPARISON_COLUMNS = ["dataset", "gauge", "model", "corruption", "n_alphas"] + [
    f"{w}_{k}" for w in ("val", "train") for k in ("rms", "max_gap", "max_gap_alpha")]


@lru_cache(maxsize=1)
def _raw() -> bytes:
    files = resources.files("qmu_core").joinpath("data_files")
    raw = files.joinpath(PUBLISHED_FILE).read_bytes()
    expected = files.joinpath("published_fig2.sha256").read_text().split()[0]
    digest = sha256_bytes(raw)
    if digest != expected:
        raise OSError(f"{PUBLISHED_FILE}: SHA-256 {digest} does not match the expected {expected}; "
                      "the packaged file is corrupted")
    return raw


def fig2() -> pd.DataFrame:
    """Every published run of Fig. 2: dataset, model, corruption, alpha, run, train_acc, val_acc."""
    return pd.read_csv(io.BytesIO(_raw()))


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
