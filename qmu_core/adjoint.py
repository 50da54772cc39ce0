"""The QNN's CPU training kernel: <Z_{n-1}>, the BCE loss and their gradients by the adjoint method.

Same circuit as :meth:`qmu_core.qnn.QNN.expectation` (only the gates inside the light cone,
the three rotations of a qubit fused into one 2x2 gate), simulated in compiled loops (numba)
that compute a mini-batch's loss and gradient in one call. Speed and reproducibility are
measured in ``benchmarks/qnn_throughput.py`` and ``tests/test_reproducibility.py``.

Layout and work:

* A chunk holds ``LANES`` samples, amplitude-major with the samples innermost
  (``psi[k * LANES + b]``, real and imaginary parts apart): every gate is a stream of SIMD
  operations over contiguous data.
* Qubits outside layer 0's light cone are never touched (at 12 qubits and D = 4, five of
  twelve), so the state splits into independent slices, one per value of those qubits; the
  kernel's amplitude index puts them in the high bits (:attr:`_Circuit.perm`) and runs the
  whole circuit, forward and backward, on one slice at a time (16 KB per state: the slice's
  states stay in L1/L2).
* Forward: the state after each layer's gates is kept (no gate is ever undone on psi).
* Backward (adjoint method), started right after the slice's forward with
  lambda = Z psi, i.e. for a unit cotangent per sample: the loss is linear in each sample's
  cotangent c_b, so every gradient is accumulated per lane and multiplied by c_b once the
  chunk's outputs (and with them the BCE cotangents) are known. For a layer's gate G on
  qubit q, with psi and lambda taken after the layer's gates, d loss / d angle = Im <lambda|H|psi>,
  H = (part of G after the angle) P (its inverse) a Pauli combination; so each gate needs
  only the three sums S_P = Im <lambda|P_q|psi> (P = X, Y, Z), combined with H's coefficients
  at the end. RZZ angle p: sum_k zz_p[k] Im(conj(lambda_k) psi_k). lambda is then walked back
  through G^dagger and the phases; layer 0 needs no walk back.

Reproducibility: the results are a function of the inputs alone. Every floating-point
operation is spelled out: products and sums in a fixed order, multiply-adds as explicit
``llvm.fma`` (one rounding, on any CPU), no fast-math flags, and sums over amplitudes kept in
per-lane accumulators (float32 over at most ``FLUSH`` pairs, then float64) whose lanes are
combined in a fixed order. So LLVM has no freedom left that changes a result. (The previous
kernel compiled with ``fastmath=True``: numba links a copy of every called njit function into
each caller and re-optimises it there, and ``reassoc`` let each copy sum differently; which
copy ran depended on which module the process loaded first, i.e. on whether numba had just
compiled the kernel or read it from its cache.) Chunks are summed in chunk order, so results
do not depend on the number of threads either.

Threads: one range of chunks per thread (numba releases the GIL), as many threads as CPUs in
the process's affinity, or ``QMU_KERNEL_THREADS`` when set (e.g. 1 in each worker process of
a parallel sweep).

Training on a CPU (:func:`host_trainer`) is a host loop: per epoch JAX draws the same
permutation as the XLA trainer, then each mini-batch is one kernel call (the kernel reads the
batch's rows straight from the training set: no gathered copy, no callback) and one Adam step
(optax's rule, in numba). In JAX programs the kernel is :func:`loss_and_grad_fn` (one
``jax.pure_callback`` per mini-batch) and :func:`expectation_fn` (a ``jax.custom_vjp`` around a
forward and a gradient callback; differentiable once, the Hessian chapter uses
:meth:`QNN.expectation`).

Measured (benchmarks/results/qnn_throughput.json, 2 cores, machine load about 1): 71.8k
per-sample gradients per second at 12 qubits, D = 4, batch 32 (115x the released code's way,
9.2x the previous kernel's committed 7.8k) and 137k at 10 qubits, D = 6, batch 256 (65x;
previous 22.8k); the backward walk costs 1.0-1.8 forward passes (previously 2.2-3.4). The
first epoch takes 0.3-0.4 s with numba's cache filled; compiling the kernel into an empty
cache 5 s, once per installation.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from . import _adjoint_kernels as K
from .config import ADAM_RULES, KERAS_EPS
from .validation import check_choice

# Part of the sweep cache key (see qmu_core.qnn.KERNEL): change it whenever a change here
# or in _adjoint_kernels changes the kernel's floating-point results.
KERNEL = "adjoint-v2"
LANES = K.LANES
THREADS_ENV = "QMU_KERNEL_THREADS"
_ROTATIONS = {("rx", "ry", "rx"): 0, ("rx", "ry", "rz"): 1}


def _n_threads() -> int:
    """Kernel threads: ``QMU_KERNEL_THREADS`` if set, else the CPUs this process may use."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, got {env!r}")
        return int(env)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=max(_n_threads() - 1, 1), thread_name_prefix="qmu-adjoint")


def _parallel(fn, n_chunks: int, per_thread, *args) -> None:
    """fn(c0, c1, *per_thread(t), *args) over contiguous ranges of the chunks, one per thread
    (the calling thread takes the first)."""
    n = min(n_chunks, _n_threads())
    cuts = [n_chunks * t // n for t in range(n + 1)] if n else [0, 0]
    futures = [_pool().submit(fn, cuts[t], cuts[t + 1], *per_thread(t), *args) for t in range(1, n)]
    fn(cuts[0], cuts[1], *per_thread(0), *args)
    for f in futures:
        f.result()


class _Circuit:
    """The light-cone circuit of one QNN as the kernel's constant tables, and scratch space."""

    def __init__(self, model):
        self.rot = _ROTATIONS[tuple(model.rotations)]
        self.real = np.float32 if model.dtype == "complex64" else np.float64
        live = model.live_mask
        n, pairs = model.n_qubits, model.pairs
        self.n, self.depth, self.n_pairs = n, model.depth, len(pairs)
        self.cone_q = np.ascontiguousarray(live[:, :, 0])
        self.cone_p = np.ascontiguousarray(live[:, : self.n_pairs, 3])
        # layer 0's cone: the slice qubits, in the low bits of the kernel's index, those in fewer
        # layers lower (a gate on bit 0 pays loop overhead per amplitude pair); the others high
        local = sorted((q for q in range(n) if self.cone_q[0, q]), key=lambda q: (self.cone_q[:, q].sum(), q))
        spect = [q for q in range(n) if not self.cone_q[0, q]]
        self.c = len(local)
        pos = {q: i for i, q in enumerate(local)}
        pos.update({q: self.c + i for i, q in enumerate(spect)})
        self.pos = np.array([pos[q] for q in range(n)], np.int64)
        kk = np.arange(2**n, dtype=np.int64)
        orig = np.zeros_like(kk)
        for q in range(n):  # qubit q is bit n-1-q of the original index (qubit 0 most significant)
            orig |= ((kk >> pos[q]) & 1) << (n - 1 - q)
        self.perm = orig.astype(np.uint64)
        # z_q = +-1 on the slice's 2^c basis states (zero for qubits outside it)
        kl = np.arange(2**self.c)
        z = np.array([1 - 2 * ((kl >> pos[q]) & 1) if q in local else 0 * kl for q in range(n)], np.float64)
        self.zz = np.stack([z[a] * z[b] for a, b in pairs])
        self.ztab = z.astype(self.real)
        self._scratch = {}

    def workspace(self, t: int):
        """Thread t's scratch arrays, kept across calls (no allocation, no page faults)."""
        ws = self._scratch.get(t)
        if ws is None:
            A = 2**self.c * LANES
            ws = self._scratch[t] = (np.empty((self.depth, 2, A), self.real), np.empty((2, A), self.real),
                                     np.empty((self.depth, self.n, 4, LANES)), np.empty(LANES), np.empty(LANES))
        return ws

    def tables(self, params):
        """Gates, generator coefficients and phases (see _adjoint_kernels.prepare)."""
        params = np.ascontiguousarray(params, dtype=self.real)
        gates = np.empty((self.depth, self.n, 2, 8), self.real)
        hcoef = np.empty((self.depth, self.n, 3, 3))
        phase = np.empty((self.depth, 2, 2**self.c * LANES), self.real)
        K.prepare(params, self.rot, self.cone_q, self.cone_p, self.zz, gates, hcoef, phase)
        return params, gates, hcoef, phase

    def run(self, x, params, mode=0, target=None, rows=None):
        """The kernel on the samples x[rows] (all of ``x`` by default): their outputs <Z_{n-1}>
        (float64); for mode 1 (``target`` = cotangents of the outputs), 2 (``target`` =
        labels, mean BCE of the logits 5<Z>) or 3 (``target`` = [labels, weights w] of the
        rows, sum of w_b BCE_b: the unlearning losses) also (loss, gradient w.r.t. params)."""
        xr, xi = self.kernel_input(x)
        rows = np.arange(len(xr), dtype=np.uint64) if rows is None else np.asarray(rows).astype(np.uint64)
        params, gates, hcoef, phase = self.tables(params)
        N = len(rows)
        n_chunks = -(-N // LANES)
        e = np.empty(N)
        gS = np.empty((n_chunks if mode else 0, self.depth, self.n, 4))
        loss = np.empty(n_chunks if mode else 0)
        target = np.zeros(0) if target is None else np.ascontiguousarray(target, np.float64)
        _parallel(K.chunks, n_chunks, self.workspace, xr, xi, rows, self.perm, gates, phase, self.cone_q,
                  self.pos, self.cone_p, self.ztab, mode, target, e, gS, loss)
        if not mode:
            return e
        g = np.zeros(params.shape)
        K.finish(gS, hcoef, self.cone_q, self.cone_p, g)  # chunks summed in chunk order
        return e, float(np.sum(loss)), g.astype(self.real)

    def kernel_input(self, x):
        """``x`` as the kernel reads it: real and imaginary parts as C-contiguous arrays of the
        kernel's precision, the imaginary part empty when it is zero (the kernel then skips
        those loads; same results). Already-converted pairs pass through."""
        if isinstance(x, tuple):
            return x
        x = np.asarray(x)
        xr = np.ascontiguousarray(x.real, dtype=self.real)
        if np.iscomplexobj(x) and np.any(x.imag):
            return xr, np.ascontiguousarray(x.imag, dtype=self.real)
        return xr, np.zeros((0, x.shape[1]), self.real)


def host_trainer(model, lr: float, batch_size: int, n_train: int, adam: str = "optax"):
    """``(init, epoch)`` training ``model`` on the host: ``init(params)`` is Adam's state,
    ``epoch(params, state, key, x, y) -> (params, state, key)`` one epoch: the same permutation
    as the XLA trainer (``key, sub = split(key)``; ``permutation(sub, n_train)``), mini-batches of
    ``batch_size`` in that order (the last one smaller), one kernel call (mean BCE and its
    gradient) and one Adam step each: optax.adam's rule (b1 = 0.9, b2 = 0.999, eps = 1e-8), or
    with ``adam="keras"`` Keras's (eps = 1e-7 on the uncorrected second moment, which is
    optax's rule with eps / sqrt(1 - b2^t) at step t; :attr:`qmu_core.config.TrainConfig.adam`)."""
    check_choice("adam", adam, ADAM_RULES)
    circ = _Circuit(model)
    real = circ.real
    shuffle = jax.jit(lambda key: (lambda k: (k[0], jax.random.permutation(k[1], n_train)))(jax.random.split(key)))
    cache = {}

    def init(params):
        p = np.asarray(params, real)
        return np.zeros_like(p), np.zeros_like(p), np.zeros(1, np.int64)

    def data(x, y):
        # converted once per training set, not once per epoch
        if cache.get("x") is not x:
            cache.update(x=x, xk=circ.kernel_input(x))
        if cache.get("y") is not y:
            cache.update(y=y, yk=np.asarray(y, np.float64))
        return cache["xk"], cache["yk"]

    def epoch(params, state, key, x, y):
        xk, yk = data(x, y)
        key, perm = shuffle(key)
        perm = np.asarray(perm).astype(np.uint64)
        p = np.array(params, real).ravel()
        mu, nu, count = (a.copy() for a in state)
        for s0 in range(0, n_train, batch_size):
            rows = perm[s0 : s0 + batch_size]
            g = circ.run(xk, p.reshape(circ.depth, circ.n, 4), 2, yk[rows.astype(np.intp)], rows)[2]
            eps = 1e-8 if adam == "optax" else KERAS_EPS / math.sqrt(1.0 - 0.999 ** (int(count[0]) + 1))
            K.adam(p, g.ravel(), mu.reshape(-1), nu.reshape(-1), count, lr, 0.9, 0.999, eps)
        return p.reshape(circ.depth, circ.n, 4), (mu, nu, count), key

    return init, epoch


def loss_and_grad_fn(model):
    """``f(params, x, y) -> (loss, grad)``: the mean binary cross-entropy of the logits
    5 <Z_{n-1}> against labels ``y`` over the mini-batch ``x`` and its gradient w.r.t. the
    parameters, in one callback. Jittable; not differentiable."""
    circ = _Circuit(model)
    real = jnp.dtype(model.real_dtype)

    def host(params, x, y):
        _, loss, g = circ.run(x, params, 2, y)
        return np.asarray(loss, real), g.astype(real)

    def f(params, x, y):
        return jax.pure_callback(host, (jax.ShapeDtypeStruct((), real), jax.ShapeDtypeStruct(params.shape, real)),
                                 params, x, y, vmap_method="sequential")

    return f


def expectation_fn(model):
    """``f(params, states)`` equal to ``model.expectation`` (to float rounding), computed
    by the kernels above; jittable, differentiable once in reverse mode."""
    circ = _Circuit(model)
    real = jnp.dtype(model.real_dtype)

    @jax.custom_vjp
    def f(params, x):
        return jax.pure_callback(lambda p, s: circ.run(s, p).astype(real),
                                 jax.ShapeDtypeStruct((x.shape[0],), real), params, x,
                                 vmap_method="sequential")

    def f_fwd(params, x):
        return f(params, x), (params, x)

    def f_bwd(saved, ct):
        params, x = saved
        g = jax.pure_callback(lambda p, s, c: circ.run(s, p, 1, c)[2].astype(real),
                              jax.ShapeDtypeStruct(params.shape, real), params, x, ct,
                              vmap_method="sequential")
        return g, None

    f.defvjp(f_fwd, f_bwd)

    def expectation(params, states):
        return f(jnp.asarray(params, real), jnp.asarray(states).astype(model.dtype))

    return expectation
