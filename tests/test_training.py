"""Training engine: determinism, metrics bookkeeping, the MLP's initialisation and sizes."""

import numpy as np
import pytest
import torch

from qmu_core import data
from qmu_core.config import ModelSpec, TrainConfig, paper_setting
from qmu_core.mlp import MLP
from qmu_core.qnn import QNN
from qmu_core.sweep import SweepSpec, run_sweep
from qmu_core.training import train, train_qnn
from qmu_core.validation import ParameterError


@pytest.fixture(scope="module")
def small_mnist():
    ds = data.mnist_1v9(n_per_class=20, n_val=30)
    return ds


def test_qnn_training_is_deterministic_and_learns(small_mnist):
    ds = small_mnist
    cfg = TrainConfig(epochs=6, batch_size=16, lr=0.05, eval_every=2)  # 40 = 2 x 16 + 8
    m1, p1, h1 = train(ModelSpec("qnn", depth=2), ds.x_train, ds.y_train, ds.x_val, ds.y_val, cfg, seed=3)
    _, p2, h2 = train(ModelSpec("qnn", depth=2), ds.x_train, ds.y_train, ds.x_val, ds.y_val, cfg, seed=3)
    np.testing.assert_array_equal(np.asarray(p1), np.asarray(p2))
    np.testing.assert_array_equal(h1.val_acc, h2.val_acc)
    assert h1.epoch.tolist() == [2, 4, 6]
    assert h1.train_loss[-1] < h1.train_loss[0]
    # recorded accuracy equals an independent evaluation of the final parameters
    acc = np.mean((m1.predict(p1, ds.x_val) > 0.5) == ds.y_val)
    assert h1.val_acc[-1] == pytest.approx(acc, abs=1e-6)
    _, p3, _ = train(ModelSpec("qnn", depth=2), ds.x_train, ds.y_train, ds.x_val, ds.y_val, cfg, seed=4)
    assert not np.array_equal(np.asarray(p1), np.asarray(p3))


def test_mlp_training_is_deterministic_and_learns(small_mnist):
    ds = small_mnist
    cfg = TrainConfig(epochs=5, batch_size=16, lr=0.01)
    n1, _, h1 = train(ModelSpec("mlp", hidden=(8, 4)), ds.x_train, ds.y_train, ds.x_val, ds.y_val, cfg, seed=0)
    n2, _, h2 = train(ModelSpec("mlp", hidden=(8, 4)), ds.x_train, ds.y_train, ds.x_val, ds.y_val, cfg, seed=0)
    for a, b in zip(n1.parameters(), n2.parameters()):
        assert torch.equal(a, b)
    assert h1.epoch.tolist() == [1, 2, 3, 4, 5]
    assert h1.train_loss[-1] < h1.train_loss[0]


def test_mlp_glorot_init_and_parameter_counts():
    net = MLP(784, (16, 4)).reset_parameters(0)
    assert net.n_params == 12633  # the SI's "about 12,600"
    assert MLP(1024, (16, 4)).n_params == 16473
    assert MLP(1024, (64, 16)).n_params == 1024 * 64 + 64 + 64 * 16 + 16 + 16 + 1
    w = net.net[0].weight.detach()
    bound = (6 / (784 + 16)) ** 0.5
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound
    assert all(float(m.bias.detach().abs().max()) == 0 for m in net.net if isinstance(m, torch.nn.Linear))


def test_training_input_errors(small_mnist):
    ds = small_mnist
    cfg = TrainConfig(1, 8, 0.01)
    with pytest.raises(ParameterError, match="features"):
        train_qnn(QNN(8, 1), ds.x_train, ds.y_train, ds.x_val, ds.y_val, cfg, seed=0)
    with pytest.raises(ValueError, match="input features"):
        MLP(10).logits(torch.zeros(2, 11))
    with pytest.raises(ParameterError, match="epochs"):
        TrainConfig(0, 8, 0.01)
    with pytest.raises(ParameterError, match="lr"):
        TrainConfig(1, 8, "0.01")
    with pytest.raises(ParameterError, match="model"):
        ModelSpec("svm")


def test_paper_settings():
    assert paper_setting("xxz", "qnn")[1] == TrainConfig(200, 32, 0.03)
    assert paper_setting("mnist", "mlp")[0].hidden == (64, 16)
    assert paper_setting("mnist", "mlp", "si") == (ModelSpec("mlp", hidden=(16, 4)), TrainConfig(100, 128, 0.01))


def test_sweep_resumes_from_cache(small_mnist, tmp_path, monkeypatch):
    monkeypatch.setenv("QMU_CACHE_DIR", str(tmp_path))
    spec = SweepSpec(ModelSpec("mlp", hidden=(4, 2)), "label_flip", (0.0, 0.2), 2, TrainConfig(2, 16, 0.01))
    first = run_sweep(small_mnist, spec, progress=False, workers=1)  # Dask workers: tests/test_sweeps.py
    files = sorted(tmp_path.rglob("*.json"))
    assert len(files) == 4
    files[0].unlink()  # an interrupted sweep: one run missing
    again = run_sweep(small_mnist, spec, progress=False, workers=1)
    assert [r["val_acc"] for r in again] == [r["val_acc"] for r in first]
    assert len(sorted(tmp_path.rglob("*.json"))) == 4


def test_sweep_over_other_alphas_or_more_runs_reuses_finished_runs(small_mnist, tmp_path, monkeypatch):
    """A run depends only on its own (alpha, run): a wider sweep reads it back from the
    cache instead of training it again (the capacity chapter reuses resilience runs)."""
    monkeypatch.setenv("QMU_CACHE_DIR", str(tmp_path))
    cfg = TrainConfig(2, 16, 0.01)
    narrow = run_sweep(small_mnist, SweepSpec(ModelSpec("mlp", hidden=(4, 2)), "label_flip", (0.2,), 1, cfg),
                       progress=False, workers=1)
    wide = run_sweep(small_mnist, SweepSpec(ModelSpec("mlp", hidden=(4, 2)), "label_flip", (0.0, 0.2), 2, cfg),
                     progress=False, workers=1)
    assert len(list(tmp_path.rglob("*.json"))) == 4
    reused = [r for r in wide if r["alpha"] == 0.2 and r["run"] == 0]
    assert reused == narrow  # the very record, its timing included: not trained again
