"""The Pauli-transfer-matrix simulation of the noisy QNN (qmu_core.pauli) against the
density-matrix one (qmu_core.noise.NoisyQNN, itself tested against TensorCircuit-NG's
DMCircuit), the statevector QNN, finite differences and known single-qubit channels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmu_core.noise import NoiseModel, NoisyQNN, _damping_kraus
from qmu_core.pauli import (PAULIS, PAULIS2, PauliQNN, depolarizing_kraus, noise_ptm, pauli_vectors,
                            ptm_channel, ptm_unitary, real_matrix)
from qmu_core.precision import float64_scope
from qmu_core.qnn import QNN, _rot
from qmu_core.validation import ParameterError


def random_states(n_states, n_qubits, seed):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n_states, 2**n_qubits)) + 1j * rng.normal(size=(n_states, 2**n_qubits))
    return s / np.linalg.norm(s, axis=1, keepdims=True)


NOISES = [NoiseModel(), NoiseModel(depolarizing=0.05), NoiseModel(amplitude_damping=0.1),
          NoiseModel(depolarizing=0.03, amplitude_damping=0.07, readout=0.1)]


# ---------------------------------------------------------------------- transfer matrices
@pytest.mark.parametrize("p", [0.0, 0.01, 0.3, 0.75])
def test_depolarizing_ptm_is_diag_one_lambda(p):
    lam = 1 - 4 * p / 3
    np.testing.assert_allclose(ptm_channel(depolarizing_kraus(p)), np.diag([1, lam, lam, lam]), atol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.2, 1.0])
def test_amplitude_damping_ptm_known_entries(gamma):
    """Heisenberg picture: X, Y -> sqrt(1 - g) X, Y; Z -> g I + (1 - g) Z; I -> I."""
    want = np.zeros((4, 4))
    want[0, 0] = 1
    want[1, 1] = want[2, 2] = np.sqrt(1 - gamma)
    want[3, 3] = 1 - gamma
    want[0, 3] = gamma
    np.testing.assert_allclose(ptm_channel(_damping_kraus(gamma)), want, atol=1e-12)


@pytest.mark.parametrize("noise", NOISES[1:])
def test_noise_ptm_is_unital_in_the_heisenberg_picture(noise):
    """Trace preservation of the channel is Phi^dagger(I) = I: the I column is e_I."""
    t = noise_ptm(noise)
    np.testing.assert_allclose(t[:, 0], [1, 0, 0, 0], atol=1e-12)


@pytest.mark.parametrize("kind", ["rx", "ry", "rz"])
def test_rotation_ptm_is_orthogonal_and_fixes_the_identity(kind):
    with float64_scope():
        u = _rot(kind, jnp.asarray([0.7]))[0]
        t = np.asarray(ptm_unitary(u, PAULIS))
    np.testing.assert_allclose(t @ t.T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(t[0], [1, 0, 0, 0], atol=1e-12)
    axis = {"rx": 1, "ry": 2, "rz": 3}[kind]
    assert t[axis, axis] == pytest.approx(1.0)  # a rotation about P leaves P alone


def test_rzz_ptm_leaves_commuting_strings_and_mixes_the_others():
    with float64_scope():
        theta = 0.4
        zz = jnp.exp(-0.5j * theta * jnp.asarray([1.0, -1.0, -1.0, 1.0]))
        t = np.asarray(ptm_unitary(jnp.diag(zz), PAULIS2))
    for a, b in [(0, 0), (3, 3), (1, 1), (0, 3), (1, 2)]:  # commute with Z (x) Z
        assert t[4 * a + b, 4 * a + b] == pytest.approx(1.0)
    assert t[4 * 1 + 0, 4 * 1 + 0] == pytest.approx(np.cos(theta))  # X (x) I anticommutes


def test_pauli_vectors_of_a_state_and_reconstruction():
    np.testing.assert_allclose(pauli_vectors(np.array([[[1, 0], [0, 0]]])), [[1, 0, 0, 1]], atol=1e-12)
    psi = random_states(1, 3, seed=4)[0]
    rho = np.outer(psi, psi.conj())
    r = pauli_vectors(rho[None])[0]
    strings = PAULIS
    for _ in range(2):
        strings = np.einsum("aij,bkl->abikjl", strings, PAULIS).reshape(len(strings) * 4, *(2 * np.array(strings.shape[1:])))
    np.testing.assert_allclose(np.einsum("p,pij->ij", r, strings) / 8, rho, atol=1e-12)


# ---------------------------------------------------------------------- the simulation
@pytest.mark.parametrize("n, depth", [(4, 2), (6, 3), (8, 2), (12, 2)])
@pytest.mark.parametrize("noise", NOISES)
def test_pauli_simulation_equals_the_density_matrix_one(n, depth, noise):
    with float64_scope():
        qnn = QNN(n, depth, dtype="complex128")
        params = jnp.asarray(np.random.default_rng(n + depth).normal(size=qnn.param_shape))
        states = random_states(3, n, seed=depth)
        dm, pq = NoisyQNN(qnn, noise), PauliQNN(qnn, noise)
        assert pq.register == dm.register
        want = np.asarray(dm.expectation(params, dm.inputs(states)))
        got = np.asarray(pq.expectation(params, pq.inputs(states)))
    np.testing.assert_allclose(got, want, atol=1e-12)
    if noise == NoiseModel():
        with float64_scope():
            sv = np.asarray(qnn.expectation(params, jnp.asarray(states)))
        np.testing.assert_allclose(got, sv, atol=1e-12)


def test_whole_register_inputs_are_the_states():
    qnn = QNN(4, 3)
    pq = PauliQNN(qnn, NoiseModel(depolarizing=0.01))
    assert pq.whole_register
    assert pq.inputs(random_states(2, 4, seed=0)).shape == (2, 16)
    assert PauliQNN(QNN(8, 2), NoiseModel()).inputs(random_states(2, 8, seed=0)).shape == (2, 4**3)


def test_a_partial_register_above_the_limit_is_refused():
    qnn = QNN(12, 5)  # light cone of 9 of the 12 qubits at depth 5
    with pytest.raises(ParameterError, match="spans 9 qubits.*at most k = 8"):
        PauliQNN(qnn, NoiseModel()).register


@pytest.mark.parametrize("n, depth", [(6, 2), (4, 3)])
def test_pauli_gradient_against_finite_differences(n, depth):
    with float64_scope():
        qnn = QNN(n, depth, dtype="complex128")
        pq = PauliQNN(qnn, NoiseModel(depolarizing=0.02, amplitude_damping=0.05, readout=0.01))
        r = pq.inputs(random_states(4, n, seed=1))
        w = jnp.asarray([0.3, -1.0, 0.5, 2.0])
        f = jax.jit(lambda p: jnp.sum(w * pq.expectation(p, r)))
        params = jnp.asarray(np.random.default_rng(7).normal(size=qnn.param_shape))
        g = np.asarray(jax.grad(f)(params))
        rng = np.random.default_rng(3)
        for _ in range(6):
            idx = (rng.integers(depth), rng.integers(n), rng.integers(4))
            e = np.zeros(qnn.param_shape)
            e[idx] = 1e-6
            fd = (float(f(params + e)) - float(f(params - e))) / 2e-6
            assert g[idx] == pytest.approx(fd, abs=1e-7)


def test_real_states_on_the_whole_register_take_the_real_path():
    with float64_scope():
        qnn = QNN(4, 3, dtype="complex128")
        noise = NoiseModel(depolarizing=0.02, amplitude_damping=0.03)
        states = np.real(random_states(3, 4, seed=9))
        states /= np.linalg.norm(states, axis=1, keepdims=True)
        pq, dm = PauliQNN(qnn, noise), NoisyQNN(qnn, noise)
        r = pq.inputs(states)
        assert not jnp.iscomplexobj(r)
        params = jnp.asarray(np.random.default_rng(2).normal(size=qnn.param_shape))
        np.testing.assert_allclose(np.asarray(pq.expectation(params, r)),
                                   np.asarray(dm.expectation(params, dm.inputs(states))), atol=1e-12)


# ---------------------------------------------------------------------- Pauli vector -> Re O
def _complex_matrix(c, k):
    """O = sum_P c_P P by the complex contraction of PauliQNN.observable (qubit 0 first)."""
    o = jnp.asarray(c).reshape((4,) * k).astype(jnp.complex64 if c.dtype == np.float32 else jnp.complex128)
    for _ in range(k):
        o = jnp.tensordot(o, jnp.asarray(PAULIS, o.dtype), axes=([0], [0]))
    return o.transpose([2 * i for i in range(k)] + [2 * i + 1 for i in range(k)]).reshape(2**k, 2**k)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_real_matrix_is_the_real_part_of_the_sum_of_pauli_strings(k):
    import itertools
    from functools import reduce

    with float64_scope():
        c = np.random.default_rng(k).normal(size=4**k)
        want = sum(c[i] * reduce(np.kron, [PAULIS[p] for p in ps])
                   for i, ps in enumerate(itertools.product(range(4), repeat=k)))
        np.testing.assert_allclose(np.asarray(real_matrix(jnp.asarray(c))), np.real(want), atol=1e-12)


def test_real_matrix_and_its_gradient_equal_the_complex_contraction_bit_for_bit():
    # real_matrix stands in for PauliQNN.observable's complex contraction on real states and
    # promises its float32 numbers, forward and backward
    k = 6
    c = jax.random.normal(jax.random.PRNGKey(0), (4**k,), jnp.float32)
    g = jax.random.normal(jax.random.PRNGKey(1), (2**k, 2**k), jnp.float32)
    old = jax.jit(lambda c: jnp.real(_complex_matrix(c, k)))
    assert np.array_equal(np.asarray(jax.jit(real_matrix)(c)), np.asarray(old(c)))
    vjp = [jax.jit(lambda c, g, f=f: jax.vjp(f, c)[1](g)[0]) for f in (real_matrix, old)]
    assert np.array_equal(*(np.asarray(f(c, g)) for f in vjp))


def test_real_matrix_gradient_against_finite_differences():
    with float64_scope():
        k = 3
        c = jnp.asarray(np.random.default_rng(5).normal(size=4**k))
        w = jnp.asarray(np.random.default_rng(6).normal(size=(2**k, 2**k)))
        f = jax.jit(lambda c: jnp.sum(w * real_matrix(c) ** 2))
        g = np.asarray(jax.grad(f)(c))
        for i in (0, 5, 17, 42, 63):
            e = np.zeros(4**k)
            e[i] = 1e-6
            assert g[i] == pytest.approx((float(f(c + e)) - float(f(c - e))) / 2e-6, abs=1e-6)
