"""On a GPU: a QNN sweep trained one run at a time (XLA kernel) vs in batches of runs.

The resilience chapter's QNN sweep of one dataset under label flipping, every alpha of the
paper x ``--n-runs`` runs, at ``--epoch-scale`` x the paper's epochs:

* ``serial``: each run by :func:`qmu_core.training.train` (on a GPU, the XLA kernel
  :meth:`QNN.expectation`), one after the other, as the sweeps ran before batching;
* ``batched``: the same runs by :func:`qmu_core.sweep.compute_runs`, which on an accelerator
  trains them :data:`qmu_core.batched.BATCH_RUNS` at a time (:mod:`qmu_core.batched`).

Both times include compilation (``*_first_s`` is the first run or batch alone). Also
recorded: the largest differences between the two (final losses and accuracies; batched
products round differently), and whether a run trained alone gives the bits it gets inside
a batch of other runs (``composition_invariant``: padding keeps the shapes fixed).

    python benchmarks/batched_gpu.py                    # -> benchmarks/results/batched_gpu.json
    python benchmarks/batched_gpu.py --dataset xxz --n-runs 5 --epoch-scale 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "batched_gpu.json"
sys.path.insert(0, str(OUT.parents[2]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("mnist", "xxz"), default="mnist")
    ap.add_argument("--n-runs", type=int, default=2, help="runs per alpha (10 alphas)")
    ap.add_argument("--epoch-scale", type=float, default=0.2, help="fraction of the paper's epochs")
    ap.add_argument("--allow-cpu", action="store_true", help="run on a CPU too (a smoke test; no meaningful times)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()

    import jax
    import numpy as np

    from qmu_core import batched, data, resilience, sweep
    from qmu_core.io import atomic_write_text
    from qmu_core.training import train

    backend = jax.default_backend()
    if backend == "cpu" and not args.allow_cpu:
        sys.exit("JAX found no accelerator (jax.default_backend() == 'cpu'); --allow-cpu for a smoke test")
    if backend == "cpu":  # make the CPU take the accelerator's path
        jax.default_backend = lambda: "gpu"

    ds = data.load(args.dataset)
    (spec,) = [s for s in resilience.resilience_specs(args.dataset, n_runs=args.n_runs, epoch_scale=args.epoch_scale,
                                                      corruptions=("label_flip",)) if s.model.kind == "qnn"]
    items = [(a, r) for a in spec.alphas for r in range(spec.n_runs)]

    def serial_one(a, r):
        cs = sweep._corrupted(ds, spec, a, r)
        _, _, h = train(spec.model, cs.x, cs.y, ds.x_val, ds.y_val, spec.cfg, seed=sweep._train_seed(ds, spec, a, r),
                        dtype=spec.dtype)
        return h.final

    t0 = time.perf_counter()
    serial = [serial_one(*items[0])]
    serial_first = time.perf_counter() - t0
    serial += [serial_one(a, r) for a, r in items[1:]]
    serial_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    first = sweep.run_batch(ds, spec, items[: batched.BATCH_RUNS])
    batched_first = time.perf_counter() - t0
    recs = first + sweep.compute_runs(ds, spec, items[batched.BATCH_RUNS:])
    batched_s = time.perf_counter() - t0

    alone = sweep.run_batch(ds, spec, [items[-1]])[0]
    keys = ("train_loss", "train_acc", "val_loss", "val_acc")
    diff = {k: float(max(abs(s[k] - b[k]) for s, b in zip(serial, recs))) for k in keys}
    doc = {
        "device": str(jax.devices()[0].device_kind), "backend": backend, "jax": jax.__version__,
        "dataset": args.dataset, "model": spec.model.label, "corruption": spec.corruption,
        "epochs": spec.cfg.epochs, "batch_size": spec.cfg.batch_size, "runs": len(items),
        "batch_runs": batched.BATCH_RUNS, "kernel": sweep.qnn_sweep_kernel(),
        "serial_s": round(serial_s, 2), "serial_first_s": round(serial_first, 2),
        "batched_s": round(batched_s, 2), "batched_first_s": round(batched_first, 2),
        "speedup": round(serial_s / batched_s, 2),
        "max_abs_difference_serial_vs_batched": diff,
        "composition_invariant": all(alone[k] == recs[-1][k] for k in keys)
                                 and alone["history"] == recs[-1]["history"],
        "val_acc_mean": {"serial": float(np.mean([s["val_acc"] for s in serial])),
                         "batched": float(np.mean([r["val_acc"] for r in recs]))},
    }
    atomic_write_text(args.out, json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
