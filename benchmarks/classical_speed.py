"""Old vs new: the classical chapter's CNN and ResNet trainings, side by side in one process.

The CNN and ResNet runs were trained on contiguous NCHW tensors with for-loop Adam
(:func:`qmu_core.classical._train_torch_reference`); the CNN now trains on channels-last
tensors, pooling before its ReLU, with fused Adam (:func:`qmu_core.classical._train_torch`,
cache-key name :data:`qmu_core.classical.TORCH_KERNEL`); the ResNet still trains by the
reference (channels-last batch norm is too inaccurate on the CPU), so its two columns time
the same code and measure the noise of this machine. This script trains the chapter's
standard CNN and standard ResNet on paper-scale MNIST (500 training images, all 2144
validation images, 20 epochs), 5 runs at alpha = 0.3 under label flipping with the sweep's
own corrupted sets and seeds, once with each path, alternating old and new run by run (so
a change in the machine's load hits both), on one torch thread as a sweep worker does. It
writes benchmarks/results/classical_speed.json: date, machine, load average, old/new seconds
and ratio per family, each run's accuracies on both paths, their largest difference and
their means (the CNN's differ run by run: 20 epochs carry the rounding difference into a
few flipped predictions, with no drift of the mean).

    PYTHONPATH=. python benchmarks/classical_speed.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "classical_speed.json"
ALPHA, N_RUNS, CORRUPTION = 0.3, 5, "label_flip"
ACC = ("train_acc", "val_acc")
NOTE = ("2 cores shared with another engineer's notebook executions (run under nice -n 19): absolute "
        "seconds are inflated and noisy; old and new alternate run by run, so the ratio is the fairer number")


def _timed(f, *a, **k):
    t = time.perf_counter()
    out = f(*a, **k)
    return out, time.perf_counter() - t


def family(ds, name: str) -> dict:
    """Old and new seconds (summed over the runs) and every run's accuracies on both paths."""
    from qmu_core import classical, resilience, sweep

    m = classical.model_spec(name)
    spec = sweep.SweepSpec(m, CORRUPTION, (ALPHA,), N_RUNS, resilience.final_only(classical.train_config(m)))
    c = classical.ClassicalSpec(m.kind, m.setting)
    t = {"old": 0.0, "new": 0.0}
    runs = []
    for r in range(N_RUNS):
        cs, seed = sweep._corrupted(ds, spec, ALPHA, r), sweep._train_seed(ds, spec, ALPHA, r)
        row = {"run": r}
        for path in ("old", "new"):
            acc, s = _timed(classical.fit_evaluate, c, cs.x, cs.y, ds.x_val, ds.y_val, seed, reference=path == "old")
            t[path] += s
            row[path] = acc | {"seconds": round(s, 2)}
        runs.append(row)
        print(name, row, flush=True)
    return {"model": c.label, "seconds_old": round(t["old"], 2), "seconds_new": round(t["new"], 2),
            "speed_up": round(t["old"] / t["new"], 2), "new_kernel": classical.TORCH_KERNEL[name],
            "same_accuracies": all(r["old"][k] == r["new"][k] for r in runs for k in ACC),
            "max_abs_accuracy_difference": {k: max(abs(r["old"][k] - r["new"][k]) for r in runs) for k in ACC},
            "mean_accuracy": {p: {k: sum(r[p][k] for r in runs) / len(runs) for k in ACC} for p in ("old", "new")},
            "runs": runs}


def main() -> None:
    import torch

    from qmu_core import classical, data

    ds = data.mnist_1v9()
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "cores": os.cpu_count(), "torch": torch.__version__, "torch_threads": 1,
           "load_average_1_5_15_start": [round(x, 2) for x in os.getloadavg()],
           "setting": {"alpha": ALPHA, "runs": N_RUNS, "corruption": CORRUPTION, "n_train": len(ds.y_train),
                       "n_val": len(ds.y_val)},
           }
    for name in classical.IMAGE_FAMILIES:
        res[name] = family(ds, name)
    res["load_average_1_5_15_end"] = [round(x, 2) for x in os.getloadavg()]
    res["note"] = NOTE
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k not in classical.IMAGE_FAMILIES}, indent=1))
    for name in classical.IMAGE_FAMILIES:
        print(name, {k: v for k, v in res[name].items() if k != "runs"})


if __name__ == "__main__":
    main()
