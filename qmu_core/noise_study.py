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
``.cache/noise/<key>/`` with the sweep cache's checksummed format. The XXZ runs of one
setting are trained together, one compiled program vectorised over the runs
(:func:`train_noisy_batch`, :data:`BATCHED`); the MNIST runs one at a time.
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
#: v3: the coefficient tensor keeps its axes where each contraction puts them (the values of
#: the forward pass are those of v2, the gradient's float32 roundings are not)
KERNEL = "pauli-ptm-v3"
#: the kernel of the runs trained in batches (:data:`BATCHED`): float32 rounds the batched
#: program's products otherwise than one run's, so its runs are cached under their own key
KERNEL_BATCHED = "pauli-ptm-v3-vmap10"
#: the datasets whose runs are trained in batches of :data:`BATCH_RUNS` runs of one setting
#: (both corruptions, every alpha and run; :func:`train_noisy_batch`). On a CPU core the XXZ
#: QNN's 7-qubit light cone (4^7 floats) leaves the core waiting between small operations,
#: and a batch fills it: 0.85 s per run instead of 1.79 s (benchmarks/results/
#: noise_batched.json). The MNIST QNN's steps already fill the core (4^10 floats per
#: tensor): one run at a time.
BATCHED = ("xxz",)
BATCH_RUNS = 10


def kernel_of(dataset_name: str) -> str:
    """The simulation (part of the cache key) that trains the runs of ``dataset_name``."""
    return KERNEL_BATCHED if dataset_name in BATCHED else KERNEL


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

    @property
    def kernel(self) -> str:
        return kernel_of(self.dataset)

    def key(self) -> str:
        spec = self.spec
        fields = {"version": VERSION, "kernel": self.kernel, "data": fingerprint(self.dataset, self.gauge),
                  **{k: v for k, v in self.__dict__.items() if k not in ("alpha", "run")},
                  "protocol": repr(spec.cfg), "model": repr(spec.model)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def program(self) -> tuple:
        """What the compiled training program of this run depends on: the runs of a batch
        share it (they differ in corruption, alpha and run)."""
        return (self.dataset, self.setting, self.gauge, self.depth, self.epoch_scale, self.seed)

    def identity(self) -> dict:
        return {"dataset": self.dataset, "noise": self.setting.kind, "level": self.setting.level,
                "corruption": self.corruption, "alpha": self.alpha, "run": self.run}


# ----------------------------------------------------------------------------- training
def _epoch_fn(sim: PauliQNN, opt, shots: int, cfg: TrainConfig, n_train: int):
    """One epoch of one run, a pure function ``(params, opt_state, key, shot_key, r, y) ->
    (params, opt_state, key, shot_key)``: a ``lax.scan`` over the mini-batches of a
    permutation drawn from ``key`` (as :func:`qmu_core.training._qnn_trainer` on an
    accelerator), each step Adam on the mini-batch's mean BCE of the noisy model; with shots,
    each step samples <Z> from its own key."""
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

    def epoch(params, opt_state, key, shot_key, r, y):
        def gathered(carry, idx):  # a mini-batch's inputs gathered at its step: a batch of
            return step(carry, (r[idx], y[idx]))  # runs never copies all its inputs at once

        key, sub = jax.random.split(key)
        perm = jax.random.permutation(sub, n_train)
        carry, _ = jax.lax.scan(gathered, (params, opt_state, shot_key), perm[: n_full * bs].reshape(n_full, bs))
        if rem:
            carry, _ = gathered(carry, perm[n_full * bs:])
        params, opt_state, shot_key = carry
        return params, opt_state, key, shot_key

    return epoch


@lru_cache(maxsize=16)
def _trainer(model: QNN, noise: NoiseModel, shots: int, cfg: TrainConfig, n_train: int):
    """``(sim, opt, epoch, evaluate)`` of one run: ``epoch`` (:func:`_epoch_fn`) is one
    compiled program, called once per epoch."""
    sim = PauliQNN(model, noise)
    opt = optax.adam(cfg.lr)
    return sim, opt, jax.jit(_epoch_fn(sim, opt, shots, cfg, n_train)), _evaluator(sim)


@lru_cache(maxsize=16)
def _batch_trainer(model: QNN, noise: NoiseModel, shots: int, cfg: TrainConfig, n_train: int):
    """``(sim, train, evaluate)`` of a batch of runs: ``train(params, key, shot_key, r, y)``,
    each argument stacked over the runs, is one compiled program, ``jax.vmap`` over the runs
    of a ``lax.scan`` over all epochs of :func:`_epoch_fn` (every run's arithmetic is the
    same: each run keeps its own start, data, permutations and shots)."""
    sim = PauliQNN(model, noise)
    opt = optax.adam(cfg.lr)
    epoch = _epoch_fn(sim, opt, shots, cfg, n_train)

    def train_one(params, key, shot_key, r, y):
        def body(carry, _):
            return epoch(*carry, r, y), None

        carry, _ = jax.lax.scan(body, (params, opt.init(params), key, shot_key), None, length=cfg.epochs)
        return carry[0]

    return sim, jax.jit(jax.vmap(train_one)), _evaluator(sim)


def _evaluator(sim: PauliQNN):
    @jax.jit
    def evaluate(params, r, y):
        """Mean loss and accuracy of the exact noisy output over a (zero-padded) set."""
        return jnp.stack(_eval_set(lambda p, rb: OUTPUT_SCALE * sim.expectation(p, rb), params, r, y))

    return evaluate


def _keys(seed: int):
    """(initial-angle key, permutation key, shot key) of the run trained from ``seed``: the
    start and permutations of :func:`qmu_core.training.train_qnn`; the shots from a key of
    their own."""
    key = jax.random.PRNGKey(int(seed))
    k_init, key = jax.random.split(key)
    return k_init, key, jax.random.fold_in(jax.random.PRNGKey(int(seed)), 1)


def _final(evaluate, params, r, y, r_val, y_val) -> dict:
    """Loss and accuracy on the training and validation sets, given as their inputs ``r``
    (:meth:`PauliQNN.inputs`: the XXZ states' Pauli vectors take 0.1-0.2 s a set to compute,
    so each is computed once)."""
    out = {}
    for name, rs, ys in (("train", r, y), ("val", r_val, y_val)):
        loss, acc = np.asarray(evaluate(params, *_padded(rs, ys)), np.float64)
        out[f"{name}_loss"], out[f"{name}_acc"] = float(loss), float(acc)
    return out


def train_noisy(model: QNN, setting: Setting, x, y, x_val, y_val, cfg: TrainConfig, seed: int):
    """Train the QNN under ``setting`` from N(0, 0.01^2) angles drawn as
    :func:`qmu_core.training.train_qnn` draws them (same ``seed``: same start and mini-batch
    order); returns (params, {train_loss, train_acc, val_loss, val_acc}) at the end."""
    sim, opt, epoch, evaluate = _trainer(model, setting.noise_model, setting.shots, cfg, len(x))
    k_init, key, shot_key = _keys(seed)
    params = model.init(k_init)
    r, yj = sim.inputs(x), jnp.asarray(y, np.float32)
    opt_state = opt.init(params)
    for _ in range(cfg.epochs):
        params, opt_state, key, shot_key = epoch(params, opt_state, key, shot_key, r, yj)
    return params, _final(evaluate, params, r, y, sim.inputs(x_val), y_val)


def train_noisy_batch(model: QNN, setting: Setting, sets, x_val, y_val, cfg: TrainConfig, seeds, inputs=None):
    """:func:`train_noisy` for several runs at once: ``sets`` a list of (x, y) training sets
    of one size, ``seeds`` their seeds; one compiled program trains them all
    (:func:`_batch_trainer`). Returns [(params, metrics)] in the order of ``sets``.
    ``inputs``: the sets' and the validation set's :meth:`PauliQNN.inputs`, if already
    computed (:func:`distinct_inputs`).

    The program always trains :data:`BATCH_RUNS` runs: a smaller batch is filled up with
    copies of its last run. In float32 the rounding of XLA's program depends on the number
    of runs (a batch of one compiles to the unbatched program; 6 and 40 runs round apart),
    not on where a run stands in a batch of a given size (measured, and checked by
    tests/test_noise_study.py): so the cache holds the same numbers however the runs were
    grouped (a resumed execution computes other batches)."""
    if len(sets) != len(seeds) or not sets:
        raise ParameterError(f"train_noisy_batch needs one seed per training set, got {len(sets)} sets "
                             f"and {len(seeds)} seeds")
    if len(sets) > BATCH_RUNS:
        raise ParameterError(f"train_noisy_batch trains at most BATCH_RUNS = {BATCH_RUNS} runs at once, "
                             f"got {len(sets)}")
    n_train = len(sets[0][0])
    if any(len(x) != n_train for x, _ in sets):
        raise ParameterError("train_noisy_batch: every training set of a batch must have the same size")
    sim, train, evaluate = _batch_trainer(model, setting.noise_model, setting.shots, cfg, n_train)
    keys = [_keys(s) for s in seeds]
    *r, r_val = distinct_inputs(sim, [x for x, _ in sets] + [x_val]) if inputs is None else inputs
    rows = list(range(len(sets))) + [len(sets) - 1] * (BATCH_RUNS - len(sets))
    params = train(jnp.stack([model.init(keys[i][0]) for i in rows]),
                   jnp.stack([keys[i][1] for i in rows]), jnp.stack([keys[i][2] for i in rows]),
                   jnp.stack([r[i] for i in rows]), jnp.stack([jnp.asarray(sets[i][1], np.float32) for i in rows]))
    return [(params[i], _final(evaluate, params[i], r[i], sets[i][1], r_val, y_val)) for i in range(len(sets))]


def distinct_inputs(sim: PauliQNN, xs: list) -> list:
    """``[sim.inputs(x) for x in xs]``, each distinct state's inputs computed once: the
    corrupted sets of a batch hold the same states in other orders (label flipping) or
    mostly the same ones (feature randomisation)."""
    xs = [np.ascontiguousarray(x) for x in xs]
    rows = np.concatenate(xs)
    _, first, inverse = np.unique(rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel(),
                                  return_index=True, return_inverse=True)
    r = sim.inputs(rows[first])[inverse.ravel()]
    return jnp.split(r, np.cumsum([len(x) for x in xs])[:-1])


def hessian_trace(sim: PauliQNN, params, x, y) -> float:
    """Trace of the Hessian of the mean BCE of the noisy model's exact output (no shots) on
    (x, y) at ``params``, over all angles: the landscape chapter's curvature measure, for the
    noisy loss. Exact, by parameter shifts: every angle enters one gate exp(-i theta P / 2)
    with P^2 = 1 and the channels do not depend on it, so <Z>(theta) = a + b cos theta +
    c sin theta, whose first and second derivatives are (z+ - z-)/2 and (z+ + z-)/2 - z for
    shifts of +-pi/2. The loss's diagonal second derivative is then mean_b [s^2 sigma(1 -
    sigma) (dz_b)^2 + s (sigma - y_b) d2z_b] (logit s z, s = OUTPUT_SCALE): two forward passes
    per angle, all in one program, instead of reverse-over-forward autodiff (the angles
    outside the light cone give z+ = z- = z exactly)."""
    return trace_of_inputs(sim, params, sim.inputs(x), y)


def trace_of_inputs(sim: PauliQNN, params, r, y) -> float:
    """:func:`hessian_trace` of the states whose :meth:`PauliQNN.inputs` are ``r``."""
    return float(_trace_fn(sim.qnn, sim.noise)(params, r, jnp.asarray(y, np.float32)))


@lru_cache(maxsize=16)
def _trace_fn(model: QNN, noise: NoiseModel):
    sim, shape = PauliQNN(model, noise), model.param_shape
    n = int(np.prod(shape))

    @jax.jit
    def trace(params, r, y):
        v = params.reshape(-1)
        shifts = (0.5 * np.pi) * jnp.concatenate([jnp.eye(n, dtype=v.dtype), -jnp.eye(n, dtype=v.dtype)])
        zs = jax.vmap(lambda d: sim.expectation((v + d).reshape(shape), r))(shifts)
        z = sim.expectation(params, r)
        dz, d2z = 0.5 * (zs[:n] - zs[n:]), 0.5 * (zs[:n] + zs[n:]) - z
        p = jax.nn.sigmoid(OUTPUT_SCALE * z)
        per_angle = OUTPUT_SCALE**2 * p * (1 - p) * dz**2 + OUTPUT_SCALE * (p - y) * d2z
        return jnp.sum(jnp.mean(per_angle, axis=1))

    return trace


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
    """Corrupt, train under the noise, and report the final metrics of one run (a run of a
    :data:`BATCHED` dataset is trained by the batched program, as in :func:`compute_batch`)."""
    return compute_batch([r])[0]


def compute_batch(runs: list[Run]) -> list[dict]:
    """The records of ``runs``, which share one training program (:meth:`Run.program`; they
    differ in corruption, alpha and run): trained together by :func:`train_noisy_batch` for a
    :data:`BATCHED` dataset, else one by one by :func:`train_noisy`. ``seconds`` is the
    batch's training time shared equally, plus the run's own Hessian trace."""
    if len({r.program() for r in runs}) != 1:
        raise ParameterError("compute_batch: the runs of a batch must share one training program (same dataset, "
                             "setting and protocol)")
    r0 = runs[0]
    ds, cfg, m = r0.ds, r0.spec.cfg, r0.spec.model
    model = QNN(ds.n_qubits, m.depth, m.rotations, m.entangler)
    sets = [_corrupted(ds, r.spec, r.alpha, r.run) for r in runs]
    seeds = [_train_seed(ds, r.spec, r.alpha, r.run) for r in runs]
    sim = PauliQNN(model, r0.setting.noise_model)
    t0 = time.perf_counter()
    inputs = None
    if r0.dataset in BATCHED:
        inputs = distinct_inputs(sim, [cs.x for cs in sets] + [ds.x_val])
        trained = train_noisy_batch(model, r0.setting, [(cs.x, cs.y) for cs in sets], ds.x_val, ds.y_val, cfg, seeds,
                                    inputs=inputs)
        seconds = [(time.perf_counter() - t0) / len(runs)] * len(runs)
    else:
        trained, seconds = [], []
        for cs, seed in zip(sets, seeds):
            t1 = time.perf_counter()
            trained.append(train_noisy(model, r0.setting, cs.x, cs.y, ds.x_val, ds.y_val, cfg, seed=seed))
            seconds.append(time.perf_counter() - t1)
    out = []
    for i, (r, cs, (params, final), sec) in enumerate(zip(runs, sets, trained, seconds)):
        trace = None
        if r.dataset == "xxz" and np.any(np.isclose(r.alpha, TRACE_ALPHAS)):
            t1 = time.perf_counter()
            trace = (trace_of_inputs(sim, params, inputs[i], cs.y) if inputs is not None
                     else hessian_trace(sim, params, cs.x, cs.y))
            sec += time.perf_counter() - t1
        out.append({**r.identity(), "gauge": r.gauge if r.dataset == "xxz" else "none",
                    "shots": r.setting.shots, "depth": m.depth, **final, "trace": trace,
                    "n_corrupted": int(len(cs.forget)), "seconds": round(sec, 3)})
    return out


def batches(runs: list[Run], todo: list[int]) -> list[list[int]]:
    """The indices ``todo`` of ``runs`` in batches: the tasks of :func:`task_groups` (for a
    :data:`BATCHED` dataset the runs of one training program, :meth:`Run.program`) cut into
    batches of up to :data:`BATCH_RUNS` runs; one run a batch otherwise."""
    return [g[j: j + BATCH_RUNS] for g in task_groups(runs, todo) for j in range(0, len(g), BATCH_RUNS)]


def task_groups(runs: list[Run], todo: list[int]) -> list[list[int]]:
    """The indices ``todo`` of ``runs`` cut into worker tasks: every run of one training program
    of a :data:`BATCHED` dataset in one task (its :func:`batches` in turn, :func:`compute_group`),
    so a worker compiles a setting's program (~12 s) only if it trains it; else one run a task."""
    groups: dict[tuple, list[int]] = {}
    out = []
    for i in todo:
        if runs[i].dataset in BATCHED:
            groups.setdefault(runs[i].program(), []).append(i)
        else:
            out.append([i])
    return out + list(groups.values())


def compute_group(runs: list[Run]) -> list[dict]:
    """The records of one task of :func:`task_groups`: its batches (:func:`batches`) computed by
    :func:`compute_batch` one after the other, in order."""
    out = [None] * len(runs)
    for b in batches(runs, list(range(len(runs)))):
        for i, rec in zip(b, compute_batch([runs[i] for i in b])):
            out[i] = rec
    return out


def cache_file(r: Run):
    return (paths.cache_dir() / "noise" / r.key()
            / f"{r.dataset}_{r.corruption}_a{round(r.alpha * 1000):04d}_run{r.run:02d}.json")


def run_all(runs: list[Run], *, progress: bool = True, scheduler: str | None = None,
            workers: int | None = None) -> pd.DataFrame:
    """The records of ``runs`` as a tidy table (:data:`RESULT_COLUMNS`), from the cache where
    valid, the rest computed in this process (``workers=1``) or on Dask workers
    (:func:`qmu_core.parallel.compute_cached`), each cached as it arrives."""
    from .parallel import compute_cached

    def submit(client, groups) -> dict:
        import uuid

        from . import worker

        x64 = bool(jax.config.read("jax_enable_x64"))
        # the large tasks (a batched setting; shots the slowest) first, single runs last: an even end
        order = sorted(groups, key=lambda g: (runs[g[0]].dataset not in BATCHED, runs[g[0]].setting.kind != "shots"))
        return {client.submit(worker.compute_task, __name__, [runs[i] for i in g], [runs[i].key() for i in g],
                              x64, "compute_group", pure=False,
                              key=f"qmu-noise-{runs[g[0]].dataset}-{runs[g[0]].setting.kind}-{uuid.uuid4().hex}"): g
                for g in order}

    recs = compute_cached(runs, cache_file=cache_file, compute=compute_group, submit=submit, what="noise",
                          unit="run", progress=progress, scheduler=scheduler, workers=workers,
                          batch=lambda todo: task_groups(runs, todo))
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
