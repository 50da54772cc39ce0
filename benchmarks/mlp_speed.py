"""Old vs new: the MLPs' full-width first layer against the active-input one, side by side.

The MLPs trained every input's first-layer weights; they now train those of the inputs that
are nonzero somewhere in the training set only (:func:`qmu_core.training.active_inputs`; the
others keep their initial values exactly, so this is the same algorithm with other rounding).
This script times, in one process on one torch thread as a sweep worker does, alternating old
and new run by run (so a change in the machine's load hits both):

* resilience runs at alpha = 0.3 with the sweep's own corrupted sets and seeds: the XXZ MLP
  [64, 16] (400 epochs) under label flipping in both gauges and under feature randomisation
  (every input active: the two paths should take the same time), and the MNIST MLP;
* one task of the unlearning grid (XXZ MLP, fixed gauge, run 0): its poisoned model and its
  112 cells (Retrain, Finetune, 10 gradient-ascent betas, 10 x 10 SCRUB lambdas), 50 epochs each.

"Old" is the full-width training (``train_mlp(narrow=False)``, ``MLPLearner(narrow=False)``).
Writes benchmarks/results/mlp_speed.json: machine, load, old/new seconds, speed-up, and the
largest difference of the recorded accuracies between the paths.

    PYTHONPATH=. python benchmarks/mlp_speed.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "mlp_speed.json"
ALPHA, RUNS = 0.3, 2


@contextmanager
def full_width():
    """The old path everywhere (the grid task builds its own learners): every input active."""
    import numpy as np

    from qmu_core import training, unlearning

    saved = training.active_inputs, unlearning.active_inputs
    everything = lambda x: np.arange(np.asarray(x).shape[1])  # noqa: E731
    training.active_inputs = unlearning.active_inputs = everything
    try:
        yield
    finally:
        training.active_inputs, unlearning.active_inputs = saved


def _timed(f):
    t = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t


def torch_run(ds, spec, alpha: float, run: int) -> dict:
    """One run as the sweeps trained it before their JAX batches (benchmarks/mlp_batched.py,
    which imports it): corrupt, then training.train (PyTorch)."""
    from qmu_core import sweep, training

    cs = sweep._corrupted(ds, spec, alpha, run)
    _, _, hist = training.train(spec.model, cs.x, cs.y, ds.x_val, ds.y_val, spec.cfg,
                                seed=sweep._train_seed(ds, spec, alpha, run))
    return hist.final


def resilience_run(ds, corruption: str, label: str) -> dict:
    from qmu_core import resilience

    spec = next(s for s in resilience.resilience_specs(ds.name, alphas=(ALPHA,), n_runs=RUNS,
                                                        corruptions=(corruption,)) if s.model.kind == "mlp")
    t, rows = {"old": 0.0, "new": 0.0}, []
    for r in range(RUNS):
        row = {"run": r}
        for path in ("old", "new"):
            if path == "old":
                with full_width():
                    rec, s = _timed(lambda: torch_run(ds, spec, ALPHA, r))
            else:
                rec, s = _timed(lambda: torch_run(ds, spec, ALPHA, r))
            t[path] += s
            row[path] = {k: rec[k] for k in ("train_acc", "val_acc")} | {"seconds": round(s, 2)}
        rows.append(row)
        print(label, row, flush=True)
    return _summary(label, t, rows, ("train_acc", "val_acc"))


def grid_task(ds) -> dict:
    from qmu_core.unlearning_grid import GridParams
    from qmu_core.unlearning_study import compute

    task = next(t for t in GridParams(datasets=["xxz"], models=["mlp"], n_runs=1).tasks() if t.gauge == "fixed")
    with full_width():
        old, s_old = _timed(lambda: compute(task))
    new, s_new = _timed(lambda: compute(task))
    diffs = [abs(old["methods"][k]["val_acc"][-1] - new["methods"][k]["val_acc"][-1]) for k in old["methods"]]
    row = {"cells": len(diffs), "old": {"seconds": round(s_old, 2)}, "new": {"seconds": round(s_new, 2)},
           "poisoned_val_acc": {"old": old["poisoned"]["val_acc"], "new": new["poisoned"]["val_acc"]},
           "cells_with_equal_final_val_acc": sum(d == 0 for d in diffs),
           "max_abs_final_val_acc_difference": max(diffs)}
    print("grid task", row, flush=True)
    return {"what": "unlearning grid task: XXZ MLP [64,16], fixed gauge, run 0 (poisoned model + 112 cells)",
            "seconds_old": row["old"]["seconds"], "seconds_new": row["new"]["seconds"],
            "speed_up": round(s_old / s_new, 2), **row}


def _summary(label, t, rows, keys) -> dict:
    return {"what": label, "seconds_old": round(t["old"], 2), "seconds_new": round(t["new"], 2),
            "speed_up": round(t["old"] / t["new"], 2),
            "max_abs_accuracy_difference": {k: max(abs(r["old"][k] - r["new"][k]) for r in rows) for k in keys},
            "runs": rows}


def main() -> None:
    import torch

    from qmu_core import data

    torch.set_num_threads(1)
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "torch": torch.__version__, "torch_threads": 1,
           "load_average_1_5_15_start": [round(x, 2) for x in os.getloadavg()],
           "setting": {"alpha": ALPHA, "runs_per_case": RUNS}, "cases": []}
    xf, xr, mn = data.xxz(gauge="fixed"), data.xxz(gauge="random_phase"), data.mnist_1v9()
    res["cases"].append(resilience_run(xf, "label_flip", "XXZ MLP [64,16], fixed gauge, label flipping"))
    res["cases"].append(resilience_run(xr, "label_flip", "XXZ MLP [64,16], random phase, label flipping"))
    res["cases"].append(resilience_run(xf, "feature_random", "XXZ MLP [64,16], fixed gauge, feature randomisation"))
    res["cases"].append(resilience_run(mn, "label_flip", "MNIST MLP [64,16], label flipping"))
    res["cases"].append(grid_task(xf))
    res["load_average_1_5_15_end"] = [round(x, 2) for x in os.getloadavg()]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    for c in res["cases"]:
        print(c["what"], c["seconds_old"], "->", c["seconds_new"], f"({c['speed_up']}x)")


if __name__ == "__main__":
    main()
