"""The noisy QNN in the Pauli-transfer-matrix picture: the fast exact simulation that trains it.

:class:`qmu_core.noise.NoisyQNN` evolves the readout observable back through the noisy
circuit as a complex 2^k x 2^k matrix, one conjugation per gate and per channel. Written in
the Pauli basis instead (O = sum_P c_P P over the 4^k Pauli strings of the light-cone
register), every operation is a real matrix acting on the coefficient tensor ``c`` of shape
(4,) * k, its Pauli transfer matrix (PTM) T[a, b] = Tr(P_a Phi^dagger(P_b)) / 2^m:

* a rotation is 1 (+) a 3 x 3 rotation of (X, Y, Z) on its qubit, the depolarising channel
  diag(1, l, l, l) with l = 1 - 4p/3, amplitude damping (x, y, z) -> (sqrt(1-g) x,
  sqrt(1-g) y, (1-g) z + g) (computed from the Kraus operators, never written by hand);
* so all the single-qubit operations a qubit sees between two RZZ gates (three rotations
  and their channels) are one 4 x 4 matrix, and an RZZ with the channels on its two qubits
  after it one 16 x 16 matrix: a layer of the 12-qubit XXZ QNN's 7-qubit light cone costs
  a few small real contractions instead of 33 complex conjugations.

<Z>_i = sum_P c_P Tr(rho_i P): the inputs enter as their Pauli vectors r_i[P] = Tr(rho_i P)
on the register (:meth:`PauliQNN.inputs`, computed once per data set), so a mini-batch is one
matrix-vector product. The same light cone as :func:`qmu_core.noise.light_cone_ops` (exact
for any channel); the tests compare with :class:`NoisyQNN` and, through it, TensorCircuit-NG's
``DMCircuit``. Used by :mod:`qmu_core.noise_study` (the noise chapter).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np

from .noise import NoiseModel, _damping_kraus, light_cone_ops, reduced_inputs
from .qnn import OUTPUT_SCALE, QNN, _rot
from .validation import ParameterError

#: I, X, Y, Z
PAULIS = np.array([[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]],
                  dtype=np.complex128)
#: the two-qubit Pauli strings P_a (x) P_b, index 4 a + b
PAULIS2 = np.einsum("aij,bkl->abikjl", PAULIS, PAULIS).reshape(16, 4, 4)
#: the largest register whose Pauli vectors the inputs are stored as (4^8 floats per state)
MAX_PAULI_REGISTER = 8


def ptm_unitary(u, basis):
    """PTM of the Heisenberg map O -> U^dagger O U for an m-qubit unitary ``u`` (2^m x 2^m)
    in the Pauli ``basis`` (4^m, 2^m, 2^m): T[a, b] = Re Tr(P_a U^dagger P_b U) / 2^m."""
    b = jnp.asarray(basis, u.dtype)
    t = jnp.einsum("aij,kj,bkl,li->ab", b, jnp.conj(u), b, u)
    return jnp.real(t) / u.shape[0]


def ptm_channel(kraus) -> np.ndarray:
    """PTM of the adjoint of the single-qubit channel rho -> sum_k K rho K^dagger (Heisenberg
    picture: O -> sum_k K^dagger O K): T[a, b] = Re Tr(P_a sum_k K^dagger P_b K) / 2."""
    kraus = np.asarray(kraus, np.complex128)
    t = np.einsum("aij,nkj,bkl,nli->ab", PAULIS, np.conj(kraus), PAULIS, kraus)
    return np.real(t) / 2.0


def depolarizing_kraus(p: float) -> np.ndarray:
    """Kraus operators of the depolarising channel (1 - p) rho + p/3 (X rho X + Y rho Y + Z rho Z)."""
    return np.stack([np.sqrt(1.0 - p) * PAULIS[0]] + [np.sqrt(p / 3.0) * PAULIS[i] for i in (1, 2, 3)])


def noise_ptm(noise: NoiseModel) -> np.ndarray:
    """The 4 x 4 PTM of the channels after one gate on one qubit: depolarising, then amplitude
    damping (the time order of :func:`qmu_core.noise._apply`); Heisenberg maps compose in the
    reverse order, so T = T_depolarising @ T_damping."""
    t = np.eye(4)
    if noise.depolarizing > 0:
        t = t @ ptm_channel(depolarizing_kraus(noise.depolarizing))
    if noise.amplitude_damping > 0:
        t = t @ ptm_channel(_damping_kraus(noise.amplitude_damping))
    return t


def _apply(c, axes: list, t, qubits: tuple):
    """The PTM ``t`` (4^m x 4^m) on the register ``qubits`` of the coefficient tensor ``c``,
    whose axis i belongs to register qubit ``axes[i]``: (c, axes) after it. The result keeps
    the transformed axes first, where the contraction puts them, and ``axes`` says so:
    moving them back cost a transpose of the whole tensor per operation (at 10 qubits, D = 6,
    about 40% of the forward pass)."""
    m = len(qubits)
    c = jnp.tensordot(t.reshape((4,) * (2 * m)), c, axes=(list(range(m, 2 * m)), [axes.index(q) for q in qubits]))
    return c, list(qubits) + [q for q in axes if q not in qubits]


def pauli_vectors(rho) -> np.ndarray:
    """r[n, P] = Re Tr(rho_n P) for density matrices ``rho`` (N, 2^k, 2^k), P the 4^k Pauli
    strings (qubit 0 the most significant index, as the register): (N, 4^k) float64."""
    rho = np.asarray(rho)
    n, d = rho.shape[0], rho.shape[1]
    k = int(round(np.log2(d)))
    t = rho.reshape((n,) + (2,) * (2 * k))
    for i in range(k):  # contract qubit i's (ket, bra) pair with P[bra, ket]; the new axis goes last
        t = np.tensordot(t, PAULIS, axes=([1, 1 + k - i], [2, 1]))
    return np.real(t.reshape(n, 4**k))


def _blocks(a, b):
    """One qubit of the map from Pauli coefficients to the matrix O = sum_P c_P P, on the real
    and imaginary parts ``a``, ``b`` (K, 4, R, B) of the partial result, the qubit's Pauli
    index second (``b`` None: zero). Each entry becomes its 2 x 2 block ([[I+Z, X-iY],
    [X+iY, I-Z]]), its ket bit after the earlier kets and its bra bit after the earlier bras:
    (2K, R, 2B) each."""
    k_, _, r_, b_ = a.shape
    ai, ax, ay, az = (a[:, i] for i in range(4))
    zero = jnp.zeros_like(ai)
    if b is None:
        re = [[ai + az, ax], [ax, ai - az]]
        im = [[zero, -ay], [ay, zero]]
    else:
        bi, bx, by, bz = (b[:, i] for i in range(4))
        re = [[ai + az, ax + by], [ax - by, ai - az]]
        im = [[bi + bz, bx - ay], [bx + ay, bi - bz]]

    def place(m):  # m[ket bit][bra bit] of shape (K, R, B) -> (2K, R, 2B)
        return jnp.stack([jnp.stack(row, axis=-1) for row in m], axis=1).reshape(2 * k_, r_, 2 * b_)

    return place(re), place(im)


def _blocks_transposed(ga, gb):
    """The transpose of :func:`_blocks` (its vector-Jacobian product): cotangents ``ga``,
    ``gb`` (2K, R, 2B) of the real and imaginary parts (``gb`` None: zero) -> those of the
    input's, (K, 4, R, B) each."""
    k2, r_, b2 = ga.shape

    def split(g):  # (2K, R, 2B) -> g[ket bit][bra bit] of shape (K, R, B)
        g = g.reshape(k2 // 2, 2, r_, b2 // 2, 2)
        return [[g[:, x, :, :, y] for y in range(2)] for x in range(2)]

    g = split(ga)
    if gb is None:
        zero = jnp.zeros_like(g[0][0])
        gai, gaz, gax, gay = g[0][0] + g[1][1], g[0][0] - g[1][1], g[0][1] + g[1][0], zero
        gbi = gbz = gbx = zero
    else:
        f = split(gb)
        gai, gaz, gax, gay = g[0][0] + g[1][1], g[0][0] - g[1][1], g[0][1] + g[1][0], f[1][0] - f[0][1]
        gbi, gbz, gbx = f[0][0] + f[1][1], f[0][0] - f[1][1], f[0][1] + f[1][0]
    gby = g[0][1] - g[1][0]
    return jnp.stack([gai, gax, gay, gaz], axis=1), jnp.stack([gbi, gbx, gby, gbz], axis=1)


@jax.custom_vjp
def real_matrix(c):
    """Re O for O = sum_P c_P P, the Pauli strings of k qubits (``c``: (4^k,) real, qubit 0
    the most significant index, as :meth:`PauliQNN.observable`): (2^k, 2^k). For real
    amplitudes psi, <psi|O|psi> = psi . Re(O) psi (the MNIST QNN of the noise chapter).

    The same numbers as ``jnp.real(observable)``, bit for bit, and so are the gradients:
    every entry of a stage, and of its transpose, is a sum of two numbers times 1, -1, i or
    -i, one rounding either way. A stage is a strided add where the complex contraction of
    :meth:`PauliQNN.observable` also needs a 20-axis transpose at the end, and the vector-
    Jacobian product is the transposed stages (autodiff of the slices would pad each slice
    back to full size). With the kernel's other change, an MNIST run of the noise chapter is
    1.9x faster (benchmarks/results/noise_kernel.json)."""
    return _real_matrix_fwd(c)[0]


def _real_matrix_fwd(c):
    k = _n_qubits(c.shape[0])
    a, b = c.reshape(1, 4, 4 ** (k - 1), 1), None
    for s in range(k):
        a, b = _blocks(a, b)  # (2K, R, 2B)
        if s < k - 1:  # the next qubit's Pauli index is the most significant of R
            a, b = (t.reshape(t.shape[0], 4, t.shape[1] // 4, t.shape[2]) for t in (a, b))
    return a.reshape(2**k, 2**k), None


def _real_matrix_bwd(_, g):
    k = _n_qubits(g.shape[0] ** 2)
    ga, gb = g.reshape(2**k, 1, 2**k), None
    for _ in range(k):
        ga, gb = _blocks_transposed(ga, gb)  # (K, 4, R, B): the previous stage's (K, 4R, B)
        ga, gb = (t.reshape(t.shape[0], 4 * t.shape[2], t.shape[3]) for t in (ga, gb))
    return (ga.reshape(-1),)


def _n_qubits(n_paulis: int) -> int:
    k = int(round(np.log(n_paulis) / np.log(4)))
    if 4**k != n_paulis:
        raise ParameterError(f"parameter 'c' of real_matrix must hold 4^k Pauli coefficients, got {n_paulis}")
    return k


real_matrix.defvjp(_real_matrix_fwd, _real_matrix_bwd)


@dataclass(frozen=True)
class PauliQNN:
    """The QNN under a :class:`NoiseModel` (readout error included), simulated with Pauli
    transfer matrices on the light-cone register (see the module docstring). The same model
    as :class:`qmu_core.noise.NoisyQNN`; pure, jittable functions of ``(params, r)`` with
    ``r`` the :meth:`inputs` of the states."""

    qnn: QNN
    noise: NoiseModel

    @cached_property
    def _cone(self):
        reg, ops = light_cone_ops(self.qnn, self.noise)
        if MAX_PAULI_REGISTER < len(reg) < self.qnn.n_qubits:
            raise ParameterError(
                f"the readout's light cone of {self.qnn.n_qubits} qubits at depth {self.qnn.depth} spans "
                f"{len(reg)} qubits; the Pauli simulation stores 4^k floats per input and allows at most "
                f"k = {MAX_PAULI_REGISTER} below the whole register (use qmu_core.noise.NoisyQNN)")
        return reg, ops

    @property
    def register(self) -> tuple[int, ...]:
        return self._cone[0]

    @property
    def whole_register(self) -> bool:
        """True when the light cone is every qubit: the inputs are then the states themselves
        and <Z> = <psi|O|psi> (4^n floats per input would not fit in memory at 10 qubits)."""
        return len(self.register) == self.qnn.n_qubits

    @property
    def real_dtype(self):
        return np.float32 if self.qnn.dtype == "complex64" else np.float64

    def inputs(self, states) -> jax.Array:
        """The states' Pauli vectors on :attr:`register` (computed once per data set):
        (N, 4^k); the states themselves when :attr:`whole_register`."""
        self.qnn.check_states(states)
        if self.whole_register:
            states = np.asarray(states)
            if not np.iscomplexobj(states) or not np.any(states.imag):
                # real amplitudes (MNIST): <psi|O|psi> = psi . Re(O) psi, in real arithmetic
                return jnp.asarray(np.real(states).astype(self.real_dtype))
            return jnp.asarray(states.astype(self.qnn.dtype))
        rho = reduced_inputs(self.qnn, np.asarray(states, np.complex128), self.register)
        return jnp.asarray(pauli_vectors(rho).astype(self.real_dtype))

    def coefficients(self, params):
        """Pauli coefficients c_P of the readout observable evolved back through the noisy
        circuit, readout error included: (4^k,). <Z>_i = r_i . c.

        The tensor holds only the qubits the observable has reached so far (walking back from
        the readout, it is the identity on the others): a qubit joins, as I, when the first RZZ
        that couples it is met. So the late layers, met first, cost 4^3, 4^5, ... instead of
        4^k; on the 10-qubit MNIST circuit that is most of the work."""
        reg, ops = self._cone
        rdt = self.real_dtype
        cdt = self.qnn.dtype
        readout = self.qnn.n_qubits - 1
        c = jnp.asarray(np.array([0.0, 0.0, 0.0, 1.0 - 2.0 * self.noise.readout], rdt))
        axes = [readout]  # the register qubit of each axis of c
        t_noise = jnp.asarray(noise_ptm(self.noise), rdt)
        eye = jnp.eye(4, dtype=rdt)
        identity = jnp.asarray(np.eye(4, dtype=rdt)[0])
        pending: dict[int, jax.Array] = {}  # per register qubit: the later operations, not yet applied
        for op in reversed(ops):
            if op[0] == "rot":
                _, layer, q, j = op
                u = _rot(self.qnn.rotations[j], params[layer, q, j][None])[0].astype(cdt)
                pending[q] = ptm_unitary(u, PAULIS).astype(rdt) @ pending.get(q, eye)
            elif op[0] == "noise":
                pending[op[1]] = t_noise @ pending.get(op[1], eye)
            else:
                _, layer, pair = op
                a, b = self.qnn.pairs[pair]
                for q in (a, b):
                    if q not in axes:  # the observable is I on it: later operations left it I (unital)
                        c = jnp.tensordot(c, identity, axes=0)
                        axes.append(q)
                        pending.pop(q, None)
                zz = jnp.exp(-0.5j * params[layer, pair, 3] * jnp.asarray([1.0, -1.0, -1.0, 1.0])).astype(cdt)
                t = ptm_unitary(jnp.diag(zz), PAULIS2).astype(rdt)
                t = t @ jnp.kron(pending.pop(a, eye), pending.pop(b, eye))
                c, axes = _apply(c, axes, t, (a, b))
        for q, t in pending.items():
            c, axes = _apply(c, axes, t, (q,))
        missing = [q for q in reg if q not in axes]
        for q in missing:
            c = jnp.tensordot(c, identity, axes=0)
            axes.append(q)
        return jnp.transpose(c, [axes.index(q) for q in reg]).reshape(-1)

    def observable(self, params):
        """The evolved observable as a 2^k x 2^k matrix, O = sum_P c_P P (qubit 0 the most
        significant index)."""
        k = len(self.register)
        o = self.coefficients(params).reshape((4,) * k).astype(self.qnn.dtype)
        for _ in range(k):  # qubit i's Pauli axis becomes its (ket, bra) pair, appended last
            o = jnp.tensordot(o, jnp.asarray(PAULIS, self.qnn.dtype), axes=([0], [0]))
        perm = [2 * i for i in range(k)] + [2 * i + 1 for i in range(k)]
        return o.transpose(perm).reshape(2**k, 2**k)

    def expectation(self, params, r):
        """Noisy <Z_{n-1}> (readout error included) of :meth:`inputs` ``r``: (N,)."""
        if self.whole_register:
            if not jnp.iscomplexobj(r):
                return jnp.sum((r @ real_matrix(self.coefficients(params))) * r, axis=1)
            o = self.observable(params)
            return jnp.real(jnp.einsum("na,ab,nb->n", jnp.conj(r), o, r))
        return r @ self.coefficients(params)

    def logits(self, params, r):
        return OUTPUT_SCALE * self.expectation(params, r)
