"""Dask's MALLOC_TRIM_THRESHOLD_ vs glibc's default, for the sweeps' runs on a worker.

Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``; that setting also
switches off glibc's dynamic mmap threshold, so that every buffer over 128 KiB is mapped,
zeroed by the kernel page by page, and unmapped again. ``qmu_core.parallel.local_cluster``
now unsets it (:data:`qmu_core.parallel.KEEP_GLIBC_MALLOC`). This script computes the same
runs on a one-worker LocalCluster both ways, alternating (Dask's setting, then ours, case by
case, so a change of the machine's load hits both), each task measuring its own wall,
user and system time and minor page faults (``getrusage`` in the worker), and checks that
the records are identical apart from their ``seconds``. The cases are one run or batch of
each kind of work in the book: a classical ResNet run and CNN run (PyTorch), an MNIST QNN
run (numba kernel), an XXZ QNN run, and a batch of 10 MLP runs (JAX). It writes
benchmarks/results/worker_malloc.json.

    PYTHONPATH=. python benchmarks/worker_malloc.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "worker_malloc.json"
TRIM = "MALLOC_TRIM_THRESHOLD_"


def cases():
    """(name, dataset, spec, items): one task of each kind, at alpha = 0.3."""
    from qmu_core import classical, resilience

    out = []
    cl = classical.ClassicalParams(n_runs=5, alphas=[0.3], xxz=False, alternatives=False)
    for ds, spec in cl.jobs():
        if spec.model.kind in ("resnet", "cnn") and spec.corruption == "label_flip":
            out.append((f"{spec.model.kind} (MNIST, one run)", ds, spec, [(0.3, 0)]))
    res = resilience.ResilienceParams(n_runs=10, alphas=[0.3])
    for ds, spec in res.jobs():
        if spec.corruption != "label_flip" or resilience.gauge_of(ds) not in ("fixed", "none"):
            continue
        name = f"{spec.model.kind} ({ds.name})"
        if spec.model.kind == "qnn" and not any(n.startswith(name) for n, *_ in out):
            out.append((f"{name}, one run", ds, spec, [(0.3, 0)]))
        elif spec.model.kind == "mlp" and ds.name.startswith("xxz") and not any(n.startswith(name) for n, *_ in out):
            out.append((f"{name}, a batch of 10 runs", ds, spec, [(0.3, r) for r in range(10)]))
    return out


def task(ds, spec, items):
    """Run in the worker: the records and this process's resource use while computing them."""
    import resource

    from qmu_core import sweep

    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    recs = sweep.compute_runs(ds, spec, items)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": round(time.perf_counter() - t0, 2), "user_s": round(r1.ru_utime - r0.ru_utime, 2),
            "sys_s": round(r1.ru_stime - r0.ru_stime, 2), "minor_faults": r1.ru_minflt - r0.ru_minflt,
            "trim_threshold": os.environ.get(TRIM), "records": recs}


def on_worker(dask_default: bool, ds, spec, items) -> dict:
    """``task`` on a fresh one-worker local cluster, with Dask's malloc setting or with ours."""
    from distributed import Client

    from qmu_core import parallel, worker

    keep = parallel.KEEP_GLIBC_MALLOC
    if dask_default:
        parallel.KEEP_GLIBC_MALLOC = {}
    try:
        with parallel.local_cluster(1) as cluster, Client(cluster) as client:
            client.register_plugin(worker.WorkerSetup())
            client.submit(task, ds, spec, items[:1], pure=False).result()  # warm-up: imports, compilation
            return client.submit(task, ds, spec, items, pure=False).result()
    finally:
        parallel.KEEP_GLIBC_MALLOC = keep
        os.environ.pop(TRIM, None)  # the nanny also sets it in this process, where the next cluster would inherit it


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from qmu_core.book.timings import machine_description
    from qmu_core.io import atomic_write_text

    os.environ.pop(TRIM, None)
    doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "machine": machine_description(),
           "cores": os.cpu_count(), "load_average_start": [round(x, 2) for x in os.getloadavg()],
           "note": "one worker, one thread; each side warmed up by one run of the same spec first; "
                   "old = Dask's MALLOC_TRIM_THRESHOLD_=65536, new = unset (glibc's default)", "cases": []}
    for name, ds, spec, items in cases():
        row, recs = {"what": f"{name} on a Dask worker"}, {}
        for side, default in (("dask_default", True), ("qmu", False)):
            r = on_worker(default, ds, spec, items)
            row[side] = {k: v for k, v in r.items() if k != "records"}
            recs[side] = [{k: v for k, v in rec.items() if k != "seconds"} for rec in r["records"]]
        a, b = recs["dask_default"], recs["qmu"]
        same = json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # as text: NaN losses, NaN != NaN
        diff = max(abs(x["val_acc"] - y["val_acc"]) for x, y in zip(a, b))
        row |= {"seconds_old": row["dask_default"]["wall_s"], "seconds_new": row["qmu"]["wall_s"],
                "speed_up": round(row["dask_default"]["wall_s"] / row["qmu"]["wall_s"], 2), "identical_records": same,
                "max_abs_accuracy_difference": {"val_acc": diff}}  # the other speed benchmarks' shape
        doc["cases"].append(row)
        print(name, json.dumps(row), flush=True)
    doc["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    atomic_write_text(OUT, json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
