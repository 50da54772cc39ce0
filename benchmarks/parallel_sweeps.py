"""Parallel sweeps: wall time in this process (workers=1) vs a LocalCluster of 2 workers.

Each measurement is one fresh Python process that computes a sweep from an empty cache,
as a chapter does: ``qmu_core.parallel.run_sweeps(jobs, workers=W)``, imports, compilation
and (for W = 2) the cluster's start-up included. The records of both are compared bit for
bit (all fields but ``seconds``). Also measured: the start-up of a 2-worker cluster, until
both workers have imported ``qmu_core.sweep`` (what every execution pays once).

* ``tiny``: the test sweeps (MNIST, 40 training images, 3 epochs; MLP and QNN D=2, 8 runs);
* ``mnist-0.1``, ``mnist-1``: the resilience chapter's MNIST MLP and QNN D=6 under label
  flipping, alpha in {0, 0.2, 0.4, 0.6, 0.8}, 2 runs (20 trainings), at 0.1 x and 1 x the
  paper's epochs.

    python benchmarks/parallel_sweeps.py      # -> benchmarks/results/parallel_sweeps.json
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "parallel_sweeps.json"
ROOT = OUT.parents[2]


def jobs(case: str):
    from qmu_core import data, resilience
    from qmu_core.config import ModelSpec, TrainConfig
    from qmu_core.sweep import SweepSpec

    if case == "tiny":
        ds, cfg = data.mnist_1v9(n_per_class=20, n_val=30), TrainConfig(3, 16, 0.05)
        return [(ds, SweepSpec(ModelSpec("mlp", hidden=(8, 4)), "label_flip", (0.0, 0.4), 2, cfg)),
                (ds, SweepSpec(ModelSpec("qnn", depth=2), "feature_random", (0.0, 0.4), 2, cfg))]
    ds = data.load("mnist")
    specs = resilience.resilience_specs("mnist", alphas=(0.0, 0.2, 0.4, 0.6, 0.8), n_runs=2,
                                        epoch_scale=float(case.split("-")[1]), corruptions=("label_flip",))
    return [(ds, s) for s in specs]


def child(case: str, workers: int, out: str) -> None:
    t = time.perf_counter()
    from qmu_core.parallel import run_sweeps

    recs = run_sweeps(jobs(case), workers=workers, progress=False)
    wall = time.perf_counter() - t
    Path(out).write_text(json.dumps({"wall_s": wall, "records": recs}))


def startup() -> dict:
    """Seconds to start a 2-worker LocalCluster, and until both workers have loaded qmu_core."""
    from distributed import Client

    from qmu_core import worker
    from qmu_core.parallel import local_cluster

    t = time.perf_counter()
    with local_cluster(2) as cluster, Client(cluster) as client:
        started = time.perf_counter() - t
        client.register_plugin(worker.WorkerSetup())
        client.run(lambda: __import__("qmu_core.sweep"))
        loaded = time.perf_counter() - t
    return {"cluster_start_s": round(started, 2), "workers_ready_s": round(loaded, 2),
            "close_s": round(time.perf_counter() - t - loaded, 2)}


def measure(case: str, workers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        env = {**os.environ, "QMU_CACHE_DIR": str(Path(tmp) / "cache"), "PYTHONPATH": str(ROOT)}
        env.pop("QMU_SCHEDULER", None)
        subprocess.run([sys.executable, __file__, "child", case, str(workers), str(out)], env=env, check=True)
        return json.loads(out.read_text())


def main() -> None:
    if sys.argv[1:2] == ["child"]:
        return child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    sys.path.insert(0, str(ROOT))
    from qmu_core.io import atomic_write_text
    from qmu_core.parallel import usable_cores

    doc = {"machine": platform.processor() or platform.machine(), "usable_cores": usable_cores(),
           "load_average_before": os.getloadavg(), "startup": startup(), "cases": {}}
    for case in ("tiny", "mnist-0.1", "mnist-1"):
        serial, par = measure(case, 1), measure(case, 2)
        strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in job] for job in serial["records"]]
        same = strip == [[{k: v for k, v in r.items() if k != "seconds"} for r in job] for job in par["records"]]
        doc["cases"][case] = {"runs": sum(len(j) for j in serial["records"]),
                              "serial_wall_s": round(serial["wall_s"], 1), "workers2_wall_s": round(par["wall_s"], 1),
                              "speedup": round(serial["wall_s"] / par["wall_s"], 2), "identical_records": same}
        print(case, doc["cases"][case], flush=True)
    doc["load_average_after"] = os.getloadavg()
    atomic_write_text(OUT, json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
