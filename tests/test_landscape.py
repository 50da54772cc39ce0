"""The landscape module: exact Hessians against finite differences and autodiff, the estimators
against exact values, the analytic chapter's one-parameter formulas, dead networks, the
released notebook's QNN, and the chapter's parameter checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qmu_core import landscape as L
from qmu_core import minimal_models
from qmu_core.landscape_chapter import LandscapeParams
from qmu_core.mlp import MLP
from qmu_core.precision import float64_scope
from qmu_core.qnn import QNN
from qmu_core.validation import ParameterError


def _states(n_samples, n_qubits, seed):
    x = np.random.default_rng(seed).standard_normal((n_samples, 2**n_qubits))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def tiny_qnn():
    rng = np.random.default_rng(0)
    model = QNN(3, 2)
    x, y = _states(9, 3, 1), rng.integers(0, 2, 9).astype(float)
    prob = L.QNNLoss(model, x, y)
    v = rng.uniform(-np.pi, np.pi, prob.n)
    return model, prob, v, x, y


@pytest.fixture(scope="module")
def tiny_mlp():
    rng = np.random.default_rng(2)
    net = MLP(5, (4, 3)).reset_parameters(3)
    x, y = rng.standard_normal((12, 5)), rng.integers(0, 2, 12)
    prob = L.TorchLoss(net, x, y, chunk=5)
    return prob, prob.flat()


def _fd_hessian(grad, v, h=1e-5):
    return np.array([(grad(v + h * e) - grad(v - h * e)) / (2 * h) for e in np.eye(len(v))])


def test_qnn_hessian_matches_finite_differences_and_autodiff(tiny_qnn):
    import jax
    import jax.numpy as jnp

    model, prob, v, x, y = tiny_qnn
    H = prob.hessian(v)
    assert np.allclose(H, H.T)
    assert np.abs(H - _fd_hessian(prob.grad, v)).max() < 1e-7
    with float64_scope():
        m64 = QNN(3, 2, dtype="complex128")

        def f(u):
            p = jnp.zeros(m64.param_shape).at[jnp.asarray(prob.mask)].set(u)
            z = 5 * m64.expectation(p, jnp.asarray(x))
            return jnp.mean(jax.nn.softplus(z) - jnp.asarray(y) * z)

        assert np.abs(H - np.asarray(jax.hessian(f)(jnp.asarray(v)))).max() < 1e-10
        assert abs(prob.loss(v) - float(f(jnp.asarray(v)))) < 1e-12


def test_qnn_trace_splits_by_samples(tiny_qnn):
    _, prob, v, _, _ = tiny_qnn
    flipped = np.arange(9) % 3 == 0
    g = L.geometry(prob, v, flipped)
    assert g.exact_spectrum and g.trace == pytest.approx(np.trace(prob.hessian(v)), abs=1e-12)
    assert g.trace_clean + g.trace_flipped == pytest.approx(g.trace, abs=1e-12)
    sub = L.QNNLoss(QNN(3, 2), prob.x[0][flipped], prob.y[flipped], weights=prob.w[flipped])
    assert g.trace_flipped == pytest.approx(np.trace(sub.hessian(v)), abs=1e-12)


def test_mlp_hessian_matches_finite_differences(tiny_mlp):
    prob, v = tiny_mlp
    H = prob.hessian(v)
    assert np.abs(H - _fd_hessian(prob.grad, v, 1e-6)).max() < 1e-7
    assert np.allclose(prob.diagonal(v), np.diag(H), atol=1e-14)
    u = np.random.default_rng(0).standard_normal(prob.n)
    assert np.allclose(prob.hvp(v, u), H @ u, atol=1e-12)
    mask = np.arange(12) < 5
    assert prob.part(mask).diagonal(v).sum() + prob.part(~mask).diagonal(v).sum() == pytest.approx(np.trace(H))


def test_hutchinson_is_within_its_error_of_the_exact_trace(tiny_mlp):
    prob, v = tiny_mlp
    H = prob.hessian(v)
    est, se = L.hutchinson(lambda u: H @ u, prob.n, 200, seed=1)
    assert se > 0 and abs(est - np.trace(H)) < 4 * se


def test_lanczos_and_slq_find_the_extreme_eigenvalues(tiny_mlp):
    prob, v = tiny_mlp
    H = prob.hessian(v)
    ev = np.linalg.eigvalsh(H)
    top, bottom = L.lanczos_extremes(lambda u: H @ u, prob.n)
    assert top[0] == pytest.approx(ev[-1], abs=1e-8) and bottom[0] == pytest.approx(ev[0], abs=1e-8)
    nodes, weights = L.slq(lambda u: H @ u, prob.n, steps=prob.n, n_probes=3)
    assert weights.sum() == pytest.approx(1.0)
    s = L.spectrum_summary(nodes=nodes, weights=weights)
    assert s["eig_top"] == pytest.approx(ev[-1], abs=1e-8) and s["eig_bottom"] == pytest.approx(ev[0], abs=1e-8)
    exact = L.spectrum_summary(ev)
    assert exact["neg_fraction"] == pytest.approx(np.mean(ev < -L.NEG_TOL * np.abs(ev).max()))


@pytest.mark.parametrize("x, theta, y", [(0.7, 1.3, 1.0), (-0.4, 2.0, 0.0), (0.9, -0.5, 0.0)])
def test_one_parameter_models_match_the_analytic_chapter(x, theta, y):
    # the single neuron z = theta x: a bias-free one-weight layer through TorchLoss
    net = torch.nn.Linear(1, 1, bias=False)
    prob = L.TorchLoss(net, np.array([[x]]), np.array([y]))
    assert prob.hessian(np.array([theta]))[0, 0] == pytest.approx(float(minimal_models.hessian("mlp", x, theta, y)),
                                                                   rel=1e-12)
    # the single qubit z = <Z> after R_Y(pi x) R_Y(theta): parameter shifts into logit_hessian
    def r(t):
        psi = minimal_models.ry_matrix(t) @ minimal_models.ry_matrix(np.pi * x) @ np.array([1.0, 0.0])
        psi = np.asarray(psi, float).ravel()
        return psi[0] ** 2 - psi[1] ** 2

    rp, rm, r0 = r(theta + L.SHIFT), r(theta - L.SHIFT), r(theta)
    p = 1 / (1 + np.exp(-r0))
    jac, d2 = np.array([[(rp - rm) / 2]]), np.array([[(p - y) * ((rp + rm) / 2 - r0)]])
    H = L.logit_hessian([r0], [y], [1.0], jac, d2, scale=1.0)[0, 0]
    assert H == pytest.approx(float(minimal_models.hessian("qnn", x, theta, y)), abs=1e-12)


def test_a_dead_network_is_detected_and_has_the_notebooks_trace():
    rng = np.random.default_rng(0)
    net = MLP(6, (4, 2)).reset_parameters(0)
    x, y = np.abs(rng.standard_normal((30, 6))), rng.integers(0, 2, 30)
    with torch.no_grad():
        net.net[0].weight.copy_(-net.net[0].weight.abs())  # every first-layer ReLU off for x >= 0
        net.net[0].bias.fill_(-0.1)
    prob = L.TorchLoss(net, x, y)
    v = prob.flat()
    assert L.is_dead(prob.z(v))
    # only the output bias still bends the loss: Tr H = p (1 - p) = 0.25 at bias 0
    assert prob.diagonal(v).sum() == pytest.approx(0.25, abs=1e-12)
    alive = L.TorchLoss(MLP(6, (4, 2)).reset_parameters(1), x, y)
    assert not L.is_dead(alive.z(alive.flat()))


def test_slices_and_directions():
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((4, 3)), rng.standard_normal(4)]
    d = L.filter_normalised(params, rng, "mlp")
    rows = d[:12].reshape(4, 3)
    assert np.allclose(np.linalg.norm(rows, axis=1), np.linalg.norm(params[0], axis=1))
    assert np.all(d[12:] == 0)
    dq = L.filter_normalised(params, rng, "qnn")
    assert np.linalg.norm(dq[12:]) == pytest.approx(np.linalg.norm(params[1]))
    f = lambda w: float(w @ w)  # noqa: E731
    v = np.ones(3)
    assert np.allclose(L.slice_1d(f, v, np.eye(3)[0], [-1, 0, 1]), [2, 3, 6])
    assert L.slice_2d(f, v, np.eye(3)[0], np.eye(3)[1], [0, 1]).tolist() == [[3, 6], [6, 9]]
    assert np.allclose(L.line(f, np.zeros(3), v, [0, 0.5, 1]), [0, 0.75, 3])


def test_released_qnn_matches_tensorcircuit_and_its_hessian_blocks():
    import jax.numpy as jnp
    import tensorcircuit as tc

    from qmu_core import released_qnn as RQ

    n, D = 3, 2
    rng = np.random.default_rng(0)
    x = _states(4, n, 5)
    with float64_scope():
        p = rng.standard_normal((D, n, 2)) + 0.2j * rng.standard_normal((D, n, 2))
        for params in (p, p.real):
            ref = []
            for s in x:
                c = tc.Circuit(n, inputs=jnp.asarray(s, jnp.complex128))
                for j in range(D):
                    for i in range(n):
                        c.rx(i, theta=params[j, i, 0])
                    for i in range(n):
                        c.ry(i, theta=params[j, i, 1])
                    for i in range(n):
                        c.cnot(i, (i + 1) % n)
                ref.append(float(jnp.real(c.expectation_ps(z=[n - 1]))))
            assert np.allclose(np.asarray(RQ.expectation(jnp.asarray(params), x)), ref, atol=1e-12)
        y = np.array([0.0, 1.0, 1.0, 0.0])
        H2 = RQ.hessian_re_im(p.real, x, y)
        P = p.size
        assert H2.shape == (2 * P, 2 * P)
        assert np.allclose(H2[:P, :P], RQ.hessian_real(p.real, x, y), atol=1e-10)


def test_chapter_parameters_are_checked():
    LandscapeParams()
    with pytest.raises(ParameterError, match="'alphas'.*0.0"):
        LandscapeParams(alphas=[0.2, 0.3])
    with pytest.raises(ParameterError, match="'slice_alpha'"):
        LandscapeParams(alphas=[0.0, 0.2], slice_alpha=0.3)
    with pytest.raises(ParameterError, match=r"'settings\[0\]'"):
        LandscapeParams(settings=["nonsense"])
    with pytest.raises(ParameterError, match="'n_hessian'"):
        LandscapeParams(n_hessian=1)
    with pytest.raises(ParameterError, match="'weights'"):
        L.QNNLoss(QNN(2, 1), _states(3, 2, 0), [0, 1, 0], weights=[1.0])


def test_released_qnn_holomorphic_hessian_equals_the_column_by_column_one():
    """hessian_re_im (holomorphic parts, P columns) against the former 2P-column Hessian,
    at real and at complex angles, and the chapter's quantities computed from each."""
    from qmu_core import released_qnn as RQ

    n, D = 4, 2
    rng = np.random.default_rng(1)
    x = _states(6, n, 7)
    y = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    with float64_scope():
        p = rng.standard_normal((D, n, 2))
        for params in (p, p + 0.3j * rng.standard_normal((D, n, 2))):
            new, old = RQ.hessian_re_im(params, x, y), RQ.hessian_re_im_reference(params, x, y)
            assert np.abs(new - old).max() < 1e-13 * max(1.0, np.abs(old).max())
            assert np.allclose(np.linalg.eigvalsh(new), np.linalg.eigvalsh(old), atol=1e-13)
            assert abs(np.trace(new) - np.trace(old)) < 1e-13
        assert np.array_equal(RQ.hessian_re_im(p, x, y, chunk=3), RQ.hessian_re_im(p, x, y, chunk=3))
        assert np.allclose(RQ.hessian_re_im(p, x, y, chunk=3), RQ.hessian_re_im(p, x, y), atol=1e-14)


def test_mlp_gauss_newton_diagonal_equals_the_hvp_diagonal(tiny_mlp):
    """The ReLU MLP's diagonal from per-sample gradients equals the former n-HVP diagonal and the
    dense Hessian's diagonal, for the whole loss and for a part of the samples."""
    prob, v = tiny_mlp
    assert prob.piecewise_linear()
    for p in (prob, prob.part(np.arange(12) % 3 == 0)):
        d = p.diagonal(v)
        assert np.abs(d - p.diagonal_hvp(v)).max() < 1e-14
        assert np.abs(d - np.diag(p.hessian(v))).max() < 1e-14
