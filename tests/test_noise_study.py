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


def test_a_batch_trains_each_run_as_alone():
    """train_noisy_batch: in float64 each run of a batch is the run trained alone
    (train_noisy); in float32 a run's numbers do not depend on the batch it is in (every
    batch is filled up to BATCH_RUNS runs), so the cache holds the same numbers however runs
    are grouped."""
    sets = [toy_set(12, 4, seed=s) for s in (7, 8, 9)]
    cfg = TrainConfig(3, 5, 0.05)  # 12 = 2 x 5 + 2: a short last batch too
    setting = Setting("depolarizing", 0.02)
    with jax.enable_x64(True):
        model = QNN(4, 2, dtype="complex128")
        got = noise_study.train_noisy_batch(model, setting, sets, *sets[0], cfg, seeds=[1, 2, 3])
        for (x, y), seed, (p, final) in zip(sets, [1, 2, 3], got):
            want, want_final = train_noisy(model, setting, x, y, *sets[0], cfg, seed=seed)
            np.testing.assert_allclose(np.asarray(p), np.asarray(want), atol=1e-12)
            assert final == pytest.approx(want_final, abs=1e-12)
    model = QNN(4, 2)
    for s in (setting, Setting("shots", 20)):
        three = noise_study.train_noisy_batch(model, s, sets, *sets[0], cfg, seeds=[1, 2, 3])
        two = noise_study.train_noisy_batch(model, s, sets[:0:-1], *sets[0], cfg, seeds=[3, 2])
        one = noise_study.train_noisy_batch(model, s, sets[1:2], *sets[0], cfg, seeds=[2])
        np.testing.assert_array_equal(np.asarray(three[1][0]), np.asarray(two[1][0]))
        np.testing.assert_array_equal(np.asarray(three[1][0]), np.asarray(one[0][0]))
        np.testing.assert_array_equal(np.asarray(three[2][0]), np.asarray(two[0][0]))
        assert three[1][1] == one[0][1]
    with pytest.raises(ParameterError, match="one seed per training set"):
        noise_study.train_noisy_batch(model, setting, sets, *sets[0], cfg, seeds=[1])
    with pytest.raises(ParameterError, match="at most BATCH_RUNS"):
        noise_study.train_noisy_batch(model, setting, sets * 4, *sets[0], cfg, seeds=list(range(12)))
    with pytest.raises(ParameterError, match="same size"):
        noise_study.train_noisy_batch(model, setting, [sets[0], toy_set(10, 4, 1)], *sets[0], cfg, seeds=[1, 2])


def test_distinct_inputs_are_the_inputs():
    """A batch computes each distinct state's Pauli vectors once: the same bits as each set's."""
    from qmu_core.noise import NoiseModel
    from qmu_core.pauli import PauliQNN

    sim = PauliQNN(QNN(8, 1), NoiseModel(depolarizing=0.01))
    assert not sim.whole_register  # Pauli vectors, not the states
    x, _ = toy_set(10, 8, seed=4)
    sets = [x[[3, 1, 0, 2, 5]], x[[0, 1, 2]], x[4:]]
    for got, xs in zip(noise_study.distinct_inputs(sim, sets), sets):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(sim.inputs(xs)))


@pytest.mark.parametrize("n_qubits, depth, noise", [(4, 2, {"depolarizing": 0.03}),
                                                     (8, 1, {"amplitude_damping": 0.05, "readout": 0.1})])
def test_hessian_trace_by_parameter_shifts_equals_autodiff(n_qubits, depth, noise):
    """The shift-rule trace against the trace of jax.hessian of the same noisy loss (float64),
    on a whole register and on a light cone smaller than the register."""
    from qmu_core.noise import NoiseModel
    from qmu_core.pauli import PauliQNN
    from qmu_core.qnn import OUTPUT_SCALE
    from qmu_core.training import bce_from_logits

    x, y = toy_set(12, n_qubits, seed=6)
    with jax.enable_x64(True):
        model = QNN(n_qubits, depth, dtype="complex128")
        sim = PauliQNN(model, NoiseModel(**noise))
        params = jax.random.uniform(jax.random.PRNGKey(2), model.param_shape, jax.numpy.float64, 0, 2 * np.pi)
        r, yj = sim.inputs(x), jax.numpy.asarray(y)

        def loss(v):
            return jax.numpy.mean(bce_from_logits(OUTPUT_SCALE * sim.expectation(v.reshape(model.param_shape), r), yj))

        want = float(jax.numpy.trace(jax.hessian(loss)(params.reshape(-1))))
        got = noise_study.hessian_trace(sim, params, x, y)
    assert got == pytest.approx(want, rel=1e-10, abs=1e-12)
    assert abs(want) > 1e-3


def test_runs_are_batched_by_key():
    mk = lambda ds, s, c, a, k: Run(ds, Setting(*s), c, a, k, epoch_scale=0.01)
    runs = ([mk("xxz", ("depolarizing", 0.01), "label_flip", a, k) for a in (0.0, 0.5) for k in range(6)]
            + [mk("xxz", ("shots", 100), "label_flip", 0.0, 0), mk("mnist", ("depolarizing", 0.01), "label_flip", 0.0, 0),
               mk("mnist", ("depolarizing", 0.01), "label_flip", 0.1, 0)])
    runs.append(mk("xxz", ("depolarizing", 0.01), "feature_random", 0.2, 0))
    got = noise_study.batches(runs, list(range(len(runs))))
    assert sorted(map(len, got)) == [1, 1, 1, 3, 10]  # BATCH_RUNS = 10
    assert sorted(i for g in got for i in g) == list(range(len(runs)))
    for g in got:
        assert len({runs[i].program() for i in g}) == 1
    assert runs[0].kernel == noise_study.KERNEL_BATCHED and runs[14].kernel == noise_study.KERNEL
    with pytest.raises(ParameterError, match="share one training program"):
        noise_study.compute_batch([runs[0], runs[12]])
    # a batch of both corruptions: each record is the record of the run computed alone
    pair = noise_study.compute_batch([runs[15], runs[0]])
    assert pair[0]["corruption"] == "feature_random" and pair[1]["corruption"] == "label_flip"
    for rec, r in zip(pair, (runs[15], runs[0])):
        alone = noise_study.compute(r)
        assert {k: v for k, v in rec.items() if k != "seconds"} == {k: v for k, v in alone.items() if k != "seconds"}


def test_a_task_holds_every_run_of_a_program_and_computes_its_batches_in_turn():
    mk = lambda s, c, a, k, ds="xxz": Run(ds, Setting(*s), c, a, k, epoch_scale=0.005)  # noqa: E731
    runs = ([mk(("depolarizing", 0.01), c, a, k) for c in ("label_flip", "feature_random") for a in (0.0, 0.5)
             for k in range(3)] + [mk(("shots", 100), "label_flip", 0.0, 0),
                                   mk(("depolarizing", 0.01), "label_flip", 0.0, 0, ds="mnist")])
    tasks = noise_study.task_groups(runs, list(range(len(runs))))
    assert sorted(map(len, tasks)) == [1, 1, 12]
    assert sorted(i for g in tasks for i in g) == list(range(len(runs)))
    group = [runs[i] for i in max(tasks, key=len)]
    strip = lambda recs: [{k: v for k, v in r.items() if k != "seconds"} for r in recs]  # noqa: E731
    # 12 runs: a batch of 10, then one of 2 (filled up to 10), the records of those batches
    got = strip(noise_study.compute_group(group))
    assert got == strip(noise_study.compute_batch(group[:10]) + noise_study.compute_batch(group[10:]))
    assert [(r["corruption"], r["alpha"], r["run"]) for r in got] == [(r.corruption, r.alpha, r.run) for r in group]


def test_batches_on_dask_workers_give_the_in_process_records(tmp_path, monkeypatch):
    """run_all: batches sent to two local Dask workers (worker.compute_task with a list of runs)
    give the records computed in this process, and are read back from the cache."""
    runs = [Run("xxz", Setting("depolarizing", 0.01), c, a, 0, epoch_scale=0.005)
            for c, a in (("label_flip", 0.0), ("feature_random", 0.5))] + [
        Run("xxz", Setting("readout", 0.05), "label_flip", 0.5, 0, epoch_scale=0.005)]
    tables = {}
    for workers in (2, 1):
        monkeypatch.setenv("QMU_CACHE_DIR", str(tmp_path / f"w{workers}"))
        tables[workers] = noise_study.run_all(runs, progress=False, workers=workers).drop(columns="seconds")
    pd.testing.assert_frame_equal(tables[2], tables[1])
    again = noise_study.run_all(runs, progress=False, workers=1).drop(columns="seconds")
    pd.testing.assert_frame_equal(again, tables[1])


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


@pytest.mark.parametrize("flat, drop, want", [(0.9, 0.0, "survives"), (1.0, 0.0, "widens"), (0.7, 0.0, "survives"),
                                              (0.6, 0.0, "shrinks"), (0.8, 0.2, "shrinks")])
def test_the_verdict_tolerates_one_grid_step_either_way(flat, drop, want):
    from types import SimpleNamespace as NS

    base = NS(flat_until=0.8, drop_0_04=0.1)
    assert noise_chapter.verdict(NS(flat_until=flat, drop_0_04=drop), base) == want


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
                             "noise_mnist_adjoint_run_s", "noise_mnist_grid_h"}
    assert used - glued_by_the_notebook == set(noise_chapter.PROSE_KEYS)
    assert noise_chapter.complete({})["depth_list"] == "n/a"
