"""The noise chapter's trainer and runs (qmu_core.noise_study), the depth study
(qmu_core.depth_study) and the chapter's parameters and readings (qmu_core.noise_chapter)."""

import jax
import numpy as np
import pandas as pd
import pytest

from qmu_core import depth_study, noise_chapter, noise_study
from qmu_core.config import TrainConfig
from qmu_core.noise_study import Run, Setting, train_noisy
from qmu_core.qnn import QNN
from qmu_core.training import train_qnn
from qmu_core.validation import ParameterError


def toy_set(n, n_qubits, seed):
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, 2**n_qubits)) + 1j * rng.normal(size=(n, 2**n_qubits))
    return s / np.linalg.norm(s, axis=1, keepdims=True), (rng.random(n) < 0.5).astype(np.float64)


# ---------------------------------------------------------------------- settings
@pytest.mark.parametrize("kind, level, match", [
    ("thermal", 0.1, r"'noise' must be one of"),
    ("shots", 10.5, r"'shots' must be an integer"),
    ("shots", 0, r"'shots' must be >= 1"),
    ("depolarizing", 0.9, r"'depolarizing' must lie in \[0.0, 0.75\]"),
    ("readout", "0.01", r"'readout' must be a number"),
    ("noiseless", 0.1, r"noiseless setting has level 0"),
])
def test_bad_settings_are_refused(kind, level, match):
    with pytest.raises(ParameterError, match=match):
        Setting(kind, level)


def test_settings_and_their_noise():
    s = noise_study.settings({"depolarizing": [0.01], "shots": [100]})
    assert [x.label for x in s] == ["noiseless", "depolarizing p = 0.01", "100 shots"]
    assert s[1].noise_model.depolarizing == 0.01 and s[1].shots == noise_study.EXACT
    assert s[2].shots == 100 and not s[2].noise_model.gate_noise
    assert noise_study.settings({"readout": [0.05]}, noiseless=False)[0].noise_model.readout == 0.05
    with pytest.raises(ParameterError, match="dict noise kind"):
        noise_study.settings([0.01])


def test_run_keys_differ_by_setting_and_not_by_alpha_or_run():
    a = Run("xxz", Setting("depolarizing", 0.01), "label_flip", 0.3, 0, epoch_scale=0.01)
    b = Run("xxz", Setting("depolarizing", 0.005), "label_flip", 0.3, 0, epoch_scale=0.01)
    c = Run("xxz", Setting("depolarizing", 0.01), "label_flip", 0.5, 2, epoch_scale=0.01)
    assert a.key() != b.key() and a.key() == c.key()
    assert a.identity()["level"] == 0.01
    with pytest.raises(ParameterError, match="MNIST has no gauge"):
        Run("mnist", Setting("noiseless"), "label_flip", 0.0, 0, gauge="random_phase")


# ---------------------------------------------------------------------- the trainer
def test_noiseless_trainer_equals_the_statevector_trainer():
    """Same start, mini-batches and Adam as training.train_qnn: in float64 the trained angles
    agree to rounding (the adjoint kernel vs the Pauli simulation)."""
    x, y = toy_set(20, 5, seed=0)
    cfg = TrainConfig(3, 8, 0.05)
    with jax.enable_x64(True):
        model = QNN(5, 2, dtype="complex128")
        want, hist = train_qnn(model, x, y, x, y, cfg, seed=11)
        got, final = train_noisy(model, Setting("noiseless"), x, y, x, y, cfg, seed=11)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-10)
    assert final["train_acc"] == pytest.approx(hist.final["train_acc"])
    assert final["val_loss"] == pytest.approx(hist.final["val_loss"], abs=1e-10)


def test_noise_changes_training_and_shots_are_deterministic():
    x, y = toy_set(16, 4, seed=1)
    cfg = TrainConfig(2, 8, 0.05)
    model = QNN(4, 2)
    p0, _ = train_noisy(model, Setting("noiseless"), x, y, x, y, cfg, seed=3)
    p1, _ = train_noisy(model, Setting("depolarizing", 0.05), x, y, x, y, cfg, seed=3)
    s1, _ = train_noisy(model, Setting("shots", 50), x, y, x, y, cfg, seed=3)
    s2, _ = train_noisy(model, Setting("shots", 50), x, y, x, y, cfg, seed=3)
    s3, _ = train_noisy(model, Setting("shots", 50), x, y, x, y, cfg, seed=4)
    assert not np.allclose(p0, p1) and not np.allclose(p0, s1)
    np.testing.assert_array_equal(np.asarray(s1), np.asarray(s2))
    assert not np.allclose(s1, s3)


def test_readout_error_rescales_the_loss_but_not_the_accuracy():
    x, y = toy_set(16, 4, seed=2)
    cfg = TrainConfig(1, 16, 1e-9)  # a step too small to move: compares the start
    model = QNN(4, 2)
    _, clean = train_noisy(model, Setting("noiseless"), x, y, x, y, cfg, seed=5)
    _, read = train_noisy(model, Setting("readout", 0.2), x, y, x, y, cfg, seed=5)
    assert read["train_acc"] == clean["train_acc"]
    assert read["train_loss"] != clean["train_loss"]


def test_one_xxz_run_record():
    r = Run("xxz", Setting("depolarizing", 0.01), "label_flip", 0.5, 0, epoch_scale=0.005)
    rec = noise_study.compute(r)
    assert rec["noise"] == "depolarizing" and rec["depth"] == 4 and rec["gauge"] == "fixed"
    assert rec["n_corrupted"] == 40  # alpha = 0.5, flips drawn per class: 20 of each class's 41
    assert 0.0 <= rec["val_acc"] <= 1.0


# ---------------------------------------------------------------------- depth study
def test_depth_task_validation_and_gradient_variance():
    with pytest.raises(ParameterError, match="'depth' must be >= 1"):
        depth_study.Task(0)
    with pytest.raises(ParameterError, match="'n_draws' must be >= 2"):
        depth_study.Task(2, n_draws=1)
    rec = depth_study.compute(depth_study.Task(2, hessian_alphas=(0.0,), hessian_runs=1, n_draws=8, n_samples=10,
                                               epoch_scale=0.01))
    assert rec["n_live"] == QNN(10, 2).n_live_params
    assert rec["grad_var_uniform"] > 0 and rec["grad_var_init"] > 0
    assert len(rec["traces"]) == 1 and np.isfinite(rec["traces"][0]["trace"])


# ---------------------------------------------------------------------- the chapter
@pytest.mark.parametrize("kwargs, match", [
    ({"depolarizing": 0.01}, r"'depolarizing' must be a list of levels"),
    ({"shots": "100"}, r"'shots' must be a list of levels"),
    ({"shots": [100.5]}, r"'shots' must be an integer"),
    ({"mnist_depolarizing": [0.9]}, r"'depolarizing' must lie in"),
    ({"n_runs": "5"}, r"'n_runs' must be an integer"),
    ({"alphas": [0.5, 0.1]}, r"strictly increasing"),
    ({"corruptions": ["swap"]}, r"'corruptions\[0\]' must be one of"),
])
def test_chapter_parameters_are_validated(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        noise_chapter.NoiseParams(**kwargs)


def test_chapter_plan():
    p = noise_chapter.NoiseParams(n_runs=2, mnist_runs=1, alphas=[0.0, 0.5], depolarizing=[0.01],
                                  amplitude_damping=[], readout=[], shots=[], mnist_depolarizing=[0.01],
                                  depths=[1, 2])
    runs = p.runs()
    xxz = [r for r in runs if r.dataset == "xxz"]
    mnist = [r for r in runs if r.dataset == "mnist"]
    assert len(xxz) == 2 * 2 * 2 * 2  # settings x corruptions x alphas x runs
    assert len(mnist) == 1 * 2 * 2 * 1 and all(r.setting.kind != "noiseless" for r in mnist)
    # the depth study's sweeps, then the MNIST noiseless references (D = 6, every MNIST corruption)
    assert [(s.model.depth, s.corruption) for _, s in p.sweep_jobs()] == [
        (1, "label_flip"), (2, "label_flip"), (6, "label_flip"), (6, "feature_random")]


def test_readings_and_verdicts():
    rows = []
    for noise, level, vals in [("noiseless", 0.0, [1.0, 1.0, 1.0, 0.98, 0.97, 0.5]),
                               ("depolarizing", 0.01, [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]),
                               ("readout", 0.05, [1.0, 1.0, 0.99, 0.98, 0.97, 0.5])]:
        for a, v in zip([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], vals):
            rows.append({"dataset": "xxz", "noise": noise, "level": level, "corruption": "label_flip", "alpha": a,
                         "run": 0, "val_acc": v, "train_acc": v})
    t = noise_chapter.readings(pd.DataFrame(rows))
    g = noise_chapter.glue_values(t)
    assert g["noise_xxz_label_flip_noiseless_0_verdict"] == "survives"
    assert g["noise_xxz_label_flip_depolarizing_0_01_verdict"] == "shrinks"
    assert g["noise_xxz_label_flip_readout_0_05_verdict"] == "survives"
    assert t.set_index("noise").loc["depolarizing", "drop_0_04_change"] == pytest.approx(0.4 - 0.03)


def test_every_glued_key_of_the_prose_is_produced_or_filled():
    import json
    import re
    from pathlib import Path

    nb = json.loads((Path(__file__).parents[1] / "notebooks" / "noise.ipynb").read_text())
    used = set()
    for c in nb["cells"]:
        if c["cell_type"] == "markdown":
            used |= set(re.findall(r"\{glue:text\}`([^`]+)`", "".join(c["source"])))
    glued_by_the_notebook = {"scale_note", "noise_exec_s", "noise_compute_min", "noise_xxz_run_s", "noise_mnist_run_s",
                             "noise_mnist_grid_h"}
    assert used - glued_by_the_notebook == set(noise_chapter.PROSE_KEYS)
    assert noise_chapter.complete({})["depth_list"] == "n/a"
