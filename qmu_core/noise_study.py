"""The noise chapter's resilience runs: the QNN trained with hardware noise in the loop.

Beyond the paper. Each run is one resilience run of Fig. 2 (same corrupted training set, same
initial angles and mini-batch order as the noiseless QNN of the resilience chapter: the seeds
are derived from the same labels, :func:`qmu_core.sweep.derive_seed`), trained under one
:class:`Setting` of the noise: depolarising noise or amplitude damping after every gate,
readout error, or a finite number of shots per <Z>. The forward pass and its gradient are
those of the noisy model (:class:`qmu_core.pauli.PauliQNN`, exact; with shots the sampled
<Z> of :func:`qmu_core.noise.shot_expectation`, whose gradient is the exact one's:
straight-through). Accuracies are those of the trained noisy model with its exact (infinite-
shot) output; readout error and shots leave the sign of <Z> unchanged on average, so they act
through training only.

One :class:`Run` is one (dataset, setting, corruption, alpha, run); its record is written to
``.cache/noise/<key>/`` with the sweep cache's checksummed format.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from . import data, paths
from .config import ModelSpec, TrainConfig, paper_setting
from .corruption import CORRUPTIONS
from .noise import NoiseModel, shot_expectation
from .pauli import PauliQNN
from .qnn import OUTPUT_SCALE, QNN
from .sweep import SweepSpec, _corrupted, _fingerprint, _train_seed
from .training import EVAL_CHUNK, _eval_set, bce_from_logits
from .validation import ParameterError, check_alpha, check_choice, check_float, check_int

#: part of every run's cache key: change it when the arithmetic of a run changes
VERSION = "noise-v1"
KERNEL = "pauli-ptm-v2"
KINDS = ("noiseless", "depolarizing", "amplitude_damping", "readout", "shots")
#: the issue's levels: p (depolarising), gamma (damping), e (readout), shots per <Z>
DEFAULT_LEVELS = {"depolarizing": (1e-3, 5e-3, 1e-2), "amplitude_damping": (1e-3, 1e-2),
                  "readout": (0.01, 0.05), "shots": (100, 1000, 10000)}
RESULT_COLUMNS = ["dataset", "gauge", "model", "noise", "level", "shots", "depth", "corruption", "alpha",
                  "run", "train_acc", "val_acc", "train_loss", "val_loss", "trace", "n_corrupted", "seconds"]
#: "exact" in the shots column: <Z> itself, no sampling
EXACT = 0
#: the alphas at which an XXZ run also records the Hessian trace of its trained model (the
#: landscape chapter's LRR = trace(alpha) / trace(0) at 0.2, 0.3, 0.4)
TRACE_ALPHAS = (0.0, 0.2, 0.3, 0.4)


@dataclass(frozen=True)
class Setting:
    """One noise setting: ``kind`` in :data:`KINDS` and its ``level`` (p, gamma, e, or the
    number of shots; 0 for ``noiseless``)."""

    kind: str
    level: float = 0.0

    def __post_init__(self):
        check_choice("noise", self.kind, KINDS)
        if self.kind == "shots":
            object.__setattr__(self, "level", check_int("shots", self.level, min=1))
        elif self.kind == "noiseless":
            if self.level != 0:
                raise ParameterError(f"the noiseless setting has level 0, got {self.level!r}")
            object.__setattr__(self, "level", 0.0)
        else:  # NoiseModel validates the level (type and range) under its own name
            object.__setattr__(self, "level", getattr(NoiseModel(**{self.kind: self.level}), self.kind))

    @classmethod
    def of(cls, kind: str, level) -> "Setting":
        """The setting of a table row: its ``noise`` and ``level`` columns (a float column
        holds the shots as floats)."""
        if kind == "shots" and float(level).is_integer():
            level = int(level)
        return cls(kind, level)

    @property
    def noise_model(self) -> NoiseModel:
        if self.kind in ("noiseless", "shots"):
            return NoiseModel()
        return NoiseModel(**{self.kind: self.level})

    @property
    def shots(self) -> int:
        """Shots per <Z> in training, :data:`EXACT` (0) for the exact expectation."""
        return int(self.level) if self.kind == "shots" else EXACT

    @property
    def label(self) -> str:
        if self.kind == "noiseless":
            return "noiseless"
        if self.kind == "shots":
            return f"{self.level} shots"
        sym = {"depolarizing": "p", "amplitude_damping": "γ", "readout": "e"}[self.kind]
        return f"{self.kind.replace('_', ' ')} {sym} = {self.level:g}"


def check_levels(name: str, values, kind: str) -> tuple:
    """The levels ``values`` (a list) of the noise ``kind``, each validated by :class:`Setting`;
    ``name`` is the parameter named in the error."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ParameterError(f"parameter '{name}' must be a list of levels, got {values!r}")
    return tuple(Setting(kind, v).level for v in values)


def settings(levels=None, *, noiseless: bool = True) -> list[Setting]:
    """The noiseless setting (unless ``noiseless=False``), then every (kind, level) of
    ``levels`` (default :data:`DEFAULT_LEVELS`): a dict kind -> levels."""
    levels = DEFAULT_LEVELS if levels is None else levels
    if not isinstance(levels, dict):
        raise ParameterError(f"parameter 'levels' must be a dict noise kind -> list of levels, got {levels!r}")
    out = [Setting("noiseless")] if noiseless else []
    for kind, values in levels.items():
        check_choice("noise", kind, KINDS[1:])
        out += [Setting(kind, v) for v in check_levels(f"levels[{kind!r}]", values, kind)]
    return out


@lru_cache(maxsize=4)
def dataset(name: str, gauge: str = "fixed") -> data.Dataset:
    """The chapter's data: the XXZ states in ``gauge``, or MNIST 1 vs 9 (1024 amplitudes)."""
    check_choice("dataset", name, ("mnist", "xxz"))
    return data.load("xxz", gauge=gauge) if name == "xxz" else data.load("mnist")


@lru_cache(maxsize=4)
def fingerprint(name: str, gauge: str = "fixed") -> str:
    """:func:`qmu_core.sweep._fingerprint` of :func:`dataset`, hashed once per process: every
    run's cache key holds it, and hashing MNIST's 2644 states took about 4 ms per key."""
    return _fingerprint(dataset(name, gauge))


@dataclass(frozen=True)
class Run:
    """One noisy resilience run (see the module docstring)."""

    dataset: str
    setting: Setting
    corruption: str
    alpha: float
    run: int
    gauge: str = "fixed"
    depth: int | None = None  # None: the paper's depth for the dataset
    epoch_scale: float = 1.0
    seed: int = 0

    def __post_init__(self):
        check_choice("dataset", self.dataset, ("mnist", "xxz"))
        check_choice("corruption", self.corruption, CORRUPTIONS)
        object.__setattr__(self, "alpha", check_alpha(self.alpha))
        check_int("run", self.run, min=0)
        check_float("epoch_scale", self.epoch_scale, min=0.0, min_inclusive=False)
        if self.dataset == "mnist" and self.gauge != "fixed":
            raise ParameterError("MNIST has no gauge: leave 'gauge' at its default")

    @property
    def spec(self) -> SweepSpec:
        """The resilience chapter's sweep of this QNN (its seeds and corruption)."""
        m, cfg = paper_setting(self.dataset, "qnn")
        if self.depth is not None:
            m = ModelSpec("qnn", depth=self.depth)
        cfg = cfg.scaled(self.epoch_scale) if self.epoch_scale != 1.0 else cfg
        return SweepSpec(m, self.corruption, (self.alpha,), 1, cfg, seed=self.seed)

    @property
    def ds(self) -> data.Dataset:
        return dataset(self.dataset, self.gauge)

    def key(self) -> str:
        spec = self.spec
        fields = {"version": VERSION, "kernel": KERNEL, "data": fingerprint(self.dataset, self.gauge),
                  **{k: v for k, v in self.__dict__.items() if k not in ("alpha", "run")},
                  "protocol": repr(spec.cfg), "model": repr(spec.model)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def identity(self) -> dict:
        return {"dataset": self.dataset, "noise": self.setting.kind, "level": self.setting.level,
                "corruption": self.corruption, "alpha": self.alpha, "run": self.run}


# ----------------------------------------------------------------------------- training
@lru_cache(maxsize=16)
def _trainer(model: QNN, noise: NoiseModel, shots: int, cfg: TrainConfig, n_train: int):
    """``(sim, opt, epoch, evaluate)``: an epoch is one compiled program, a ``lax.scan`` over the
    mini-batches of a permutation drawn from ``key`` (as :func:`qmu_core.training._qnn_trainer`
    on an accelerator), each step Adam on the mini-batch's mean BCE of the noisy model; with
    shots, each step samples <Z> from its own key."""
    sim = PauliQNN(model, noise)
    opt = optax.adam(cfg.lr)
    bs = min(cfg.batch_size, n_train)
    n_full, rem = divmod(n_train, bs)

    def loss_fn(params, rb, yb, key):
        z = sim.expectation(params, rb)
        if shots != EXACT:
            z = shot_expectation(key, z, shots)
        return jnp.mean(bce_from_logits(OUTPUT_SCALE * z, yb))

    grad_fn = jax.grad(loss_fn)

    def step(carry, batch):
        params, opt_state, key = carry
        key, sub = jax.random.split(key)
        g = grad_fn(params, *batch, sub)
        updates, opt_state = opt.update(g, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), None

    @jax.jit
    def epoch(params, opt_state, key, shot_key, r, y):
        key, sub = jax.random.split(key)
        perm = jax.random.permutation(sub, n_train)
        rs, ys = r[perm], y[perm]
        batches = (rs[: n_full * bs].reshape((n_full, bs) + r.shape[1:]), ys[: n_full * bs].reshape(n_full, bs))
        carry, _ = jax.lax.scan(step, (params, opt_state, shot_key), batches)
        if rem:
            carry, _ = step(carry, (rs[n_full * bs:], ys[n_full * bs:]))
        params, opt_state, shot_key = carry
        return params, opt_state, key, shot_key

    @jax.jit
    def evaluate(params, r, y):
        """Mean loss and accuracy of the exact noisy output over a (zero-padded) set."""
        return jnp.stack(_eval_set(lambda p, rb: OUTPUT_SCALE * sim.expectation(p, rb), params, r, y))

    return sim, opt, epoch, evaluate


def train_noisy(model: QNN, setting: Setting, x, y, x_val, y_val, cfg: TrainConfig, seed: int):
    """Train the QNN under ``setting`` from N(0, 0.01^2) angles drawn as
    :func:`qmu_core.training.train_qnn` draws them (same ``seed``: same start and mini-batch
    order); returns (params, {train_loss, train_acc, val_loss, val_acc}) at the end."""
    sim, opt, epoch, evaluate = _trainer(model, setting.noise_model, setting.shots, cfg, len(x))
    key = jax.random.PRNGKey(int(seed))
    k_init, key = jax.random.split(key)
    shot_key = jax.random.fold_in(jax.random.PRNGKey(int(seed)), 1)
    params = model.init(k_init)
    r, yj = sim.inputs(x), jnp.asarray(y, np.float32)
    opt_state = opt.init(params)
    for _ in range(cfg.epochs):
        params, opt_state, key, shot_key = epoch(params, opt_state, key, shot_key, r, yj)
    out = {}
    for name, xs, ys in (("train", x, y), ("val", x_val, y_val)):
        loss, acc = np.asarray(evaluate(params, *_padded(sim.inputs(xs), ys)), np.float64)
        out[f"{name}_loss"], out[f"{name}_acc"] = float(loss), float(acc)
    return params, out


def hessian_trace(sim: PauliQNN, params, x, y) -> float:
    """Trace of the Hessian of the mean BCE of the noisy model's exact output (no shots) on
    (x, y) at ``params``, over all angles (those outside the light cone add zeros): the
    landscape chapter's curvature measure, for the noisy loss."""
    h = _hessian_fn(sim.qnn, sim.noise)
    return float(h(params.reshape(-1), sim.inputs(x), jnp.asarray(y, np.float32)))


@lru_cache(maxsize=16)
def _hessian_fn(model: QNN, noise: NoiseModel):
    sim, shape = PauliQNN(model, noise), model.param_shape

    def loss(v, r, y):
        return jnp.mean(bce_from_logits(OUTPUT_SCALE * sim.expectation(v.reshape(shape), r), y))

    return jax.jit(lambda v, r, y: jnp.trace(jax.hessian(loss)(v, r, y)))


def _padded(r, y):
    """Inputs and labels cut into chunks of :data:`qmu_core.training.EVAL_CHUNK`, the last one
    zero-padded (a zero input has output 0; label -1 masks it out of the metrics)."""
    n = len(y)
    m = -(-n // EVAL_CHUNK) * EVAL_CHUNK
    rp = jnp.zeros((m,) + r.shape[1:], r.dtype).at[:n].set(r)
    yp = np.full(m, -1.0, np.float32)
    yp[:n] = y
    return rp.reshape((-1, EVAL_CHUNK) + r.shape[1:]), jnp.asarray(yp.reshape(-1, EVAL_CHUNK))


def compute(r: Run) -> dict:
    """Corrupt, train under the noise, and report the final metrics of one run."""
    ds, spec = r.ds, r.spec
    cs = _corrupted(ds, spec, r.alpha, r.run)
    model = QNN(ds.n_qubits, spec.model.depth, spec.model.rotations, spec.model.entangler)
    t0 = time.perf_counter()
    params, final = train_noisy(model, r.setting, cs.x, cs.y, ds.x_val, ds.y_val, spec.cfg,
                                seed=_train_seed(ds, spec, r.alpha, r.run))
    trace = None
    if r.dataset == "xxz" and np.any(np.isclose(r.alpha, TRACE_ALPHAS)):
        trace = hessian_trace(PauliQNN(model, r.setting.noise_model), params, cs.x, cs.y)
    return {**r.identity(), "gauge": r.gauge if r.dataset == "xxz" else "none", "shots": r.setting.shots,
            "depth": spec.model.depth, **final, "trace": trace, "n_corrupted": int(len(cs.forget)),
            "seconds": round(time.perf_counter() - t0, 3)}


def cache_file(r: Run):
    return (paths.cache_dir() / "noise" / r.key()
            / f"{r.dataset}_{r.corruption}_a{round(r.alpha * 1000):04d}_run{r.run:02d}.json")


def run_all(runs: list[Run], *, progress: bool = True, scheduler: str | None = None,
            workers: int | None = None) -> pd.DataFrame:
    """The records of ``runs`` as a tidy table (:data:`RESULT_COLUMNS`), from the cache where
    valid, the rest computed in this process (``workers=1``) or on Dask workers
    (:func:`qmu_core.parallel.compute_cached`), each cached as it arrives."""
    from .parallel import compute_cached

    def submit(client, todo) -> dict:
        import uuid

        from . import worker

        x64 = bool(jax.config.read("jax_enable_x64"))
        # the slowest first: MNIST, then shots (sampling), so the cluster ends together
        order = sorted(todo, key=lambda i: (runs[i].dataset != "mnist", runs[i].setting.kind != "shots"))
        return {client.submit(worker.compute_task, __name__, runs[i], runs[i].key(), x64, pure=False,
                              key=f"qmu-noise-{runs[i].dataset}-{runs[i].setting.kind}-{uuid.uuid4().hex}"): i
                for i in order}

    recs = compute_cached(runs, cache_file=cache_file, compute=compute, submit=submit, what="noise",
                          unit="run", progress=progress, scheduler=scheduler, workers=workers)
    df = pd.DataFrame(recs)
    df["model"] = "qnn"
    return df[RESULT_COLUMNS]


def plan(dataset_name: str, setting_list: list[Setting], *, alphas, n_runs: int, corruptions,
         epoch_scale: float = 1.0, seed: int = 0) -> list[Run]:
    """Every run of one dataset's curves: each setting x corruption x alpha x run (the XXZ
    states in the fixed gauge, the resilience chapter's QNN gauge)."""
    check_int("n_runs", n_runs, min=1)
    return [Run(dataset_name, s, c, a, k, epoch_scale=epoch_scale, seed=seed)
            for s in setting_list for c in corruptions for a in alphas for k in range(n_runs)]
