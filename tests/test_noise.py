"""The noisy QNN (qmu_core.noise): channels, the light-cone density-matrix simulation against
TensorCircuit-NG's full-register DMCircuit, gradients against finite differences, shots."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmu_core.noise import (NoiseModel, NoisyQNN, _conjugate, _damping_kraus, _depolarize,
                            light_cone_ops, reduced_inputs, reference_expectation,
                            sample_expectation, shot_expectation)
from qmu_core.precision import float64_scope
from qmu_core.qnn import QNN
from qmu_core.validation import ParameterError


def random_states(n_states, n_qubits, seed):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n_states, 2**n_qubits)) + 1j * rng.normal(size=(n_states, 2**n_qubits))
    return s / np.linalg.norm(s, axis=1, keepdims=True)


def random_dm(k, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(2**k, 2**k)) + 1j * rng.normal(size=(2**k, 2**k))
    rho = a @ a.conj().T
    return rho / np.trace(rho)


# ---------------------------------------------------------------------- the noise model
@pytest.mark.parametrize("kwargs, match", [
    ({"depolarizing": 0.8}, r"'depolarizing' must lie in \[0.0, 0.75\], got 0.8"),
    ({"depolarizing": "0.01"}, r"'depolarizing' must be a number, got '0.01'"),
    ({"amplitude_damping": -0.1}, r"'amplitude_damping' must lie in \[0.0, 1.0\], got -0.1"),
    ({"readout": 0.6}, r"'readout' must lie in \[0.0, 0.5\], got 0.6"),
    ({"readout": True}, r"'readout' must be a number"),
])
def test_noise_model_rejects_bad_values(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        NoiseModel(**kwargs)


# ---------------------------------------------------------------------- channels
def test_damping_kraus_equals_tensorcircuit_and_is_complete():
    import tensorcircuit as tc

    for gamma in (0.0, 0.3, 1.0):
        ours = _damping_kraus(gamma)
        theirs = [np.asarray(g.tensor) for g in tc.channels.amplitudedampingchannel(gamma, 1.0)]
        theirs = [t for t in theirs if np.abs(t).max() > 0]
        np.testing.assert_allclose(sum(k.conj().T @ k for k in ours), np.eye(2), atol=1e-12)
        for t in theirs:
            assert any(np.allclose(t, k) for k in ours)


@pytest.mark.parametrize("qubit", [0, 1, 2])
def test_channels_preserve_trace_hermiticity_and_positivity(qubit):
    k = 3
    with float64_scope():
        rho = jnp.asarray(random_dm(k, seed=qubit)).reshape((2,) * (2 * k))
        damp = _damping_kraus(0.4).astype(complex)
        outs = [_depolarize(rho, 0.3, qubit, k),
                _conjugate(rho, damp[0], qubit, k) + _conjugate(rho, damp[1], qubit, k)]
        for out in outs:
            m = np.asarray(out).reshape(2**k, 2**k)
            assert abs(np.trace(m) - 1) < 1e-12
            np.testing.assert_allclose(m, m.conj().T, atol=1e-12)
            assert np.linalg.eigvalsh(m).min() > -1e-12


def test_single_qubit_known_results():
    """Depolarising p on |0>: <Z> = 1 - 4p/3; amplitude damping gamma on |1>: <Z> = 2 gamma - 1;
    the completely depolarising channel (p = 3/4) gives I/2."""
    z = np.diag([1.0, -1.0])
    with float64_scope():
        zero = jnp.asarray(np.diag([1.0, 0.0]).astype(complex))
        one = jnp.asarray(np.diag([0.0, 1.0]).astype(complex))
        for p in (0.0, 0.01, 0.2):
            assert np.trace(z @ np.asarray(_depolarize(zero, p, 0, 1))).real == pytest.approx(1 - 4 * p / 3)
        np.testing.assert_allclose(_depolarize(jnp.asarray(random_dm(1, 0)), 0.75, 0, 1), np.eye(2) / 2, atol=1e-12)
        for gamma in (0.0, 0.1, 0.7):
            damp = _damping_kraus(gamma).astype(complex)
            out = _conjugate(one, damp[0], 0, 1) + _conjugate(one, damp[1], 0, 1)
            assert np.trace(z @ np.asarray(out)).real == pytest.approx(2 * gamma - 1)


def test_reduced_inputs_of_a_product_state():
    rng = np.random.default_rng(3)
    a, b = random_states(1, 2, 1)[0], random_states(1, 1, 2)[0]
    psi = np.kron(np.kron(a[:2] / np.linalg.norm(a[:2]), b), a[2:] / np.linalg.norm(a[2:]))
    qnn = QNN(3, 1)
    rho = reduced_inputs(qnn, psi[None], (1,))[0]
    np.testing.assert_allclose(rho, np.outer(b, b.conj()), atol=1e-12)
    rho = reduced_inputs(qnn, random_states(4, 3, int(rng.integers(100))), (0, 2))
    np.testing.assert_allclose(np.trace(rho, axis1=1, axis2=2), 1, atol=1e-12)


# ---------------------------------------------------------------------- the noisy circuit
@pytest.mark.parametrize("n, depth", [(8, 2), (12, 4), (10, 6), (10, 1)])
def test_light_cone_register_is_the_noiseless_light_cone(n, depth):
    qnn = QNN(n, depth)
    for noise in (NoiseModel(), NoiseModel(depolarizing=0.01, amplitude_damping=0.01)):
        register, ops = light_cone_ops(qnn, noise)
        assert register == qnn.light_cone[0][0]
        assert sum(op[0] in ("rot", "zz") for op in ops) == qnn.n_live_params


@pytest.mark.parametrize("n, depth", [(5, 2), (8, 2)])
def test_noiseless_model_equals_the_statevector_qnn(n, depth):
    with float64_scope():
        qnn = QNN(n, depth, dtype="complex128")
        params = jnp.asarray(np.random.default_rng(n).normal(0, 1, qnn.param_shape))
        states = random_states(3, n, seed=depth)
        model = NoisyQNN(qnn, NoiseModel())
        np.testing.assert_allclose(model.expectation(params, model.inputs(states)),
                                   qnn.expectation(params, states), atol=1e-12)


@pytest.mark.parametrize("n, depth, noise", [
    (5, 2, NoiseModel(depolarizing=0.05)),
    (6, 3, NoiseModel(amplitude_damping=0.1, readout=0.02)),
    (8, 2, NoiseModel(depolarizing=0.03, amplitude_damping=0.05, readout=0.01)),
])
def test_light_cone_density_matrix_equals_full_tensorcircuit_dmcircuit(n, depth, noise):
    with float64_scope():
        qnn = QNN(n, depth, dtype="complex128")
        params = jnp.asarray(np.random.default_rng(depth).normal(0, 1, qnn.param_shape))
        states = random_states(2, n, seed=n)
        model = NoisyQNN(qnn, noise)
        got = np.asarray(model.expectation(params, model.inputs(states)))
        want = [reference_expectation(qnn, noise, params, s) for s in states]
        np.testing.assert_allclose(got, want, atol=1e-12)
        # and the noise moves the output: the check is not vacuous
        assert np.abs(got - np.asarray(qnn.expectation(params, states))).max() > 1e-3


def test_readout_error_is_the_affine_map():
    with float64_scope():
        qnn = QNN(6, 2, dtype="complex128")
        params = jnp.asarray(np.random.default_rng(0).normal(0, 1, qnn.param_shape))
        states = random_states(4, 6, seed=0)
        base = NoisyQNN(qnn, NoiseModel(depolarizing=0.02))
        read = NoisyQNN(qnn, NoiseModel(depolarizing=0.02, readout=0.1))
        np.testing.assert_allclose(read.expectation(params, read.inputs(states)),
                                   0.8 * base.expectation(params, base.inputs(states)), atol=1e-12)


def test_noisy_gradient_against_finite_differences():
    with float64_scope():
        qnn = QNN(6, 2, dtype="complex128")
        model = NoisyQNN(qnn, NoiseModel(depolarizing=0.02, amplitude_damping=0.05, readout=0.01))
        rng = np.random.default_rng(1)
        params = jnp.asarray(rng.normal(0, 1, qnn.param_shape))
        rho = model.inputs(random_states(5, 6, seed=2))
        y = jnp.asarray(rng.integers(0, 2, 5), jnp.float64)

        def loss(p):
            logit = model.logits(p, rho)
            return jnp.mean(jnp.logaddexp(0.0, logit) - y * logit)

        grad = np.asarray(jax.grad(loss)(params))
        live = np.argwhere(qnn.live_mask)
        for idx in live[rng.choice(len(live), 8, replace=False)]:
            e = np.zeros(qnn.param_shape)
            e[tuple(idx)] = 1e-5
            fd = (loss(params + e) - loss(params - e)) / 2e-5
            assert grad[tuple(idx)] == pytest.approx(float(fd), abs=1e-8)
        assert np.all(grad[~qnn.live_mask] == 0)


# ---------------------------------------------------------------------- shots
def test_shot_estimates_are_unbiased_with_binomial_variance():
    with float64_scope():
        z = jnp.full(200_000, 0.3)
        est = np.asarray(sample_expectation(jax.random.PRNGKey(0), z, 100))
    assert est.mean() == pytest.approx(0.3, abs=3 * np.sqrt(0.91 / 100 / len(est)))
    assert est.var() == pytest.approx(0.91 / 100, rel=0.02)
    assert set(np.unique(np.round((est + 1) * 50))) <= set(range(101))  # k / shots on the grid


def test_shots_are_deterministic_and_differentiate_as_the_exact_expectation():
    z = jnp.linspace(-0.9, 0.9, 7)
    a = sample_expectation(jax.random.PRNGKey(4), z, 1000)
    np.testing.assert_array_equal(a, sample_expectation(jax.random.PRNGKey(4), z, 1000))
    assert not np.array_equal(a, sample_expectation(jax.random.PRNGKey(5), z, 1000))
    g = jax.grad(lambda x: jnp.sum(shot_expectation(jax.random.PRNGKey(0), x, 10) ** 2))(z)
    np.testing.assert_allclose(g, 2 * sample_expectation(jax.random.PRNGKey(0), z, 10), rtol=1e-6)
    with pytest.raises(ParameterError, match="'shots'"):
        sample_expectation(jax.random.PRNGKey(0), z, 0)
    with pytest.raises(ParameterError, match="'shots' must be an integer"):
        sample_expectation(jax.random.PRNGKey(0), z, 10.5)
