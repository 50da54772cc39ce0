"""The landscape chapter's experiments: trained models, their Hessian geometry (Fig. 3d) and
loss slices (Fig. 3c), cached per run.

Two settings (SPEC.md, "Landscape geometry"):

* ``"paper"``: MNIST 1 vs 9, the 500 training images (250 per class), label flips half from
  each class (:func:`qmu_core.corruption.corrupt`); MLP [16, 4] on the 784 normalised pixels
  (100 epochs, batch 128, lr 0.01) and the paper's QNN (10 qubits, D = 6, RX-RY-RX + RZZ ring;
  100 epochs, batch 256, lr 0.005); the Hessian of the mean BCE on 100 random training samples
  with the labels the model was trained on, over the QNN's live angles.
* ``"released_code"``: the authors' ``plot_hessian.ipynb``: a 70/30 stratified split of the
  500 images, int(alpha * 350) training labels flipped at random, MLP [8, 2] on the padded
  1024-vector, the notebook's QNN (:mod:`qmu_core.released_qnn`, D = 5), 50 epochs, batch 32,
  lr 0.01 for both, seeds 0, 42, 123, 1024, 2048; the Hessian on 100 held-out samples with
  clean labels, the QNN's over the real and imaginary parts of its angles.

One :class:`Run` is one (setting, model, alpha, run); its record (trained parameters, accuracies,
trace, its clean/flipped split, spectrum, Hutchinson check, dead flag) is written to
``.cache/landscape/<key>/`` with the sweep cache's checksummed format
(:func:`qmu_core.sweep.write_entry`). :func:`slices` computes Fig. 3c from the cached runs.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

import numpy as np

from . import data, paths
from .config import TrainConfig
from .corruption import corrupt
from .sweep import _fingerprint, derive_seed
from .validation import check_choice

VERSION = "landscape-v1"
#: the released-code QNN's cache-key kernel: "jax-holomorphic" since its Hessian is assembled
#: from holomorphic parts (:func:`qmu_core.released_qnn.hessian_re_im`; equal to the former
#: column-by-column "jax" Hessian up to float rounding), so records of the two never mix
RELEASED_QNN_KERNEL = "jax-holomorphic"
#: the MLPs' Hessian diagonal (the trace) in the cache key: "gn-diagonal" since it is the
#: Gauss-Newton diagonal from per-sample gradients (:meth:`qmu_core.landscape.TorchLoss.diagonal`;
#: equal to the former HVP diagonal up to float rounding)
MLP_DIAGONAL = "gn-diagonal"
SETTINGS = ("paper", "released_code")
MODELS = ("mlp", "qnn")
RELEASED_SEEDS = (0, 42, 123, 1024, 2048)
#: (setting, model) -> (network, training)
PROTOCOL = {
    ("paper", "mlp"): ((16, 4), TrainConfig(100, 128, 0.01)),
    ("paper", "qnn"): (6, TrainConfig(100, 256, 0.005)),
    ("released_code", "mlp"): ((8, 2), TrainConfig(50, 32, 0.01)),
    ("released_code", "qnn"): (5, TrainConfig(50, 32, 0.01)),
}
LABELS = {("paper", "mlp"): "MLP [16, 4]", ("paper", "qnn"): "QNN 10 qubits, D = 6",
          ("released_code", "mlp"): "MLP [8, 2]", ("released_code", "qnn"): "QNN RX-RY-CNOT, D = 5"}
#: the released notebook drops MLP runs whose trace is 0.25 +- 0.01 (a dead network)
CODE_DEAD_TRACE, CODE_DEAD_TOL = 0.25, 0.01


@dataclass(frozen=True)
class Run:
    """One trained model and its geometry."""

    setting: str
    model: str
    alpha: float
    run: int
    n_hessian: int = 100
    epoch_scale: float = 1.0
    n_val: int = data.MNIST_VAL_AVAILABLE
    hutchinson_probes: int = 30
    slq_steps: int = 60
    slq_probes: int = 4
    seed: int = 0

    def __post_init__(self):
        check_choice("setting", self.setting, SETTINGS)
        check_choice("model", self.model, MODELS)

    @property
    def train_config(self) -> TrainConfig:
        return PROTOCOL[(self.setting, self.model)][1].scaled(self.epoch_scale)

    def key(self) -> str:
        from .training import MLP_OPTIMIZER, qnn_kernel_name

        kernel = f"{MLP_OPTIMIZER}+{MLP_DIAGONAL}" if self.model == "mlp" else (qnn_kernel_name() if self.setting == "paper" else RELEASED_QNN_KERNEL)
        ds = _dataset(self.setting, self.model, self.n_val)
        fields = {"version": VERSION, "data": _fingerprint(ds), **{k: v for k, v in self.__dict__.items() if k != "run"},
                  "kernel": kernel, "protocol": repr(PROTOCOL[(self.setting, self.model)])}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]

    def identity(self) -> dict:
        return {"setting": self.setting, "model": self.model, "alpha": self.alpha, "run": self.run}


def _dataset(setting: str, model: str, n_val: int) -> data.Dataset:
    n_features = 784 if (setting, model) == ("paper", "mlp") else 1024
    return data.mnist_1v9(n_val=n_val, n_features=n_features)


@dataclass(frozen=True, eq=False)
class Sets:
    """The training set as trained (``y`` possibly flipped), its clean labels, which rows were
    flipped, the validation set, and the Hessian's samples (``xh``, ``yh``, ``flipped_h``)."""

    x: np.ndarray
    y: np.ndarray
    y_clean: np.ndarray
    forget: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    xh: np.ndarray
    yh: np.ndarray
    flipped_h: np.ndarray


def sets(r: Run) -> Sets:
    """The data of run ``r`` (see the module doc), a deterministic function of ``r``."""
    ds = _dataset(r.setting, r.model, r.n_val)
    if r.setting == "paper":
        cs = corrupt(ds.x_train, ds.y_train, r.alpha, "label_flip",
                     seed=derive_seed(r.seed, "landscape-flips", round(r.alpha * 1000), r.run))
        rng = np.random.default_rng(derive_seed(r.seed, "landscape-hessian-rows", round(r.alpha * 1000), r.run))
        rows = np.sort(rng.choice(len(cs.y), r.n_hessian, replace=False))
        flipped = np.isin(rows, cs.forget)
        return Sets(cs.x, cs.y, cs.y_clean, cs.forget, ds.x_val, ds.y_val, cs.x[rows], cs.y[rows], flipped)
    from sklearn.model_selection import train_test_split

    seed = RELEASED_SEEDS[r.run] if r.run < len(RELEASED_SEEDS) else r.run
    x, y = ds.x_train.astype(np.float64), ds.y_train
    xt, xv, yt, yv = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
    rng = np.random.default_rng(seed)
    flip = rng.choice(len(yt), int(len(yt) * r.alpha), replace=False)
    y_noisy = yt.copy()
    y_noisy[flip] = 1 - y_noisy[flip]
    rows = rng.choice(len(xv), min(r.n_hessian, len(xv)), replace=False)
    return Sets(xt, y_noisy, yt, np.sort(flip), xv, yv, xv[rows], yv[rows], np.zeros(len(rows), bool))


def _train(r: Run, s: Sets):
    """The trained model: (its flat parameters, its loss problem on the Hessian's samples)."""
    from . import landscape as L
    from .precision import float64_scope

    hidden_or_depth, _ = PROTOCOL[(r.setting, r.model)]
    cfg = r.train_config
    tseed = derive_seed(r.seed, "landscape-train", r.setting, r.model, round(r.alpha * 1000), r.run)
    if r.model == "mlp":
        from .mlp import MLP
        from .training import train_mlp

        net, _ = train_mlp(MLP(s.x.shape[1], hidden_or_depth), s.x, s.y, s.x_val, s.y_val,
                           TrainConfig(cfg.epochs, cfg.batch_size, cfg.lr, cfg.epochs), tseed)
        prob = L.TorchLoss(net, s.xh, s.yh)
        return prob.flat(), prob
    if r.setting == "paper":
        import jax

        from .qnn import QNN
        from .training import train_qnn

        model = QNN(10, hidden_or_depth)
        params, _ = train_qnn(model, s.x, s.y, s.x_val, s.y_val,
                              TrainConfig(cfg.epochs, cfg.batch_size, cfg.lr, cfg.epochs), tseed)
        prob = L.QNNLoss(model, s.xh, s.yh)
        return prob.flat(np.asarray(jax.device_get(params))), prob
    from . import released_qnn as RQ

    with float64_scope():  # the notebook trains in complex128 (tc.set_dtype)
        params = RQ.train(s.x, s.y, hidden_or_depth, cfg.epochs, cfg.batch_size, cfg.lr, tseed)
    return params.ravel(), RQ.Problem(params.shape, s.xh, s.yh)


def problem_for(r: Run, x, y):
    """The loss problem of run ``r``'s model on (x, y), a function of its flat parameters."""
    from . import landscape as L

    hidden_or_depth, _ = PROTOCOL[(r.setting, r.model)]
    if r.model == "mlp":
        from .mlp import MLP

        return L.TorchLoss(MLP(x.shape[1], hidden_or_depth), x, y)
    if r.setting == "paper":
        from .qnn import QNN

        return L.QNNLoss(QNN(10, hidden_or_depth), x, y)
    from . import released_qnn as RQ

    return RQ.Problem((hidden_or_depth, 10, 2), x, y)


def compute(r: Run) -> dict:
    """Train run ``r``'s model and measure its geometry (the record cached per run)."""
    from . import landscape as L
    from .precision import float64_scope

    t0 = time.perf_counter()
    s = sets(r)
    v, prob = _train(r, s)
    t_train = time.perf_counter() - t0
    with float64_scope():
        g = L.geometry(prob, v, s.flipped_h, slq_steps=r.slq_steps, slq_probes=r.slq_probes,
                       seed=derive_seed(r.seed, "landscape-slq", r.run))
        est, se = L.hutchinson(lambda u: prob.hvp(v, u), prob.n, r.hutchinson_probes,
                               derive_seed(r.seed, "landscape-hutchinson", r.run))
        full = problem_for(r, s.x, s.y)
        zt = full.z(v)
        zv = problem_for(r, s.x_val, s.y_val).z(v)
    dead = L.is_dead(np.concatenate([zt, zv]))
    rec = {**r.identity(), "label": LABELS[(r.setting, r.model)], "n_params": int(prob.n),
           "n_flipped_hessian": int(s.flipped_h.sum()), "n_flipped_train": int(len(s.forget)),
           "train_acc": float(np.mean((zt > 0) == (s.y > 0))), "val_acc": float(np.mean((zv > 0) == (s.y_val > 0))),
           "train_loss": float(np.mean(L.bce(zt, s.y))), "trace": g.trace, "trace_clean": g.trace_clean,
           "trace_flipped": g.trace_flipped, **g.spectrum, "exact_spectrum": g.exact_spectrum,
           "hutchinson": est, "hutchinson_se": se, "dead": dead,
           "dead_code_rule": bool(r.model == "mlp" and abs(g.trace - CODE_DEAD_TRACE) <= CODE_DEAD_TOL),
           "eigs": g.eigs.tolist(), "eig_weights": g.eig_weights.tolist(), "params": np.asarray(v).tolist(),
           "seconds_train": round(t_train, 3), "seconds": round(time.perf_counter() - t0, 3)}
    return rec


def cache_file(r: Run):
    return paths.cache_dir() / "landscape" / r.key() / f"{r.setting}_{r.model}_a{round(r.alpha * 1000):04d}_run{r.run:02d}.json"


def run_all(runs: list[Run], *, progress: bool = True, scheduler: str | None = None,
            workers: int | None = None) -> list[dict]:
    """The records of ``runs``, from the cache where valid, the rest computed in this process
    (``workers=1``) or on Dask workers (:func:`qmu_core.parallel.compute_cached`), each cached as
    it arrives."""
    from .parallel import compute_cached

    def submit(client, todo) -> dict:
        import uuid

        import jax

        from . import worker

        x64 = bool(jax.config.read("jax_enable_x64"))
        return {client.submit(worker.compute_landscape, runs[i], runs[i].key(), x64, pure=False,
                              key=f"qmu-landscape-{runs[i].setting}-{runs[i].model}-{uuid.uuid4().hex}"): i
                for i in todo}

    return compute_cached(runs, cache_file=cache_file, compute=compute, submit=submit, what="landscape",
                          unit="run", progress=progress, scheduler=scheduler, workers=workers)


# ----------------------------------------------------------------------------- Fig. 3c
def params_of(rec: dict) -> np.ndarray:
    return np.asarray(rec["params"], np.float64)


def _layers(r: Run, v):
    """The parameter groups of the filter normalisation: an MLP's tensors, a QNN's layers."""
    hidden_or_depth, _ = PROTOCOL[(r.setting, r.model)]
    if r.model == "mlp":
        from .mlp import MLP

        net = MLP(784 if r.setting == "paper" else 1024, hidden_or_depth)
        out, i = [], 0
        for p in net.parameters():
            out.append(v[i:i + p.numel()].reshape(p.shape))
            i += p.numel()
        return out, "mlp"
    if r.setting == "paper":
        from .qnn import QNN

        mask = QNN(10, hidden_or_depth).live_mask
        counts = mask.reshape(len(mask), -1).sum(1)
        return np.split(v, np.cumsum(counts)[:-1]), "qnn"
    return list(v.reshape(hidden_or_depth, -1)), "qnn"


def slices(r_clean: Run, rec_clean: dict, r_poison: Run, rec_poison: dict, *, n_1d: int = 41, n_2d: int = 21,
           span: float = 1.0, unlearn_epochs: int = 50, seed: int = 0) -> dict:
    """Fig. 3c for one model: 1-D and 2-D slices of the training loss (labels as trained, all
    training samples) around the clean and the poisoned minima along the same filter-normalised
    random directions (scaled to each minimum's own parameters), and the losses along the
    straight line from the poisoned model to the model after unlearning (Finetune from the
    poisoned model on the retain set, the unlearning chapter's defaults for MNIST)."""
    from . import landscape as L
    from .precision import float64_scope

    ts1, ts2 = np.linspace(-span, span, n_1d), np.linspace(-span, span, n_2d)
    out = {"t_1d": ts1.tolist(), "t_2d": ts2.tolist()}
    with float64_scope():
        for name, r, rec in (("clean", r_clean, rec_clean), ("poisoned", r_poison, rec_poison)):
            s = sets(r)
            v = params_of(rec)
            prob = problem_for(r, s.x, s.y)
            groups, kind = _layers(r, v)
            rng = np.random.default_rng(derive_seed(seed, "landscape-directions", r.model))
            d1, d2 = L.filter_normalised(groups, rng, kind), L.filter_normalised(groups, rng, kind)
            out[name] = {"loss0": prob.loss(v), "slice_1d": L.slice_1d(prob.loss, v, d1, ts1).tolist(),
                         "slice_2d": L.slice_2d(prob.loss, v, d1, d2, ts2).tolist()}
        s = sets(r_poison)
        v0 = params_of(rec_poison)
        v1 = _unlearned(r_poison, s, v0, unlearn_epochs, seed)
        tl = np.linspace(-0.25, 1.25, n_1d)
        out["path"] = {"t": tl.tolist(), "distance": float(np.linalg.norm(v1 - v0))}
        for what, (x, y) in {"train_polluted": (s.x, s.y), "train_clean": (s.x, s.y_clean),
                             "retain": (s.x[np.setdiff1d(np.arange(len(s.y)), s.forget)],
                                        np.delete(s.y, s.forget)),
                             "val": (s.x_val, s.y_val)}.items():
            out["path"][what] = L.line(problem_for(r_poison, x, y).loss, v0, v1, tl).tolist()
    return out


def _unlearned(r: Run, s: Sets, v0, epochs: int, seed: int) -> np.ndarray:
    """The poisoned model after Finetune (:mod:`qmu_core.unlearning`) with the unlearning
    chapter's MNIST batch size and learning rate; flat parameters."""
    import torch

    from .unlearning import MLPLearner, QNNLearner, Split, method, unlearn
    from .unlearning_study import SETTINGS as U

    u = U[("mnist", r.model)]
    m = method("finetune", epochs=epochs, batch_size=u.batch_size, lr=u.lr)
    split = Split(s.y, s.y_clean, s.forget, np.setdiff1d(np.arange(len(s.y)), s.forget), s.y_val)
    hidden_or_depth, _ = PROTOCOL[(r.setting, r.model)]
    if r.model == "mlp":
        from .mlp import MLP

        net = MLP(s.x.shape[1], hidden_or_depth)
        torch.nn.utils.vector_to_parameters(torch.as_tensor(v0, dtype=torch.float32), net.parameters())
        le = MLPLearner(net, {"train": s.x, "val": s.x_val})
        unlearn(le, m, split, derive_seed(seed, "landscape-unlearn", r.model), record=False)
        return np.asarray(le.params, np.float64)
    from .qnn import QNN

    model = QNN(10, hidden_or_depth)
    full = np.zeros(model.param_shape)
    full[model.live_mask] = v0
    le = QNNLearner(model, full.astype(np.float32), {"train": s.x, "val": s.x_val})
    unlearn(le, m, split, derive_seed(seed, "landscape-unlearn", r.model), record=False)
    return np.asarray(le.params, np.float64)[model.live_mask]

