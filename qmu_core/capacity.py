"""Does capacity matter? SI Fig. S1: the XXZ label-flipping sweep for five MLP sizes and
four QNN depths, with the resilience chapter's protocol and hyperparameters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .data import XXZ_DEFAULT_SET, XXZ_GAUGES
from .paths import ResultsDir
from .config import ModelSpec, paper_setting
from .reading import fmt_alpha, read_curve
from .resilience import PAPER_ALPHAS, Job, ResilienceParams, SweepEngine, XXZData, resilience_specs
from .sweep import SweepSpec
from .validation import ParameterError, check_int, check_sequence


@dataclass(frozen=True)
class CapacityParams(SweepEngine, ResultsDir):
    """Validated parameters of the capacity chapter (meaning: the notebook's parameters cell)."""

    mlp_sizes: tuple = ((64, 16), (32, 8), (16, 4), (8, 2), (8, 4))
    qnn_depths: tuple = (4, 5, 6, 7)
    n_runs: int = 5
    alphas: tuple = PAPER_ALPHAS
    epoch_scale: float = 1.0
    xxz_set: str = XXZ_DEFAULT_SET
    xxz_gauges: tuple = XXZ_GAUGES
    seed: int = 0
    scheduler: str = ""
    workers: int = 0
    results_dir: str = ""

    def __post_init__(self):
        sizes = check_sequence(
            "mlp_sizes", self.mlp_sizes,
            lambda n, v: check_sequence(n, v, lambda m, h: check_int(m, h, min=1)), min_len=0)
        object.__setattr__(self, "mlp_sizes", sizes)
        object.__setattr__(self, "qnn_depths", check_sequence(
            "qnn_depths", self.qnn_depths, lambda n, v: check_int(n, v, min=1, max=20), min_len=0))
        if not sizes and not self.qnn_depths:
            raise ParameterError("parameters 'mlp_sizes' and 'qnn_depths' are both empty: nothing to run")
        common = ResilienceParams(dataset="xxz", n_runs=self.n_runs, alphas=self.alphas,
                                  epoch_scale=self.epoch_scale, xxz_set=self.xxz_set,
                                  xxz_gauges=self.xxz_gauges, seed=self.seed, scheduler=self.scheduler,
                                  workers=self.workers, results_dir=self.results_dir)
        object.__setattr__(self, "alphas", common.alphas)
        object.__setattr__(self, "xxz_gauges", common.xxz_gauges)
        object.__setattr__(self, "scheduler", common.scheduler)


    @property
    def xxz(self) -> XXZData:
        return XXZData(self.xxz_set, self.xxz_gauges)

    def models(self):
        """(ModelSpec, TrainConfig) of every model of the study, with the XXZ hyperparameters."""
        _, mlp_cfg = paper_setting("xxz", "mlp")
        _, qnn_cfg = paper_setting("xxz", "qnn")
        out = [(ModelSpec("mlp", hidden=tuple(h)), mlp_cfg) for h in self.mlp_sizes]
        out += [(ModelSpec("qnn", depth=d), qnn_cfg) for d in self.qnn_depths]
        return out

    def specs(self) -> list[SweepSpec]:
        """The sweeps of the study: every model of :meth:`models` under label flipping."""
        return resilience_specs("xxz", alphas=self.alphas, n_runs=self.n_runs, epoch_scale=self.epoch_scale,
                                seed=self.seed, corruptions=("label_flip",), models=self.models())

    def jobs(self) -> list[Job]:
        """The QNNs on the first gauge's states, the MLPs on every gauge's."""
        return self.xxz.jobs(self.specs())


def capacity_reading(summary: pd.DataFrame, models, *, n_inputs: int, n_qubits: int,
                     gauges=("fixed",)) -> tuple[pd.DataFrame, dict[str, str]]:
    """Per model (and gauge) of the capacity study: size, angles reaching the output, and
    :func:`qmu_core.reading.read_curve` of its validation accuracy; plus preformatted
    strings for ``glue`` ('n/a' where the execution did not cover them, so the page builds).

    ``models``: :meth:`CapacityParams.models`; ``n_inputs``/``n_qubits``: the MLP's input
    size and the QNN's register; ``gauges``: the gauges the MLPs ran under.
    """
    from .mlp import MLP
    from .qnn import QNN

    rows = []
    for spec, _ in models:
        for g in (gauges if spec.kind == "mlp" else gauges[:1]):
            d = summary[(summary.model_label == spec.label) & ((summary.gauge == g) | (spec.kind == "qnn"))]
            if spec.kind == "mlp":
                size = live = MLP(n_inputs, spec.hidden).n_params
            else:
                qnn = QNN(n_qubits, spec.depth)
                size, live = qnn.n_params, qnn.n_live_params
            if len(d) == 0:
                continue
            rows.append({"model": spec.label, "gauge": g if spec.kind == "mlp" else "any",
                         "parameters": size, "reaching the output": live,
                         **read_curve(d.alpha, d.val_acc_mean)})
    table = pd.DataFrame(rows)

    def fam(kind: str, gauge: str | None = None) -> pd.DataFrame:
        if len(table) == 0:
            return table
        t = table[table.model.str.startswith(kind)]
        return t if gauge is None else t[t.gauge == gauge]

    def at_alpha(a: float, col: str, kind: str, gauge: str | None) -> pd.Series:
        d = summary[np.isclose(summary.alpha, a) & summary.model_label.str.startswith(kind)]
        if gauge is not None:
            d = d[d.gauge == gauge]
        return d.set_index("model_label")[col]

    glue = {}
    groups = [("qnn", "QNN", None)] + [(f"mlp_{g}", "MLP", g) for g in XXZ_GAUGES]
    for key, kind, gauge in groups:
        t = fam(kind, gauge)
        glue[f"cap_{key}_slopes"] = ", ".join(f"{v:+.2f}" for v in t.get("slope_0_04", [])) or "n/a"
        glue[f"cap_{key}_drops"] = ", ".join(f"{v:.2f}" for v in t.get("drop_0_04", [])) or "n/a"
        glue[f"cap_{key}_alpha_c"] = ", ".join(fmt_alpha(a) for a in t.get("alpha_c", [])) or "n/a"
        v4 = at_alpha(0.4, "val_acc_mean", kind, gauge)
        glue[f"cap_{key}_val_4"] = ", ".join(f"{m} {v:.2f}" for m, v in v4.items()) or "n/a"
        tr3 = at_alpha(0.3, "train_acc_mean", kind, gauge)
        glue[f"cap_{key}_train_3"] = f"{tr3.min():.2f} to {tr3.max():.2f}" if len(tr3) else "n/a"
    return table, glue


def plot_capacity(per_run: pd.DataFrame, what: str = "val"):
    """SI Fig. S1 layout: one panel per model family (and MLP gauge), one curve per
    size/depth: the mean over runs, bars from the lowest to the highest run (never past
    [0, 1], unlike ± sd), curves nudged sideways so the bars do not hide each other."""
    import matplotlib.pyplot as plt

    panels = []
    for g in dict.fromkeys(per_run[per_run.model == "mlp"].gauge):
        panels.append((f"MLP, {g.replace('_', ' ')} gauge", (per_run.model == "mlp") & (per_run.gauge == g)))
    if (per_run.model == "qnn").any():
        panels.append(("QNN", per_run.model == "qnn"))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.2), sharey=True, squeeze=False)
    for ax, (title, mask) in zip(axes[0], panels):
        d = per_run[mask]
        labels = list(dict.fromkeys(d.model_label))
        cmap = plt.get_cmap("viridis")
        for k, m in enumerate(labels):
            s = d[d.model_label == m].groupby("alpha")[f"{what}_acc"].agg(["mean", "min", "max"])
            x = s.index.to_numpy() + 0.008 * (k - (len(labels) - 1) / 2)
            col = cmap(k / max(1, len(labels) - 1) * 0.85)
            # clipped: the mean of equal runs can round one ulp past them (matplotlib refuses < 0)
            yerr = np.clip([s["mean"] - s["min"], s["max"] - s["mean"]], 0.0, None)
            ax.errorbar(x, s["mean"], yerr=yerr, fmt="-o", ms=3,
                        lw=1.3, elinewidth=0.8, capsize=1.5, color=col, label=m)
        ax.set_title(f"{title}: {'validation' if what == 'val' else 'training'}", fontsize=9)
        ax.set_xlabel(r"noise ratio $\alpha$")
        ax.set_ylim(0.0, 1.02)
        ax.legend(fontsize=7, loc="lower left")
    axes[0][0].set_ylabel("accuracy")
    return axes
