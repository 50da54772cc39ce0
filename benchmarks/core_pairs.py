"""How much a second worker adds on this machine: each workload alone on one core, then two
copies at once on two cores, in one run.

The book's chapters run one single-threaded worker per core (:mod:`qmu_core.parallel`), so
their wall-clock time assumes that two workers on two cores do twice the work of one. On a
virtual machine the two "cores" may share one physical core's arithmetic units (two hardware
threads), and then a workload that keeps those units busy gains little from the second
worker. Each workload is timed in a fresh process pinned to one core with the workers'
environment (:func:`qmu_core.worker.single_thread_env`), compiled and warmed up first:

* ``matmul``: float32 1024 x 1024 matrix products (NumPy, one BLAS thread), dense arithmetic;
* ``xxz_qnn``: one XXZ QNN resilience run (12 qubits, D = 4, the adjoint kernel), the most
  numerous training of the book;
* ``mnist_noisy``: 10 epochs of one MNIST run of the noise chapter (depolarising p = 0.01,
  the Pauli kernel, 4^10 floats per tensor), the noise chapter's largest item;
* ``resnet``: one ResNet run of the classical chapter (width 8, 20 epochs, PyTorch).

``pair_speed_up`` = 2 x (seconds alone) / (seconds of each copy in the pair): 2 when the two
cores are independent, 1 when the second worker adds nothing. Writes
benchmarks/results/core_pairs.json.

    PYTHONPATH=. python benchmarks/core_pairs.py
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results" / "core_pairs.json"
WORKLOADS = ("matmul", "xxz_qnn", "mnist_noisy", "resnet")


def _prepare(name: str):
    """A zero-argument function doing one unit of ``name``'s work (compiled on return)."""
    import numpy as np

    if name == "matmul":
        a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)

        def work():
            for _ in range(40):
                a @ a
        return work
    if name == "xxz_qnn":
        from qmu_core import data, sweep
        from qmu_core.config import paper_setting
        from qmu_core.resilience import final_only

        ds = data.xxz()
        m, cfg = paper_setting("xxz", "qnn")
        spec = sweep.SweepSpec(m, "label_flip", (0.3,), 5, final_only(cfg))
        return lambda: sweep.run_one(ds, spec, 0.3, 0)
    if name == "mnist_noisy":
        import jax.numpy as jnp

        from qmu_core import noise_study as ns
        from qmu_core.qnn import QNN
        from qmu_core.sweep import _corrupted

        r = ns.Run("mnist", ns.Setting("depolarizing", 0.01), "label_flip", 0.3, 0)
        cs = _corrupted(r.ds, r.spec, r.alpha, r.run)
        m = r.spec.model
        model = QNN(r.ds.n_qubits, m.depth, m.rotations, m.entangler)
        sim, opt, epoch, _ = ns._trainer(model, r.setting.noise_model, r.setting.shots, r.spec.cfg, len(cs.x))
        k_init, key, shot_key = ns._keys(0)
        params = model.init(k_init)
        x, y = sim.inputs(cs.x), jnp.asarray(cs.y, np.float32)

        def work():
            p, s, k, sk = params, opt.init(params), key, shot_key
            for _ in range(10):
                p, s, k, sk = epoch(p, s, k, sk, x, y)
            p.block_until_ready()
        return work
    if name == "resnet":
        from qmu_core import classical, data
        from qmu_core.corruption import corrupt

        ds = data.mnist_1v9()
        spec = classical.ClassicalSpec("resnet")
        cs = corrupt(ds.x_train, ds.y_train, 0.3, "label_flip", seed=0)
        return lambda: classical.fit_evaluate(spec, cs.x, cs.y, ds.x_val, ds.y_val, seed=0)
    raise ValueError(f"workload must be one of {WORKLOADS}, got {name!r}")


def _child(name: str, core: int, barrier, out, repeats: int) -> None:
    # pinned before anything starts a thread (threads inherit the affinity of their creator;
    # importing qmu_core.worker loads NumPy and its BLAS pool)
    os.sched_setaffinity(0, {core})
    from qmu_core.worker import single_thread_env

    os.environ.update(single_thread_env())
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # a BLAS pool sized before the environment was set
    work = _prepare(name)
    work()  # compile, warm caches
    barrier.wait()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    out.put((core, min(times)))


def _timed(name: str, cores: list[int], repeats: int) -> list[float]:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(len(cores)), ctx.Queue()
    procs = [ctx.Process(target=_child, args=(name, c, barrier, out, repeats)) for c in cores]
    for p in procs:
        p.start()
    res = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return [s for _, s in sorted(res)]


def main() -> int:
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("core_pairs needs at least two usable cores")
    record = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores", "cores_used": cores[:2],
              "load_average_1_5_15_start": [round(v, 2) for v in os.getloadavg()], "workloads": {}}
    try:
        record["cpu"] = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                             if line.lower().startswith("model name"))
    except (OSError, StopIteration):
        pass
    for name in WORKLOADS:
        alone = _timed(name, cores[:1], 3)[0]
        pair = _timed(name, cores[:2], 3)
        record["workloads"][name] = {"seconds_alone": round(alone, 3), "seconds_each_in_pair": [round(s, 3) for s in pair],
                                     "pair_speed_up": round(2 * alone / max(pair), 2)}
        print(name, record["workloads"][name], flush=True)
    record["load_average_1_5_15_end"] = [round(v, 2) for v in os.getloadavg()]
    from qmu_core.io import atomic_write_text

    atomic_write_text(OUT, json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
