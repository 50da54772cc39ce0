"""Numeric regressions (pytest-regressions): arrays that must not drift between versions."""

import jax.numpy as jnp
import numpy as np

from qmu_core import data
from qmu_core.corruption import random_states
from qmu_core.precision import float64_scope
from qmu_core.qnn import QNN


def test_xxz_observables_regression(num_regression, tmp_path, monkeypatch):
    monkeypatch.setenv("QMU_CACHE_DIR", str(tmp_path))
    deltas = np.array([-0.9, -0.3, 0.5, 0.99, 1.01, 1.5, 2.5])
    states, energies = data.xxz_ground_states(deltas, L=8, return_energies=True)
    corr = data.xxz_correlations(states, L=8)
    num_regression.check({"delta": deltas, "energy": energies, "zz": corr["zz"], "xx": corr["xx"]},
                         default_tolerance={"atol": 1e-9, "rtol": 0})


def test_qnn_output_regression(num_regression):
    model = QNN(6, 3, dtype="complex128")
    rng = np.random.default_rng(2026)
    params = rng.uniform(-np.pi, np.pi, model.param_shape)
    states = random_states(6, 64, complex_valued=True, rng=rng)
    with float64_scope():
        z = np.asarray(model.expectation(jnp.asarray(params), states))
    num_regression.check({"z": z}, default_tolerance={"atol": 1e-10, "rtol": 0})
