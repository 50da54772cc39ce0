"""Many MLP trainings as one program: the sweeps' MLP trainer (Fig. 2, SI Fig. S1).

A sweep holds tens of trainings of the same small MLP on training sets of the same size.
Trained one at a time in PyTorch (:func:`qmu_core.training.train_mlp`) they spend most of
their time in the framework's per-operation overhead: an XXZ step multiplies a 32 x 924 batch
by a 924 x 64 matrix. :func:`train_mlp_batched` trains R of them at once in JAX: one XLA
program, ``jax.vmap`` over runs of a ``lax.scan`` over every mini-batch step.

It is the algorithm of ``train_mlp``, step for step: the Glorot initialisation drawn by
:meth:`qmu_core.mlp.MLP.reset_parameters` from the run's seed, the mini-batch order drawn by
torch's ``randperm`` from ``seed + 1`` every epoch, a smaller last batch, the mean BCE on the
logits, Adam (optax, the same defaults as torch's), the first layer trained on the run's
:func:`qmu_core.training.active_inputs` only. In float64 the final parameters agree with
``train_mlp``'s to ~1e-13 (tests/test_mlp_batched.py); in float32 the rounding differs (a
batched product), and training amplifies it: single runs move by a few flipped examples, as
between any two float32 implementations (benchmarks/mlp_batched.py states the largest change).
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

from .config import TrainConfig
from .data import as_real_features
from .mlp import MLP
from .training import History, _check_xy, active_inputs, bce_from_logits
from .validation import ParameterError, check_choice, check_int, check_sequence

# Runs per program. A batch with fewer runs is padded to this size by repeating its last run,
# so that every program has the same shapes and a run's numbers do not depend on which other
# runs share its batch (float32 rounding depends on the batch size, as measured for the noise
# chapter's batches). 10 runs: as fast per XXZ run as 25 (measured).
BATCH_RUNS = 10
# Part of the sweep cache key of the MLP runs (qmu_core.sweep.cache_key): runs trained this
# way round differently from train_mlp's (training.MLP_OPTIMIZER).
KERNEL = f"jax-adam-vmap{BATCH_RUNS}+active"


def initial_params(n_inputs: int, hidden, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The MLP's initial (W, b) per layer, W of shape (fan_in, fan_out): exactly the draws of
    :meth:`qmu_core.mlp.MLP.reset_parameters` with ``seed``."""
    net = MLP(n_inputs, hidden).reset_parameters(seed)
    return [(m.weight.detach().numpy().T.copy(), m.bias.detach().numpy().copy())
            for m in net.net if isinstance(m, torch.nn.Linear)]


def minibatch_orders(n: int, epochs: int, seed: int) -> np.ndarray:
    """(epochs, n): the permutation of the training set of every epoch, as ``train_mlp``
    draws them (torch's ``randperm`` from a generator seeded with ``seed + 1``)."""
    g = torch.Generator().manual_seed(int(seed) + 1)
    return np.stack([torch.randperm(n, generator=g).numpy() for _ in range(epochs)])


def _logits(params, x):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w + b
        if i < len(params) - 1:
            h = jax.nn.relu(h)
    return h[..., 0]


@lru_cache(maxsize=16)
def _program(n: int, batch_size: int, epochs: int, lr: float):
    """``(init, train)``: ``train(params, opt_state, x, y, orders)`` runs ``epochs`` epochs of
    every run (``orders``: (R, epochs, n)), vmapped over runs. Each epoch is cut into
    ceil(n / batch_size) batches; the last one is padded with masked rows, so that its mean
    is over its real rows only, as ``train_mlp``'s smaller last batch."""
    nb = -(-n // batch_size)
    pad = nb * batch_size - n
    opt = optax.adam(lr)  # b1 0.9, b2 0.999, eps 1e-8: torch's defaults, the same update

    def loss(p, xb, yb, mb):
        return jnp.sum(bce_from_logits(_logits(p, xb), yb) * mb) / jnp.sum(mb)

    def one(p, s, x, y, order):
        idx = jnp.pad(order, ((0, 0), (0, pad))).reshape(epochs * nb, batch_size)
        mask = jnp.pad(jnp.ones(order.shape, x.dtype), ((0, 0), (0, pad))).reshape(epochs * nb, batch_size)

        def step(carry, batch):
            p, s = carry
            i, m = batch
            g = jax.grad(loss)(p, x[i], y[i], m)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        (p, s), _ = jax.lax.scan(step, (p, s), (idx, mask))
        return p, s

    return jax.vmap(opt.init), jax.jit(jax.vmap(one))


@jax.jit
def _metrics(params, x, y, xv, yv):
    """Every run's mean BCE on the training and validation sets, (R, 2), and its numbers of
    correct predictions on them, (R, 2) integers (so that an accuracy is an exact fraction)."""
    def one(p, x, y):
        zt, zv = _logits(p, x), _logits(p, xv)
        return (jnp.stack([jnp.mean(bce_from_logits(zt, y)), jnp.mean(bce_from_logits(zv, yv))]),
                jnp.stack([jnp.sum((zt > 0) == (y > 0.5)), jnp.sum((zv > 0) == (yv > 0.5))]))
    return jax.vmap(one)(params, x, y)


def train_mlp_batched(hidden, xs, ys, x_val, y_val, cfg: TrainConfig, seeds, *,
                      pad_to: int | None = BATCH_RUNS, dtype: str = "float32") -> list[History]:
    """Train R MLPs with hidden sizes ``hidden`` at once; run r on ``(xs[r], ys[r])`` from seed
    ``seeds[r]`` (:func:`qmu_core.training.train_mlp`'s algorithm, see the module docstring).

    ``xs``: (R, N, d) real or complex features (complex enter as [Re, Im]), ``ys``: (R, N),
    one validation set for all. Every run of a batch must have the same active inputs
    (:func:`qmu_core.sweep.run_batch` groups them so). ``pad_to``: train at least that many
    runs (repeating the last one), see :data:`BATCH_RUNS`. Full-set metrics every
    ``cfg.eval_every`` epochs and at the last. ``dtype``: 'float32' (the sweeps, as
    ``train_mlp``) or 'float64' (needs JAX's x64 mode; the tests' exact comparison).
    Returns one :class:`History` per run."""
    if cfg.adam != "optax":
        raise ParameterError(f"parameter 'adam' = {cfg.adam!r} is implemented for the QNN only; "
                             "the MLP trains with Adam (adam='optax')")
    check_choice("dtype", dtype, ("float32", "float64"))
    if dtype == "float64" and not jax.config.read("jax_enable_x64"):
        raise ParameterError("parameter 'dtype' = 'float64' needs JAX's x64 mode (jax_enable_x64)")
    hidden = check_sequence("hidden", hidden, lambda n, v: check_int(n, v, min=1))
    seeds = [check_int(f"seeds[{r}]", s, min=0) for r, s in enumerate(seeds)]
    xs = np.stack([as_real_features(np.asarray(x)) for x in xs]) if len(xs) else np.asarray(xs)
    ys = np.asarray(ys)
    if xs.ndim != 3 or ys.shape != xs.shape[:2] or len(seeds) != len(xs) or len(xs) == 0:
        raise ParameterError(f"need xs of shape (R, N, d), ys of shape (R, N) and R seeds with R >= 1, "
                             f"got {xs.shape}, {ys.shape} and {len(seeds)} seeds")
    n_runs, n, d = xs.shape
    for r in range(n_runs):
        _check_xy(xs[r], ys[r], f"training set {r}", d)
    x_val, y_val = _check_xy(as_real_features(x_val), y_val, "validation set", d)
    cols = active_inputs(xs[0])
    for r in range(1, n_runs):
        if not np.array_equal(active_inputs(xs[r]), cols):
            raise ParameterError(f"training set {r} has other active inputs than training set 0: "
                                 "a batch must share them (group the runs by active inputs)")
    if pad_to is not None and check_int("pad_to", pad_to, min=1) > n_runs:
        extra = pad_to - n_runs
        xs = np.concatenate([xs, np.repeat(xs[-1:], extra, axis=0)])
        ys = np.concatenate([ys, np.repeat(ys[-1:], extra, axis=0)])
        seeds = seeds + [seeds[-1]] * extra

    dt = np.dtype(dtype)
    inits = [initial_params(d, hidden, s) for s in seeds]
    full = [(np.stack([p[i][0] for p in inits]).astype(dt), np.stack([p[i][1] for p in inits]).astype(dt))
            for i in range(len(inits[0]))]
    params = [(jnp.asarray(full[0][0][:, cols]), jnp.asarray(full[0][1])), *full[1:]]
    orders = np.stack([minibatch_orders(n, cfg.epochs, s) for s in seeds])
    xa = jnp.asarray(np.ascontiguousarray(xs[:, :, cols], dtype=dt))
    xf, yf = jnp.asarray(xs, dt), jnp.asarray(ys, dt)
    xv, yv = jnp.asarray(x_val, dt), jnp.asarray(y_val, dt)
    w1 = jnp.asarray(full[0][0])

    rows, done = [], 0
    opt_state = None
    while done < cfg.epochs:
        k = min(cfg.eval_every - done % cfg.eval_every, cfg.epochs - done)
        init, train = _program(n, min(cfg.batch_size, n), k, float(cfg.lr))
        if opt_state is None:
            opt_state = init(params)
        params, opt_state = train(params, opt_state, xa, yf, jnp.asarray(orders[:, done:done + k]))
        done += k
        # the untrained first-layer weights of the inactive inputs keep their initial values
        wide = [(w1.at[:, cols].set(params[0][0]), params[0][1]), *params[1:]]
        loss, correct = (np.asarray(a, dtype=np.float64) for a in _metrics(wide, xf, yf, xv, yv))
        rows.append((done, np.stack([loss[:, 0], correct[:, 0] / n, loss[:, 1], correct[:, 1] / len(x_val)], 1)))
    epochs = np.array([e for e, _ in rows], dtype=int)
    m = np.stack([v for _, v in rows], axis=1)  # (R, evaluations, 4)
    return [History(epochs, m[r, :, 0], m[r, :, 1], m[r, :, 2], m[r, :, 3]) for r in range(n_runs)]
