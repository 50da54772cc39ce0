"""Old vs new: the sweeps' MLP runs one at a time in PyTorch against ten at a time in JAX.

A sweep task now trains 10 MLP runs as one XLA program (:mod:`qmu_core.mlp_batched`,
``sweep.run_batch``); before, each run was its own PyTorch training
(:func:`qmu_core.training.train`, fused Adam, narrow first layer). Same algorithm, other
float32 rounding. This script times, in one process pinned to one core as a sweep worker
has one (XLA, torch and BLAS single-threaded), one task's 10 runs of the resilience sweeps (alpha 0.2
and 0.3, 5 runs each, the sweep's own corrupted sets and seeds) both ways:

* the XXZ MLP [64, 16] (400 epochs, batch 32) under label flipping in both gauges, and under
  feature randomisation (every input active);
* the MNIST MLP [64, 16] (100 epochs, batch 256) under label flipping.

The new path is timed twice: the first call includes XLA's compilation (once per model and
set size in a worker process), the second does not. Writes benchmarks/results/mlp_batched.json:
machine, old/new seconds, speed-up, and the largest difference of the final accuracies.

    PYTHONPATH=. python benchmarks/mlp_batched.py
"""

from __future__ import annotations

import os

from qmu_core.worker import single_thread_env

os.environ.update(single_thread_env())  # before JAX, torch and numpy start their thread pools
# and on one core: XLA still runs a few threads of its own (measured: 33 s of CPU in 21 s of
# wall-clock time for 10 feature-randomised XXZ runs), so an unpinned timing would credit
# the new path with a second core that a worker on a busy machine does not have
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "mlp_batched.json"
ITEMS = [(a, r) for a in (0.2, 0.3) for r in range(5)]


def case(ds, corruption: str, label: str) -> dict:
    from mlp_speed import torch_run  # benchmarks/ is this script's directory

    from qmu_core import resilience, sweep

    spec = next(s for s in resilience.resilience_specs(ds.name, corruptions=(corruption,)) if s.model.kind == "mlp")
    t = time.perf_counter()
    old = [torch_run(ds, spec, a, r) for a, r in ITEMS]
    s_old = time.perf_counter() - t
    t = time.perf_counter()
    new = sweep.run_batch(ds, spec, ITEMS)
    s_first = time.perf_counter() - t
    t = time.perf_counter()
    again = sweep.run_batch(ds, spec, ITEMS)
    s_new = time.perf_counter() - t
    assert [r["val_acc"] for r in again] == [r["val_acc"] for r in new]  # deterministic
    keys = ("train_acc", "val_acc")
    diff = {k: max(abs(o[k] - n[k]) for o, n in zip(old, new)) for k in keys}
    out = {"what": label, "runs": len(ITEMS), "seconds_old": round(s_old, 2),
           "seconds_new_first_call": round(s_first, 2), "seconds_new": round(s_new, 2),
           "speed_up": round(s_old / s_new, 2), "speed_up_with_compilation": round(s_old / s_first, 2),
           "max_abs_accuracy_difference": diff,
           "runs_with_equal_val_acc": sum(abs(o["val_acc"] - n["val_acc"]) < 1e-6 for o, n in zip(old, new)),  # float32 vs exact fractions
           "mean_accuracy": {p: {k: sum(r[k] for r in recs) / len(recs) for k in keys}
                             for p, recs in (("old", old), ("new", new))}}
    print(label, {k: out[k] for k in ("seconds_old", "seconds_new_first_call", "seconds_new", "speed_up")}, flush=True)
    return out


def main() -> None:
    import jax
    import torch

    from qmu_core import data, mlp_batched

    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "torch": torch.__version__, "jax": jax.__version__, "threads": 1, "pinned_to_cores": sorted(os.sched_getaffinity(0)), "kernel_new": mlp_batched.KERNEL,
           "load_average_1_5_15_start": [round(x, 2) for x in os.getloadavg()],
           "setting": {"items": ITEMS}, "cases": []}
    xf, xr, mn = data.xxz(gauge="fixed"), data.xxz(gauge="random_phase"), data.mnist_1v9()
    res["cases"].append(case(xf, "label_flip", "XXZ MLP [64,16], fixed gauge, label flipping"))
    res["cases"].append(case(xr, "label_flip", "XXZ MLP [64,16], random phase, label flipping"))
    res["cases"].append(case(xf, "feature_random", "XXZ MLP [64,16], fixed gauge, feature randomisation"))
    res["cases"].append(case(mn, "label_flip", "MNIST MLP [64,16], label flipping"))
    res["load_average_1_5_15_end"] = [round(x, 2) for x in os.getloadavg()]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
