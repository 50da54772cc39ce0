"""On a GPU machine: the resilience chapter's trainings at the paper's scale, timed.

    python benchmarks/gpu_chapter.py               # -> benchmarks/results/gpu_resilience.json

Every sweep of the resilience chapter at its defaults (``ResilienceParams()``), from an
empty cache (a temporary folder): the QNN sweeps in this process, trained in batches of
runs on the accelerator (:mod:`qmu_core.batched`); the MLP sweeps, which are PyTorch on the
CPU, on a local Dask cluster with one worker per core (``--mlp-workers``). Records the wall
time of each part, the device, and the mean validation accuracies per curve, so that they
can be set beside the CPU execution of the book (the QNN numbers round differently on the
XLA kernel, so they are not bit-identical to the CPU book).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "gpu_resilience.json"
sys.path.insert(0, str(OUT.parents[2]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlp-workers", type=int, default=0, help="Dask workers for the MLP sweeps (0: one per core)")
    ap.add_argument("--skip-mlp", action="store_true", help="time only the QNN sweeps")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    os.environ["QMU_CACHE_DIR"] = tempfile.mkdtemp(prefix="qmu-gpu-")

    import jax

    from qmu_core import resilience
    from qmu_core.io import atomic_write_text
    from qmu_core.parallel import usable_cores

    if jax.default_backend() == "cpu":
        sys.exit("JAX found no accelerator; this benchmark is for a GPU machine")
    P = resilience.ResilienceParams()
    jobs = P.jobs()
    out = {"device": str(jax.devices()[0]), "jax": jax.__version__, "cpu_cores": usable_cores(), "parts": {}}
    frames = []
    for part, kind, workers in (("qnn", "qnn", 0), ("mlp", "mlp", args.mlp_workers)):
        if part == "mlp" and args.skip_mlp:
            continue
        sub = [(ds, s) for ds, s in jobs if s.model.kind == kind]
        t0 = time.perf_counter()
        df = resilience.run(sub, progress=False, workers=workers)
        seconds = time.perf_counter() - t0
        frames.append(df)
        out["parts"][part] = {"trainings": len(df), "wall_seconds": round(seconds, 1),
                              "workers": workers or ("in process" if kind == "qnn" else usable_cores())}
        print(part, out["parts"][part], flush=True)
    import pandas as pd

    df = pd.concat(frames)
    means = df.groupby(["dataset", "gauge", "model", "corruption", "alpha"]).val_acc.mean().round(4)
    out["val_acc_mean"] = {"|".join(map(str, k)): v for k, v in means.items()}
    out["total_wall_seconds"] = round(sum(p["wall_seconds"] for p in out["parts"].values()), 1)
    atomic_write_text(args.out, json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "val_acc_mean"}, indent=2))


if __name__ == "__main__":
    main()
