"""The MLP's first layer trained on the active inputs only (training.active_inputs): the same
algorithm as the full-width training, so the two agree up to float32 rounding, and the
weights of inputs that are zero in every training sample never move."""

import copy

import numpy as np
import pytest
import torch

from qmu_core import data
from qmu_core.config import TrainConfig
from qmu_core.corruption import corrupt_dataset
from qmu_core.mlp import MLP
from qmu_core.training import active_inputs, train_mlp
from qmu_core.validation import ParameterError


@pytest.fixture(scope="module")
def xxz_flipped():
    ds = data.xxz("released_code", "fixed")
    return ds, corrupt_dataset(ds, 0.3, "label_flip", seed=5)


def test_active_inputs_of_arrays():
    x = np.zeros((3, 6), np.float32)
    x[0, 1], x[2, 4], x[1, 4] = 1.0, -2.0, 0.5
    assert active_inputs(x).tolist() == [1, 4]
    assert active_inputs(np.zeros((2, 3))).tolist() == []
    with pytest.raises(ParameterError, match=r"shape \(N, d\)"):
        active_inputs(np.zeros(4))


def test_active_inputs_of_the_xxz_states(xxz_flipped):
    ds, cs = xxz_flipped
    cols = active_inputs(data.as_real_features(cs.x))
    # the Sz = 0 sector of 12 spins, real amplitudes under the fixed gauge
    assert len(cols) == 924 and cols.max() < 4096
    fr = corrupt_dataset(ds, 0.3, "feature_random", seed=5)
    assert len(active_inputs(data.as_real_features(fr.x))) == 8192


def _params(net):
    return [p.detach().clone() for p in net.parameters()]


def test_zero_inputs_leave_their_weights_exactly_at_init(xxz_flipped):
    """The reason the narrow training is the same algorithm: in the full-width training, with
    Adam and no weight decay, the first-layer weights of inactive inputs stay bit-equal."""
    ds, cs = xxz_flipped
    cfg = TrainConfig(epochs=8, batch_size=32, lr=0.01)
    init = _params(MLP(8192, (64, 16)).reset_parameters(11))
    wide, _ = train_mlp(MLP(8192, (64, 16)), cs.x, cs.y, ds.x_val, ds.y_val, cfg, seed=11, narrow=False)
    inactive = np.setdiff1d(np.arange(8192), active_inputs(data.as_real_features(cs.x)))
    w0, w = init[0][:, inactive], wide.net[0].weight.detach()[:, inactive]
    assert torch.equal(w, w0)
    assert not torch.equal(wide.net[0].weight.detach(), init[0])  # the active ones trained


@pytest.mark.parametrize("name", ["xxz", "mnist"])
def test_narrow_training_equals_full_width_training(name, xxz_flipped):
    if name == "xxz":
        ds, cs = xxz_flipped
        x, y, xv, yv, hidden = cs.x, cs.y, ds.x_val, ds.y_val, (64, 16)
        cfg = TrainConfig(epochs=10, batch_size=32, lr=0.01, eval_every=5)
    else:
        ds = data.mnist_1v9(n_per_class=40, n_val=60)
        x, y, xv, yv, hidden = ds.x_train, ds.y_train, ds.x_val, ds.y_val, (16, 4)
        cfg = TrainConfig(epochs=10, batch_size=16, lr=0.01, eval_every=5)
    n_in = data.as_real_features(np.asarray(x[:1])).shape[1]
    assert len(active_inputs(data.as_real_features(x))) < n_in
    narrow, h1 = train_mlp(MLP(n_in, hidden), x, y, xv, yv, cfg, seed=2)
    wide, h2 = train_mlp(MLP(n_in, hidden), x, y, xv, yv, cfg, seed=2, narrow=False)
    for a, b in zip(narrow.parameters(), wide.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=2e-5)
    assert h1.epoch.tolist() == h2.epoch.tolist() == [5, 10]
    np.testing.assert_allclose(h1.train_loss, h2.train_loss, rtol=1e-4)
    np.testing.assert_allclose(h1.val_loss, h2.val_loss, rtol=1e-4)
    # the recorded metrics are the full net's, on the full inputs
    with torch.no_grad():
        z = narrow.logits(torch.from_numpy(data.as_real_features(xv)))
    assert h1.val_acc[-1] == pytest.approx(float(((z > 0).numpy() == (yv > 0.5)).mean()))


def test_narrow_flag_is_checked(xxz_flipped):
    ds, cs = xxz_flipped
    with pytest.raises(ParameterError, match="'narrow' must be True or False, got 'false'"):
        train_mlp(MLP(8192, (4, 2)), cs.x, cs.y, ds.x_val, ds.y_val, TrainConfig(1, 32, 0.01), seed=0,
                  narrow="false")


@pytest.mark.parametrize("name", ["finetune", "gradient_ascent", "scrub", "scrub_original"])
def test_narrow_learner_equals_full_width_learner(name, xxz_flipped):
    """The unlearning methods' MLP learner: narrow by default (full width where the method
    has weight decay: scrub_original), the same records as the full-width reference."""
    from qmu_core.unlearning import MLPLearner, Split, method, unlearn

    ds, cs = xxz_flipped
    net, _ = train_mlp(MLP(8192, (64, 16)), cs.x, cs.y, ds.x_val, ds.y_val, TrainConfig(5, 32, 0.01), seed=4)
    split = Split(cs.y, cs.y_clean, cs.forget, cs.retain, ds.y_val)
    m = method(name, epochs=4)
    sets = {"train": cs.x, "val": ds.x_val}
    narrow, wide = (MLPLearner(copy.deepcopy(net), sets, narrow=n) for n in (True, False))
    teacher = {"z": narrow.logits("train")}
    np.testing.assert_allclose(teacher["z"], wide.logits("train"), rtol=1e-5, atol=1e-6)
    recs = [unlearn(le, m, split, seed=3, teacher=teacher) for le in (narrow, wide)]
    assert recs[0]["val_acc"] == recs[1]["val_acc"] and recs[0]["train_acc"] == recs[1]["train_acc"]
    assert len(recs[0]["val_acc"]) == 5  # steps 0..4
    np.testing.assert_allclose(recs[0]["val_loss"], recs[1]["val_loss"], rtol=1e-4)
    np.testing.assert_allclose(narrow.params, wide.params, atol=2e-5)
    inactive = np.setdiff1d(np.arange(8192), active_inputs(data.as_real_features(cs.x)))
    w0, w = net.net[0].weight.detach()[:, inactive], narrow.net.net[0].weight.detach()[:, inactive]
    assert torch.equal(w, w0) == (name != "scrub_original")  # weight decay moves them
    with pytest.raises(ParameterError, match="'narrow'"):
        MLPLearner(net, sets, narrow="yes")
