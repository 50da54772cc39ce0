"""The quantum neural network of the paper (Methods; Fig. 4), on tensorcircuit-ng + JAX.

Architecture: the input vector is the initial state (amplitude encoding); ``depth``
layers each apply three single-qubit rotations to every qubit (default RX, RY, RX) and
then RZZ gates on neighbouring pairs (default a ring, pairs (i, i+1 mod n)); the output
is p = sigmoid(5 <Z_{n-1}>).  Parameters have shape ``(depth, n_qubits, 4)`` as in the
authors' code: ``[j, i, 0:3]`` the rotation angles on qubit i in layer j, ``[j, i, 3]``
the RZZ angle on pair (i, i+1 mod n).  Gate conventions are tensorcircuit's
(R_P(t) = exp(-i t P / 2)); qubit 0 is the most significant bit of the amplitude index.

Two simulations of the same circuit:

* :meth:`QNN.circuit` builds the ``tc.Circuit`` gate by gate (drawing, reference checks).
* :meth:`QNN.expectation` is the training kernel. It views the state as a tensor with
  one axis per block of neighbouring qubits (:attr:`QNN.blocks`) and fuses each layer
  into one small dense matrix per block (the Kronecker product of the blocks' fused
  single-qubit gates, applied as a GEMM) and one elementwise multiplication by the
  diagonal of the RZZ layer. It is checked against the ``tc.Circuit`` in the tests.
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


def _rot(kind: str, t):
    """2x2 rotation exp(-i t P / 2) (tensorcircuit's convention), jnp, complex."""
    c, s = jnp.cos(t / 2), jnp.sin(t / 2)
    if kind == "rx":
        return jnp.array([[c, -1j * s], [-1j * s, c]])
    if kind == "ry":
        return jnp.array([[c, -s], [s, c]]).astype(jnp.complex64 if t.dtype == jnp.float32 else jnp.complex128)
    if kind == "rz":
        e = jnp.exp(-0.5j * t)
        z = jnp.zeros_like(e)
        return jnp.array([[e, z], [z, jnp.conj(e)]])
    raise ValueError(kind)


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
    def blocks(self) -> tuple[int, ...]:
        """How the register is cut into blocks of neighbouring qubits for the fused kernel.

        Measured on 2 CPU cores (benchmarks/): two halves are fastest up to 10 qubits
        (two 32x32 GEMMs per layer); beyond, 64x64 blocks waste flops and blocks of
        about four qubits win (12 qubits: 2,000 vs 1,400 sample-gradients/s).
        """
        n = self.n_qubits
        k = 2 if n <= 10 else -(-n // 4)
        base, extra = divmod(n, k)
        return tuple(base + (1 if i < extra else 0) for i in range(k))

    @cached_property
    def _dims(self) -> tuple[int, ...]:
        return tuple(2**b for b in self.blocks)

    @cached_property
    def _zz_table(self) -> np.ndarray:
        """(n_pairs, 2**n) table of z_i z_j = +-1 on each basis state."""
        n = self.n_qubits
        k = np.arange(2**n)
        z = 1 - 2 * ((k[None, :] >> (n - 1 - np.arange(n)[:, None])) & 1)
        return np.stack([z[i] * z[j] for i, j in self.pairs]).astype(np.float32)

    @cached_property
    def _z_last(self) -> np.ndarray:
        """Z on qubit n-1 (the least significant bit) as a diagonal, in block shape."""
        k = np.arange(2**self.n_qubits)
        return (1 - 2 * (k & 1)).reshape(self._dims).astype(np.float32)

    def _layer_ops(self, layer):
        """Fused block unitaries (Kronecker products of RX.RY.RX) and the RZZ diagonal."""
        gates = []
        for i in range(self.n_qubits):
            g = _rot(self.rotations[0], layer[i, 0])
            g = _rot(self.rotations[1], layer[i, 1]) @ g
            g = _rot(self.rotations[2], layer[i, 2]) @ g
            gates.append(g.astype(self.dtype))
        edges = np.cumsum((0,) + self.blocks)
        us = [_kron_all(gates[a:b]) for a, b in zip(edges[:-1], edges[1:])]
        angles = layer[: len(self.pairs), 3]
        phase = jnp.exp(-0.5j * (angles @ jnp.asarray(self._zz_table, self.real_dtype)))
        return us, phase.astype(self.dtype).reshape(self._dims)

    def expectation(self, params, states):
        """<Z_{n-1}> of the circuit applied to each state: shape (N,). Pure and jittable."""
        s = jnp.asarray(states).astype(self.dtype).reshape((-1,) + self._dims)
        axes = "abcdefgh"[: len(self._dims)]

        def layer(s, lp):
            us, phase = self._layer_ops(lp)
            for k, u in enumerate(us):  # U_k acting on block k (XLA lowers it to a GEMM)
                s = jnp.einsum(f"z{axes[k]},N{axes}->N{axes.replace(axes[k], 'z')}", u, s)
            return s * phase, None

        s, _ = jax.lax.scan(layer, s, params)
        prob = jnp.real(s) ** 2 + jnp.imag(s) ** 2
        z = jnp.asarray(self._z_last, self.real_dtype)
        return jnp.sum(prob * z, axis=tuple(range(1, len(self._dims) + 1)))

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
