"""Where the noise chapter's batched XXZ runs could be computed: this process vs two workers (issue 20).

The same 40 runs of the chapter (XXZ QNN, fixed gauge, label flipping, alphas 0.1-0.4, runs
0-9, depolarising p = 0.01, the paper's 200 epochs: four batches of ten) are computed from an
empty cache twice, on the same machine and load: ``workers``, on a local cluster of one
single-threaded worker per core (the chapter's way), and ``process``, in this process with
XLA's own threads. Compilation is part of both (once per process). Records the wall-clock
seconds, runs a minute, and whether the records are bit-identical.

Measured 2026-12-07 (2 cores): the process was 1.4x faster, but its records were not
bit-identical (multi-threaded XLA sums in another order; 3 of 40 runs changed an accuracy).
A run's numbers must not depend on where it ran (its cache key does not say), so the chapter
keeps computing every run on single-threaded workers.

Writes benchmarks/results/noise_where.json.

    PYTHONPATH=. python benchmarks/noise_where.py
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "noise_where.json"


def main() -> None:
    from qmu_core import noise_study as ns
    from qmu_core.io import atomic_write_text
    from qmu_core.parallel import local_cluster, usable_cores

    setting = ns.Setting("depolarizing", 0.01)
    runs = [ns.Run("xxz", setting, "label_flip", a, k) for a in (0.1, 0.2, 0.3, 0.4) for k in range(10)]
    n = usable_cores()
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "usable_cores": n, "runs": len(runs), "setting": "XXZ, depolarizing p=0.01, label_flip, alphas 0.1-0.4",
           "load_average_1_5_15_start": [round(x, 2) for x in os.getloadavg()]}
    tables = {}
    for where in ("workers", "process"):
        with tempfile.TemporaryDirectory() as d:
            os.environ["QMU_CACHE_DIR"] = d
            t = time.perf_counter()
            if where == "workers":
                with local_cluster(n) as cluster:
                    df = ns.run_all(runs, progress=False, scheduler=cluster.scheduler_address)
            else:
                df = ns.run_all(runs, progress=False, workers=1)
            s = time.perf_counter() - t
        tables[where] = df.drop(columns="seconds")
        res[where] = {"seconds": round(s, 1), "runs_per_minute": round(60 * len(runs) / s, 1)}
        print(where, res[where], flush=True)
    res["bit_identical_records"] = bool(tables["workers"].equals(tables["process"]))
    res["speed_up"] = round(res["workers"]["seconds"] / res["process"]["seconds"], 2)
    res["load_average_1_5_15_end"] = [round(x, 2) for x in os.getloadavg()]
    atomic_write_text(OUT, json.dumps(res, indent=1) + "\n")
    print(res)


if __name__ == "__main__":
    main()
