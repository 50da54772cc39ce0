"""Training loops for both models (Adam, reshuffled mini-batches; Methods, SI Table I).

For the QNN on a CPU, an epoch is a host loop around the adjoint-method kernel
(:mod:`qmu_core.adjoint`): one kernel call per mini-batch computes the mean BCE and its
gradient, then one Adam step; its numbers do not depend on numba's cache or the thread count.
On an accelerator an epoch is one compiled XLA program (a ``lax.scan`` over the mini-batches
around :meth:`QNN.expectation`). Full-set metrics are a compiled XLA program either way, run
every ``eval_every`` epochs. Everything is built once per (model, set size, config) and
reused run after run.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from . import adjoint, qnn
from .config import CLASSICAL_KINDS, KERAS_EPS, ModelSpec, TrainConfig
from .data import as_real_features
from .mlp import MLP
from .qnn import QNN
from .validation import ParameterError, check_bool

EVAL_CHUNK = 256  # states per forward pass when evaluating a whole set (stays in cache)


@dataclass(frozen=True, eq=False)
class History:
    """Metrics at the recorded epochs (1-based epoch numbers)."""

    epoch: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray

    @property
    def final(self) -> dict[str, float]:
        return {
            "train_loss": float(self.train_loss[-1]),
            "train_acc": float(self.train_acc[-1]),
            "val_loss": float(self.val_loss[-1]),
            "val_acc": float(self.val_acc[-1]),
        }


def _check_xy(x, y, name: str, n_features: int | None = None):
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y):
        raise ParameterError(f"{name}: need x of shape (N, d) and y of shape (N,), got {x.shape}, {y.shape}")
    if n_features is not None and x.shape[1] != n_features:
        raise ParameterError(f"{name}: x has {x.shape[1]} features, expected {n_features}")
    return x, y


def bce_from_logits(z, y):
    """Binary cross-entropy computed stably from the logit: softplus(z) - y z."""
    return jax.nn.softplus(z) - y * z


# --------------------------------------------------------------------------- QNN
def qnn_kernel_name() -> str:
    """Which simulation trains the QNN here: the adjoint kernel on a CPU (see
    benchmarks/results/qnn_throughput.json), XLA's :meth:`QNN.expectation` on a GPU or TPU.
    Part of the sweep cache key, so runs of different kernels (different rounding) never mix."""
    return adjoint.KERNEL if jax.default_backend() == "cpu" else qnn.KERNEL


def qnn_kernel(model: QNN, name: str | None = None):
    """The expectation function ``f(params, states)`` of the kernel ``name``
    (:data:`adjoint.KERNEL` or :data:`qnn.KERNEL`; default :func:`qnn_kernel_name`)."""
    name = qnn_kernel_name() if name is None else name
    return adjoint.expectation_fn(model) if name == adjoint.KERNEL else model.expectation


def keras_adam(lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = KERAS_EPS):
    """Keras's Adam as an optax transformation: m and v without bias correction, the step
    lr sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps) (:attr:`TrainConfig.adam`)."""

    def init(params):
        return (jnp.zeros_like(params), jnp.zeros_like(params), jnp.zeros((), jnp.int32))

    def update(g, state, params=None):
        mu, nu, t = state
        t = t + 1
        mu = b1 * mu + (1 - b1) * g
        nu = b2 * nu + (1 - b2) * g * g
        tf = t.astype(g.dtype)
        alpha = lr * jnp.sqrt(1 - b2**tf) / (1 - b1**tf)
        return -alpha * mu / (jnp.sqrt(nu) + eps), (mu, nu, t)

    return optax.GradientTransformation(init, update)


def _eval_set(logits, params, x, y):
    """Mean loss and accuracy over a whole (zero-padded) set; ``y < 0`` marks padding."""
    z = jax.lax.map(lambda xb: logits(params, xb), x).reshape(-1)
    yy = y.reshape(-1)
    mask = (yy >= 0).astype(z.dtype)
    loss = jnp.sum(bce_from_logits(z, yy) * mask) / jnp.sum(mask)
    acc = jnp.sum(((z > 0) == (yy > 0.5)) * mask) / jnp.sum(mask)
    return loss, acc


def _chunked(x: np.ndarray, y: np.ndarray, dtype):
    n = len(x)
    m = -(-n // EVAL_CHUNK) * EVAL_CHUNK
    xp = np.zeros((m, x.shape[1]), dtype=dtype)
    xp[:n] = x
    yp = np.full(m, -1.0, dtype=np.float32)
    yp[:n] = y
    return xp.reshape(-1, EVAL_CHUNK, x.shape[1]), yp.reshape(-1, EVAL_CHUNK)


@lru_cache(maxsize=32)
def _qnn_trainer(model: QNN, cfg: TrainConfig, n_train: int, kernel: str | None = None):
    """``(init, epoch, evaluate)`` for this model, config, training-set size and kernel
    (default :func:`qnn_kernel_name`; :mod:`qmu_core.batched` vmaps the XLA one's):
    ``init(params)`` is Adam's initial state, ``epoch(params, state, key, x, y)`` runs one
    epoch (a permutation drawn from ``key``, the full mini-batches and the smaller remainder
    batch, one Adam step each) and returns ``(params, state, key)``, ``evaluate`` the metrics.

    On a CPU the epoch is a host loop around the adjoint kernel
    (:func:`qmu_core.adjoint.host_trainer`: one call computes a mini-batch's loss and
    gradient, reading the batch's rows straight from ``x``); elsewhere it is one compiled XLA
    program, a ``lax.scan`` over the mini-batches (compiled once and reused run after run:
    3-4 s against 17 s for a whole run). ``evaluate`` is compiled XLA either way.
    """
    opt = optax.adam(cfg.lr) if cfg.adam == "optax" else keras_adam(cfg.lr)
    bs = min(cfg.batch_size, n_train)
    n_full, rem = divmod(n_train, bs)
    expectation = qnn_kernel(model, kernel)

    def logits(params, xb):
        return qnn.OUTPUT_SCALE * expectation(params, xb)

    @jax.jit
    def evaluate(params, xt, yt, xv, yv):
        return jnp.stack([*_eval_set(logits, params, xt, yt), *_eval_set(logits, params, xv, yv)])

    if (kernel or qnn_kernel_name()) == adjoint.KERNEL:
        init, epoch = adjoint.host_trainer(model, cfg.lr, bs, n_train, cfg.adam)
        return init, epoch, evaluate

    def loss_fn(params, xb, yb):
        return jnp.mean(bce_from_logits(logits(params, xb), yb))

    grad_fn = jax.value_and_grad(loss_fn)

    def step(carry, batch):
        params, opt_state = carry
        xb, yb = batch
        loss, g = grad_fn(params, xb, yb)
        updates, opt_state = opt.update(g, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    @jax.jit
    def epoch(params, opt_state, key, x, y):
        key, sub = jax.random.split(key)
        perm = jax.random.permutation(sub, n_train)
        xs, ys = x[perm], y[perm]
        batches = (
            xs[: n_full * bs].reshape(n_full, bs, -1),
            ys[: n_full * bs].reshape(n_full, bs),
        )
        (params, opt_state), _ = jax.lax.scan(step, (params, opt_state), batches)
        if rem:
            (params, opt_state), _ = step((params, opt_state), (xs[n_full * bs :], ys[n_full * bs :]))
        return params, opt_state, key

    return opt.init, epoch, evaluate


def train_qnn(model: QNN, x, y, x_val, y_val, cfg: TrainConfig, seed: int, params=None):
    """Train the QNN from N(0, 0.01^2) (or from ``params``); returns (params, History)."""
    d = 2**model.n_qubits
    x, y = _check_xy(x, y, "training set", d)
    x_val, y_val = _check_xy(x_val, y_val, "validation set", d)
    model.check_states(x)
    key = jax.random.PRNGKey(int(seed))
    k_init, key = jax.random.split(key)
    params = model.init(k_init) if params is None else jnp.asarray(params)
    cdt = np.complex64 if model.dtype == "complex64" else np.complex128
    sets = [jnp.asarray(a) for a in (*_chunked(x, y, cdt), *_chunked(x_val, y_val, cdt))]
    # the kernel's name is resolved here so that it is part of the trainer cache's key
    kernel = qnn_kernel_name()
    if kernel == adjoint.KERNEL:
        xj, yj = x, y  # the host loop reads NumPy arrays
    else:
        xj, yj = jnp.asarray(x, cdt), jnp.asarray(y, np.float32)
    init, epoch, evaluate = _qnn_trainer(model, cfg, len(x), kernel)
    opt_state = init(params)
    rows = []
    for e in range(cfg.epochs):
        params, opt_state, key = epoch(params, opt_state, key, xj, yj)
        if (e + 1) % cfg.eval_every == 0 or e + 1 == cfg.epochs:
            rows.append((e + 1, *np.asarray(evaluate(params, *sets), dtype=np.float64)))
    r = np.array(rows)
    return jnp.asarray(params), History(r[:, 0].astype(int), r[:, 1], r[:, 2], r[:, 3], r[:, 4])


# --------------------------------------------------------------------------- MLP
def _mlp_eval(net: MLP, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        z = net.logits(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y).item()
        acc = ((z > 0).float() == y).float().mean().item()
    return loss, acc


class _torch_threads:
    """Run torch on ``n`` threads inside the block: these small MLPs train 2x faster on one
    thread than on two on a 2-core machine (measured; the threads contend with XLA's)."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        self.old = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        torch.set_num_threads(self.old)


MLP_THREADS = 1
# torch's Adam, fused: one pass per parameter tensor. The default (for-loop) Adam takes its
# square roots from MKL's vector library, which on our AMD CPU is slow and 6x slower still on
# zeros, and the XXZ input's zero imaginary half makes most of W1's second moments zero: the
# fused optimizer trains an XXZ MLP 2.1x faster (measured, 2 cores). "+active": the first layer
# trains on the active inputs only (:func:`active_inputs`). Same algorithm, other rounding, so
# it is part of the sweep cache key of MLP runs.
MLP_OPTIMIZER = "adam-fused+active"


def active_inputs(x: np.ndarray) -> np.ndarray:
    """Indices of the input features that are nonzero in at least one row of ``x``.

    An input that is zero in every training sample gives its first-layer weights a gradient
    of exactly zero, so Adam (no weight decay) leaves them exactly at their initial values:
    :func:`train_mlp` trains the first layer on the other inputs only, which is the same
    algorithm with fewer terms in each sum. For the XXZ states under label flipping that is
    the 924 amplitudes of the Sz = 0 sector of 8192 real features (the fixed gauge's imaginary
    half is zero), a 9x smaller first layer; for MNIST the pixels that are blank in all
    training images and the zero padding. Feature randomisation fills every input."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ParameterError(f"x must have shape (N, d), got {x.shape}")
    return np.flatnonzero(np.any(x != 0, axis=0))


def _narrow(net: MLP, cols: np.ndarray) -> MLP:
    """A copy of ``net`` whose first layer sees only the input features ``cols``."""
    small = MLP(len(cols), net.hidden)
    with torch.no_grad():
        for a, b in zip(small.parameters(), net.parameters()):
            a.copy_(b[:, torch.from_numpy(cols)] if a.shape != b.shape else b)
    return small


def _widen(net: MLP, small: MLP, cols: np.ndarray) -> None:
    """Write the trained ``small`` (:func:`_narrow`) back into ``net``; the first layer's
    weights of the other inputs keep their values."""
    with torch.no_grad():
        for a, b in zip(small.parameters(), net.parameters()):
            if a.shape != b.shape:
                b[:, torch.from_numpy(cols)] = a
            else:
                b.copy_(a)


def train_mlp(net: MLP, x, y, x_val, y_val, cfg: TrainConfig, seed: int, init: bool = True,
              narrow: bool = True):
    """Train the MLP (Glorot init from ``seed`` unless ``init=False``); returns (net, History).
    ``narrow``: train the first layer on the :func:`active_inputs` only (the default; False is
    the full-width reference, same algorithm, other rounding)."""
    check_bool("narrow", narrow)
    with _torch_threads(MLP_THREADS):
        return _train_mlp(net, x, y, x_val, y_val, cfg, seed, init, narrow)


def _train_mlp(net: MLP, x, y, x_val, y_val, cfg: TrainConfig, seed: int, init: bool, narrow: bool):
    if cfg.adam != "optax":
        raise ParameterError(f"parameter 'adam' = {cfg.adam!r} is implemented for the QNN only; "
                             "the MLP trains with torch's Adam (adam='optax')")
    x, y = _check_xy(as_real_features(x), y, "training set", net.n_inputs)
    x_val, y_val = _check_xy(as_real_features(x_val), y_val, "validation set", net.n_inputs)
    if init:
        net.reset_parameters(seed)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
    xv, yv = torch.from_numpy(x_val), torch.from_numpy(y_val.astype(np.float32))
    cols = active_inputs(x)
    narrow = narrow and len(cols) < net.n_inputs
    # the validation set is evaluated by the full net: its inputs may be nonzero elsewhere
    trained = _narrow(net, cols) if narrow else net
    xa = torch.from_numpy(np.ascontiguousarray(x[:, cols])) if narrow else xt
    opt = torch.optim.Adam(trained.parameters(), lr=cfg.lr, fused=True)
    g = torch.Generator().manual_seed(int(seed) + 1)
    n = len(xt)
    rows = []
    for e in range(cfg.epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(trained.logits(xa[idx]), yt[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if (e + 1) % cfg.eval_every == 0 or e + 1 == cfg.epochs:
            if narrow:
                _widen(net, trained, cols)
            rows.append((e + 1, *_mlp_eval(net, xt, yt), *_mlp_eval(net, xv, yv)))
    r = np.array(rows, dtype=np.float64)
    return net, History(r[:, 0].astype(int), r[:, 1], r[:, 2], r[:, 3], r[:, 4])


def train(spec: ModelSpec, x, y, x_val, y_val, cfg: TrainConfig, seed: int, *, dtype: str = "complex64"):
    """Build the model described by ``spec`` and train it; returns (model, params_or_net, History).

    A classical family of :mod:`qmu_core.classical` returns (None, None, History) with its
    final accuracies only (its losses are not comparable across families: NaN)."""
    if spec.kind in CLASSICAL_KINDS:
        from .classical import ClassicalSpec, fit_evaluate

        r = fit_evaluate(ClassicalSpec(spec.kind, spec.setting), x, y, x_val, y_val, seed)
        nan = np.array([np.nan])
        return None, None, History(np.array([cfg.epochs]), nan, np.array([r["train_acc"]]), nan,
                                   np.array([r["val_acc"]]))
    if spec.kind == "qnn":
        n = int(np.log2(np.asarray(x).shape[1]))
        model = QNN(n, spec.depth, spec.rotations, spec.entangler, dtype=dtype)
        params, hist = train_qnn(model, x, y, x_val, y_val, cfg, seed)
        return model, params, hist
    n_in = as_real_features(np.asarray(x[:1])).shape[1]
    torch.manual_seed(int(seed))  # nothing should draw from it, but keep torch's global state fixed
    net, hist = train_mlp(MLP(n_in, spec.hidden), x, y, x_val, y_val, cfg, seed)
    return net, net, hist
