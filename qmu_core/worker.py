"""What a Dask worker of the parallel sweeps (:mod:`qmu_core.parallel`) runs.

This module is what a worker imports first (it is imported by reference when the plugin and
the tasks reach it), so it imports nothing of JAX, PyTorch or numba: their thread pools are
sized when they load, and :class:`WorkerSetup` must set the environment before that.
"""

from __future__ import annotations

import atexit
import os
import sys
import warnings

from distributed import WorkerPlugin

# XLA's CPU client otherwise runs large operations on one thread per core
XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
_LOADED_WITH_POOLS = ("jax", "torch", "numba")


def single_thread_env(environ=None) -> dict[str, str]:
    """The environment variables that make a process compute on one thread: the QNN's CPU
    kernel (``QMU_KERNEL_THREADS``), XLA, and the OpenMP/BLAS pools of PyTorch and NumPy.
    One worker process per core then uses each core once (no oversubscription). Flags
    already in ``XLA_FLAGS`` are kept."""
    environ = os.environ if environ is None else environ
    xla = environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in xla:
        xla = f"{xla} {XLA_SINGLE_THREAD}".strip()
    return {"QMU_KERNEL_THREADS": "1", "XLA_FLAGS": xla, "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


class WorkerSetup(WorkerPlugin):
    """Prepares every worker of the cluster for the sweeps' tasks, once, before the first.

    * Sets :func:`single_thread_env` before the worker's first task imports JAX. Local
      clusters get these variables when their processes start; the plugin does the same on
      a remote cluster's workers (``dask worker``). A worker that already loaded JAX,
      PyTorch or numba with other settings keeps its thread pools: it says so in its log
      (restart the workers to apply them).
    * Ends the worker process at the start of its exit, skipping the interpreter's teardown:
      with PyTorch loaded that teardown took 2-3 s (measured), so closing a cluster waited
      for the Nanny's 4 s timeout, which then killed the workers with a warning on stderr.
      Every result has reached the client by then.
    """

    name = "qmu-worker-setup"

    def setup(self, worker):
        env = single_thread_env()
        changed = sorted(k for k, v in env.items() if os.environ.get(k) != v)
        os.environ.update(env)
        loaded = [m for m in _LOADED_WITH_POOLS if m in sys.modules]
        if changed and loaded:
            warnings.warn(f"worker {worker.address}: {', '.join(loaded)} already loaded, so {', '.join(changed)} "
                          "cannot take effect before a restart of the worker", RuntimeWarning)
        atexit.register(os._exit, 0)  # registered after the others' handlers, so it runs before them


def compute(ds, spec, items, key: str, x64: bool) -> list[dict]:
    """One task: the records of the runs ``items`` of ``spec`` on ``ds``
    (:func:`qmu_core.sweep.compute_runs`), with JAX's x64 mode as in the client, after checking
    that this worker would file them under the client's cache ``key`` (same code version,
    kernel and dataset), since the client writes them there."""
    import jax

    from .sweep import cache_key, compute_runs

    mine = cache_key(ds, spec)
    if mine != key:
        raise RuntimeError(
            f"worker: the runs of {spec.model.label} on {ds.name} would be cached under key {mine} here but "
            f"{key} by the client: the worker's qmu_core, QNN kernel (JAX backend {jax.default_backend()!r}) "
            "or dataset differs from the client's; install the client's version of qmu on the workers")
    with jax.enable_x64(x64):
        return compute_runs(ds, spec, items)


def compute_unlearning(ds, task, key: str, x64: bool) -> dict:
    """One task of the unlearning chapters (:func:`qmu_core.unlearning_study.compute`): ``task``
    travels without its dataset (scattered once to every worker), after the same check as
    :func:`compute` that this worker would cache it under the client's ``key``."""
    from dataclasses import replace

    import jax

    from .unlearning_study import compute as compute_task

    task = replace(task, ds=ds)
    if task.key() != key:
        raise RuntimeError(f"worker: the unlearning task {task.identity()} has cache key {task.key()} here but {key} "
                           "on the client: install the client's version of qmu on the workers")
    with jax.enable_x64(x64):
        return compute_task(task)


def compute_landscape(run, key: str, x64: bool) -> dict:
    """One run of the landscape chapter (:func:`qmu_core.landscape_study.compute`), after the
    same check as :func:`compute` that this worker would cache it under the client's ``key``."""
    import jax

    from .landscape_study import compute as compute_run

    if run.key() != key:
        raise RuntimeError(f"worker: the landscape run {run.identity()} has cache key {run.key()} here but {key} "
                           "on the client: install the client's version of qmu on the workers")
    with jax.enable_x64(x64):
        return compute_run(run)


def compute_task(module: str, task, key: str, x64: bool, function: str = "compute"):
    """One task of a chapter whose tasks carry their own data (``module.compute(task)``, e.g.
    :mod:`qmu_core.noise_study`, :mod:`qmu_core.depth_study`; ``function`` names another
    function of ``module``, e.g. ``compute_batch``, with ``task`` and ``key`` lists of tasks
    and their keys), after the same check as :func:`compute` that this worker would cache
    each under the client's key."""
    import importlib

    import jax

    if not module.startswith("qmu_core."):
        raise ValueError(f"worker: {module!r} is not a qmu_core module")
    batch = isinstance(task, list)  # a batch: a list of tasks and a list of their keys
    for t, k in zip(task, key) if batch else [(task, key)]:
        if t.key() != k:
            raise RuntimeError(f"worker: the task {t.identity()} of {module} has cache key {t.key()} here but "
                               f"{k} on the client: install the client's version of qmu on the workers")
    with jax.enable_x64(x64):
        return getattr(importlib.import_module(module), function)(task)
