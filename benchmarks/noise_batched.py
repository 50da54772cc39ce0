"""The noise chapter's XXZ runs trained one at a time and in a batch, side by side (issue 20).

Ten runs of the chapter (XXZ QNN, fixed gauge, label flipping, alphas 0.1 and 0.5, runs 0-4,
depolarising p = 0.01; the paper's 200 epochs) are trained twice in one process, on the same
machine and load: ``old``, one after the other as the chapter trained them at d336a18
(an epoch per compiled call and the sets' inputs computed for each metric: the chapter's
path as landed), and ``new``, as one batch by :func:`qmu_core.noise_study.train_noisy_batch`
(``jax.vmap`` over the runs of one program that holds all epochs, each set's inputs
computed once). Each path is compiled first on the same shapes, so the timings are
those of training and evaluation. Records the seconds per run and the largest differences
of the final accuracies and angles (float32: the two programs round differently, and
training amplifies it).

Writes benchmarks/results/noise_batched.json.

    PYTHONPATH=. python benchmarks/noise_batched.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "noise_batched.json"
ALPHAS, RUNS = (0.1, 0.5), 5


def main() -> None:
    import jax
    import numpy as np

    from qmu_core import noise_study as ns
    from qmu_core.io import atomic_write_text
    from qmu_core.qnn import QNN
    from qmu_core.sweep import _corrupted, _train_seed

    setting = ns.Setting("depolarizing", 0.01)
    runs = [ns.Run("xxz", setting, "label_flip", a, k) for a in ALPHAS for k in range(RUNS)]
    ds, spec = runs[0].ds, runs[0].spec
    model = QNN(ds.n_qubits, spec.model.depth, spec.model.rotations, spec.model.entangler)
    sets = [_corrupted(ds, spec, r.alpha, r.run) for r in runs]
    seeds = [_train_seed(ds, spec, r.alpha, r.run) for r in runs]
    data = [(cs.x, cs.y) for cs in sets]

    def old(i):
        """The chapter's path as landed (d336a18): an epoch per compiled call, and the inputs
        (Pauli vectors) of the training and validation sets computed again for each metric."""
        sim, opt, epoch, evaluate = ns._trainer(model, setting.noise_model, setting.shots, spec.cfg, len(data[i][0]))
        k_init, key, shot_key = ns._keys(seeds[i])
        params = model.init(k_init)
        r, yj = sim.inputs(data[i][0]), jax.numpy.asarray(data[i][1], np.float32)
        opt_state = opt.init(params)
        for _ in range(spec.cfg.epochs):
            params, opt_state, key, shot_key = epoch(params, opt_state, key, shot_key, r, yj)
        metrics = {}
        for name, xs, ys in (("train", *data[i]), ("val", ds.x_val, ds.y_val)):
            loss, acc = np.asarray(evaluate(params, *ns._padded(sim.inputs(xs), ys)), np.float64)
            metrics[f"{name}_loss"], metrics[f"{name}_acc"] = float(loss), float(acc)
        return params, metrics

    def new():
        return ns.train_noisy_batch(model, setting, data, ds.x_val, ds.y_val, spec.cfg, seeds)

    compile_s = {}
    t = time.perf_counter()
    old(0)
    compile_s["old"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    new()
    compile_s["new"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    a = [old(i) for i in range(len(runs))]
    t_old = time.perf_counter() - t
    t = time.perf_counter()
    b = new()
    t_new = time.perf_counter() - t
    diff = {k: max(abs(x[1][k] - y[1][k]) for x, y in zip(a, b)) for k in ("train_acc", "val_acc")}
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "jax": jax.__version__,
        "runs": f"XXZ QNN label_flip, {setting.label}, alphas {list(ALPHAS)}, runs 0-{RUNS - 1}, "
                f"{spec.cfg.epochs} epochs, batch {spec.cfg.batch_size}",
        "first_call_seconds_incl_compilation": compile_s,
        "seconds_per_run": {"old": round(t_old / len(runs), 3), "new": round(t_new / len(runs), 3),
                            "speed_up": round(t_old / t_new, 2)},
        "max_abs_accuracy_difference": diff,
        "max_abs_angle_difference": float(max(np.max(np.abs(np.asarray(x[0]) - np.asarray(y[0])))
                                              for x, y in zip(a, b))),
        "runs_with_equal_accuracies": int(sum(x[1]["train_acc"] == y[1]["train_acc"]
                                              and x[1]["val_acc"] == y[1]["val_acc"] for x, y in zip(a, b))),
    }
    # the layout of mlp_speed.json, read by the notes chapter's table of speed-ups
    out["cases"] = [{"what": f"noise chapter, XXZ QNN under {setting.label}: a run, alone vs in a batch of {len(runs)}",
                     "seconds_old": out["seconds_per_run"]["old"], "seconds_new": out["seconds_per_run"]["new"],
                     "speed_up": out["seconds_per_run"]["speed_up"], "max_abs_accuracy_difference": diff}]
    atomic_write_text(OUT, json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
