"""The QNN's CPU training kernel: <Z_{n-1}> and its gradient by the adjoint method.

Same circuit as :meth:`qmu_core.qnn.QNN.expectation` (only the gates inside the light cone,
the three rotations of a qubit fused into one 2x2 gate), simulated differently: on two CPU
cores that XLA formulation (block GEMMs, reverse-mode autodiff keeping every intermediate
state) trained 1.3-2x slower (benchmarks/qnn_throughput.py; issue #2).

* The states of a chunk of ``LANES`` samples are stored amplitude-major with the samples
  innermost, ``psi[k * LANES + b]`` (real and imaginary parts apart), so every gate is a
  stream of SIMD operations over contiguous data that stays in the core's cache.
* k single-qubit gates cost 2k complex multiply-adds per amplitude, a k-qubit block 2^k.
* The gradient comes from one backward walk (the adjoint method): undo each gate on the
  state (the gates are unitary) while carrying lambda = c_b Z psi back from the readout,
  where c_b is the cotangent of sample b's output, and add up each gate's derivative over
  the chunk on the way. Nothing is stored per gate, and no per-sample Jacobian is formed.

  - gate G (psi_out = G psi_in on each amplitude pair): the cotangents of Re G and Im G are
    2 Re M and -2 Im M, with M[a, c] = sum over pairs and samples of
    conj(lambda_out[a]) psi_in[c];
  - RZZ layer (amplitude k times exp(-i phi_k / 2), phi_k = sum_p theta_p zz_p[k]):
    the cotangent of theta_p is sum_k zz_p[k] sum_b Im(conj(lambda[k]) psi[k]).

Chunks run on a thread pool (numba releases the GIL); their gradients are summed in chunk
order, so the result does not depend on the number of threads. Sums over amplitudes are
accumulated in float64 and vectorised (``fastmath``), so the last bits depend on the CPU's
vector width: the same numbers on the same machine, not across instruction sets. JAX sees the kernel as a
``jax.custom_vjp`` around two ``jax.pure_callback`` calls (forward, backward), usable
inside ``jit`` and ``lax.scan``; it is differentiable once (the Hessian chapter uses
:meth:`QNN.expectation`). Where the speed comes from and what it costs is measured in
``benchmarks/qnn_throughput.py``; the tests check values and gradients against
:meth:`QNN.expectation` and against an independent statevector computation.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import jax
import jax.numpy as jnp
import numba
import numpy as np

# Part of the sweep cache key (see qmu_core.qnn.KERNEL): change it whenever a change here
# changes the kernel's floating-point results.
KERNEL = "adjoint-v1"
LANES = 16  # samples per chunk: 16 x 2^10 amplitudes of psi and lambda stay in L2 (measured)
_JIT = dict(nogil=True, cache=True, fastmath=True)


@numba.njit(**_JIT)
def _gate(pr, pi, q, n, lanes, g):
    """psi <- G psi on qubit q, G = [[g0 + i g1, g2 + i g3], [g4 + i g5, g6 + i g7]]."""
    g00r, g00i, g01r, g01i, g10r, g10i, g11r, g11i = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]
    half = (1 << (n - 1 - q)) * lanes
    for base in range(0, pr.size, 2 * half):
        # views, so the loop index is a plain range(half): no negative-index checks, SIMD
        p0r, p0i = pr[base : base + half], pi[base : base + half]
        p1r, p1i = pr[base + half : base + 2 * half], pi[base + half : base + 2 * half]
        for j in range(half):
            ar, ai, br, bi = p0r[j], p0i[j], p1r[j], p1i[j]
            p0r[j] = g00r * ar - g00i * ai + g01r * br - g01i * bi
            p0i[j] = g00r * ai + g00i * ar + g01r * bi + g01i * br
            p1r[j] = g10r * ar - g10i * ai + g11r * br - g11i * bi
            p1i[j] = g10r * ai + g10i * ar + g11r * bi + g11i * br


@numba.njit(**_JIT)
def _gate_adjoint(pr, pi, lr, li, q, n, lanes, g, out):
    """Undo G on psi and on lambda (both <- G^dagger .) and write the cotangents of
    (Re G, Im G) into ``out`` (8,), in the layout of ``g``.

    Two passes, each light on registers (one fused pass spills on AVX2 and is slower):
    N[a, c] = sum conj(lambda_out[a]) psi_out[c], then the undo; M = N conj(G) at the end.
    """
    half = (1 << (n - 1 - q)) * lanes
    n0 = n1 = n2 = n3 = n4 = n5 = n6 = n7 = 0.0
    for base in range(0, pr.size, 2 * half):
        p0r, p0i = pr[base : base + half], pi[base : base + half]
        p1r, p1i = pr[base + half : base + 2 * half], pi[base + half : base + 2 * half]
        l0r, l0i = lr[base : base + half], li[base : base + half]
        l1r, l1i = lr[base + half : base + 2 * half], li[base + half : base + 2 * half]
        for j in range(half):
            ar, ai, br, bi = p0r[j], p0i[j], p1r[j], p1i[j]
            ur, ui, vr, vi = l0r[j], l0i[j], l1r[j], l1i[j]
            n0 += ur * ar + ui * ai
            n1 += ur * ai - ui * ar
            n2 += ur * br + ui * bi
            n3 += ur * bi - ui * br
            n4 += vr * ar + vi * ai
            n5 += vr * ai - vi * ar
            n6 += vr * br + vi * bi
            n7 += vr * bi - vi * br
    # psi <- G^dagger psi and lambda <- G^dagger lambda: the gate conj(G)^T
    gd = np.empty_like(g)
    gd[0], gd[1], gd[2], gd[3] = g[0], -g[1], g[4], -g[5]
    gd[4], gd[5], gd[6], gd[7] = g[2], -g[3], g[6], -g[7]
    _gate(pr, pi, q, n, lanes, gd)
    _gate(lr, li, q, n, lanes, gd)
    # M[a, c] = sum_c' N[a, c'] conj(G[c', c])
    for a in range(2):
        nr0, ni0 = (n0, n1) if a == 0 else (n4, n5)
        nr1, ni1 = (n2, n3) if a == 0 else (n6, n7)
        for c in range(2):
            gr0, gi0 = g[2 * c], -g[2 * c + 1]  # conj(G[0, c])
            gr1, gi1 = g[4 + 2 * c], -g[4 + 2 * c + 1]  # conj(G[1, c])
            mr = nr0 * gr0 - ni0 * gi0 + nr1 * gr1 - ni1 * gi1
            mi = nr0 * gi0 + ni0 * gr0 + nr1 * gi1 + ni1 * gr1
            out[4 * a + 2 * c] = 2 * mr
            out[4 * a + 2 * c + 1] = -2 * mi


@numba.njit(**_JIT)
def _phase(pr, pi, cr, ci, lanes):
    """Multiply amplitude k of every sample by cr[k] + i ci[k]."""
    for k in range(cr.size):
        c, s = cr[k], ci[k]
        vr, vi = pr[k * lanes : (k + 1) * lanes], pi[k * lanes : (k + 1) * lanes]
        for j in range(lanes):
            ar, ai = vr[j], vi[j]
            vr[j] = c * ar - s * ai
            vi[j] = c * ai + s * ar


@numba.njit(**_JIT)
def _phase_adjoint(pr, pi, lr, li, cr, ci, lanes, im):
    """Undo the phase layer on psi and lambda; im[k] = sum_b Im(conj(lambda[k]) psi[k])."""
    for k in range(cr.size):
        c, s = cr[k], -ci[k]
        acc = 0.0
        sl = slice(k * lanes, (k + 1) * lanes)
        vr, vi, wr, wi = pr[sl], pi[sl], lr[sl], li[sl]
        for j in range(lanes):
            ar, ai, ur, ui = vr[j], vi[j], wr[j], wi[j]
            acc += ur * ai - ui * ar
            vr[j] = c * ar - s * ai
            vi[j] = c * ai + s * ar
            wr[j] = c * ur - s * ui
            wi[j] = c * ui + s * ur
        im[k] = acc


@numba.njit(**_JIT)
def _forward(x, s0, pr, pi, gates, ph_r, ph_i, cone_q, has_ph, lanes):
    """Load samples s0.. of ``x`` (N, 2^n) into the chunk (zero lanes past the end) and
    run the light-cone circuit on them."""
    dim = x.shape[1]
    n = cone_q.shape[1]
    w = min(lanes, x.shape[0] - s0)
    pr[:] = 0.0
    pi[:] = 0.0
    for b in range(w):
        for k in range(dim):
            v = x[s0 + b, k]
            pr[k * lanes + b] = v.real
            pi[k * lanes + b] = v.imag
    for layer in range(cone_q.shape[0]):
        for q in range(n):
            if cone_q[layer, q]:
                _gate(pr, pi, q, n, lanes, gates[layer, q])
        if has_ph[layer]:
            _phase(pr, pi, ph_r[layer], ph_i[layer], lanes)


@numba.njit(**_JIT)
def _readout(pr, pi, zout, s0, lanes, e):
    """e[s0 + b] = <Z_{n-1}> of lane b (float64 sums)."""
    acc = np.zeros(lanes)
    for k in range(zout.size):
        z = zout[k]
        for b in range(lanes):
            j = k * lanes + b
            acc[b] += z * (pr[j] * pr[j] + pi[j] * pi[j])
    for b in range(min(lanes, e.size - s0)):
        e[s0 + b] = acc[b]


@numba.njit(**_JIT)
def _chunks_forward(c0, c1, x, gates, ph_r, ph_i, cone_q, has_ph, zout, lanes, e, res):
    """Chunks c0..c1-1: outputs into ``e``; final states into ``res`` (C, 2, 2^n lanes)
    unless it is empty."""
    size = x.shape[1] * lanes
    pr = np.empty(size, gates.dtype)
    pi = np.empty(size, gates.dtype)
    for c in range(c0, c1):
        _forward(x, c * lanes, pr, pi, gates, ph_r, ph_i, cone_q, has_ph, lanes)
        _readout(pr, pi, zout, c * lanes, lanes, e)
        if res.shape[0]:
            res[c, 0] = pr
            res[c, 1] = pi


@numba.njit(**_JIT)
def _chunks_backward(c0, c1, res, ct, gates, ph_r, ph_i, cone_q, cone_p, has_ph, zz, zout, lanes,
                     dg, dt):
    """Chunks c0..c1-1: cotangents of the gates dg (C, D, n, 8) and of the RZZ angles
    dt (C, D, P), from the final states ``res`` and the output cotangents ``ct``."""
    depth, n = cone_q.shape
    dim = zout.size
    pr = np.empty(dim * lanes, gates.dtype)
    pi = np.empty_like(pr)
    lr = np.empty_like(pr)
    li = np.empty_like(pr)
    im = np.empty(dim, gates.dtype)
    for c in range(c0, c1):
        s0 = c * lanes
        pr[:] = res[c, 0]
        pi[:] = res[c, 1]
        for k in range(dim):
            for b in range(lanes):
                j = k * lanes + b
                w = zout[k] * ct[s0 + b] if s0 + b < ct.size else 0.0
                lr[j] = w * pr[j]
                li[j] = w * pi[j]
        for layer in range(depth - 1, -1, -1):
            if has_ph[layer]:
                _phase_adjoint(pr, pi, lr, li, ph_r[layer], ph_i[layer], lanes, im)
                for p in range(zz.shape[0]):
                    if cone_p[layer, p]:
                        acc = 0.0
                        for k in range(dim):
                            acc += zz[p, k] * im[k]
                        dt[c, layer, p] = acc
            for q in range(n - 1, -1, -1):
                if cone_q[layer, q]:
                    _gate_adjoint(pr, pi, lr, li, q, n, lanes, gates[layer, q], dg[c, layer, q])


# ----------------------------------------------------------------------------- host side
def _n_threads() -> int:
    """The cores this process may use (one chunk range per core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_n_threads(), thread_name_prefix="qmu-adjoint")


def _parallel(fn, n_chunks: int, *args) -> None:
    """Run fn(c0, c1, *args) over contiguous ranges of the chunks, one range per thread."""
    n = min(n_chunks, _n_threads())
    if n == 0:
        return
    cuts = [n_chunks * t // n for t in range(n + 1)]
    for f in [_pool().submit(fn, cuts[t], cuts[t + 1], *args) for t in range(n)]:
        f.result()


class _Circuit:
    """The light-cone circuit of one QNN as the kernel's constant tables."""

    def __init__(self, model):
        live = model.live_mask
        z = model._z_table
        self.real = np.float32 if model.dtype == "complex64" else np.float64
        self.cone_q = np.ascontiguousarray(live[:, :, 0])
        self.n_pairs = len(model.pairs)
        self.cone_p = np.ascontiguousarray(live[:, : self.n_pairs, 3])
        self.has_ph = self.cone_p.any(axis=1)
        self.zz = np.stack([z[a] * z[b] for a, b in model.pairs]).astype(self.real)
        self.zout = z[model.n_qubits - 1].astype(self.real)
        self.depth, self.n = self.cone_q.shape

    def tables(self, gates, theta):
        """Gates as (D, n, 8) reals; the RZZ layers as diagonals exp(-i phi_k / 2)."""
        g = np.asarray(gates)
        g = np.stack([g.real, g.imag], axis=-1).reshape(self.depth, self.n, 8).astype(self.real)
        phi = (np.asarray(theta, self.real) * self.cone_p) @ self.zz
        return g, np.cos(phi / 2), -np.sin(phi / 2)

    def forward(self, x, gates, theta, keep: bool):
        x = np.asarray(x)
        g, ph_r, ph_i = self.tables(gates, theta)
        n_chunks = -(-len(x) // LANES)
        e = np.empty(len(x))
        res = np.empty((n_chunks if keep else 0, 2, x.shape[1] * LANES), self.real)
        _parallel(_chunks_forward, n_chunks, x, g, ph_r, ph_i, self.cone_q, self.has_ph,
                  self.zout, LANES, e, res)
        return e.astype(self.real), res

    def backward(self, res, ct, gates, theta):
        g, ph_r, ph_i = self.tables(gates, theta)
        n_chunks = res.shape[0]
        dg = np.zeros((n_chunks, self.depth, self.n, 8), self.real)
        dt = np.zeros((n_chunks, self.depth, self.n_pairs), self.real)
        _parallel(_chunks_backward, n_chunks, np.asarray(res), np.asarray(ct, self.real), g,
                  ph_r, ph_i, self.cone_q, self.cone_p, self.has_ph, self.zz, self.zout,
                  LANES, dg, dt)
        # summed in chunk order: the same numbers whatever the number of threads
        return dg.sum(axis=0).reshape(self.depth, self.n, 2, 2, 2), dt.sum(axis=0)


def expectation_fn(model):
    """``f(params, states)`` equal to ``model.expectation`` (to float rounding), computed
    by the kernels above; jittable, differentiable once in reverse mode."""
    circ = _Circuit(model)
    real = jnp.dtype(model.real_dtype)
    n_pairs, dim = circ.n_pairs, 2**model.n_qubits

    def res_shape(N):
        return jax.ShapeDtypeStruct((-(-N // LANES), 2, dim * LANES), real)

    @jax.custom_vjp
    def f(gates, theta, x):
        return jax.pure_callback(lambda *a: circ.forward(*a, keep=False)[0],
                                 jax.ShapeDtypeStruct((x.shape[0],), real), x, gates, theta,
                                 vmap_method="sequential")

    def f_fwd(gates, theta, x):
        e, res = jax.pure_callback(lambda *a: circ.forward(*a, keep=True),
                                   (jax.ShapeDtypeStruct((x.shape[0],), real), res_shape(x.shape[0])),
                                   x, gates, theta, vmap_method="sequential")
        return e, (res, gates, theta)

    def f_bwd(saved, ct):
        res, gates, theta = saved
        dg, dt = jax.pure_callback(
            circ.backward,
            (jax.ShapeDtypeStruct(gates.shape + (2,), real), jax.ShapeDtypeStruct(theta.shape, real)),
            res, ct, gates, theta, vmap_method="sequential")
        # JAX's cotangent of a complex input is d/dRe - i d/dIm
        return (dg[..., 0] - 1j * dg[..., 1]).astype(gates.dtype), dt, None

    f.defvjp(f_fwd, f_bwd)

    def expectation(params, states):
        gates = jax.vmap(model._fused)(params[:, :, :3])
        return f(gates, params[:, :n_pairs, 3], jnp.asarray(states).astype(model.dtype))

    return expectation
