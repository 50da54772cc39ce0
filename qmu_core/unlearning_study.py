"""The unlearning experiments (Fig. 3a, 3b; SI Figs. S2, S3; SI section VI): poisoned models,
the oracle, every method run, cached per (dataset, gauge, model, run).

One *task* is one run of one model on one dataset: draw the label flips (alpha = 0.3, half from
each class), train the poisoned model on the corrupted set with the resilience trainers, train
the oracle (the same protocol on the retain set only, from its own initialisation), then run
every unlearning method of :mod:`qmu_core.unlearning` from the poisoned model. Runs are
independent by default (each its own flips and poisoned model); ``protocol="shared"`` is the
released code's (one flip draw and one poisoned model per model, every run starting from it).

Hyperparameters (SPEC.md, "Unlearning"): :data:`SETTINGS`. A finished task is written to
``.cache/unlearning/<key>/`` as one checksummed JSON file (the sweep cache's format,
:func:`qmu_core.sweep.encode_entry`), so an interrupted chapter resumes and a re-execution
with the same parameters computes nothing.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, replace

import jax
import numpy as np

from . import paths
from .config import ModelSpec, TrainConfig
from .corruption import corrupt
from .data import Dataset, as_real_features
from .mlp import MLP
from .privacy import membership_auc, prediction_entropy
from .qnn import QNN
from .sweep import _fingerprint, derive_seed
from .training import MLP_OPTIMIZER, qnn_kernel_name, train_mlp, train_qnn
from .unlearning import MLPLearner, QNNLearner, Split, bce, evaluate, unlearn
from .validation import check_choice, check_int

VERSION = "unlearning-v1"  # part of the cache key: bump when a change alters any result
PROTOCOLS = ("independent", "shared")
QNN_ENCODINGS = ("amplitude", "real_imag")


@dataclass(frozen=True)
class Setting:
    """One model's unlearning setting: the model, the poisoned model's training, and the
    methods' batch size (0 = the whole retain set) and learning rate."""

    spec: ModelSpec
    poison: TrainConfig
    batch_size: int
    lr: float


#: SPEC.md's table (the released run_unlearn_*.py scripts)
SETTINGS = {
    ("mnist", "mlp"): Setting(ModelSpec("mlp", hidden=(16, 4)), TrainConfig(100, 128, 0.01), 0, 0.001),
    ("mnist", "qnn"): Setting(ModelSpec("qnn", depth=6), TrainConfig(100, 256, 0.005), 256, 0.005),
    ("xxz", "mlp"): Setting(ModelSpec("mlp", hidden=(64, 16)), TrainConfig(400, 32, 0.01), 0, 0.01),
    ("xxz", "qnn"): Setting(ModelSpec("qnn", depth=4), TrainConfig(200, 32, 0.03), 0, 0.005),
}


def setting(dataset: str, model: str, epoch_scale: float = 1.0) -> Setting:
    """The setting of ``model`` on ``dataset``, the poisoned model's epochs scaled by
    ``epoch_scale`` (1 = the paper's; the small CI executions use less)."""
    check_choice("dataset", dataset, ("mnist", "xxz"))
    check_choice("model", model, ("mlp", "qnn"))
    s = SETTINGS[(dataset, model)]
    cfg = s.poison.scaled(epoch_scale)
    return Setting(s.spec, TrainConfig(cfg.epochs, cfg.batch_size, cfg.lr, cfg.epochs), s.batch_size, s.lr)


def qnn_features(ds: Dataset, encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """The QNN's inputs: the states themselves (``"amplitude"``, 12 qubits for XXZ) or, as the
    released XXZ unlearning script feeds them, the real vector [Re psi, Im psi] (``"real_imag"``:
    one qubit more; MNIST is real, so it is unchanged)."""
    check_choice("xxz_qnn_encoding", encoding, QNN_ENCODINGS)
    if encoding == "real_imag" and np.iscomplexobj(ds.x_train):
        return as_real_features(ds.x_train), as_real_features(ds.x_val)
    return ds.x_train, ds.x_val


@dataclass(frozen=True)
class Task:
    """One (dataset, gauge, model, run) of a study; ``methods`` maps a label to a method
    configuration (:mod:`qmu_core.unlearning`)."""

    ds: Dataset
    gauge: str
    model: str
    run: int
    setting: Setting
    methods: tuple  # ((label, config), ...)
    alpha: float
    protocol: str
    encoding: str
    seed: int
    record: bool = True  # every step (the unlearning chapter) or the final one (the grid)
    extras: bool = True  # oracle, membership inference

    @property
    def data_run(self) -> int:
        """Which flip draw and poisoned model: the run's own, or run 0's for the code's protocol."""
        return 0 if self.protocol == "shared" else self.run

    def key(self) -> str:
        kernel = qnn_kernel_name() if self.model == "qnn" else MLP_OPTIMIZER
        fields = {"version": VERSION, "data": _fingerprint(self.ds), "gauge": self.gauge, "model": self.model,
                  "setting": repr(self.setting), "methods": [(k, m.describe()) for k, m in self.methods],
                  "alpha": self.alpha, "protocol": self.protocol, "encoding": self.encoding, "seed": self.seed,
                  "record": self.record, "extras": self.extras, "kernel": kernel}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def identity(self) -> dict:
        return {"dataset": self.ds.name, "gauge": self.gauge, "model": self.model, "run": self.run}


def _seed(t: Task, *what) -> int:
    return derive_seed(t.seed, "unlearning", t.ds.name, *what)


def _fresh(t: Task, x, seed: int):
    """A freshly initialised learner's model: QNN parameters or an MLP."""
    if t.model == "qnn":
        n = int(np.log2(x.shape[1]))
        m = t.setting.spec
        return QNN(n, m.depth, m.rotations, m.entangler).init(jax.random.PRNGKey(seed))
    return MLP(as_real_features(x[:1]).shape[1], t.setting.spec.hidden).reset_parameters(seed)


def _train(t: Task, x, y, xv, yv, seed: int):
    """The resilience trainers (:func:`qmu_core.training.train_qnn` / ``train_mlp``) with the
    poisoned model's protocol; returns the trained parameters or network."""
    cfg = t.setting.poison
    if t.model == "qnn":
        n = int(np.log2(x.shape[1]))
        m = t.setting.spec
        return train_qnn(QNN(n, m.depth, m.rotations, m.entangler), x, y, xv, yv, cfg, seed)[0]
    return train_mlp(MLP(as_real_features(x[:1]).shape[1], t.setting.spec.hidden), x, y, xv, yv, cfg, seed)[0]


def _learner(t: Task, model, x, xv):
    if t.model == "qnn":
        m = t.setting.spec
        return QNNLearner(QNN(int(np.log2(x.shape[1])), m.depth, m.rotations, m.entangler), model,
                          {"train": x, "val": xv})
    return MLPLearner(copy.deepcopy(model), {"train": x, "val": xv})


def _mia(learner, split: Split, seed: int) -> dict:
    """Membership inference on the forget set against as many validation samples (a seeded
    draw): cross-validated AUC of a logistic regression on the per-sample loss (labels as the
    samples were submitted: polluted for the forget set) and on the prediction entropy."""
    zf = learner.logits("train", split.forget)
    zv = learner.logits("val")
    yf = split.y[split.forget].astype(float)
    return {"mia_loss_auc": membership_auc(bce(zf, yf), bce(zv, split.y_val.astype(float)), seed),
            "mia_entropy_auc": membership_auc(prediction_entropy(zf), prediction_entropy(zv), seed)}


def compute(t: Task) -> dict:
    """Everything of one task (see the module doc): the record written to the cache."""
    t0 = time.perf_counter()
    x, xv = (qnn_features(t.ds, t.encoding) if t.model == "qnn" else (t.ds.x_train, t.ds.x_val))
    cs = corrupt(x, t.ds.y_train, t.alpha, "label_flip",
                 seed=derive_seed(t.seed, "unlearning-flips", t.ds.name, round(t.alpha * 1000), t.data_run))
    split = Split(cs.y, cs.y_clean, cs.forget, cs.retain, np.asarray(t.ds.y_val))
    poisoned = _train(t, cs.x, cs.y, xv, t.ds.y_val, _seed(t, "poison", t.model, t.data_run))
    base = _learner(t, poisoned, cs.x, xv)
    out = {**t.identity(), "n_forget": int(len(cs.forget)), "n_retain": int(len(cs.retain)),
           "poisoned": evaluate(base, split)}
    teacher = {"z": base.logits("train").tolist()}
    oracle = None
    if t.extras:
        r = cs.retain
        o = _learner(t, _train(t, cs.x[r], cs.y[r], xv, t.ds.y_val, _seed(t, "oracle", t.model, t.run)), cs.x, xv)
        oracle = {"val": o.logits("val") > 0, "forget": o.logits("train", cs.forget) > 0}
        out["oracle"] = evaluate(o, split)
        out["mia"] = {"poisoned": _mia(base, split, _seed(t, "mia", t.run)),
                      "oracle": _mia(o, split, _seed(t, "mia", t.run))}
    out["methods"] = {}
    for label, m in t.methods:
        # seeds by method name, not label: a variant (warm-up, a grid cell) sees the same batches
        start = poisoned if m.from_poisoned else _fresh(t, cs.x, _seed(t, "init", t.model, m.name, t.run))
        le = _learner(t, start, cs.x, xv)
        rec = unlearn(le, m, split, _seed(t, "batches", t.model, m.name, t.run), oracle=oracle,
                      teacher={"z": np.asarray(teacher["z"])}, record=t.record)
        if t.extras:
            out["mia"][label] = _mia(le, split, _seed(t, "mia", t.run))
        out["methods"][label] = rec
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out


def cache_file(t: Task):
    return paths.cache_dir() / "unlearning" / t.key() / f"{t.gauge}_{t.model}_run{t.run:02d}.json"


def run_tasks(tasks: list[Task], *, progress: bool = True, desc: str = "unlearning",
              scheduler: str | None = None, workers: int | None = None) -> list[dict]:
    """The records of ``tasks``, from the cache where valid, the rest computed in this process
    or on Dask workers (:func:`qmu_core.parallel.compute_cached`: one single-threaded worker per
    core by default, ``workers=1`` in this process). A task's record does not depend on where it
    ran."""
    from .parallel import compute_cached

    return compute_cached(tasks, cache_file=cache_file, compute=compute, submit=_submit(tasks), what=desc,
                          unit="task", progress=progress, scheduler=scheduler, workers=workers)


def _submit(tasks):
    """Submits every task of ``todo``, the longest first (the QNN's), each dataset scattered once
    to every worker."""
    def submit(client, todo) -> dict:
        from . import worker

        x64 = bool(jax.config.read("jax_enable_x64"))
        data, futures = {}, {}
        for i in sorted(todo, key=lambda i: (tasks[i].model != "qnn", tasks[i].ds.name != "mnist")):
            t = tasks[i]
            if id(t.ds) not in data:
                data[id(t.ds)] = client.scatter(t.ds, broadcast=True, hash=False)
            f = client.submit(worker.compute_unlearning, data[id(t.ds)], replace(t, ds=None), t.key(), x64,
                              pure=False, key=f"qmu-unlearn-{t.ds.name}-{t.gauge}-{t.model}-{t.run}-{uuid.uuid4().hex}")
            futures[f] = i
        return futures
    return submit


def check_protocol(value) -> str:
    return check_choice("protocol", value, PROTOCOLS)


def check_runs(n_runs) -> int:
    return check_int("n_runs", n_runs, min=1)
