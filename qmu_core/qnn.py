"""The quantum neural network of the paper (Methods; Fig. 4), on tensorcircuit-ng + JAX.

Architecture: the input vector is the initial state (amplitude encoding); ``depth``
layers each apply three single-qubit rotations to every qubit (default RX, RY, RX) and
then RZZ gates on neighbouring pairs (default a ring, pairs (i, i+1 mod n)); the output
is p = sigmoid(5 <Z_{n-1}>).  Parameters have shape ``(depth, n_qubits, 4)`` as in the
authors' code: ``[j, i, 0:3]`` the rotation angles on qubit i in layer j, ``[j, i, 3]``
the RZZ angle on pair (i, i+1 mod n).  Gate conventions are tensorcircuit's
(R_P(t) = exp(-i t P / 2)); qubit 0 is the most significant bit of the amplitude index.

Three simulations of the same circuit:

* :meth:`QNN.circuit` builds the ``tc.Circuit`` gate by gate (drawing, reference checks).
* :meth:`QNN.expectation`, in XLA, applies only the gates inside the backward light cone
  of the measured qubit (:attr:`QNN.light_cone`; at 12 qubits and depth 4 that is 16 of
  the 48 rotations), fuses the rotations of neighbouring qubits into one small dense
  matrix per block (the Kronecker product of the fused single-qubit gates, applied as a
  GEMM) and applies the RZZ gates as one elementwise multiplication by a diagonal. It
  trains the QNN on accelerators and is differentiable to any order (Hessian chapter).
* :mod:`qmu_core.adjoint` runs the same light-cone circuit in compiled CPU loops and
  differentiates it by the adjoint method; it trains the QNN on a CPU
  (:func:`qmu_core.training.qnn_kernel_name`).

All are checked against each other and an independent NumPy simulation in the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np

from .validation import ParameterError, check_choice, check_int

ROTATIONS = {("rx", "ry", "rx"), ("rx", "ry", "rz")}
ENTANGLERS = ("ring", "chain")
OUTPUT_SCALE = 5.0  # p = sigmoid(5 <Z>) in the paper's code
INIT_STD = 0.01  # parameters ~ N(0, 0.01^2)
MAX_BLOCK = 5  # largest block of qubits fused into one dense matrix (see QNN.blocks)
# Part of the sweep cache key of every QNN run trained by this kernel: change it whenever a
# change to the kernel changes its floating-point results, so cached runs never mix kernels.
KERNEL = "light-cone-v1"


def _rot(kind: str, t):
    """Rotations exp(-i t P / 2) (tensorcircuit's convention) for a vector of angles ``t``:
    complex array of shape ``t.shape + (2, 2)``. Vectorised over qubits, which keeps the
    compiled program small (and its compilation fast)."""
    cdt = jnp.complex64 if t.dtype == jnp.float32 else jnp.complex128
    c, s = jnp.cos(t / 2).astype(cdt), jnp.sin(t / 2).astype(cdt)
    if kind == "rx":
        rows = [[c, -1j * s], [-1j * s, c]]
    elif kind == "ry":
        rows = [[c, -s], [s, c]]
    elif kind == "rz":
        e = jnp.exp(-0.5j * t).astype(cdt)
        rows = [[e, jnp.zeros_like(e)], [jnp.zeros_like(e), jnp.conj(e)]]
    else:
        raise ValueError(kind)
    return jnp.stack([jnp.stack(r, axis=-1) for r in rows], axis=-2)


def _kron_all(mats):
    out = mats[0]
    for m in mats[1:]:
        out = jnp.kron(out, m)
    return out


@dataclass(frozen=True)
class QNN:
    """A layered PQC classifier; see the module docstring.

    ``dtype`` is the complex type of the simulation: ``complex64`` (the default; the
    accuracy figures are unchanged w.r.t. complex128, see benchmarks/) or ``complex128``.
    """

    n_qubits: int
    depth: int
    rotations: tuple[str, str, str] = ("rx", "ry", "rx")
    entangler: str = "ring"
    dtype: str = "complex64"

    def __post_init__(self):
        check_int("n_qubits", self.n_qubits, min=2, max=20)
        check_int("depth", self.depth, min=1, max=100)
        rot = tuple(self.rotations)
        if rot not in ROTATIONS:
            raise ParameterError(
                f"parameter 'rotations' must be one of {sorted(ROTATIONS)}, got {self.rotations!r}"
            )
        object.__setattr__(self, "rotations", rot)
        check_choice("entangler", self.entangler, ENTANGLERS)
        check_choice("dtype", self.dtype, ("complex64", "complex128"))

    # ------------------------------------------------------------------ bookkeeping
    @property
    def param_shape(self) -> tuple[int, int, int]:
        return (self.depth, self.n_qubits, 4)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        n = self.n_qubits
        m = n if self.entangler == "ring" else n - 1
        return [(i, (i + 1) % n) for i in range(m)]

    @property
    def n_params(self) -> int:
        """Parameters that act on the circuit (the open chain leaves one RZZ slot unused)."""
        return self.depth * (3 * self.n_qubits + len(self.pairs))

    @property
    def n_live_params(self) -> int:
        """Parameters inside the light cone of the readout (:attr:`light_cone`): the only
        ones that change the output. The others have exactly zero gradient."""
        return sum(3 * len(q) + len(zz) for q, zz in self.light_cone)

    @property
    def real_dtype(self):
        return jnp.float32 if self.dtype == "complex64" else jnp.float64

    def init(self, key) -> jax.Array:
        """Initial parameters ~ N(0, 0.01^2), shape ``(depth, n_qubits, 4)``.

        Always drawn in float32 (then cast), so complex64 and complex128 models start from
        the same angles for the same key.
        """
        p = INIT_STD * jax.random.normal(key, self.param_shape, dtype=jnp.float32)
        return p.astype(self.real_dtype)

    def _check_params(self, params) -> None:
        if tuple(params.shape) != self.param_shape:
            raise ParameterError(f"params must have shape {self.param_shape}, got {tuple(params.shape)}")

    def check_states(self, states, *, atol: float = 1e-3) -> None:
        """Input states: shape (N, 2**n_qubits), each of unit norm (amplitude encoding)."""
        states = np.asarray(states)
        d = 2**self.n_qubits
        if states.ndim != 2 or states.shape[1] != d:
            raise ParameterError(
                f"states must have shape (N, {d}) for {self.n_qubits} qubits, got {states.shape}"
            )
        norms = np.linalg.norm(states.astype(np.complex128), axis=1)
        bad = np.flatnonzero(np.abs(norms - 1.0) > atol)
        if len(bad):
            raise ParameterError(
                f"states must be normalised (amplitude encoding); state {bad[0]} has norm {norms[bad[0]]:.6g}"
            )

    # ------------------------------------------------------------------ fast kernel
    @cached_property
    def light_cone(self) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
        """Per layer: (qubits whose rotations reach the output, RZZ pairs that do).

        Walking back from the measured Z_{n-1}: the last layer's RZZ gates are diagonal and
        commute with it, and any gate acting only outside the current support of the
        Heisenberg-evolved observable cancels (U^dagger O U = O). So layer D contributes one
        rotation (on qubit n-1), layer D-1 three (on a ring), and so on, two more per layer,
        until the whole register is covered. The dropped parameters have exactly zero
        gradient in the full circuit too; the kernel simply never computes them.
        """
        n, pairs = self.n_qubits, self.pairs
        support, out = {n - 1}, []
        for layer in reversed(range(self.depth)):
            zz = () if layer == self.depth - 1 else tuple(
                p for p, (a, b) in enumerate(pairs) if a in support or b in support)
            for p in zz:
                support |= set(pairs[p])
            out.append((tuple(sorted(support)), zz))
        return tuple(reversed(out))

    @cached_property
    def live_mask(self) -> np.ndarray:
        """Boolean mask of shape :attr:`param_shape`: True for the angles inside the light
        cone (:attr:`light_cone`), the only ones that can change the output."""
        mask = np.zeros(self.param_shape, bool)
        for layer, (qubits, pairs) in enumerate(self.light_cone):
            mask[layer, list(qubits), :3] = True
            mask[layer, list(pairs), 3] = True
        return mask

    @cached_property
    def blocks(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Per layer, the qubit ranges [lo, hi) whose fused rotations are applied as one
        dense 2^(hi-lo) matrix: each run of neighbouring light-cone qubits, cut into near
        equal pieces of at most ``MAX_BLOCK`` qubits (measured on 2 CPU cores, benchmarks/:
        larger blocks waste flops, smaller ones pay more passes over the state)."""
        out = []
        for qubits, _ in self.light_cone:
            runs, ranges = [[qubits[0]]], []
            for q in qubits[1:]:
                if q == runs[-1][-1] + 1:
                    runs[-1].append(q)
                else:
                    runs.append([q])
            for r in runs:
                k = -(-len(r) // MAX_BLOCK)
                base, extra = divmod(len(r), k)
                lo = r[0]
                for j in range(k):
                    hi = lo + base + (1 if j < extra else 0)
                    ranges.append((lo, hi))
                    lo = hi
            out.append(tuple(ranges))
        return tuple(out)

    @cached_property
    def _z_table(self) -> np.ndarray:
        """(n, 2**n) table of z_i = +-1 on each basis state."""
        n = self.n_qubits
        k = np.arange(2**n)
        return (1 - 2 * ((k[None, :] >> (n - 1 - np.arange(n)[:, None])) & 1)).astype(np.float32)

    def _fused(self, angles):
        """The three rotations of every qubit of a layer as one 2x2 matrix each:
        ``angles`` (n, 3) -> (n, 2, 2)."""
        g = _rot(self.rotations[0], angles[:, 0])
        g = _rot(self.rotations[1], angles[:, 1]) @ g
        return (_rot(self.rotations[2], angles[:, 2]) @ g).astype(self.dtype)

    def expectation(self, params, states):
        """<Z_{n-1}> of the circuit applied to each state: shape (N,). Pure and jittable.

        The state is kept as a (2^n, N) matrix (batch last, so each block product is one
        large GEMM); only light-cone gates are applied (:attr:`light_cone`).
        """
        n, z = self.n_qubits, self._z_table
        s = jnp.asarray(states).astype(self.dtype).T
        N = s.shape[1]
        for layer, ((_, pairs), ranges) in enumerate(zip(self.light_cone, self.blocks)):
            lp = params[layer]
            gates = self._fused(lp[:, :3])
            for lo, hi in ranges:
                u = _kron_all([gates[i] for i in range(lo, hi)])
                t = s.reshape(2**lo, 2 ** (hi - lo), 2 ** (n - hi) * N)
                s = jnp.einsum("zb,abc->azc", u, t).reshape(2**n, N)
            if pairs:
                zz = np.stack([z[self.pairs[p][0]] * z[self.pairs[p][1]] for p in pairs])
                angle = lp[np.asarray(pairs), 3] @ jnp.asarray(zz, self.real_dtype)
                s = s * jnp.exp(-0.5j * angle).astype(self.dtype)[:, None]
        prob = jnp.real(s) ** 2 + jnp.imag(s) ** 2
        return jnp.asarray(z[n - 1], self.real_dtype) @ prob

    def logits(self, params, states):
        """The pre-sigmoid output 5 <Z_{n-1}>."""
        return OUTPUT_SCALE * self.expectation(params, states)

    def predict(self, params, states) -> np.ndarray:
        """Probability of class 1 for each state (validated input; NumPy output)."""
        self._check_params(params)
        self.check_states(states)
        return np.asarray(jax.nn.sigmoid(self._logits_jit(params, jnp.asarray(states))))

    @cached_property
    def _logits_jit(self):
        return jax.jit(self.logits)

    # ------------------------------------------------------------------ reference circuit
    def circuit(self, params, state=None):
        """The same model as a gate-by-gate ``tc.Circuit`` (for drawing and checks)."""
        import tensorcircuit as tc

        tc.set_backend("jax")
        n = self.n_qubits
        c = tc.Circuit(n) if state is None else tc.Circuit(n, inputs=jnp.asarray(state))
        for j in range(self.depth):
            for i in range(n):
                for r, name in enumerate(self.rotations):
                    getattr(c, name)(i, theta=params[j, i, r])
            for p, (a, b) in enumerate(self.pairs):
                c.rzz(a, b, theta=params[j, p, 3])
        return c
