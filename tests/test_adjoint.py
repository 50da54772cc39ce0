"""The adjoint-method training kernel against the NumPy statevector and the XLA kernel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qmu_core import adjoint
from qmu_core.precision import float64_scope
from qmu_core.qnn import QNN
from test_qnn import numpy_expectation, random_states


@pytest.mark.parametrize(
    "n,depth,rotations,entangler,n_states",
    [
        (3, 2, ("rx", "ry", "rx"), "ring", 5),
        (4, 3, ("rx", "ry", "rz"), "chain", 17),  # one full chunk of 16 lanes and a ragged one
        (7, 4, ("rx", "ry", "rx"), "ring", 33),
    ],
)
def test_values_and_gradient_match_statevector_and_xla(n, depth, rotations, entangler, n_states):
    model = QNN(n, depth, rotations, entangler, dtype="complex128")
    rng = np.random.default_rng(n)
    states = random_states(n_states, n, seed=depth)
    f = adjoint.expectation_fn(model)
    with float64_scope():
        params = jnp.asarray(rng.uniform(-np.pi, np.pi, model.param_shape))
        w = jnp.asarray(rng.standard_normal(n_states))  # cotangents that differ per sample
        got = np.asarray(f(params, states))
        g_adj = np.asarray(jax.grad(lambda p: jnp.sum(w * f(p, states) ** 2))(params))
        g_xla = np.asarray(jax.grad(lambda p: jnp.sum(w * model.expectation(p, states) ** 2))(params))
    want = [numpy_expectation(params, s, rotations, entangler) for s in states[:4]]
    np.testing.assert_allclose(got[:4], want, atol=1e-10)
    np.testing.assert_allclose(g_adj, g_xla, atol=1e-10)
    assert np.all(g_adj[~model.live_mask] == 0)  # outside the light cone: exactly zero


def test_complex64_gradient_inside_jit_and_scan():
    """The training configuration: float32, callbacks inside a jitted lax.scan."""
    model = QNN(10, 6)
    states = jnp.asarray(random_states(48, 10, seed=1, complex_valued=False), jnp.complex64)
    params = 0.5 * jax.random.normal(jax.random.PRNGKey(0), model.param_shape)
    f = adjoint.expectation_fn(model)

    def grads(expect):
        def step(p, xb):
            return p, jax.grad(lambda q: jnp.mean(jax.nn.softplus(5 * expect(q, xb))))(p)
        return jax.jit(lambda p: jax.lax.scan(step, p, states.reshape(3, 16, -1))[1])(params)

    np.testing.assert_allclose(grads(f), grads(model.expectation), atol=2e-6)


def test_result_does_not_depend_on_the_number_of_threads(monkeypatch):
    model = QNN(6, 3)
    states = random_states(80, 6, seed=2).astype(np.complex64)
    params = 0.5 * jax.random.normal(jax.random.PRNGKey(1), model.param_shape)
    f = adjoint.expectation_fn(model)

    def grad():
        return np.asarray(jax.grad(lambda p: jnp.sum(f(p, states)))(params))

    many = grad()
    adjoint._pool.cache_clear()
    monkeypatch.setattr(adjoint, "_n_threads", lambda: 1)
    try:
        one = grad()
    finally:
        adjoint._pool.cache_clear()
    np.testing.assert_array_equal(one, many)


def test_thread_count_from_the_environment(monkeypatch):
    monkeypatch.setenv("QMU_KERNEL_THREADS", "3")
    assert adjoint._n_threads() == 3
    for bad in ("0", "-1", "two"):
        monkeypatch.setenv("QMU_KERNEL_THREADS", bad)
        with pytest.raises(ValueError, match="QMU_KERNEL_THREADS"):
            adjoint._n_threads()
    monkeypatch.delenv("QMU_KERNEL_THREADS")
    assert adjoint._n_threads() >= 1


def test_loss_and_grad_match_xla():
    """The fused call that trains the QNN: mean BCE of 5<Z> and its gradient."""
    model = QNN(6, 3)
    states = jnp.asarray(random_states(37, 6, seed=4, complex_valued=False), jnp.complex64)  # 2 chunks + 5
    y = jnp.asarray(np.random.default_rng(5).integers(0, 2, 37), jnp.float32)
    params = 0.5 * jax.random.normal(jax.random.PRNGKey(2), model.param_shape)
    loss, g = jax.jit(adjoint.loss_and_grad_fn(model))(params, states, y)

    def bce(p):
        z = 5 * model.expectation(p, states)
        return jnp.mean(jax.nn.softplus(z) - y * z)

    want_loss, want_g = jax.value_and_grad(bce)(params)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-6)
    np.testing.assert_allclose(g, want_g, atol=1e-6)
