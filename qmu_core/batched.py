"""Many QNN trainings as one program, vectorised over runs: the sweeps' trainer on accelerators.

On a GPU one QNN training is too small to fill the device, while a sweep holds tens of
trainings of the same model on training sets of the same size (corruption never changes
the size). :func:`train_qnn_batched` trains R of them at once: the epoch and evaluation
programs of :func:`qmu_core.training.train_qnn` with the XLA kernel
(:meth:`qmu_core.qnn.QNN.expectation`), ``jax.vmap``-ed over runs. Each run keeps its own
initialisation, Adam state and reshuffling key, drawn exactly as ``train_qnn`` draws them,
so run r of a batch is the training ``train_qnn`` would do with seed ``seeds[r]`` (same
numbers up to the rounding of batched products; tests/test_sweeps.py checks it).

:func:`qmu_core.sweep.run_batch` uses it for the QNN sweeps of the book when JAX runs on an
accelerator (``jax.default_backend() != "cpu"``); on a CPU the sweeps keep the adjoint
kernel, one run per task. ``benchmarks/batched_gpu.py`` times it against one run at a time.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from . import qnn
from .config import TrainConfig
from .qnn import QNN
from .training import History, _check_xy, _chunked, _qnn_trainer
from .validation import ParameterError, check_int

# Runs per batched program. A batch with fewer runs is padded to this size by repeating its
# last run, so every program has the same shapes and a run's numbers do not depend on which
# other runs share its batch (XLA may pick other GEMM algorithms for other batch sizes).
BATCH_RUNS = 16
# Part of the sweep cache key of QNN runs trained this way (see qmu_core.sweep.qnn_sweep_kernel):
# batched products round differently from qnn.KERNEL's one-run programs.
KERNEL = f"{qnn.KERNEL}-vmap{BATCH_RUNS}"


@lru_cache(maxsize=16)
def _programs(model: QNN, cfg: TrainConfig, n_train: int):
    """``train_qnn``'s compiled epoch and evaluation (XLA kernel), vmapped over runs; the
    validation set is shared by every run."""
    init, epoch, evaluate = _qnn_trainer(model, cfg, n_train, qnn.KERNEL)
    return (init, jax.jit(jax.vmap(epoch)),
            jax.jit(jax.vmap(evaluate, in_axes=(0, 0, 0, None, None))))


def train_qnn_batched(model: QNN, xs, ys, x_val, y_val, cfg: TrainConfig, seeds, *,
                      pad_to: int | None = None):
    """Train R QNNs at once; run r on training set ``(xs[r], ys[r])`` from seed ``seeds[r]``.

    ``xs``: (R, N, 2**n_qubits), ``ys``: (R, N), one validation set for all. Same algorithm
    as :func:`qmu_core.training.train_qnn`: parameters ~ N(0, 0.01^2) from the first half of
    ``jax.random.split(PRNGKey(seed))``, Adam (optax), a new permutation every epoch from the
    run's key, full mini-batches in a ``lax.scan`` then the remainder batch, BCE on the logits
    5<Z>, full-set metrics every ``cfg.eval_every`` epochs and at the last. ``pad_to``: train
    at least that many runs (repeating the last one), see :data:`BATCH_RUNS`.
    Returns (params of shape (R, depth, n_qubits, 4), one :class:`History` per run).
    """
    xs, ys = np.asarray(xs), np.asarray(ys)
    seeds = [check_int(f"seeds[{r}]", s, min=0) for r, s in enumerate(seeds)]
    if xs.ndim != 3 or ys.shape != xs.shape[:2] or len(seeds) != len(xs) or len(xs) == 0:
        raise ParameterError(f"need xs of shape (R, N, d), ys of shape (R, N) and R seeds with R >= 1, "
                             f"got {xs.shape}, {ys.shape} and {len(seeds)} seeds")
    n_runs = len(xs)
    d = 2**model.n_qubits
    for r in range(n_runs):
        _check_xy(xs[r], ys[r], f"training set {r}", d)
        model.check_states(xs[r])
    x_val, y_val = _check_xy(x_val, y_val, "validation set", d)
    if pad_to is not None and check_int("pad_to", pad_to, min=1) > n_runs:
        extra = pad_to - n_runs
        xs = np.concatenate([xs, np.repeat(xs[-1:], extra, axis=0)])
        ys = np.concatenate([ys, np.repeat(ys[-1:], extra, axis=0)])
        seeds = seeds + [seeds[-1]] * extra

    keys, params = [], []
    for s in seeds:  # exactly train_qnn's draws
        k_init, key = jax.random.split(jax.random.PRNGKey(int(s)))
        keys.append(key)
        params.append(model.init(k_init))
    keys, params = jnp.stack(keys), jnp.stack(params)
    cdt = np.complex64 if model.dtype == "complex64" else np.complex128
    train_sets = [_chunked(x, y, cdt) for x, y in zip(xs, ys)]
    xt = jnp.asarray(np.stack([t[0] for t in train_sets]))
    yt = jnp.asarray(np.stack([t[1] for t in train_sets]))
    xv, yv = (jnp.asarray(a) for a in _chunked(x_val, y_val, cdt))
    xj, yj = jnp.asarray(xs, cdt), jnp.asarray(ys, np.float32)

    init, epoch, evaluate = _programs(model, cfg, xs.shape[1])
    opt_state = jax.vmap(init)(params)
    rows = []
    for e in range(cfg.epochs):
        params, opt_state, keys = epoch(params, opt_state, keys, xj, yj)
        if (e + 1) % cfg.eval_every == 0 or e + 1 == cfg.epochs:
            rows.append((e + 1, np.asarray(evaluate(params, xt, yt, xv, yv), dtype=np.float64)))
    epochs = np.array([e for e, _ in rows], dtype=int)
    m = np.stack([v for _, v in rows], axis=1)  # (R, evaluations, 4)
    hists = [History(epochs, m[r, :, 0], m[r, :, 1], m[r, :, 2], m[r, :, 3]) for r in range(n_runs)]
    return params[:n_runs], hists
