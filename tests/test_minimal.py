"""Tests of qmu_core.minimal: the SI section I Hessians, their verification and the dataset study."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy as sp

from qmu_core import minimal as M
from qmu_core import paths
from qmu_core.precision import float64_scope
from qmu_core.validation import ParameterError


@pytest.fixture(scope="module")
def derivations():
    return {m: M.derive(m) for m in M.MODELS}


# ------------------------------------------------------------------ SymPy derivation
def test_qubit_logit_comes_from_the_circuit(derivations):
    d = derivations["qnn"]
    x, th = d.symbols["x"], d.symbols["theta"]
    assert sp.simplify(d.z - sp.cos(sp.pi * x + th)) == 0
    # the unsimplified <psi|Z|psi> step is there and is not already the cosine
    z_raw = dict((label, e) for label, e in d.steps)[r"z = \langle\psi_\mathrm{out}|Z|\psi_\mathrm{out}\rangle"]
    assert z_raw != d.z and sp.simplify(z_raw - d.z) == 0


@pytest.mark.parametrize("model", M.MODELS)
def test_sympy_equals_closed_form(derivations, model):
    d = derivations[model]
    assert d.grad_residual == 0
    assert d.hess_residual == 0
    assert d.hess_residual_s1 == 0  # the formulas printed in SI eqs. S10 and S15
    assert d.proved
    assert len(M.derivation_latex(d)) == len(d.steps)


def test_paper_formulas_at_s1(derivations):
    """At s = 1 the closed forms are x^2 p(1-p) and p(1-p) sin^2 - (p-y) cos, literally."""
    sy = derivations["qnn"].symbols
    x, th, y, s, p = (sy[k] for k in ("x", "theta", "y", "s", "p"))
    ph = sp.pi * x + th
    qnn = derivations["qnn"].hess_closed_p.subs(s, 1)
    assert sp.simplify(qnn - (p * (1 - p) * sp.sin(ph) ** 2 - (p - y) * sp.cos(ph))) == 0
    mlp = derivations["mlp"].hess_closed_p.subs(s, 1)
    assert sp.simplify(mlp - x**2 * p * (1 - p)) == 0
    assert derivations["mlp"].term_b_p == 0
    # general s: the factors s^2 (Term A) and s (Term B)
    assert sp.simplify(derivations["qnn"].term_a_p - s**2 * p * (1 - p) * sp.sin(ph) ** 2) == 0
    assert sp.simplify(derivations["qnn"].term_b_p - s * (p - y) * sp.cos(ph)) == 0


# ------------------------------------------------------------------ three-way verification
def test_three_way_agreement(derivations):
    import jax
    import tensorcircuit as tc

    before = (bool(jax.config.read("jax_enable_x64")), tc.dtypestr, tc.backend.name)
    rows = M.verify(60, [1.0, 5.0], seed=3, derivations=derivations)
    after = (bool(jax.config.read("jax_enable_x64")), tc.dtypestr, tc.backend.name)
    assert after == before, "float64_scope must restore jax x64, tensorcircuit dtype and backend"
    assert {r["model"] for r in rows} == set(M.MODELS)
    assert {r["quantity"] for r in rows} == {"hessian", "gradient"}
    worst = max(r["max_abs_diff"] for r in rows)
    assert worst < 1e-6, worst
    # the autodiff values really are float64-accurate (float32 would give ~1e-7 relative)
    ad = [r["max_abs_diff"] for r in rows if r["pair"] == "sympy vs autodiff"]
    assert max(ad) < 1e-9


def test_float64_scope_restores_state_on_error():
    import jax
    import tensorcircuit as tc

    before = (bool(jax.config.read("jax_enable_x64")), tc.dtypestr, tc.backend.name)
    with pytest.raises(RuntimeError):
        with float64_scope():
            assert tc.dtypestr == "complex128"
            raise RuntimeError("boom")
    assert (bool(jax.config.read("jax_enable_x64")), tc.dtypestr, tc.backend.name) == before


# ------------------------------------------------------------------ sign of the curvature
def test_mlp_hessian_never_negative():
    x, th, y = np.meshgrid(np.linspace(-3, 3, 61), np.linspace(-30, 30, 121), [0.0, 1.0])
    for s in (0.3, 1.0, 5.0):
        assert np.all(M.hessian("mlp", x, th, y, s) >= 0)


@pytest.mark.parametrize("s", [1.0, 5.0])
def test_qnn_negative_for_confidently_wrong_point(s):
    ex = M.outlier_example(s, 0.5)
    assert ex["p_outlier"] > 0.7 and ex["y_outlier"] == 0  # confidently wrong
    assert ex["H_outlier"] < 0 and math.isclose(ex["H_outlier"], -s * ex["p_outlier"], rel_tol=1e-12)
    assert ex["H_clean"] > 0  # the well-classified mirror point has positive curvature
    assert ex["H_mlp_outlier"] >= 0
    maps = M.curvature_maps(s, 41)
    for y in (0, 1):
        assert maps[f"qnn_y{y}"].min() < 0 < maps[f"qnn_y{y}"].max()
    assert maps["mlp"].min() >= 0


def test_closed_forms_consistent():
    rng = np.random.default_rng(0)
    x, th, y = rng.uniform(-1, 1, 100), rng.uniform(-np.pi, np.pi, 100), rng.integers(0, 2, 100)
    a, b = M.qnn_terms(x, th, y, 1.0)
    p = 1 / (1 + np.exp(-np.cos(np.pi * x + th)))
    paper = p * (1 - p) * np.sin(np.pi * x + th) ** 2 - (p - y) * np.cos(np.pi * x + th)
    np.testing.assert_allclose(M.hessian("qnn", x, th, y, 1.0), paper, atol=1e-14)
    np.testing.assert_allclose(a - b, paper, atol=1e-14)
    assert np.all(a >= 0)


# ------------------------------------------------------------------ dataset study
def test_flip_labels_rule():
    x, y = M.make_dataset(101, 0.5, 0.2, seed=1)
    assert (y == 0).sum() == 50 and (y == 1).sum() == 51
    assert np.all(np.abs(x) <= 1.0)
    for alpha, n in [(0.0, 0), (0.1, 10), (0.15, 14), (0.33, 32), (0.5, 50)]:
        noisy, mask = M.flip_labels(y, alpha, seed=4)
        assert mask.sum() == n == M.n_flipped(alpha, 101)
        assert (mask & (y == 0)).sum() == n // 2 == (mask & (y == 1)).sum()
        np.testing.assert_array_equal(noisy[mask], 1 - y[mask])
        np.testing.assert_array_equal(noisy[~mask], y[~mask])
    m1, m2 = M.flip_labels(y, 0.2, 4)[1], M.flip_labels(y, 0.4, 4)[1]
    assert np.all(m2[m1])  # nested: larger alpha flips a superset
    np.testing.assert_array_equal(M.flip_labels(y, 0.4, 4)[1], m2)  # deterministic


def test_fits():
    x, y = M.make_dataset(200, 0.5, 0.15, seed=0)
    th, bound = M.fit_theta("qnn", x, y, 1.0, n_grid=401)
    assert abs(M.wrap_angle(th + np.pi / 2)) < 0.1 and not bound
    # separable data: the neuron's minimiser runs to the bound
    xs = np.array([-0.6, -0.5, 0.5, 0.6])
    ys = np.array([0.0, 0.0, 1.0, 1.0])
    th, bound = M.fit_theta("mlp", xs, ys, 1.0, theta_max=7.0, n_grid=101)
    assert bound and th == pytest.approx(7.0)
    # the refined minimum is a minimum of the mean loss
    th, _ = M.fit_theta("mlp", x, M.flip_labels(y, 0.3, 0)[0], 1.0, n_grid=401)
    noisy = M.flip_labels(y, 0.3, 0)[0]
    f = lambda t: M.mean_loss("mlp", t, x, noisy, 1.0)  # noqa: E731
    assert f(th) <= min(f(th - 1e-3), f(th + 1e-3))


def test_dataset_study_and_csv(tmp_path):
    P = M.HessianParams(n_points=120, alphas=[0.0, 0.2, 0.45], n_theta_grid=301, results_dir=str(tmp_path))
    rows = M.dataset_study(P)
    assert len(rows) == 2 * 3 * len(P.scales)
    by = {(r["model"], r["sigmoid_scale"], r["alpha"]): r for r in rows}
    q0 = by[("qnn", 1.0, 0.0)]
    assert abs(M.wrap_angle(q0["theta_star"] + np.pi / 2)) < 0.15 and q0["clean_acc"] > 0.9
    for s in P.scales:
        # noise sharpens the neuron's minimum; its curvature is Term A only
        c = [by[("mlp", s, a)]["curvature"] for a in P.alphas]
        assert c[0] < c[1] < c[2]
        assert all(by[("mlp", s, a)]["term_b"] == 0 for a in P.alphas)
        for a in P.alphas:
            r = by[("qnn", s, a)]
            assert r["curvature"] == pytest.approx(r["term_a"] - r["term_b"], abs=1e-12)
    # Term B lowers the qubit's curvature at its clean optimum linearly in alpha (s = 1)
    h = [by[("qnn", 1.0, a)]["curvature_at_clean_opt"] for a in P.alphas]
    assert h[0] > h[1] > h[2]
    path = M.write_csv(rows, "hessian_dataset.csv", P.results_dir)
    text = path.read_text().splitlines()
    assert text[0].startswith("model,sigmoid_scale,alpha,") and len(text) == len(rows) + 1
    summary = M.summarise(rows)
    assert summary["qnn_s1_alpha_first"] == 0.0 and "mlp_s5_curvature_ratio_last" in summary


def test_predicted_alpha_c_matches_linear_drop():
    x, y = M.make_dataset(400, 0.5, 0.2, seed=0)
    th0, _ = M.fit_theta("qnn", x, y, 1.0, n_grid=721)
    ac = M.predicted_alpha_c("qnn", x, y, th0, 1.0)
    assert 0 < ac < 1
    h = [np.mean(M.hessian("qnn", x, th0, M.flip_labels(y, a, 0)[0], 1.0)) for a in (ac - 0.08, ac + 0.08)]
    assert h[0] > 0 > h[1]
    assert M.predicted_alpha_c("mlp", x, y, 3.0, 1.0) == math.inf


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_points": "abc"}, "n_points"),
        ({"n_points": 2}, "n_points"),
        ({"sigmoid_scale": -1}, "sigmoid_scale"),
        ({"sigmoid_scale": "5"}, "sigmoid_scale"),
        ({"second_scale": 0.0}, "second_scale"),
        ({"class_std": 0}, "class_std"),
        ({"class_mean": 1.5}, "class_mean"),
        ({"alphas": [0.1, 1.0]}, "alphas[1]"),
        ({"alphas": "0.1"}, "alphas"),
        ({"alphas": []}, "alphas"),
        ({"n_check": 0}, "n_check"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"mlp_theta_max": 0}, "mlp_theta_max"),
        ({"results_dir": 3}, "results_dir"),
    ],
)
def test_bad_parameters_name_the_parameter(kwargs, name):
    with pytest.raises(ParameterError, match=f"'{__import__('re').escape(name)}'"):
        M.HessianParams(**kwargs)


def test_good_parameters_normalised():
    P = M.HessianParams(alphas=[0.4, 0.0, 0.4], sigmoid_scale=2, second_scale=2)
    assert P.alphas == (0.0, 0.4) and P.scales == (2.0,)
    assert P.results_path == paths.RESULTS
    with pytest.raises(ParameterError, match="'model'"):
        M.hessian("cnn", 0.1, 0.2, 0, 1.0)
