"""Does single precision change any accuracy of the book? One sweep, complex64 vs complex128.

The MNIST QNN (10 qubits, D = 6, the paper's hyperparameters) under label flipping,
alpha = 0.0 ... 0.9, run 0 of the resilience chapter's sweep, once with the complex64
kernel (the book's setting; read from the sweep cache if present) and once in complex128
(JAX x64 enabled in that process only). Writes benchmarks/results/precision.json with both sets of final accuracies.

    python benchmarks/precision.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "precision.json"


def child(dtype: str) -> None:
    import jax

    if dtype == "complex128":
        jax.config.update("jax_enable_x64", True)
    from qmu_core import data, resilience
    from qmu_core.sweep import run_sweep

    ds = data.load("mnist")
    # the resilience chapter's own sweep (5 runs); only run 0 is compared. The complex64
    # side is read from the sweep cache when the chapter has been executed.
    (spec,) = [s for s in resilience.resilience_specs("mnist", dtype=dtype, corruptions=("label_flip",))
               if s.model.kind == "qnn"]
    t = time.perf_counter()
    recs = run_sweep(ds, spec, cache=dtype == "complex64", progress=False, runs=[0])
    print("RESULT " + json.dumps({"seconds": time.perf_counter() - t,
                                  "runs": [{k: r[k] for k in ("alpha", "train_acc", "val_acc", "train_loss", "val_loss")}
                                           for r in recs]}))


def main() -> None:
    if len(sys.argv) == 2:
        return child(sys.argv[1])
    res = {}
    for dtype in ("complex64", "complex128"):
        out = subprocess.run([sys.executable, __file__, dtype], capture_output=True, text=True, check=True,
                             env={**os.environ, "JAX_ENABLE_X64": "0"})
        res[dtype] = json.loads([l for l in out.stdout.splitlines() if l.startswith("RESULT ")][-1][7:])
    a, b = res["complex64"]["runs"], res["complex128"]["runs"]
    diffs = {k: max(abs(x[k] - y[k]) for x, y in zip(a, b)) for k in ("train_acc", "val_acc", "train_loss", "val_loss")}
    n_val, n_train = 1000, 500
    doc = {"sweep": "MNIST QNN D=6, label flipping, alpha 0..0.9, run 0", **res, "max_abs_difference": diffs,
           "differing_val_predictions": round(diffs["val_acc"] * n_val),
           "differing_train_predictions": round(diffs["train_acc"] * n_train)}
    sys.path.insert(0, str(OUT.parents[2]))
    from qmu_core.io import atomic_write_text

    atomic_write_text(OUT, json.dumps(doc, indent=2) + "\n")
    print(f"{'alpha':>6}{'val c64':>10}{'val c128':>10}{'train c64':>11}{'train c128':>11}")
    for x, y in zip(a, b):
        print(f"{x['alpha']:>6.1f}{x['val_acc']:>10.3f}{y['val_acc']:>10.3f}{x['train_acc']:>11.3f}{y['train_acc']:>11.3f}")
    print("max |difference|:", {k: f"{v:.2g}" for k, v in diffs.items()})


if __name__ == "__main__":
    main()
