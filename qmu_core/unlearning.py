"""Machine unlearning of a poisoned model: the paper's four methods and SCRUB as published
(Fig. 3a, 3b; SI Figs. S2, S3; SI section VI; Methods, Eqs. 5-8).

The forget set is the flipped samples of the training set, the retain set the rest. Each
method starts from the poisoned model (Retrain from a fresh initialisation), runs Adam with a
fresh state for ``epochs`` epochs over the retain set (reshuffled each epoch), and its
models are evaluated before the first epoch and after each (steps 0..epochs):

* :class:`Retrain` and :class:`Finetune`: the mean binary cross-entropy (CE) on the retain
  batch;
* :class:`GradientAscent`: CE(retain batch) - beta * CE(whole forget set, polluted labels);
* :class:`Scrub`, as the paper's code defines it: lambda_ce * CE(retain batch)
  + lambda_kl * KL(retain batch) - lambda_fo * KL(whole forget set), teacher = the frozen
  poisoned model; ``kl="code"`` is the code's positive-class term mean p_T log(p_T / q_S),
  ``kl="bernoulli"`` the Bernoulli KL (SPEC.md);
* :class:`ScrubOriginal`, SCRUB as Kurmanji et al. (2023) published it (their official
  small-scale configuration): in each of the first ``max_epochs`` epochs a pass of max steps
  over the forget set (-KL at temperature T, times T^2), then every epoch a pass of min steps
  over the retain set (gamma CE + alpha KL_T), Adam with L2 weight decay, the learning rate
  divided by 10 after epochs 5, 8 and 9.

Every loss is a function of the models' logits z alone, so it is written once
(:func:`loss_terms`: value and dL/dz per sample) and two learners turn dL/dz into a parameter
update: the QNN's through the adjoint kernel of the resilience sweeps (:mod:`qmu_core.adjoint`,
cotangent mode, Adam in numba as in :func:`qmu_core.adjoint.host_trainer`), the MLP's through
PyTorch's autograd and fused Adam (as :func:`qmu_core.training.train_mlp`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields

import numpy as np
import torch

from . import _adjoint_kernels as K
from . import adjoint
from .data import as_real_features
from .mlp import MLP
from .qnn import OUTPUT_SCALE, QNN
from .training import MLP_THREADS, _narrow, _torch_threads, _widen, active_inputs
from .validation import ParameterError, check_bool, check_choice, check_float, check_int, check_sequence

KL_KINDS = ("code", "bernoulli")
FULL_BATCH = 0  # a method's batch_size: the whole retain set


# ----------------------------------------------------------------------------- configurations
@dataclass(frozen=True)
class _Method:
    """What every method shares: epochs over the retain set, batch size, Adam's learning rate,
    and an optional linear warm-up of the learning rate over the first ``warmup`` updates
    (used to test where the QNN's transient dip comes from)."""

    epochs: int = 50
    batch_size: int = FULL_BATCH
    lr: float = 0.001
    warmup: int = 0

    name = "method"
    uses_forget = False
    from_poisoned = True

    def __post_init__(self):
        check_int("epochs", self.epochs, min=1)
        check_int("batch_size", self.batch_size, min=0)
        check_float("lr", self.lr, min=0.0)
        check_int("warmup", self.warmup, min=0)

    def lr_at(self, epoch: int, update: int) -> float:
        """Learning rate of optimiser update ``update`` (0-based) in epoch ``epoch`` (1-based)."""
        lr = self.lr
        if self.warmup:
            lr *= min(1.0, (update + 1) / self.warmup)
        return lr

    def describe(self) -> dict:
        return {"method": self.name, **{f.name: getattr(self, f.name) for f in fields(self)}}


@dataclass(frozen=True)
class Retrain(_Method):
    """Exact unlearning: CE on the retain set from a fresh initialisation (Eq. 5)."""

    name = "retrain"
    from_poisoned = False


@dataclass(frozen=True)
class Finetune(_Method):
    """CE on the retain set from the poisoned model (Eq. 5, started at theta_old)."""

    name = "finetune"


@dataclass(frozen=True)
class GradientAscent(_Method):
    """CE(retain batch) - beta CE(whole forget set with its polluted labels) (Eq. 6)."""

    beta: float = 0.2
    name = "gradient_ascent"

    @property
    def uses_forget(self) -> bool:
        return self.beta > 0

    def __post_init__(self):
        super().__post_init__()
        check_float("beta", self.beta, min=0.0)


@dataclass(frozen=True)
class Scrub(_Method):
    """The paper's SCRUB (Eq. 8 as its code computes it): one loss, no temperature, no
    alternation; teacher = the frozen poisoned model."""

    lambda_ce: float = 1.0
    lambda_kl: float = 0.0
    lambda_fo: float = 0.2
    kl: str = "code"
    name = "scrub"

    @property
    def uses_forget(self) -> bool:
        return self.lambda_fo > 0

    def __post_init__(self):
        super().__post_init__()
        for n in ("lambda_ce", "lambda_kl", "lambda_fo"):
            check_float(n, getattr(self, n), min=0.0)
        check_choice("kl", self.kl, KL_KINDS)


@dataclass(frozen=True)
class ScrubOriginal(_Method):
    """SCRUB as published (Kurmanji et al. 2023; their official small-scale configuration):
    max steps on the forget set in the first ``max_epochs`` epochs, min steps on the retain set
    every epoch; KL between Bernoulli outputs at temperature ``temperature`` times T^2."""

    temperature: float = 2.0
    max_epochs: int = 3
    gamma: float = 1.0  # weight of CE in a min step
    alpha: float = 0.5  # weight of KL_T in a min step
    weight_decay: float = 0.1  # Adam's L2 term, as in the official configuration
    lr_decay_epochs: tuple[int, ...] = (5, 8, 9)
    lr_decay_rate: float = 0.1
    name = "scrub_original"

    def __post_init__(self):
        super().__post_init__()
        check_float("temperature", self.temperature, min=0.0, min_inclusive=False)
        check_int("max_epochs", self.max_epochs, min=0)
        for n in ("gamma", "alpha", "weight_decay"):
            check_float(n, getattr(self, n), min=0.0)
        object.__setattr__(self, "lr_decay_epochs", check_sequence(
            "lr_decay_epochs", self.lr_decay_epochs, lambda n, v: check_int(n, v, min=1), min_len=0))
        check_float("lr_decay_rate", self.lr_decay_rate, min=0.0, max=1.0)

    def lr_at(self, epoch: int, update: int) -> float:
        # the official schedule: lr * rate^(number of decay epochs strictly before this epoch)
        steps = sum(epoch > e for e in self.lr_decay_epochs)
        return super().lr_at(epoch, update) * self.lr_decay_rate**steps


METHOD_CLASSES = {c.name: c for c in (Retrain, Finetune, GradientAscent, Scrub, ScrubOriginal)}
METHODS = tuple(METHOD_CLASSES)
METHOD_LABELS = {"retrain": "Retrain", "finetune": "Finetune", "gradient_ascent": "Gradient ascent",
                 "scrub": "SCRUB (paper)", "scrub_original": "SCRUB (Kurmanji et al.)"}


def method(name: str, **kwargs) -> _Method:
    """The configuration of method ``name`` (one of :data:`METHODS`) with ``kwargs`` set."""
    check_choice("method", name, METHODS)
    return METHOD_CLASSES[name](**kwargs)


# ----------------------------------------------------------------------------- losses on logits
def sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free


def bce(z, y):
    """Per-sample binary cross-entropy of logits ``z`` against (possibly soft) labels ``y``."""
    return np.logaddexp(0.0, z) - y * z


def kl(z_student, p_teacher, kind: str, temperature: float = 1.0):
    """Per-sample KL term between a teacher's probability of class 1 and the student's logits,
    and its derivative w.r.t. the student's logit. ``"code"``: p_T log(p_T / q) (the released
    code's positive-class term); ``"bernoulli"``: the Bernoulli KL(p_T || q); ``"tempered"``:
    T^2 KL(p_T^T || q^T) with p^T = sigmoid(z / T) (``p_teacher`` is then the teacher's logit),
    as SCRUB's DistillKL for two classes."""
    if kind == "tempered":
        T = temperature
        pt, q = sigmoid(p_teacher / T), sigmoid(z_student / T)
        return T * T * _bern_kl(pt, z_student / T), T * (q - pt)
    q = sigmoid(z_student)
    if kind == "code":
        logq = -np.logaddexp(0.0, -z_student)
        return p_teacher * (_xlogx_over(p_teacher) - logq), -p_teacher * (1.0 - q)
    if kind == "bernoulli":
        return _bern_kl(p_teacher, z_student), q - p_teacher
    raise ParameterError(f"parameter 'kind' must be one of 'code', 'bernoulli', 'tempered'; got {kind!r}")


def _xlogx_over(p):
    """log p where p > 0, 0 where p = 0 (so p log p -> 0)."""
    return np.log(np.where(p > 0, p, 1.0))


def _bern_kl(p, z):
    """KL(Bern(p) || Bern(sigmoid(z))), stable in z."""
    logq, log1mq = -np.logaddexp(0.0, -z), -np.logaddexp(0.0, z)
    return p * (_xlogx_over(p) - logq) + (1 - p) * (_xlogx_over(1 - p) - log1mq)


def loss_terms(m: _Method, z_r, y_r, z_f=None, y_f=None, t_r=None, t_f=None, phase: str = "min"):
    """The loss of one update of method ``m`` and its gradient w.r.t. the logits:
    ``(value, dz_r, dz_f)``. ``z_r, y_r``: logits and labels of the retain batch; ``z_f, y_f``:
    of the forget rows (polluted labels); ``t_r, t_f``: the teacher's probabilities (its
    logits for :class:`ScrubOriginal`). Means are over each set (the paper's Eq. 7 writes
    sums; its code takes means). ``phase="max"`` is a max step of :class:`ScrubOriginal`."""
    n_r = len(z_r) if z_r is not None else 1
    if isinstance(m, ScrubOriginal):
        if phase == "max":
            v, d = kl(z_f, t_f, "tempered", m.temperature)
            return -v.mean(), None, -d / len(z_f)
        v_kl, d_kl = kl(z_r, t_r, "tempered", m.temperature)
        v = m.gamma * bce(z_r, y_r).mean() + m.alpha * v_kl.mean()
        return v, (m.gamma * (sigmoid(z_r) - y_r) + m.alpha * d_kl) / n_r, None
    value = bce(z_r, y_r).mean()
    dz_r = (sigmoid(z_r) - y_r) / n_r
    dz_f = None
    if isinstance(m, GradientAscent) and z_f is not None:
        value -= m.beta * bce(z_f, y_f).mean()
        dz_f = -m.beta * (sigmoid(z_f) - y_f) / len(z_f)
    elif isinstance(m, Scrub):
        value, dz_r = m.lambda_ce * value, m.lambda_ce * dz_r
        if m.lambda_kl:
            v, d = kl(z_r, t_r, m.kl)
            value, dz_r = value + m.lambda_kl * v.mean(), dz_r + m.lambda_kl * d / n_r
        if z_f is not None:
            v, d = kl(z_f, t_f, m.kl)
            value -= m.lambda_fo * v.mean()
            dz_f = -m.lambda_fo * d / len(z_f)
    return value, dz_r, dz_f


def bce_weights(m: _Method, y_r, y_f=None, t_r=None, t_f=None):
    """The same gradient as :func:`loss_terms` written as a weighted binary cross-entropy:
    ``(labels, weights)`` of the retain batch's rows followed by the forget rows (when the
    method uses them), such that dL/dz_b = w_b (sigmoid(z_b) - label_b). Every method but
    :class:`ScrubOriginal` (whose tempered KL is not of this form) has it; the QNN's kernel
    then computes a whole update in one pass (``adjoint`` mode 3)."""
    if isinstance(m, ScrubOriginal):
        raise ParameterError("scrub_original's tempered KL has no weighted-BCE form; use loss_terms")
    n_r = len(y_r)
    a, c = np.full(n_r, 1.0 / n_r), np.asarray(y_r, np.float64) / n_r  # dz = a q - c
    if isinstance(m, Scrub):
        a, c = m.lambda_ce * a, m.lambda_ce * c
        if m.lambda_kl:
            k = m.lambda_kl * (t_r if m.kl == "code" else 1.0) / n_r  # code: p_T (q - 1); bernoulli: q - p_T
            a, c = a + k, c + (k if m.kl == "code" else m.lambda_kl * t_r / n_r)
    labels, weights = [np.divide(c, a, out=np.zeros_like(c), where=a != 0)], [a]
    if m.uses_forget:
        n_f = len(y_f)
        if isinstance(m, GradientAscent):
            labels.append(np.asarray(y_f, np.float64))
            weights.append(np.full(n_f, -m.beta / n_f))
        elif m.kl == "code":  # -lambda_fo * (-p_T (1 - q)) / n = -lambda_fo p_T / n * (q - 1)
            labels.append(np.ones(n_f))
            weights.append(-m.lambda_fo * np.asarray(t_f, np.float64) / n_f)
        else:
            labels.append(np.asarray(t_f, np.float64))
            weights.append(np.full(n_f, -m.lambda_fo / n_f))
    return np.concatenate(labels), np.concatenate(weights)


# ----------------------------------------------------------------------------- learners
class QNNLearner:
    """A QNN's parameters, Adam state and the sets it sees, on the adjoint kernel."""

    def __init__(self, model: QNN, params, sets: dict[str, np.ndarray]):
        self.model, self.circ = model, adjoint._Circuit(model)
        self.p = np.array(params, self.circ.real).ravel()
        self.x = {k: self.circ.kernel_input(np.asarray(v)) for k, v in sets.items()}
        self.reset_optimizer(0.0)

    @property
    def params(self) -> np.ndarray:
        return self.p.reshape(self.model.param_shape).copy()

    def reset_optimizer(self, weight_decay: float) -> None:
        self.mu, self.nu, self.count = np.zeros_like(self.p), np.zeros_like(self.p), np.zeros(1, np.int64)
        self.wd = weight_decay

    def logits(self, name: str, rows=None) -> np.ndarray:
        e = self.circ.run(self.x[name], self.p.reshape(self.model.param_shape), 0, None, rows)
        return OUTPUT_SCALE * e

    def update(self, rows, dz_fn, lr: float) -> None:
        """One Adam update along the gradient of sum_b dz_b z_b over the training rows ``rows``,
        where ``dz = dz_fn(z)`` is computed from their current logits."""
        shape = self.model.param_shape
        dz = dz_fn(OUTPUT_SCALE * self.circ.run(self.x["train"], self.p.reshape(shape), 0, None, rows))
        g = self.circ.run(self.x["train"], self.p.reshape(shape), 1, OUTPUT_SCALE * np.asarray(dz, np.float64),
                          rows)[2].ravel()
        if self.wd:
            g = g + self.circ.real(self.wd) * self.p
        K.adam(self.p, np.ascontiguousarray(g, self.circ.real), self.mu, self.nu, self.count, lr, 0.9, 0.999, 1e-8)

    def update_bce(self, rows, labels, weights, lr: float) -> None:
        """One Adam update along the gradient of sum_b w_b BCE(z_b, label_b) over ``rows``
        (:func:`bce_weights`), forward and backward in one kernel pass."""
        g = self.circ.run(self.x["train"], self.p.reshape(self.model.param_shape), 3,
                          np.concatenate([labels, weights]), rows)[2].ravel()
        if self.wd:
            g = g + self.circ.real(self.wd) * self.p
        K.adam(self.p, np.ascontiguousarray(g, self.circ.real), self.mu, self.nu, self.count, lr, 0.9, 0.999, 1e-8)


class MLPLearner:
    """An MLP's parameters, Adam state (PyTorch's fused Adam) and the sets it sees.

    Without weight decay the first layer trains on the training set's active inputs only
    (:func:`qmu_core.training.active_inputs`, as :func:`~qmu_core.training.train_mlp` does):
    a narrow copy of the net takes the updates and the logits of the training rows, and is
    written back into ``net`` before anything reads the whole net (other sets, ``params``).
    With weight decay (SCRUB's official configuration) the weights of inactive inputs decay
    too, so the full net trains. ``narrow=False``: always the full net (the reference)."""

    def __init__(self, net: MLP, sets: dict[str, np.ndarray], narrow: bool = True):
        check_bool("narrow", narrow)
        self.net = net
        self.x = {k: torch.from_numpy(as_real_features(np.asarray(v))) for k, v in sets.items()}
        self._cols = active_inputs(self.x["train"].numpy()) if narrow else np.arange(net.n_inputs)
        self._small = None
        self.reset_optimizer(0.0)

    def _sync(self) -> MLP:
        """``net`` with the narrow copy's updates written back."""
        if self._small is not None:
            _widen(self.net, self._small, self._cols)
        return self.net

    @property
    def params(self) -> np.ndarray:
        return torch.nn.utils.parameters_to_vector(self._sync().parameters()).detach().numpy().copy()

    def reset_optimizer(self, weight_decay: float) -> None:
        self._sync()
        narrow = weight_decay == 0 and len(self._cols) < self.net.n_inputs
        self._small = _narrow(self.net, self._cols) if narrow else None
        self._train_net = self.net if self._small is None else self._small
        self._x_train = self.x["train"][:, torch.from_numpy(self._cols)].contiguous() if narrow else self.x["train"]
        self.opt = torch.optim.Adam(self._train_net.parameters(), lr=1e-3, weight_decay=weight_decay, fused=True)

    def logits(self, name: str, rows=None) -> np.ndarray:
        net, x = (self._train_net, self._x_train) if name == "train" else (self._sync(), self.x[name])
        x = x if rows is None else x[torch.from_numpy(np.asarray(rows, np.int64))]
        with torch.no_grad(), _torch_threads(MLP_THREADS):
            return net.logits(x).double().numpy()

    def update(self, rows, dz_fn, lr: float) -> None:
        """One Adam update along the gradient of sum_b dz_b z_b, ``dz = dz_fn(z)`` (see
        :meth:`QNNLearner.update`); one forward pass serves both."""
        with _torch_threads(MLP_THREADS):
            for g in self.opt.param_groups:
                g["lr"] = lr
            z = self._train_net.logits(self._x_train[torch.from_numpy(np.asarray(rows, np.int64))])
            dz = dz_fn(z.detach().double().numpy())
            self.opt.zero_grad(set_to_none=True)
            z.backward(torch.from_numpy(np.asarray(dz, np.float32)))
            self.opt.step()

    def update_bce(self, rows, labels, weights, lr: float) -> None:
        """As :meth:`QNNLearner.update_bce`."""
        self.update(rows, lambda z: weights * (sigmoid(z) - labels), lr)


# ----------------------------------------------------------------------------- one method run
@dataclass(frozen=True, eq=False)
class Split:
    """The sets of an unlearning run: labels as trained (polluted), the clean labels, and the
    forget / retain rows of the training set."""

    y: np.ndarray  # training labels as the poisoned model saw them
    y_clean: np.ndarray
    forget: np.ndarray
    retain: np.ndarray
    y_val: np.ndarray


def evaluate(learner, split: Split, oracle: dict | None = None) -> dict:
    """Accuracies of the learner's current model (Fig. 3a/b: validation; SI Figs. S2/S3:
    forgetting accuracy = accuracy on the forget set with its polluted labels) and, with an
    ``oracle`` (its predictions on ``val`` and ``forget``), the fraction of disagreements."""
    zt, zv = learner.logits("train"), learner.logits("val")
    pt, pv = zt > 0, zv > 0
    f, r = split.forget, split.retain
    out = {"train_acc": np.mean(pt == (split.y > 0)), "val_acc": np.mean(pv == (split.y_val > 0)),
           "val_loss": bce(zv, split.y_val).mean(), "retain_acc": np.mean(pt[r] == (split.y[r] > 0)),
           "forget_acc_clean": np.mean(pt[f] == (split.y_clean[f] > 0)),
           "forget_acc_polluted": np.mean(pt[f] == (split.y[f] > 0))}
    if oracle is not None:
        out["disagree_val"] = np.mean(pv != oracle["val"])
        out["disagree_forget"] = np.mean(pt[f] != oracle["forget"])
    return {k: float(v) for k, v in out.items()}


def unlearn(learner, m: _Method, split: Split, seed: int, *, oracle: dict | None = None,
            teacher: dict | None = None, record: bool = True) -> dict:
    """Run method ``m`` on ``learner`` (already at its starting model) and return its record:
    per step 0..epochs the metrics of :func:`evaluate` (``record=False``: the final step only),
    the cumulative sample-gradients (rows through a backward pass) and the cumulative seconds of
    the updates (metrics excluded). ``teacher``: the poisoned model's logits on the training set
    (``"z"``), needed by the SCRUB methods. Batches are drawn from ``seed``."""
    rng = np.random.default_rng(int(seed))
    learner.reset_optimizer(getattr(m, "weight_decay", 0.0))
    r_rows, f_rows = np.asarray(split.retain), np.asarray(split.forget)
    bs = m.batch_size or len(r_rows)
    y = split.y.astype(np.float64)
    t_z = None if teacher is None else np.asarray(teacher["z"], np.float64)
    t_p = None if t_z is None else sigmoid(t_z)
    needs_teacher = isinstance(m, (Scrub, ScrubOriginal))
    if needs_teacher and t_z is None:
        raise ParameterError(f"method '{m.name}' needs the teacher's logits (argument 'teacher')")
    t_in = (lambda rows: t_z[rows]) if isinstance(m, ScrubOriginal) else (lambda rows: None if t_p is None else t_p[rows])
    steps = [evaluate(learner, split, oracle)] if record else []
    grads, secs, update = [0], [0.0], 0
    for epoch in range(1, m.epochs + 1):
        t0, n_grad = time.perf_counter(), 0
        if isinstance(m, ScrubOriginal) and epoch <= m.max_epochs:
            fperm = f_rows[rng.permutation(len(f_rows))]
            for s in range(0, len(fperm), bs):
                rows = fperm[s:s + bs]
                learner.update(rows, lambda z, rows=rows: loss_terms(m, None, None, z, y[rows], None, t_in(rows),
                                                                     "max")[2], m.lr_at(epoch, update))
                update, n_grad = update + 1, n_grad + len(rows)
        perm = r_rows[rng.permutation(len(r_rows))]
        for s in range(0, len(perm), bs):
            rb = perm[s:s + bs]
            if isinstance(m, ScrubOriginal):
                rows = rb
                learner.update(rows, lambda z, rb=rb: loss_terms(m, z, y[rb], t_r=t_in(rb))[1], m.lr_at(epoch, update))
            else:
                rows = np.concatenate([rb, f_rows]) if m.uses_forget else rb
                labels, weights = bce_weights(m, y[rb], y[f_rows], t_in(rb), t_in(f_rows))
                learner.update_bce(rows, labels, weights, m.lr_at(epoch, update))
            update, n_grad = update + 1, n_grad + len(rows)
        secs.append(secs[-1] + time.perf_counter() - t0)
        grads.append(grads[-1] + n_grad)
        if record or epoch == m.epochs:
            steps.append(evaluate(learner, split, oracle))
    out = {k: [s[k] for s in steps] for k in steps[0]}
    out["sample_grads"] = grads if record else grads[-1:]
    out["seconds"] = secs if record else secs[-1:]
    return out
