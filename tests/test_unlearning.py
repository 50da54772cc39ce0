"""Unit tests of the unlearning methods (qmu_core.unlearning), the study's tasks
(qmu_core.unlearning_study) and the membership-inference attack (qmu_core.privacy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qmu_core import unlearning as U
from qmu_core.config import ModelSpec, TrainConfig
from qmu_core.data import Dataset
from qmu_core.mlp import MLP
from qmu_core.privacy import membership_auc, prediction_entropy
from qmu_core.qnn import QNN
from qmu_core.unlearning_chapter import UnlearningParams
from qmu_core.unlearning_grid import GridParams
from qmu_core.unlearning_study import Setting, Task, compute, run_tasks
from qmu_core.validation import ParameterError


def _sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def _ce(z, y):
    p = _sig(z)
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


# ----------------------------------------------------------------------------- losses by hand
def test_losses_match_hand_computed_values():
    z_r, y_r = np.array([0.0, 2.0]), np.array([1.0, 0.0])
    z_f, y_f = np.array([-1.0, 3.0, 0.5]), np.array([1.0, 0.0, 1.0])
    t_f = np.array([0.9, 0.2, 0.6])  # the teacher's probabilities of class 1
    ce_r = (_ce(0.0, 1) + _ce(2.0, 0)) / 2
    ce_f = (_ce(-1.0, 1) + _ce(3.0, 0) + _ce(0.5, 1)) / 3
    assert U.loss_terms(U.Finetune(), z_r, y_r)[0] == pytest.approx(ce_r, rel=1e-12)
    v = U.loss_terms(U.GradientAscent(beta=0.2), z_r, y_r, z_f, y_f)[0]
    assert v == pytest.approx(ce_r - 0.2 * ce_f, rel=1e-12)
    kl_code = sum(p * math.log(p / _sig(z)) for p, z in zip(t_f, z_f)) / 3
    v = U.loss_terms(U.Scrub(lambda_ce=1.0, lambda_kl=0.0, lambda_fo=0.3), z_r, y_r, z_f, y_f, None, t_f)[0]
    assert v == pytest.approx(ce_r - 0.3 * kl_code, rel=1e-12)
    kl_b = sum(p * math.log(p / _sig(z)) + (1 - p) * math.log((1 - p) / (1 - _sig(z))) for p, z in zip(t_f, z_f)) / 3
    v = U.loss_terms(U.Scrub(lambda_fo=0.3, kl="bernoulli"), z_r, y_r, z_f, y_f, None, t_f)[0]
    assert v == pytest.approx(ce_r - 0.3 * kl_b, rel=1e-12)
    # SCRUB as published: max step = -T^2 KL(p_T^T || q^T), the teacher given by its logits
    T, zt = 2.0, np.array([2.0, -1.0, 0.0])
    kl_t = sum(T * T * (_sig(a / T) * math.log(_sig(a / T) / _sig(b / T))
                        + (1 - _sig(a / T)) * math.log((1 - _sig(a / T)) / (1 - _sig(b / T)))) for a, b in zip(zt, z_f)) / 3
    v = U.loss_terms(U.ScrubOriginal(temperature=T), None, None, z_f, y_f, None, zt, phase="max")[0]
    assert v == pytest.approx(-kl_t, rel=1e-12)


@pytest.mark.parametrize("m", [U.Finetune(), U.GradientAscent(beta=0.7), U.Scrub(lambda_kl=0.4, lambda_fo=0.3),
                               U.Scrub(lambda_kl=0.5, lambda_fo=0.1, kl="bernoulli"), U.Scrub(lambda_ce=0.0)])
def test_gradients_are_derivatives_and_weighted_bce_agrees(m):
    rng = np.random.default_rng(0)
    z_r, z_f = rng.normal(0, 2, 6), rng.normal(0, 2, 4)
    y_r, y_f = rng.integers(0, 2, 6).astype(float), rng.integers(0, 2, 4).astype(float)
    t_r, t_f = rng.uniform(0.05, 0.95, 6), rng.uniform(0.05, 0.95, 4)
    v, dz_r, dz_f = U.loss_terms(m, z_r, y_r, z_f, y_f, t_r, t_f)
    h = 1e-6
    for k in range(6):
        e = np.zeros(6)
        e[k] = h
        num = (U.loss_terms(m, z_r + e, y_r, z_f, y_f, t_r, t_f)[0] - U.loss_terms(m, z_r - e, y_r, z_f, y_f, t_r, t_f)[0]) / (2 * h)
        assert dz_r[k] == pytest.approx(num, abs=1e-7)
    dz = dz_r if dz_f is None else np.concatenate([dz_r, dz_f])
    labels, weights = U.bce_weights(m, y_r, y_f, t_r, t_f)
    q = U.sigmoid(np.concatenate([z_r, z_f])[: len(labels)])
    np.testing.assert_allclose(weights * (q - labels), dz, atol=1e-12)


# ----------------------------------------------------------------------------- tiny models
def _toy(n=48, d=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0, 0.3, (n, d))
    x[:, 0] += 2 * y - 1  # class signal on the first amplitude
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), y


def _split(y, n_forget=8, seed=1):
    rng = np.random.default_rng(seed)
    f = np.sort(np.concatenate([rng.choice(np.flatnonzero(y == c), n_forget // 2, replace=False) for c in (0, 1)]))
    yp = y.copy()
    yp[f] = 1 - yp[f]
    retain = np.setdiff1d(np.arange(len(y)), f)
    return U.Split(yp, y, f, retain, y[:16])


def _learners(x):
    qnn = QNN(4, 2)
    p = np.random.default_rng(3).normal(0, 0.5, qnn.param_shape)
    sets = {"train": x, "val": x[:16]}
    return {"qnn": lambda: U.QNNLearner(qnn, p, sets),
            "mlp": lambda: U.MLPLearner(MLP(16, (4, 2)).reset_parameters(5), sets)}


@pytest.mark.parametrize("kind", ["qnn", "mlp"])
def test_finetune_with_zero_learning_rate_leaves_the_model_unchanged(kind):
    x, y = _toy()
    le = _learners(x)[kind]()
    before = le.params
    U.unlearn(le, U.Finetune(epochs=3, batch_size=8, lr=0.0), _split(y), seed=0)
    np.testing.assert_array_equal(le.params, before)


@pytest.mark.parametrize("kind", ["qnn", "mlp"])
def test_forget_terms_move_the_loss_in_the_intended_direction(kind):
    """One update of gradient ascent raises the forget set's loss (polluted labels) above what
    the same Finetune update leaves; one SCRUB update moves the student further from the teacher
    on the forget set."""
    x, y = _toy()
    sp = _split(y)
    make = _learners(x)[kind]
    f = sp.forget

    def after(m, teacher=None):
        le = make()
        U.unlearn(le, m, sp, seed=0, teacher=teacher, record=False)
        return le

    ft = after(U.Finetune(epochs=1, lr=0.05))
    ga = after(U.GradientAscent(epochs=1, lr=0.05, beta=1.0))
    ce = lambda le: U.bce(le.logits("train", f), sp.y[f]).mean()  # noqa: E731
    assert ce(ga) > ce(ft)
    teacher = make()
    tz = teacher.logits("train")
    tp = U.sigmoid(tz[f])
    sc = after(U.Scrub(epochs=1, lr=0.05, lambda_fo=1.0), {"z": tz})
    ft2 = after(U.Scrub(epochs=1, lr=0.05, lambda_fo=0.0), {"z": tz})
    klf = lambda le: U.kl(le.logits("train", f), tp, "code")[0].mean()  # noqa: E731
    assert klf(sc) > klf(ft2)


def test_kernel_weighted_bce_mode_matches_cotangent_mode():
    from qmu_core import adjoint

    x, y = _toy()
    qnn = QNN(4, 2)
    p = np.random.default_rng(3).normal(0, 0.5, qnn.param_shape).astype(np.float32)
    circ = adjoint._Circuit(qnn)
    rows = np.array([3, 1, 7, 20, 33, 40, 41])
    labels, w = np.random.default_rng(0).uniform(0, 1, 7), np.random.default_rng(1).normal(0, 1, 7)
    e = circ.run(x, p, 0, None, rows)
    cot = 5.0 * w * (U.sigmoid(5.0 * e) - labels)
    g1 = circ.run(x, p, 1, cot, rows)[2]
    g3 = circ.run(x, p, 3, np.concatenate([labels, w]), rows)[2]
    np.testing.assert_allclose(g3, g1, rtol=2e-4, atol=1e-6)


def test_scrub_original_schedule():
    m = U.ScrubOriginal(lr=1.0)
    assert [m.lr_at(e, 0) for e in (1, 5, 6, 9, 10, 50)] == pytest.approx([1, 1, 0.1, 0.01, 0.001, 0.001])
    assert U.Finetune(lr=1.0, warmup=4).lr_at(1, 0) == pytest.approx(0.25)


# ----------------------------------------------------------------------------- a whole task
def _task(model: str, record=True, extras=True):
    x, y = _toy(64, 16)
    xv, yv = _toy(40, 16, seed=9)
    ds = Dataset("toy", x, y, xv, yv)
    spec = ModelSpec("qnn", depth=2) if model == "qnn" else ModelSpec("mlp", hidden=(4, 2))
    s = Setting(spec, TrainConfig(5, 16, 0.05, 5), 16, 0.01)
    methods = tuple((n, U.method(n, epochs=3, batch_size=16, lr=0.01)) for n in U.METHODS)
    return Task(ds, "none", model, 0, s, methods, 0.25, "independent", "amplitude", 0, record, extras)


@pytest.mark.parametrize("model", ["qnn", "mlp"])
def test_a_seeded_task_is_reproducible(model):
    a, b = compute(_task(model)), compute(_task(model))
    for rec in (a, b):
        rec.pop("seconds")
        for m in rec["methods"].values():
            m.pop("seconds")
    assert a == b
    assert set(a["methods"]) == set(U.METHODS)
    assert len(a["methods"]["finetune"]["val_acc"]) == 4  # steps 0..3
    assert a["n_forget"] == 16 and a["n_retain"] == 48
    # Retrain starts from a fresh model, every other method from the poisoned one
    assert a["methods"]["finetune"]["val_acc"][0] == a["poisoned"]["val_acc"]


def test_tasks_on_dask_workers_give_the_in_process_records(tmp_path, monkeypatch):
    # two tasks through qmu_core.parallel.compute_cached: on two local Dask workers (the dataset
    # scattered once), then in this process from an empty cache; then read back from the cache
    tasks = [_task(model) for model in ("qnn", "mlp")]
    records = {}
    for workers in (2, 1):
        monkeypatch.setenv("QMU_CACHE_DIR", str(tmp_path / f"w{workers}"))
        records[workers] = run_tasks(tasks, progress=False, workers=workers)
    strip = lambda rec: {k: v for k, v in rec.items() if k != "seconds"} | {  # noqa: E731
        "methods": {n: {k: v for k, v in m.items() if k != "seconds"} for n, m in rec["methods"].items()}}
    assert [strip(r) for r in records[2]] == [strip(r) for r in records[1]]
    assert run_tasks(tasks, progress=False, workers=1) == records[1]  # from the cache


def test_oracle_disagreement_and_forgetting_accuracy():
    x, y = _toy()
    sp = _split(y)
    le = _learners(x)["mlp"]()
    own = {"val": le.logits("val") > 0, "forget": le.logits("train", sp.forget) > 0}
    r = U.evaluate(le, sp, own)
    assert r["disagree_val"] == 0 and r["disagree_forget"] == 0
    assert r["forget_acc_clean"] + r["forget_acc_polluted"] == pytest.approx(1.0)  # flipped labels
    flipped = {"val": ~own["val"], "forget": ~own["forget"]}
    assert U.evaluate(le, sp, flipped)["disagree_val"] == 1


def test_membership_attack_on_known_cases():
    rng = np.random.default_rng(0)
    assert membership_auc(rng.normal(0, 1, 150), rng.normal(4, 1, 2000), seed=1) > 0.97
    same = [membership_auc(rng.normal(0, 1, 150), rng.normal(0, 1, 2000), seed=s) for s in range(5)]
    assert abs(np.mean(same) - 0.5) < 0.08
    assert prediction_entropy([0.0])[0] == pytest.approx(math.log(2))
    with pytest.raises(ParameterError, match="at least 5"):
        membership_auc([1.0, 2.0], [0.0] * 10, seed=0)


# ----------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("cls, kw, match", [
    (UnlearningParams, {"n_runs": "5"}, "n_runs"),
    (UnlearningParams, {"alpha": 0.6}, "alpha"),
    (UnlearningParams, {"methods": ["retrain", "sgd"]}, "methods"),
    (UnlearningParams, {"scrub_kl": "KL"}, "scrub_kl"),
    (UnlearningParams, {"protocol": "one"}, "protocol"),
    (UnlearningParams, {"xxz_qnn_encoding": "13"}, "xxz_qnn_encoding"),
    (GridParams, {"lambdas": [0.2, 0.1]}, "lambdas"),
    (GridParams, {"betas": ["0.1"]}, "betas"),
])
def test_bad_parameters_are_refused_by_name(cls, kw, match):
    with pytest.raises(ParameterError, match=match):
        cls(**kw)


def test_method_configs_are_validated():
    with pytest.raises(ParameterError, match="kl"):
        U.method("scrub", kl="positive")
    with pytest.raises(ParameterError, match="beta"):
        U.GradientAscent(beta=-1)
    with pytest.raises(ParameterError, match="method"):
        U.method("prune")


def test_chapter_tasks_follow_spec():
    P = UnlearningParams()
    tasks = P.tasks()
    # MNIST: both models; XXZ: both models under the first gauge, the MLP under the second
    assert [(t.ds.name, t.gauge, t.model) for t in tasks[::5]] == [
        ("mnist", "none", "mlp"), ("mnist", "none", "qnn"), ("xxz", "fixed", "mlp"), ("xxz", "fixed", "qnn"),
        ("xxz", "random_phase", "mlp")]
    m = dict(P.method_configs("mnist", "qnn"))
    assert m["finetune"].lr == 0.005 and m["finetune"].batch_size == 256 and m["finetune"].epochs == 50
    assert m["gradient_ascent"].beta == 0.2 and m["scrub"].lambda_fo == 0.2 and m["scrub"].lambda_kl == 0.0
    assert m["finetune_warmup"].warmup == 10
    g = GridParams()
    assert len(g.cells("xxz", "mlp")) == 2 + 10 + 100
