"""Trials of the MNIST QNN's gradient ascent against the published Fig. 3a curve (issue #19).

Gradient ascent on the MNIST QNN is the unlearning curve furthest from the published one. Each
trial runs that one method under one setting that the released code or the SI actually has
(the code's shared-model protocol; a beta of the code's SI section VI sweep; the SI text's
full batch and learning rate 0.001) and measures the RMS distance of the mean validation curve
to the published mean (steps 0..49, :func:`qmu_core.published.compare_fig3`) and where its dip
is. The released code has no alternative for which samples ascend (always the whole forget set
with its polluted labels), so no trial varies that.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from . import published as pub
from .unlearning import method
from .unlearning_study import run_tasks

#: name: (protocol, beta, batch size (None = the setting's; 0 = the whole retain set), lr (None = the setting's))
TRIALS = {
    "code's batch and lr, independent runs": ("independent", 0.2, None, None),
    "code's batch and lr, shared model": ("shared", 0.2, None, None),
    "beta = 0.5 (SI VI sweep), shared model": ("shared", 0.5, None, None),
    "SI text: full batch, lr 0.001, shared model": ("shared", 0.2, 0, 0.001),
}
COLUMNS = ["trial", "protocol", "beta", "batch_size", "lr", "n_runs", "val_rms", "ours_min", "ours_min_step",
           "published_min", "published_min_step", "val_final", "published_final"]


def tasks(P, name: str, n_runs: int) -> list:
    """The MNIST QNN tasks of trial ``name`` (:data:`TRIALS`) built from the chapter's
    parameters ``P`` (its data, poisoned-model setting and seed): gradient ascent only, no
    oracle or membership inference."""
    protocol, beta, bs, lr = TRIALS[name]
    Q = replace(P, datasets=("mnist",), models=("qnn",), methods=("gradient_ascent",), n_runs=n_runs,
                dip_warmup=0, protocol=protocol, beta=beta)
    out = []
    for t in Q.tasks():
        m = method("gradient_ascent", epochs=Q.steps, beta=beta,
                   batch_size=t.setting.batch_size if bs is None else bs, lr=t.setting.lr if lr is None else lr)
        out.append(replace(t, methods=(("gradient_ascent", m),), extras=False))
    return out


def run(P, n_runs: int, trials=tuple(TRIALS), progress: bool = False) -> pd.DataFrame:
    """One row per trial (:data:`COLUMNS`): the setting, the RMS distance of the mean validation
    curve to the published mean (Fig. 3a, MNIST QNN gradient ascent, steps 0..49), the lowest
    mean and its step (ours, published) and the last common step's means."""
    published = pub.fig3()
    p = published[(published.dataset == "mnist") & (published.model == "qnn")
                  & (published.method == "gradient_ascent")].groupby("step").val_acc.mean()
    rows = []
    for name in trials:
        ts = tasks(P, name, n_runs)
        recs = run_tasks(ts, progress=progress, desc=f"trial: {name}", **P.engine)
        steps = pd.DataFrame([{"dataset": "mnist", "gauge": r["gauge"], "model": "qnn", "method": "gradient_ascent",
                               "run": r["run"], "step": s, "val_acc": v}
                              for r in recs for s, v in enumerate(r["methods"]["gradient_ascent"]["val_acc"])])
        c = pub.compare_fig3(steps, published).iloc[0]
        m = ts[0].methods[0][1]
        mine = steps.groupby("step").val_acc.mean()
        last = int(min(mine.index.max(), p.index.max()))
        rows.append({"trial": name, "protocol": ts[0].protocol, "beta": m.beta, "batch_size": m.batch_size or "full",
                     "lr": m.lr, "n_runs": n_runs, **{k: c[k] for k in COLUMNS[6:11]},
                     "val_final": float(mine.loc[last]), "published_final": float(p.loc[last])})
    return pd.DataFrame(rows, columns=COLUMNS)
