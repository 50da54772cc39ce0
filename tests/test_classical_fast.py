"""The CNN and ResNet trainings (:func:`qmu_core.classical._train_torch`) against the former
one (:func:`qmu_core.classical._train_torch_reference`).

The ResNet trains by the reference itself: bit-identical. The CNN trains on channels-last
tensors, pooling before its ReLU, with fused Adam: same initial parameters and minibatches,
other rounding in the convolutions and in Adam, so its gradients agree with the reference's
to float32 rounding (``GRAD_RTOL``) and its trained parameters to that rounding as training
carries it (``PARAM_ATOL``, on 64 images and 2 epochs), not bit for bit; hence its sweep
cache key names the arithmetic (``TORCH_KERNEL``).
"""

import numpy as np
import pytest
import torch
from torch import nn

from qmu_core import classical, data, sweep
from qmu_core.config import ModelSpec, TrainConfig
from qmu_core.validation import ParameterError

GRAD_RTOL = 1e-5  # of each tensor's largest gradient; measured <= 2.2e-6
PARAM_ATOL = 2e-6  # measured <= 5.2e-7 (2 Adam steps of lr 1e-3)
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def tiny():
    return data.mnist_1v9(n_per_class=32, n_val=50)


@pytest.fixture()
def short(monkeypatch):
    """Two-epoch, narrow settings of both torch families (a test-sized training)."""
    for fam in classical.IMAGE_FAMILIES:
        desc, _, alt = classical.FAMILIES[fam]
        monkeypatch.setitem(classical.FAMILIES, fam, (desc, {"epochs": 2, "width": 4}, alt))


def _state(net):
    return {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


def _flipped(tiny):
    y = tiny.y_train.copy()
    y[:8] = 1 - y[:8]  # a few flipped labels, as in the sweeps
    return y


def test_cnn_gradients_agree_with_the_reference(tiny, short):
    spec = classical.ClassicalSpec("cnn")
    x = classical._images(tiny.x_train) * 28.0
    y = torch.from_numpy(tiny.y_train.astype(np.float32))
    for seed in SEEDS:
        grads = []
        for fast in (False, True):
            torch.manual_seed(seed)
            net, xx = classical.torch_model(spec), x
            if fast:
                net = classical._pool_before_relu(net).to(memory_format=torch.channels_last)
                xx = x.contiguous(memory_format=torch.channels_last)
            nn.functional.binary_cross_entropy_with_logits(net(xx), y).backward()
            grads.append({k: p.grad for k, p in net.named_parameters()})
        for k, g in grads[0].items():
            assert float((grads[1][k] - g).abs().max()) <= GRAD_RTOL * float(g.abs().max()), (seed, k)


def test_cnn_training_agrees_with_the_reference(tiny, short):
    spec, y = classical.ClassicalSpec("cnn"), _flipped(tiny)
    for seed in SEEDS:
        ref = _state(classical._train_torch_reference(spec, tiny.x_train, y, seed))
        fast = _state(classical._train_torch(spec, tiny.x_train, y, seed))
        assert 0 < _max_diff(ref, fast) < PARAM_ATOL, seed  # > 0: the rounding differs, as the key says
        a = classical.fit_evaluate(spec, tiny.x_train, y, tiny.x_val, tiny.y_val, seed, reference=True)
        b = classical.fit_evaluate(spec, tiny.x_train, y, tiny.x_val, tiny.y_val, seed)
        assert a == b, seed


def test_resnet_training_is_the_reference(tiny, short):
    spec, y = classical.ClassicalSpec("resnet"), _flipped(tiny)
    ref = _state(classical._train_torch_reference(spec, tiny.x_train, y, 1))
    assert _max_diff(ref, _state(classical._train_torch(spec, tiny.x_train, y, 1))) == 0.0
    assert classical.fit_evaluate(spec, tiny.x_train, y, tiny.x_val, tiny.y_val, 1, reference=True) == \
        classical.fit_evaluate(spec, tiny.x_train, y, tiny.x_val, tiny.y_val, 1)


@pytest.mark.parametrize("family", classical.IMAGE_FAMILIES)
def test_fast_training_is_deterministic(tiny, short, family):
    spec = classical.ClassicalSpec(family)
    a = _state(classical._train_torch(spec, tiny.x_train, tiny.y_train, 5))
    b = _state(classical._train_torch(spec, tiny.x_train, tiny.y_train, 5))
    assert _max_diff(a, b) == 0.0


def test_pooling_before_relu_changes_no_bit(tiny, short):
    # the swap alone, in the reference's arithmetic (NCHW, for-loop Adam): identical training
    spec = classical.ClassicalSpec("cnn")
    ref = _state(classical._train_torch_reference(spec, tiny.x_train, tiny.y_train, 4))
    torch.manual_seed(4)
    net = classical._pool_before_relu(classical.torch_model(spec))
    xt = classical._images(tiny.x_train) * 28.0
    yt = torch.from_numpy(tiny.y_train.astype(np.float32))
    classical._fit(spec, net, torch.optim.Adam(net.parameters(), lr=classical.TORCH_LR), xt, yt, 4)
    assert _max_diff(ref, _state(net)) == 0.0


def test_cache_key_names_the_cnn_arithmetic(tiny, monkeypatch):
    def key(kind):
        cfg = TrainConfig(20, classical.TORCH_BATCH, classical.TORCH_LR)
        return sweep.cache_key(tiny, sweep.SweepSpec(ModelSpec(kind), "label_flip", (0.0,), 1, cfg))

    before = {k: key(k) for k in ("cnn", "resnet", "linear_svm")}
    monkeypatch.setitem(classical.TORCH_KERNEL, "cnn", "another")
    assert key("cnn") != before["cnn"]
    assert key("resnet") == before["resnet"] and key("linear_svm") == before["linear_svm"]
    monkeypatch.setitem(classical.TORCH_KERNEL, "cnn", None)  # the reference: the key before the change
    assert key("cnn") != before["cnn"]


def test_reference_must_be_a_bool(tiny):
    with pytest.raises(ParameterError, match="reference"):
        classical.fit_evaluate(classical.ClassicalSpec("cnn"), tiny.x_train, tiny.y_train, tiny.x_val,
                               tiny.y_val, 0, reference="yes")
