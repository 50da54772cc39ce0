"""Parallel sweeps: the missing runs of a chapter's sweeps computed by Dask workers.

:func:`run_sweeps` takes every sweep of a chapter at once (both datasets of the resilience
chapter, the nine models of the capacity chapter), reads what the cache already holds, and
sends only the missing runs to one pool of workers, so that hundreds of trainings share
all the cores. The workers compute and return records; this process (the client) writes
each run's cache file as soon as its result arrives, so the cache stays the one source of
truth and a remote cluster needs no shared file system. An interrupted execution keeps
every run that had arrived and resumes from there.

Where the runs are computed:

* by default, a :class:`distributed.LocalCluster` started for the call with one
  single-threaded worker process per usable core (``workers`` sets another number;
  ``workers=1`` computes in this process, without Dask);
* on an existing cluster when ``scheduler`` (``"tcp://host:8786"``) or else the environment
  variable ``QMU_SCHEDULER`` names its scheduler (the README's "Running the sweeps on a
  cluster");
* in this process when JAX runs on an accelerator here (the QNN runs are then trained in
  batches on the device, :mod:`qmu_core.batched`) and neither is given.

A run's numbers do not depend on where it ran. The workers compute on one thread each
(:func:`qmu_core.worker.single_thread_env`), this process with its own settings, and both
give the same bits: the QNN kernel adds its chunks in a fixed order whatever its number of
threads, and XLA's threads do not change the results of the MLP batches' programs
(:mod:`qmu_core.mlp_batched`; paper-sized XXZ batches compared bitwise) or of the few
operations left to it in the QNN runs. tests/test_sweeps.py checks it on the test sweeps,
``benchmarks/parallel_sweeps.py`` on 20 paper-sized MNIST trainings.

:func:`compute_cached` does the same for tasks that are not sweeps (the unlearning chapters'
tasks, the landscape chapter's runs): cache first, the rest in this process or on the same
workers, each record cached by this process as it arrives. The unlearning records are
bit-identical either way (tests/test_unlearning.py); the landscape records agree in every
trained parameter and differ only in the last bits of eigenvalue and Hutchinson estimates.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import dask
import jax
from tqdm import tqdm  # plain text bars: they land in the executed notebooks as stderr

from .data import Dataset
from .sweep import (SweepSpec, cache_folder, cache_key, compute_runs, identity, read_entry, run_file,
                    task_groups, write_entry)
from .validation import ParameterError, check_int

SCHEDULER_ENV = "QMU_SCHEDULER"
PROGRESS_MININTERVAL = 2.0  # seconds between redraws of the progress bar
MAX_LISTED_PROBLEMS = 10  # invalid cache files named one by one in the warning
_ADDRESS = re.compile(r"(tcp|tls|ucx|ws|wss)://[^\s/:]+(:\d{1,5})?")

log = logging.getLogger(__name__)


class CacheWarning(UserWarning):
    """A sweep cache file was found invalid; its run is computed again."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, not the machine's core count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def check_scheduler(value, source: str = "parameter 'scheduler'") -> str:
    """``scheduler``: '' or None (none) or a Dask scheduler address such as
    ``tcp://host:8786``; ``source`` names where the value came from in the error."""
    if value is not None and not isinstance(value, str):
        raise ParameterError(f"{source} must be a string, got {value!r} ({type(value).__name__})")
    value = (value or "").strip()
    if value and not _ADDRESS.fullmatch(value):
        raise ParameterError(f"{source} must be empty or a Dask scheduler address 'tcp://host:port' "
                             f"(or tls://, ucx://, ws://, wss://), got {value!r}")
    return value


def check_workers(value) -> int:
    """``workers``: 0 or None = one worker per usable core, 1 = in this process, n >= 2 = n
    local worker processes."""
    return 0 if value is None else check_int("workers", value, min=0)


def _where(scheduler, workers) -> tuple[str, str | int]:
    """('process', 1), ('local', n workers) or ('remote', address); see the module doc."""
    scheduler, workers = check_scheduler(scheduler), check_workers(workers)
    if scheduler and workers:
        raise ParameterError(f"parameters 'scheduler' ({scheduler!r}) and 'workers' ({workers}) exclude each "
                             "other: a cluster has its own workers; give one of them (workers=0 with a scheduler)")
    if workers == 1:
        return "process", 1
    if not scheduler and not workers:
        scheduler = check_scheduler(os.environ.get(SCHEDULER_ENV), f"environment variable {SCHEDULER_ENV}")
    if scheduler:
        return "remote", scheduler
    if workers == 0 and jax.default_backend() != "cpu":
        return "process", 1  # one accelerator: the QNN batches share it in this process
    return "local", workers or usable_cores()


def _check_jobs(jobs) -> list[tuple[Dataset, SweepSpec]]:
    if isinstance(jobs, tuple) or not isinstance(jobs, list):
        raise ParameterError(f"parameter 'jobs' must be a list of (Dataset, SweepSpec) pairs, got {type(jobs).__name__}")
    for i, job in enumerate(jobs):
        if not (isinstance(job, tuple) and len(job) == 2 and isinstance(job[0], Dataset)
                and isinstance(job[1], SweepSpec)):
            raise ParameterError(f"parameter 'jobs[{i}]' must be a (Dataset, SweepSpec) pair, got {job!r:.80}")
    return list(jobs)


@dataclass
class _Task:
    job: int
    items: list  # [(alpha, run), ...] computed together


@dataclass
class _Plan:
    """What the cache holds and what is left to compute for a list of jobs."""

    keys: list[str]  # cache key of each job
    out: list[list]  # per job, its records in order (None where still to compute)
    slots: dict = field(default_factory=dict)  # (key, alpha*1000, run) -> [(job, index), ...]
    files: dict = field(default_factory=dict)  # (key, alpha*1000, run) -> its cache file
    tasks: list[_Task] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # invalid cache files and what is wrong


def _plan(jobs, runs, cache: bool) -> _Plan:
    """Read every valid cache file of ``jobs``; list the runs to compute, each once even when
    two jobs ask for it, cut into tasks by :func:`qmu_core.sweep.task_groups`."""
    plan = _Plan(keys=[cache_key(ds, spec) for ds, spec in jobs], out=[])
    for j, (ds, spec) in enumerate(jobs):
        rr = range(spec.n_runs) if runs is None else [
            check_int(f"runs[{i}]", r, min=0, max=spec.n_runs - 1) for i, r in enumerate(runs)]
        items = [(a, r) for a in spec.alphas for r in rr]
        plan.out.append([None] * len(items))
        folder = cache_folder(ds, spec) if cache else None
        todo = []
        for i, (a, r) in enumerate(items):
            f = run_file(folder, a, r) if cache else None
            if cache:
                rec, problem = read_entry(f, identity(ds, spec, a, r))
                if rec is not None:
                    plan.out[j][i] = rec
                    continue
                if problem:
                    plan.problems.append(f"{f} ({problem})")
            uid = (plan.keys[j], round(a * 1000), r)
            if uid not in plan.slots:
                plan.slots[uid], plan.files[uid] = [], f
                todo.append((a, r))
            plan.slots[uid].append((j, i))
        plan.tasks += [_Task(j, g) for g in task_groups(spec, todo)]
    return plan


#: Dask's nanny starts every worker with MALLOC_TRIM_THRESHOLD_=65536 (its config
#: ``distributed.nanny.pre-spawn-environ``) so that workers hand freed memory back to the OS.
#: Setting it switches off glibc's dynamic mmap threshold: every buffer over 128 KiB (a
#: convolution's activations, an XLA temporary) is then a fresh mmap, zeroed page by page by
#: the kernel on first touch and unmapped when freed. Measured (benchmarks/worker_malloc.py):
#: a ResNet run of the classical chapter took 2.2-2.6x as long in a worker as in a plain
#: process, half of it system time. None unsets it (Dask's documented way); the numbers do
#: not change, only where their memory comes from. A remote cluster's workers (``dask
#: worker``) keep Dask's setting unless their own configuration unsets it the same way.
KEEP_GLIBC_MALLOC = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def local_cluster(n_workers: int):
    """A LocalCluster of ``n_workers`` single-threaded worker processes with
    :func:`qmu_core.worker.single_thread_env` set when they start (before they load JAX).
    No dashboard, and the scheduler's HTTP endpoints on a free port: on the default 8787,
    a second execution at the same time would print a warning into its chapter."""
    from distributed import LocalCluster

    from .worker import single_thread_env

    n_workers = check_int("workers", n_workers, min=1)
    env = single_thread_env()
    if jax.default_backend() != "cpu":  # workers=n on a GPU: JAX would give all its memory to the first
        env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    with dask.config.set(KEEP_GLIBC_MALLOC):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                            dashboard_address=None, scheduler_kwargs={"dashboard_address": ":0"}, env=env)


@contextmanager
def _client(where: str, arg):
    from distributed import Client

    if where == "remote":
        try:
            client = Client(arg, timeout="30s")
        except OSError as e:
            raise ConnectionError(f"cannot reach the Dask scheduler {arg!r} (parameter 'scheduler' or "
                                  f"${SCHEDULER_ENV}): {e}") from e
        with client:
            yield client
    else:
        with local_cluster(arg) as cluster, Client(cluster) as client:
            yield client


def compute_cached(items: list, *, cache_file, compute, submit, what: str, unit: str, progress: bool = True,
                   scheduler: str | None = None, workers: int | None = None, batch=None) -> list[dict]:
    """The records of ``items`` (tasks with an ``identity()``), read from their checksummed cache
    files (``cache_file(item)``) where valid, the rest computed where :func:`run_sweeps` computes
    runs: ``compute(item)`` in this process (``workers=1``, or a local cluster of one), else on
    Dask workers, where ``submit(client, todo)`` submits the items of ``todo`` (indices, in the
    order to run them) and returns {future: index}. Each record is cached by this process as it
    arrives; invalid cache files are named in a warning and computed again. Used by the
    unlearning and landscape chapters, whose tasks are not resilience sweeps.

    ``batch``: items computed together. ``batch(todo)`` splits the indices to compute into
    lists; ``compute`` then takes a list of items and returns their records in that order,
    and ``submit(client, groups)`` returns {future: list of indices} (the noise chapter's
    XXZ runs, trained a batch per program)."""
    out, todo, problems = [None] * len(items), [], []
    for i, item in enumerate(items):
        rec, problem = read_entry(cache_file(item), item.identity())
        if rec is not None:
            out[i] = rec
        else:
            todo.append(i)
            if problem:
                problems.append(f"{cache_file(item)} ({problem})")
    if problems:
        warnings.warn(f"{len(problems)} {what} cache file(s) are invalid and computed again: "
                      + "; ".join(problems[:10]), UserWarning, stacklevel=3)
    if not todo:
        return out
    where, arg = _where(scheduler, workers)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=what, unit=unit, disable=not progress,
               mininterval=2.0)

    def store(i: int, rec: dict) -> None:
        out[i] = rec
        write_entry(cache_file(items[i]), rec)
        bar.update(1)

    groups = batch(todo) if batch is not None else todo
    if batch is not None and sorted(i for g in groups for i in g) != sorted(todo):
        raise ValueError(f"compute_cached: batch() must split the {len(todo)} items to compute into groups")
    if where == "local" and min(arg, len(groups)) == 1:
        where = "process"

    def store_all(group, recs) -> None:
        if batch is None:
            store(group, recs)
            return
        if len(recs) != len(group):
            raise RuntimeError(f"compute_cached: a batch of {len(group)} {unit}s returned {len(recs)} records")
        for i, rec in zip(group, recs):
            store(i, rec)

    try:
        if where == "process":
            for g in groups:
                store_all(g, compute([items[i] for i in g] if batch is not None else items[g]))
        else:
            from distributed import as_completed

            from . import worker

            with _client(where, min(arg, len(groups)) if where == "local" else arg) as client:
                client.register_plugin(worker.WorkerSetup())
                futures = submit(client, groups)
                for f in as_completed(futures):
                    store_all(futures[f], f.result())
    finally:
        bar.close()
    return out


def run_sweeps(jobs, *, scheduler: str | None = None, workers: int | None = None, progress: bool = True,
               cache: bool = True, runs=None) -> list[list[dict]]:
    """Every (alpha, run) of every sweep in ``jobs`` (a list of (Dataset, SweepSpec)), from the
    cache where it holds them, the rest computed as the module doc says; per job, the list of
    records in the order of :func:`qmu_core.sweep.run_sweep` (alpha-major). ``runs``: only
    these run indices of each sweep. ``cache=False``: read and write no cache file. Invalid
    cache files are named in a :class:`CacheWarning` and computed again.

    The chapters call it through :func:`qmu_core.resilience.run` (all their sweeps at once).
    """
    jobs = _check_jobs(jobs)
    where, arg = _where(scheduler, workers)
    plan = _plan(jobs, runs, cache)
    if plan.problems:
        listed = "; ".join(plan.problems[:MAX_LISTED_PROBLEMS])
        more = len(plan.problems) - MAX_LISTED_PROBLEMS
        warnings.warn(f"{len(plan.problems)} sweep cache file(s) are invalid and their runs are computed again: "
                      f"{listed}{f'; and {more} more' if more > 0 else ''}", CacheWarning, stacklevel=2)
    if not plan.tasks:
        return plan.out
    if where == "local":
        arg = min(arg, len(plan.tasks))  # no idle workers
        where = "process" if arg == 1 else where
    total = sum(len(o) for o in plan.out)
    log.info("%d of %d runs to compute, %s", len(plan.slots), total,
             {"process": "in this process", "local": f"on {arg} local workers", "remote": f"on {arg}"}[where])
    ds0, spec0 = jobs[0]
    desc = f"{ds0.name} {spec0.model.label} {spec0.corruption}" if len(jobs) == 1 else f"{len(jobs)} sweeps"
    todo = sum(len(s) for s in plan.slots.values())
    bar = tqdm(total=total, initial=total - todo, desc=desc, unit="run", disable=not progress,
               mininterval=PROGRESS_MININTERVAL, miniters=1)

    def store(task: _Task, records: list[dict]) -> None:
        """Cache and place the records of a finished task, as soon as it finishes."""
        for (a, r), rec in zip(task.items, records, strict=True):
            uid = (plan.keys[task.job], round(a * 1000), r)
            if cache:
                write_entry(plan.files[uid], rec)
            for j, i in plan.slots[uid]:
                plan.out[j][i] = rec
            bar.update(len(plan.slots[uid]))

    try:
        if where == "process":
            for t in plan.tasks:
                store(t, compute_runs(*jobs[t.job], t.items))
        else:
            _compute_on_dask(where, arg, jobs, plan, store)
    finally:
        bar.close()
    return plan.out


def _compute_on_dask(where, arg, jobs, plan: _Plan, store) -> None:
    """Submit every task to the cluster; ``store`` each result as it arrives."""
    from distributed import as_completed

    from . import worker

    x64 = bool(jax.config.read("jax_enable_x64"))
    with _client(where, arg) as client:
        client.register_plugin(worker.WorkerSetup())
        data, futures = {}, {}
        for t in plan.tasks:
            ds, spec = jobs[t.job]
            if id(ds) not in data:  # each dataset travels once, to every worker; tasks refer to it
                data[id(ds)] = client.scatter(ds, broadcast=True, hash=False)
            f = client.submit(worker.compute, data[id(ds)], spec, t.items, plan.keys[t.job], x64, pure=False,
                              key=f"qmu-run-{round(t.items[0][0] * 1000):04d}-{t.items[0][1]:02d}-{uuid.uuid4().hex}")
            futures[f] = t
        for f in as_completed(futures):
            store(futures[f], f.result())
