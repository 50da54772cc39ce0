"""Hardware noise and finite shots for the QNN: groundwork for a chapter beyond the paper.

The paper's QNNs are simulated exactly (pure states, exact <Z>). This module gives the same
circuit (:class:`qmu_core.qnn.QNN`) under a noise model of the usual "noise after every gate"
kind, as an exact density-matrix simulation in JAX (jittable, differentiable to any order),
plus readout error and finite-shot sampling of the measured <Z_{n-1}>:

* after every gate (each of the three rotations of a qubit, each RZZ) a single-qubit
  channel on each qubit the gate acts on: depolarising with probability ``p``
  (rho -> (1 - p) rho + p/3 (X rho X + Y rho Y + Z rho Z)) and/or amplitude damping towards
  |0> with rate ``gamma``;
* readout error: the measured bit of the readout qubit is flipped with probability ``e``;
  for <Z> that is the affine map <Z> -> (1 - 2e) <Z>;
* finite shots: <Z> estimated from ``shots`` binomial samples of the (noisy) readout.

Why it is affordable. Any channel is trace preserving, so its adjoint maps the identity to
the identity: a gate or channel acting only on qubits outside the support of the
Heisenberg-evolved readout observable leaves <Z_{n-1}> unchanged, exactly as the noiseless
light cone of :attr:`QNN.light_cone`. :func:`light_cone_ops` keeps only the operations that
touch that support, and the density matrix is simulated on the first layer's support alone,
starting from the input's reduced state (:func:`reduced_inputs`). For the XXZ QNN (12 qubits,
depth 4) that register has 7 qubits (a 128 x 128 density matrix); for the MNIST QNN (10
qubits, depth 6) it is the whole register (1024 x 1024), which is what makes noisy MNIST
training expensive on a CPU (``benchmarks/noise_cost.py`` measures it).

:func:`reference_expectation` simulates the whole register with every operation, without
the light-cone reduction, with TensorCircuit-NG's density matrices and channels
(``tc.DMCircuit``, ``depolarizing``, ``amplitudedamping``): the tests compare the two.
(``tc.DMCircuit`` itself contracts the whole circuit as one tensor network at the end, which
under ``vmap`` and ``grad`` took 43 ms per sample on an 8-qubit register and ran out of memory
on a 12-qubit one: too slow to train with, hence the operation-by-operation simulation.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np

from .qnn import OUTPUT_SCALE, QNN, _rot
from .validation import check_float, check_int


@dataclass(frozen=True)
class NoiseModel:
    """A noise model for the QNN (see the module docstring).

    ``depolarizing``: p of the single-qubit depolarising channel after every gate, in
    [0, 0.75] (0.75 is the completely depolarising channel). ``amplitude_damping``: gamma in
    [0, 1] after every gate. ``readout``: probability of flipping the measured bit, in
    [0, 0.5]. Finite shots are not part of the channel: :func:`shot_expectation` samples
    the exact noisy <Z>.
    """

    depolarizing: float = 0.0
    amplitude_damping: float = 0.0
    readout: float = 0.0

    def __post_init__(self):
        for name, upper in (("depolarizing", 0.75), ("amplitude_damping", 1.0), ("readout", 0.5)):
            object.__setattr__(self, name, check_float(name, getattr(self, name), min=0.0, max=upper))

    @property
    def gate_noise(self) -> bool:
        """True when a channel follows the gates (the density-matrix simulation is needed)."""
        return self.depolarizing > 0 or self.amplitude_damping > 0


# ---------------------------------------------------------------------- the operation list
def circuit_ops(qnn: QNN, noise: NoiseModel) -> list[tuple]:
    """The noisy circuit as a list of operations in time order:
    ``("rot", layer, qubit, k)`` (rotation ``qnn.rotations[k]``), ``("zz", layer, pair)``,
    ``("noise", qubit)`` (the noise model's channels on that qubit)."""
    ops: list[tuple] = []
    noisy = noise.gate_noise
    for layer in range(qnn.depth):
        for q in range(qnn.n_qubits):
            for k in range(3):
                ops.append(("rot", layer, q, k))
                if noisy:
                    ops.append(("noise", q))
        for p, (a, b) in enumerate(qnn.pairs):
            ops.append(("zz", layer, p))
            if noisy:
                ops += [("noise", a), ("noise", b)]
    return ops


def _qubits(qnn: QNN, op: tuple) -> tuple[int, ...]:
    if op[0] == "rot":
        return (op[2],)
    if op[0] == "zz":
        return qnn.pairs[op[2]]
    return (op[1],)


def light_cone_ops(qnn: QNN, noise: NoiseModel) -> tuple[tuple[int, ...], list[tuple]]:
    """(register, operations) that determine <Z_{n-1}>, found by walking back from the
    readout through :func:`circuit_ops` with the support of the Heisenberg-evolved
    observable, each support qubit marked by whether the observable can act on it other
    than diagonally (Z and I only):

    * a rotation on a support qubit is kept and makes that qubit non-diagonal;
    * an RZZ is kept when one of its qubits is non-diagonal; its other qubit then joins the
      support as diagonal (conjugation by a diagonal gate multiplies by Z on it). An RZZ
      whose support qubits are all diagonal commutes with the observable and is dropped;
    * a channel on a support qubit is kept; both channels' adjoints map diagonal operators
      to diagonal ones and never enlarge the support (they are trace preserving: the
      identity maps to the identity), so everything outside the support is dropped exactly.

    Without noise this is :attr:`QNN.light_cone`. ``register``: the support at the start."""
    support, nondiag, kept = {qnn.n_qubits - 1}, set(), []
    for op in reversed(circuit_ops(qnn, noise)):
        qs = _qubits(qnn, op)
        if op[0] == "rot":
            if qs[0] not in support:
                continue
            nondiag.add(qs[0])
        elif op[0] == "zz":
            if not nondiag.intersection(qs):
                continue
            support |= set(qs)
        elif qs[0] not in support:
            continue
        kept.append(op)
    return tuple(sorted(support)), kept[::-1]


# ---------------------------------------------------------------------- simulation
def reduced_inputs(qnn: QNN, states, register) -> np.ndarray:
    """Reduced density matrices of pure input states on ``register`` (qubit 0 most
    significant, as in :class:`QNN`): (N, 2^k, 2^k) with k = len(register)."""
    states = np.asarray(states)
    n, reg = qnn.n_qubits, list(register)
    rest = [q for q in range(n) if q not in reg]
    t = states.reshape((len(states),) + (2,) * n).transpose([0] + [1 + q for q in reg + rest])
    m = t.reshape(len(states), 2 ** len(reg), 2 ** len(rest))
    return np.einsum("nab,ncb->nac", m, m.conj())


def _z_axis(i: int, k: int) -> np.ndarray:
    """z_i = +-1 on the 2^k basis states of a k-qubit register, shaped (2,) * k."""
    shape = [1] * k
    shape[i] = 2
    return np.broadcast_to(np.array([1.0, -1.0]).reshape(shape), (2,) * k)


def _conjugate(r, u, i: int, k: int):
    """K rho K^dagger for a 2x2 ``u`` on register qubit ``i`` (ket axis i, bra axis k + i)."""
    r = jnp.moveaxis(jnp.tensordot(u, r, axes=([1], [i])), 0, i)
    return jnp.moveaxis(jnp.tensordot(jnp.conj(u), r, axes=([1], [k + i])), 0, k + i)


def _depolarize(r, p: float, i: int, k: int):
    """(1 - p) rho + p/3 (X rho X + Y rho Y + Z rho Z) on qubit ``i``, written as
    (1 - 4p/3) rho + (2p/3) I_i (x) Tr_i rho (the Pauli twirl is the partial trace)."""
    traced = jnp.trace(r, axis1=i, axis2=k + i)  # axes i and k + i removed
    eye = jnp.eye(2, dtype=r.dtype)
    mixed = jnp.moveaxis(jnp.tensordot(eye, traced, axes=0), (0, 1), (i, k + i))
    return (1.0 - 4.0 * p / 3.0) * r + (2.0 * p / 3.0) * mixed


def _damping_kraus(gamma: float) -> np.ndarray:
    """Kraus operators of amplitude damping towards |0>: (2, 2, 2)."""
    return np.array([[[1.0, 0.0], [0.0, np.sqrt(1.0 - gamma)]],
                     [[0.0, np.sqrt(gamma)], [0.0, 0.0]]])


def _apply(c, qnn: QNN, noise: NoiseModel, params, op, index) -> None:
    if op[0] == "rot":
        _, layer, q, k = op
        getattr(c, qnn.rotations[k])(index[q], theta=params[layer, q, k])
    elif op[0] == "zz":
        _, layer, p = op
        a, b = qnn.pairs[p]
        c.rzz(index[a], index[b], theta=params[layer, p, 3])
    else:
        q = index[op[1]]
        if noise.depolarizing > 0:
            third = noise.depolarizing / 3
            c.depolarizing(q, px=third, py=third, pz=third)
        if noise.amplitude_damping > 0:
            c.amplitudedamping(q, gamma=noise.amplitude_damping, p=1.0)


@dataclass(frozen=True)
class NoisyQNN:
    """The QNN under a :class:`NoiseModel`: exact (density-matrix) <Z_{n-1}> with the
    readout error applied, on the light-cone register (:func:`light_cone_ops`). Pure and
    jittable functions of ``(params, rho)`` where ``rho`` are :meth:`inputs` of the states;
    finite shots are applied on top (:func:`shot_expectation`)."""

    qnn: QNN
    noise: NoiseModel

    @cached_property
    def _cone(self):
        return light_cone_ops(self.qnn, self.noise)

    @property
    def register(self) -> tuple[int, ...]:
        return self._cone[0]

    @property
    def n_ops(self) -> int:
        return len(self._cone[1])

    def inputs(self, states) -> jax.Array:
        """The states' reduced density matrices on :attr:`register` (computed once per
        data set; they replace the states as the model's input)."""
        self.qnn.check_states(states)
        rho = reduced_inputs(self.qnn, states, self.register)
        return jnp.asarray(rho.astype(self.qnn.dtype))

    def observable(self, params):
        """The readout observable evolved back through the noisy circuit (Heisenberg
        picture), O = Phi^dagger(Z_{n-1}) on :attr:`register`, readout error included:
        (2^k, 2^k). The same for every input, so a batch costs one evolution, whose cost
        does not grow with the batch: <Z>_i = Tr(rho_i O)."""
        reg, ops = self._cone
        k, index = len(reg), {q: i for i, q in enumerate(reg)}
        cdt = self.qnn.dtype
        z = _z_axis(index[self.qnn.n_qubits - 1], k).reshape(-1)
        o = jnp.diag(jnp.asarray((1.0 - 2.0 * self.noise.readout) * z, cdt)).reshape((2,) * (2 * k))
        p_dep, gamma = self.noise.depolarizing, self.noise.amplitude_damping
        damp = np.conj(np.swapaxes(_damping_kraus(gamma), 1, 2)).astype(cdt)  # K^dagger
        for op in reversed(ops):  # adjoint channels, last operation first
            if op[0] == "rot":
                _, layer, q, j = op
                u = _rot(self.qnn.rotations[j], params[layer, q, j][None])[0].astype(cdt)
                o = _conjugate(o, jnp.conj(u).T, index[q], k)
            elif op[0] == "zz":
                _, layer, pair = op
                a, b = (index[x] for x in self.qnn.pairs[pair])
                zz = _z_axis(a, k) * _z_axis(b, k)
                phase = jnp.exp(0.5j * params[layer, pair, 3] * zz).astype(cdt)  # U^dagger's diagonal
                o = o * phase.reshape((2,) * k + (1,) * k) * jnp.conj(phase).reshape((1,) * k + (2,) * k)
            else:
                i = index[op[1]]
                # amplitude damping first: it follows depolarising in time (see _apply)
                if gamma > 0:
                    o = _conjugate(o, damp[0], i, k) + _conjugate(o, damp[1], i, k)
                if p_dep > 0:
                    o = _depolarize(o, p_dep, i, k)  # the depolarising channel is self-adjoint
        return o.reshape(2**k, 2**k)

    def expectation(self, params, rho):
        """Noisy <Z_{n-1}> (readout error included) for a batch of reduced inputs ``rho``
        (:meth:`inputs`): shape (N,)."""
        o = self.observable(params)
        return jnp.real(jnp.einsum("nab,ba->n", rho, o))

    def logits(self, params, rho):
        return OUTPUT_SCALE * self.expectation(params, rho)


def reference_expectation(qnn: QNN, noise: NoiseModel, params, state) -> float:
    """Noisy <Z_{n-1}> of one pure input state, simulating the whole register with every
    operation of :func:`circuit_ops` (no light-cone reduction): the tests' reference. Runs in
    tensorcircuit's current precision (complex128 inside :func:`qmu_core.precision.float64_scope`)."""
    import tensorcircuit as tc

    tc.set_backend("jax")
    n = qnn.n_qubits
    c = tc.DMCircuit(n, inputs=jnp.asarray(state).astype(tc.dtypestr))
    for op in circuit_ops(qnn, noise):
        _apply(c, qnn, noise, params, op, {q: q for q in range(n)})
    return float((1.0 - 2.0 * noise.readout) * jnp.real(c.expectation_ps(z=[n - 1])))


def sample_expectation(key, z, shots: int):
    """<Z> estimated from ``shots`` measurements of a qubit whose exact (noisy) expectation is
    ``z``: 2 k / shots - 1 with k ~ Binomial(shots, (1 + z) / 2), one draw per entry of ``z``.
    Unbiased, variance (1 - z^2) / shots."""
    check_int("shots", shots, min=1)
    p0 = jnp.clip((1.0 + z) / 2.0, 0.0, 1.0)
    k = jax.random.binomial(key, shots, p0)
    return (2.0 * k / shots - 1.0).astype(z.dtype)


def shot_expectation(key, z, shots: int):
    """:func:`sample_expectation` with the gradient of the exact ``z`` (straight-through):
    the value a device reports, differentiated as the parameter-shift rule would estimate it
    in the limit of many shots per shifted circuit."""
    return z + jax.lax.stop_gradient(sample_expectation(key, z, shots) - z)
