"""The QNN against an independent plain-NumPy statevector simulation and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmu_core.precision import float64_scope
from qmu_core.qnn import QNN
from qmu_core.validation import ParameterError

PAULI = {
    "x": np.array([[0, 1], [1, 0]], complex),
    "y": np.array([[0, -1j], [1j, 0]]),
    "z": np.array([[1, 0], [0, -1]], complex),
}


def numpy_expectation(params, state, rotations=("rx", "ry", "rx"), entangler="ring"):
    """Gate-by-gate statevector: exp(-i t P / 2) rotations, exp(-i t ZZ / 2), qubit 0 = MSB."""
    params = np.asarray(params, float)
    depth, n, _ = params.shape
    psi = np.asarray(state, complex).reshape((2,) * n)
    pairs = [(i, (i + 1) % n) for i in range(n if entangler == "ring" else n - 1)]
    for j in range(depth):
        for i in range(n):
            for r, name in enumerate(rotations):
                t = params[j, i, r]
                gate = np.cos(t / 2) * np.eye(2) - 1j * np.sin(t / 2) * PAULI[name[1]]
                psi = np.moveaxis(np.tensordot(gate, psi, axes=([1], [i])), 0, i)
        for p, (a, b) in enumerate(pairs):
            t = params[j, p, 3]
            za = 1 - 2 * np.arange(2)
            phase = np.exp(-0.5j * t * np.multiply.outer(za, za))  # (2, 2) over qubits a, b
            shape = [1] * n
            shape[a], shape[b] = 2, 2
            psi = psi * phase.reshape(shape) if a < b else psi * phase.T.reshape(shape)
    prob = np.abs(psi) ** 2
    z_last = (1 - 2 * np.arange(2)).reshape((1,) * (n - 1) + (2,))
    return float(np.sum(prob * z_last))


def random_states(n_states, n_qubits, seed, complex_valued=True):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n_states, 2**n_qubits))
    if complex_valued:
        v = v + 1j * rng.standard_normal(v.shape)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize(
    "n,depth,rotations,entangler",
    [
        (3, 2, ("rx", "ry", "rx"), "ring"),
        (4, 3, ("rx", "ry", "rz"), "chain"),
        (5, 2, ("rx", "ry", "rx"), "chain"),
        (7, 2, ("rx", "ry", "rx"), "ring"),
        (12, 7, ("rx", "ry", "rx"), "ring"),  # light cone covers the register: three 4-qubit blocks
    ],
)
def test_expectation_matches_numpy_statevector(n, depth, rotations, entangler):
    model = QNN(n, depth, rotations, entangler, dtype="complex128")
    rng = np.random.default_rng(n)
    params = rng.uniform(-np.pi, np.pi, model.param_shape)
    states = random_states(2, n, seed=depth)
    with float64_scope():
        got = np.asarray(model.expectation(jnp.asarray(params), states))
    want = [numpy_expectation(params, s, rotations, entangler) for s in states]
    np.testing.assert_allclose(got, want, atol=1e-10)


def test_complex64_kernel_agrees_with_tensorcircuit_circuit():
    model = QNN(6, 2)
    params = jax.random.normal(jax.random.PRNGKey(3), model.param_shape)
    states = random_states(3, 6, seed=4)
    fast = np.asarray(model.expectation(params, states))
    ref = [float(jnp.real(model.circuit(params, s).expectation_ps(z=[5]))) for s in states]
    np.testing.assert_allclose(fast, ref, atol=2e-6)


def test_predict_is_sigmoid_of_five_z():
    model = QNN(4, 2)
    params = model.init(jax.random.PRNGKey(0)) * 100
    states = random_states(5, 4, seed=1).astype(np.complex64)
    z = np.array([numpy_expectation(np.asarray(params), s) for s in states])
    np.testing.assert_allclose(model.predict(params, states), 1 / (1 + np.exp(-5 * z)), atol=1e-5)


def test_gradient_matches_central_finite_differences():
    model = QNN(4, 2, dtype="complex128")
    states = random_states(3, 4, seed=7)
    y = np.array([0.0, 1.0, 1.0])
    rng = np.random.default_rng(0)
    with float64_scope():
        params = jnp.asarray(rng.uniform(-1, 1, model.param_shape))

        def loss(p):
            z = model.logits(p, states)
            return jnp.mean(jax.nn.softplus(z) - y * z)

        loss = jax.jit(loss)
        g = np.asarray(jax.grad(loss)(params))
        h = 1e-5
        fd = np.zeros(model.param_shape)
        for idx in np.ndindex(model.param_shape):
            e = np.zeros(model.param_shape)
            e[idx] = h
            fd[idx] = (float(loss(params + e)) - float(loss(params - e))) / (2 * h)
    np.testing.assert_allclose(g, fd, atol=1e-8)


def test_parameter_layout_and_counts():
    assert QNN(10, 6).param_shape == (6, 10, 4)
    assert QNN(10, 6).n_params == 240  # released code: RX-RY-RX + ring
    assert QNN(10, 6, ("rx", "ry", "rz"), "chain").n_params == 234  # the SI's count
    p = QNN(12, 4).init(jax.random.PRNGKey(0))
    assert p.shape == (4, 12, 4) and abs(float(jnp.std(p)) - 0.01) < 0.002


def test_bad_inputs_raise_clear_errors():
    model = QNN(4, 1)
    params = model.init(jax.random.PRNGKey(0))
    with pytest.raises(ParameterError, match="normalised"):
        model.predict(params, np.ones((2, 16)))
    with pytest.raises(ParameterError, match=r"shape \(N, 16\)"):
        model.predict(params, random_states(2, 3, seed=0))
    with pytest.raises(ParameterError, match="params must have shape"):
        model.predict(params[:, :3], random_states(2, 4, seed=0))
    with pytest.raises(ParameterError, match="entangler"):
        QNN(4, 1, entangler="star")
    with pytest.raises(ParameterError, match="rotations"):
        QNN(4, 1, rotations=("rz", "rz", "rz"))
    with pytest.raises(ParameterError, match="depth"):
        QNN(4, "2")


@pytest.mark.parametrize("entangler", ["ring", "chain"])
def test_angles_outside_the_light_cone_do_not_change_the_full_circuit(entangler):
    """The kernel skips gates outside the backward light cone of Z_{n-1}; in the complete
    gate-by-gate simulation those angles must not matter, and every angle inside must."""
    model = QNN(6, 3, entangler=entangler, dtype="complex128")
    rng = np.random.default_rng(11)
    params = rng.uniform(-np.pi, np.pi, model.param_shape)
    state = random_states(1, 6, seed=2)[0]
    live = model.live_mask
    assert live.sum() == model.n_live_params < model.n_params
    base = numpy_expectation(params, state, entangler=entangler)
    dead = params + np.where(live, 0.0, rng.uniform(0.5, 1.0, model.param_shape))
    assert abs(numpy_expectation(dead, state, entangler=entangler) - base) < 1e-12
    for idx in zip(*np.nonzero(live)):
        moved = params.copy()
        moved[idx] += 0.7
        assert abs(numpy_expectation(moved, state, entangler=entangler) - base) > 1e-6, idx
