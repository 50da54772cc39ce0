"""The compiled loops behind :mod:`qmu_core.adjoint` (see its docstring for the method).

Rules that keep these loops fast and their results a function of their inputs alone:

* no fast-math flags: LLVM may not reassociate or contract anything, so a sum is computed in
  the order written, wherever and however often the code is compiled and inlined;
* multiply-adds are explicit ``llvm.fma`` calls (:func:`fma`): one rounding, on any CPU
  (the ``contract`` flag instead lets the code generator pick which product of a + b*c + d*e
  to fuse, by operand order, which re-optimising an inlined copy may change);
* indices are unsigned (``U``): numba wraps signed indices (``i < 0``: ``i + len``), and that
  select makes LLVM load contiguous data with gathers (measured 5x slower);
* sums over amplitudes go to per-lane accumulators on the stack (:func:`stack`, which LLVM
  keeps in registers), in float32 for at most ``FLUSH`` terms, then added into float64.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .qnn import OUTPUT_SCALE

LANES = 16  # samples per chunk: one AVX-512 register of float32
FLUSH = 16  # float32 terms per lane before a partial sum moves to float64
# stack(...) needs literal sizes: 48 = 3 * LANES, 64 = 4 * LANES
U = np.uint64
_JIT = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c with one rounding (``llvm.fma``)."""
    if not (a == b == c and isinstance(a, types.Float)):
        return None

    def codegen(context, builder, sig, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


@intrinsic
def stack(typingctx, count, dtype):
    """Pointer to ``count`` (a literal) uninitialised elements on the stack."""
    if not isinstance(count, types.IntegerLiteral):
        return None
    nb = dtype.dtype if isinstance(dtype, types.DType) else dtype.instance_type

    def codegen(context, builder, sig, args):
        return cgutils.alloca_once(builder, context.get_data_type(nb), size=count.literal_value)

    return types.CPointer(nb)(count, dtype), codegen


@intrinsic
def ptr(typingctx, arr, offset):
    """Pointer to element ``offset`` of the C-contiguous array ``arr``. ``carray(ptr(a, i), n)``
    is a view without a reference count: numba's slices increment and decrement one
    atomically, which cost 18% of the kernel's time (measured) at 12 qubits."""
    if not isinstance(arr, types.Array) or not isinstance(offset, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.gep(a.data, [args[1]])

    return types.CPointer(arr.dtype)(arr, offset), codegen


def _view(a, offset, shape):
    """``a.flat[offset:]`` as an array of ``shape`` (no reference count; ``a`` must outlive it)."""
    return numba.carray(ptr(a, offset), shape)


_view = numba.njit(inline="always", **_JIT)(_view)


# ----------------------------------------------------------------------------- passes
@numba.njit(**_JIT)
def _gate(pr, pi, h, g):
    """psi <- G psi on the qubit whose amplitude pairs lie h floats apart,
    G = [[g0 + i g1, g2 + i g3], [g4 + i g5, g6 + i g7]]."""
    a0, a1, a2, a3, a4, a5, a6, a7 = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]
    n1, n3, n5, n7 = -a1, -a3, -a5, -a7
    for base in range(0, pr.size, 2 * h):
        # separate views: LLVM checks once that the two halves do not overlap, then vectorises
        p0r, p0i, p1r, p1i = _view(pr, base, h), _view(pi, base, h), _view(pr, base + h, h), _view(pi, base + h, h)
        for j in range(h):
            ar, ai, br, bi = p0r[j], p0i[j], p1r[j], p1i[j]
            p0r[j] = fma(a0, ar, fma(n1, ai, fma(a2, br, n3 * bi)))
            p0i[j] = fma(a0, ai, fma(a1, ar, fma(a2, bi, a3 * br)))
            p1r[j] = fma(a4, ar, fma(n5, ai, fma(a6, br, n7 * bi)))
            p1i[j] = fma(a4, ai, fma(a5, ar, fma(a6, bi, a7 * br)))


@numba.njit(**_JIT)
def _phase(sr, si, dr, di, fr, fi):
    """d = (fr + i fi) s elementwise (the phase of each amplitude repeated on its lanes)."""
    for j in range(sr.size):
        ar, ai, c, s = sr[j], si[j], fr[j], fi[j]
        dr[j] = fma(c, ar, -(s * ai))
        di[j] = fma(c, ai, s * ar)


@numba.njit(**_JIT)
def _phase_inplace(pr, pi, fr, fi, conj):
    """p = (fr + i fi) p elementwise, or (fr - i fi) p if ``conj``."""
    for j in range(pr.size):
        ar, ai, c, s = pr[j], pi[j], fr[j], (-fi[j] if conj else fi[j])
        pr[j] = fma(c, ar, -(s * ai))
        pi[j] = fma(c, ai, s * ar)


@numba.njit(**_JIT)
def _s_pass(pr, pi, lr, li, pos, zb, rzz, out):
    """out[P, b] += S_P = Im <lambda|P_q|psi> on lane b (P = X, Y, Z) for the qubit q at bit
    ``pos`` of the slice index, and, if ``rzz``, out[3, b] += sum_k z_q z_r Im(conj(lambda_k) psi_k),
    the RZZ angle's sum on (q, r) (zb = z_r per amplitude): per pair z_r times S_Z's term.
    a, b = psi on the pair; u, v = lambda."""
    acc = numba.carray(stack(64, pr.dtype), (4, LANES))
    n_vec = U(pr.size // (2 * LANES))  # amplitude pairs, LANES samples each
    sh = U(pos)
    low = (U(1) << sh) - U(1)
    h = U(LANES) << sh
    for p0 in range(U(0), n_vec, U(FLUSH)):
        # a block of FLUSH pairs: the accumulators stay in registers, then go to float64
        for c in range(U(4)):
            for b in range(U(LANES)):
                acc[c, b] = 0
        for p in range(p0, min(p0 + U(FLUSH), n_vec)):
            k0 = ((p >> sh) << (sh + U(1))) | (p & low)  # p with a zero bit inserted at pos
            jj = k0 * U(LANES)
            z = zb[k0]
            for b in range(U(LANES)):
                j = jj + b
                k = j + h
                ar, ai, br, bi = pr[j], pi[j], pr[k], pi[k]
                ur, ui, vr, vi = lr[j], li[j], lr[k], li[k]
                acc[0, b] += fma(ur, bi, fma(-ui, br, fma(vr, ai, -(vi * ar))))
                acc[1, b] += fma(vr, ar, fma(vi, ai, fma(-ur, br, -(ui * bi))))
                d = fma(ur, ai, fma(-ui, ar, fma(-vr, bi, vi * br)))
                acc[2, b] += d
                acc[3, b] = fma(z, d, acc[3, b])
        for c in range(U(4)):
            for b in range(U(LANES)):
                out[c, b] += np.float64(acc[c, b])
    if not rzz:
        for b in range(U(LANES)):
            out[3, b] = 0


@numba.njit(**_JIT)
def _last_gate(pr, pi, lr, li, h, g, backward):
    """The last layer, whose light cone is the measured qubit alone (pairs h floats apart):
    psi <- G psi and, with ``backward``, lambda = G^dagger Z G psi."""
    a0, a1, a2, a3, a4, a5, a6, a7 = g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7]
    n1, n3, n5, n7, m4, m6 = -a1, -a3, -a5, -a7, -a4, -a6
    for base in range(0, pr.size, 2 * h):
        p0r, p0i, p1r, p1i = _view(pr, base, h), _view(pi, base, h), _view(pr, base + h, h), _view(pi, base + h, h)
        l0r, l0i, l1r, l1i = _view(lr, base, h), _view(li, base, h), _view(lr, base + h, h), _view(li, base + h, h)
        for j in range(h):
            ar, ai, br, bi = p0r[j], p0i[j], p1r[j], p1i[j]
            xr = fma(a0, ar, fma(n1, ai, fma(a2, br, n3 * bi)))
            xi = fma(a0, ai, fma(a1, ar, fma(a2, bi, a3 * br)))
            yr = fma(a4, ar, fma(n5, ai, fma(a6, br, n7 * bi)))
            yi = fma(a4, ai, fma(a5, ar, fma(a6, bi, a7 * br)))
            p0r[j], p0i[j], p1r[j], p1i[j] = xr, xi, yr, yi
            if backward:  # G^dagger (x, -y), G^dagger = [[conj g00, conj g10], [conj g01, conj g11]]
                l0r[j] = fma(a0, xr, fma(a1, xi, fma(m4, yr, -(a5 * yi))))
                l0i[j] = fma(a0, xi, fma(n1, xr, fma(m4, yi, a5 * yr)))
                l1r[j] = fma(a2, xr, fma(a3, xi, fma(m6, yr, -(a7 * yi))))
                l1i[j] = fma(a2, xi, fma(n3, xr, fma(m6, yi, a7 * yr)))


@numba.njit(**_JIT)
def _last_sums(pr, pi, pos, e, out, backward):
    """After :func:`_last_gate` (psi' in pr, pi; the measured qubit at bit ``pos``):
    e[b] += <Z> = sum |psi'_0|^2 - |psi'_1|^2 and, with ``backward`` (lambda' = Z psi'),
    out[0:2, b] += S_X, S_Y = 2 Im, -2 Re of sum conj(psi'_0) psi'_1 (S_Z = 0)."""
    acc = numba.carray(stack(48, pr.dtype), (3, LANES))
    n_vec = U(pr.size // (2 * LANES))
    sh = U(pos)
    low = (U(1) << sh) - U(1)
    h = U(LANES) << sh
    for p0 in range(U(0), n_vec, U(FLUSH)):
        for c in range(U(3)):
            for b in range(U(LANES)):
                acc[c, b] = 0
        for p in range(p0, min(p0 + U(FLUSH), n_vec)):
            jj = (((p >> sh) << (sh + U(1))) | (p & low)) * U(LANES)
            for b in range(U(LANES)):
                j = jj + b
                k = j + h
                xr, xi, yr, yi = pr[j], pi[j], pr[k], pi[k]
                acc[0, b] += fma(xr, xr, xi * xi) - fma(yr, yr, yi * yi)
                acc[1, b] += fma(xr, yi, -(xi * yr))
                acc[2, b] += fma(xr, yr, xi * yi)
        for b in range(U(LANES)):
            e[b] += np.float64(acc[0, b])
            if backward:
                out[0, b] += 2.0 * np.float64(acc[1, b])
                out[1, b] -= 2.0 * np.float64(acc[2, b])


@numba.njit(**_JIT)
def _load(xr, xi, rows, s0, w, perm, off, pr, pi):
    """Slice ``off`` of the samples rows[s0 .. s0+w-1] of xr + i xi (N, 2^n; xi empty: zero),
    lanes past w zero."""
    A = U(pr.size // LANES)
    for kk in range(U(0), A):
        col = perm[U(off) + kk]
        o = kk * U(LANES)
        for b in range(U(w)):
            pr[o + b] = xr[rows[U(s0) + b], col]
    if xi.shape[0]:
        for kk in range(U(0), A):
            col = perm[U(off) + kk]
            o = kk * U(LANES)
            for b in range(U(w)):
                pi[o + b] = xi[rows[U(s0) + b], col]
    else:
        for j in range(pi.size):
            pi[j] = 0
    for b in range(U(w), U(LANES)):
        for kk in range(U(0), A):
            pr[kk * U(LANES) + b] = 0
            pi[kk * U(LANES) + b] = 0


# ----------------------------------------------------------------------------- driver
@numba.njit(**_JIT)
def chunks(c0, c1, st, lam, S, e64, cb, xr, xi, rows, perm, gates, phase, cone_q, pos, cone_p, ztab,
           mode, target, e, gS, loss):
    """Chunks c0..c1-1 of ``LANES`` of the samples (xr + i xi)[rows]: outputs into ``e``; for
    mode 1 (cotangents ``target`` of the outputs), 2 (mean BCE against labels ``target``) or 3
    (sum of w_b BCE_b, ``target`` = [labels, weights w]) also each chunk's gradient sums gS
    (C, D, n, 4) and loss. st, lam, S, e64, cb: this thread's scratch."""
    D, n = cone_q.shape
    P = cone_p.shape[1]
    N = rows.size
    A = ztab.shape[1]
    AL = A * LANES

    def state(l, part):  # st[l, part] (a view without reference count, as all below)
        return _view(st, (2 * l + part) * AL, AL)

    def ph(l, part):
        return _view(phase, (2 * l + part) * AL, AL)

    def gate(l, q, inverse):
        return _view(gates, ((l * n + q) * 2 + inverse) * 8, 8)

    lr, li = _view(lam, 0, AL), _view(lam, AL, AL)
    for c in range(c0, c1):
        s0 = c * LANES
        w = min(LANES, N - s0)
        S[:] = 0
        e64[:] = 0
        for s in range(xr.shape[1] // A):
            _load(xr, xi, rows, s0, w, perm, s * A, state(0, 0), state(0, 1))
            for l in range(D - 1):
                if mode == 0:  # values only: one state, updated in place
                    if l > 0:
                        _phase_inplace(state(0, 0), state(0, 1), ph(l - 1, 0), ph(l - 1, 1), False)
                    cur = 0
                else:  # training keeps the state after each layer's gates
                    if l > 0:
                        _phase(state(l - 1, 0), state(l - 1, 1), state(l, 0), state(l, 1), ph(l - 1, 0), ph(l - 1, 1))
                    cur = l
                for q in range(n):
                    if cone_q[l, q]:
                        _gate(state(cur, 0), state(cur, 1), LANES << pos[q], gate(l, q, 0))
            # the last layer: its input phased into a scratch state (or in place for values)
            fin = 0 if mode == 0 else D - 1
            if D > 1:
                if mode == 0:
                    _phase_inplace(state(0, 0), state(0, 1), ph(D - 2, 0), ph(D - 2, 1), False)
                else:
                    _phase(state(D - 2, 0), state(D - 2, 1), state(fin, 0), state(fin, 1), ph(D - 2, 0), ph(D - 2, 1))
            _last_gate(state(fin, 0), state(fin, 1), lr, li, LANES << pos[n - 1], gate(D - 1, n - 1, 0), mode > 0)
            _last_sums(state(fin, 0), state(fin, 1), pos[n - 1], e64, _view(S, ((D - 1) * n + n - 1) * 4 * LANES, (4, LANES)),
                       mode > 0)
            if mode == 0:
                continue
            for l in range(D - 2, -1, -1):
                _phase_inplace(lr, li, ph(l, 0), ph(l, 1), True)
                for q in range(n):
                    if cone_q[l, q]:
                        live = q < P and cone_p[l, q]
                        _s_pass(state(l, 0), state(l, 1), lr, li, pos[q], _view(ztab, ((q + 1) % n) * A, A), live,
                                _view(S, (l * n + q) * 4 * LANES, (4, LANES)))
                if l > 0:
                    for q in range(n):
                        if cone_q[l, q]:
                            _gate(lr, li, LANES << pos[q], gate(l, q, 1))
        for b in range(w):
            e[s0 + b] = e64[b]
        if mode == 0:
            continue
        cb[:] = 0
        lsum = 0.0
        for b in range(w):
            if mode == 1:
                cb[b] = target[s0 + b]
            elif mode == 2:
                z, y = OUTPUT_SCALE * e64[b], target[s0 + b]
                cb[b] = OUTPUT_SCALE * (1.0 / (1.0 + math.exp(-z)) - y) / N
                lsum += max(z, 0.0) + math.log1p(math.exp(-abs(z))) - y * z
            else:  # mode 3: weighted BCE, target = [labels (N), weights (N)]
                z, y, wt = OUTPUT_SCALE * e64[b], target[s0 + b], target[N + s0 + b]
                cb[b] = OUTPUT_SCALE * (1.0 / (1.0 + math.exp(-z)) - y) * wt
                lsum += wt * (max(z, 0.0) + math.log1p(math.exp(-abs(z))) - y * z)
        loss[c] = lsum / N if mode == 2 else lsum
        for l in range(D):
            for q in range(n):
                for a in range(4):
                    acc = 0.0
                    for b in range(LANES):
                        acc += cb[b] * S[l, q, a, b]
                    gS[c, l, q, a] = acc


# ----------------------------------------------------------------------------- tables
# 2x2 complex matrices as tuples (m00, m01, m10, m11): no allocation in these small loops
@numba.njit(**_JIT)
def _rot(kind, t):
    """exp(-i t P / 2) for P = X (0), Y (1), Z (2)."""
    c, s = math.cos(t / 2), math.sin(t / 2)
    if kind == 0:
        return complex(c, 0.0), complex(0.0, -s), complex(0.0, -s), complex(c, 0.0)
    if kind == 1:
        return complex(c, 0.0), complex(-s, 0.0), complex(s, 0.0), complex(c, 0.0)
    return complex(c, -s), 0j, 0j, complex(c, s)


@numba.njit(**_JIT)
def _pauli(kind):
    if kind == 0:
        return 0j, 1 + 0j, 1 + 0j, 0j
    if kind == 1:
        return 0j, -1j, 1j, 0j
    return 1 + 0j, 0j, 0j, -1 + 0j


@numba.njit(**_JIT)
def _mm(a, b):
    return (a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
            a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3])


@numba.njit(**_JIT)
def _dag(a):
    return a[0].conjugate(), a[2].conjugate(), a[1].conjugate(), a[3].conjugate()


@numba.njit(**_JIT)
def prepare(params, rot, cone_q, cone_p, zz, gates, hcoef, phase):
    """From the parameters (float64 arithmetic): gates[l, q, 0] = G (re, im of G00, G01, G10,
    G11), gates[l, q, 1] = G^dagger; hcoef[l, q, j, P] = coefficient of Pauli P in the
    generator H of angle j (dG/d angle_j = -i/2 H G); phase[l] = exp(-i phi_k / 2) (re, im),
    repeated on the lanes."""
    D, n = cone_q.shape
    k3 = 0 if rot == 0 else 2
    one = (1 + 0j, 0j, 0j, 1 + 0j)
    for l in range(D):
        for q in range(n):
            r1 = _rot(0, np.float64(params[l, q, 0]))
            r2 = _rot(1, np.float64(params[l, q, 1]))
            r3 = _rot(k3, np.float64(params[l, q, 2]))
            r32 = _mm(r3, r2)
            g = _mm(r32, r1)
            gd = _dag(g)
            for i in range(4):
                gates[l, q, 0, 2 * i] = g[i].real
                gates[l, q, 0, 2 * i + 1] = g[i].imag
                gates[l, q, 1, 2 * i] = gd[i].real
                gates[l, q, 1, 2 * i + 1] = gd[i].imag
            for a in range(3):
                u = r32 if a == 0 else (r3 if a == 1 else one)
                h = _mm(_mm(u, _pauli(0 if a == 0 else (1 if a == 1 else k3))), _dag(u))
                hcoef[l, q, a, 0] = 0.5 * (h[1] + h[2]).real
                hcoef[l, q, a, 1] = -0.5 * (h[1] - h[2]).imag
                hcoef[l, q, a, 2] = 0.5 * (h[0] - h[3]).real
    A = zz.shape[1]
    tab = np.empty(A, np.complex128)
    for l in range(D):
        tab[:] = 1
        for p in range(cone_p.shape[1]):
            if cone_p[l, p]:
                t = np.float64(params[l, p, 3])
                c, s = math.cos(t / 2), math.sin(t / 2)
                for k in range(A):
                    tab[k] *= complex(c, -s * zz[p, k])
        for k in range(A):  # repeated on the lanes: the phase passes are flat loops
            for b in range(LANES):
                phase[l, 0, k * LANES + b] = tab[k].real
                phase[l, 1, k * LANES + b] = tab[k].imag


@numba.njit(**_JIT)
def finish(gS, hcoef, cone_q, cone_p, g):
    """Sum the chunks' gradient sums in chunk order into g (D, n, 4); gS[.., 3] holds the
    RZZ sums of the pair starting at qubit q."""
    D, n = cone_q.shape
    for l in range(D):
        for q in range(n):
            if cone_q[l, q]:
                for a in range(3):
                    tot = 0.0
                    for P in range(3):
                        s = 0.0
                        for c in range(gS.shape[0]):
                            s += gS[c, l, q, P]
                        tot += hcoef[l, q, a, P] * s
                    g[l, q, a] = tot
        for p in range(cone_p.shape[1]):
            if cone_p[l, p]:
                s = 0.0
                for c in range(gS.shape[0]):
                    s += gS[c, l, p, 3]
                g[l, p, 3] = s


@numba.njit(**_JIT)
def adam(p, g, mu, nu, count, lr, b1, b2, eps):
    """One step of Adam (optax.adam's update rule) on the flat arrays p, g, mu, nu in place;
    count[0] counts the steps. Bias corrections in float64."""
    count[0] += 1
    c1, d1 = p.dtype.type(1.0 - b1), p.dtype.type(b1)
    c2, d2 = p.dtype.type(1.0 - b2), p.dtype.type(b2)
    bc1 = p.dtype.type(1.0 - b1 ** count[0])
    bc2 = p.dtype.type(1.0 - b2 ** count[0])
    e, step = p.dtype.type(eps), p.dtype.type(-lr)
    for i in range(p.size):
        gi = g[i]
        mu[i] = c1 * gi + d1 * mu[i]
        nu[i] = c2 * (gi * gi) + d2 * nu[i]
        p[i] += step * ((mu[i] / bc1) / (np.sqrt(nu[i] / bc2) + e))
