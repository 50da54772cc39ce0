"""The XXZ gauge (SPEC.md, Discrepancy (gauge)): the QNN cannot see a state's global phase,
the MLP can."""

import numpy as np
import torch

from qmu_core import data
from qmu_core.mlp import MLP
from qmu_core.precision import float64_scope
from qmu_core.qnn import QNN


def _sets(tmp_path, monkeypatch):
    monkeypatch.setenv("QMU_CACHE_DIR", str(tmp_path))
    train, val = [-0.5, 0.2, 0.6, 1.4, 2.0, 2.6], [0.1, 1.9]
    return (data.xxz_dataset(train, val, L=8),
            data.xxz_dataset(train, val, L=8, gauge="random_phase", gauge_seed=1))


def test_qnn_output_is_invariant_to_the_gauge(tmp_path, monkeypatch):
    fixed, rand = _sets(tmp_path, monkeypatch)
    qnn = QNN(8, 3, dtype="complex128")
    params = np.random.default_rng(0).uniform(-3.0, 3.0, qnn.param_shape)
    with float64_scope():
        a = np.asarray(qnn.expectation(params, fixed.x_train.astype(np.complex128)))
        b = np.asarray(qnn.expectation(params, rand.x_train.astype(np.complex128)))
    assert np.abs(a).max() > 1e-2  # a non-trivial output
    # the stored states are complex64: equal up to single-precision rounding of the inputs
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_mlp_output_depends_on_the_gauge(tmp_path, monkeypatch):
    fixed, rand = _sets(tmp_path, monkeypatch)
    net = MLP(2 * 256, (16, 4)).reset_parameters(0)
    with torch.no_grad():
        a = net(torch.from_numpy(data.as_real_features(fixed.x_train))).numpy()
        b = net(torch.from_numpy(data.as_real_features(rand.x_train))).numpy()
    assert np.abs(a - b).max() > 1e-3
