"""The noise chapter's depth study: the 10-qubit QNN at depths D = 1 ... 12.

Beyond the paper. Three things per depth, in one figure of the chapter:

* resilience: the label-flip curve of the MNIST QNN at depth D, trained with the paper's
  protocol (100 epochs, batch 256, lr 0.005), from the resilience sweeps
  (:func:`qmu_core.resilience.run`, cached with them; D = 6 is the paper's curve);
* trainability at the start: the variance over random angles of the gradient of the mean
  BCE on clean training images, averaged over the live parameters (the barren-plateau
  measure, McClean et al. 2018), for angles uniform in [0, 2 pi) and for the paper's
  N(0, 0.01^2) start;
* curvature after training: the Hessian trace of the mean BCE of trained models on 100
  training images with the labels they were trained on (the landscape chapter's measure,
  :class:`qmu_core.landscape.QNNLoss`, exact by parameter shifts).

One :class:`Task` per depth holds the last two; its record is cached in ``.cache/depth/``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import paths
from .config import ModelSpec, paper_setting
from .landscape import QNNLoss
from .noise_study import dataset, fingerprint
from .qnn import QNN
from .resilience import final_only
from .sweep import SweepSpec, _corrupted, _train_seed, derive_seed
from .validation import check_alpha, check_float, check_int

VERSION = "depth-v1"
DEPTHS = (1, 2, 4, 6, 8, 12)


def mnist():
    """The depth study's data: MNIST 1 vs 9 on 1024 amplitudes (the noise chapter's copy)."""
    return dataset("mnist")


def sweep_spec(depth: int, corruption: str, alphas, n_runs: int, epoch_scale: float = 1.0,
               seed: int = 0) -> SweepSpec:
    """The resilience sweep of the MNIST QNN at ``depth`` (the paper's protocol)."""
    _, cfg = paper_setting("mnist", "qnn")
    cfg = cfg.scaled(epoch_scale) if epoch_scale != 1.0 else cfg
    return SweepSpec(ModelSpec("qnn", depth=check_int("depth", depth, min=1)), corruption, tuple(alphas),
                     n_runs, final_only(cfg), seed=seed)


@dataclass(frozen=True)
class Task:
    """Trainability and curvature of the QNN at one depth (see the module docstring)."""

    depth: int
    hessian_alphas: tuple[float, ...] = (0.0, 0.3)
    hessian_runs: int = 2
    n_draws: int = 200
    n_samples: int = 100
    epoch_scale: float = 1.0
    seed: int = 0

    def __post_init__(self):
        check_int("depth", self.depth, min=1, max=100)
        object.__setattr__(self, "hessian_alphas",
                           tuple(check_alpha(a, "hessian_alphas") for a in self.hessian_alphas))
        check_int("hessian_runs", self.hessian_runs, min=0)
        check_int("n_draws", self.n_draws, min=2)
        check_int("n_samples", self.n_samples, min=1)
        check_float("epoch_scale", self.epoch_scale, min=0.0, min_inclusive=False)

    def key(self) -> str:
        fields = {"version": VERSION, "data": fingerprint("mnist"), **self.__dict__,
                  "spec": repr(sweep_spec(self.depth, "label_flip", (0.0,), 1, self.epoch_scale, self.seed))}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def identity(self) -> dict:
        return {"depth": self.depth}


def gradient_variance(loss: QNNLoss, draws: np.ndarray) -> float:
    """Mean over the live parameters of the variance over ``draws`` (each a full parameter
    array) of the loss's gradient."""
    g = np.stack([loss.grad(loss.flat(p)) for p in draws])
    return float(np.mean(np.var(g, axis=0, ddof=1)))


def compute(t: Task) -> dict:
    """The record of one depth: gradient variances at the start, Hessian traces of trained runs."""
    from .training import train_qnn

    t0 = time.perf_counter()
    ds = mnist()
    model = QNN(ds.n_qubits, t.depth)
    rng = np.random.default_rng(derive_seed(t.seed, "depth-samples", t.depth))
    idx = rng.choice(len(ds.y_train), size=min(t.n_samples, len(ds.y_train)), replace=False)
    loss = QNNLoss(model, ds.x_train[idx], ds.y_train[idx])
    rng = np.random.default_rng(derive_seed(t.seed, "depth-draws", t.depth))
    uniform = rng.uniform(0.0, 2 * np.pi, size=(t.n_draws,) + model.param_shape)
    start = 0.01 * rng.standard_normal(size=(t.n_draws,) + model.param_shape)
    rec = {"depth": t.depth, "n_live": int(loss.n), "grad_var_uniform": gradient_variance(loss, uniform),
           "grad_var_init": gradient_variance(loss, start), "traces": []}
    for a in t.hessian_alphas:
        spec = sweep_spec(t.depth, "label_flip", (a,), max(t.hessian_runs, 1), t.epoch_scale, t.seed)
        for run in range(t.hessian_runs):
            cs = _corrupted(ds, spec, a, run)
            params, hist = train_qnn(model, cs.x, cs.y, ds.x_val, ds.y_val, spec.cfg,
                                     seed=_train_seed(ds, spec, a, run))
            sel = np.random.default_rng(derive_seed(t.seed, "depth-hessian", t.depth, round(a * 1000), run))
            rows = sel.choice(len(cs.y), size=min(t.n_samples, len(cs.y)), replace=False)
            h = QNNLoss(model, cs.x[rows], cs.y[rows])
            rec["traces"].append({"alpha": a, "run": run, "trace": float(h.sample_traces(h.flat(params)).sum()),
                                  **hist.final})
    rec["seconds"] = round(time.perf_counter() - t0, 3)
    return rec


def cache_file(t: Task):
    return paths.cache_dir() / "depth" / t.key() / f"depth{t.depth:02d}.json"


def run_tasks(tasks: list[Task], *, progress: bool = True, scheduler: str | None = None,
              workers: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(trainability per depth, Hessian traces per depth/alpha/run) of ``tasks``, from the cache
    where valid, the rest computed in this process or on Dask workers."""
    from .parallel import compute_cached

    def submit(client, todo) -> dict:
        import uuid

        import jax

        from . import worker

        x64 = bool(jax.config.read("jax_enable_x64"))
        return {client.submit(worker.compute_task, __name__, tasks[i], tasks[i].key(), x64, pure=False,
                              key=f"qmu-depth-{tasks[i].depth}-{uuid.uuid4().hex}"): i
                for i in sorted(todo, key=lambda i: -tasks[i].depth)}

    recs = compute_cached(tasks, cache_file=cache_file, compute=compute, submit=submit, what="depth",
                          unit="depth", progress=progress, scheduler=scheduler, workers=workers)
    train = pd.DataFrame([{k: r[k] for k in ("depth", "n_live", "grad_var_uniform", "grad_var_init")}
                          for r in recs])
    traces = pd.DataFrame([{"depth": r["depth"], **t} for r in recs for t in r["traces"]],
                          columns=["depth", "alpha", "run", "trace", "train_loss", "train_acc", "val_loss",
                                   "val_acc"])
    return train, traces
