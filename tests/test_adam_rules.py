"""The two forms of Adam (TrainConfig.adam): optax's and Keras's (the released code's)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qmu_core import adjoint, data, qnn
from qmu_core.config import ModelSpec, TrainConfig
from qmu_core.qnn import QNN
from qmu_core.sweep import SweepSpec, cache_key
from qmu_core.training import _qnn_trainer, keras_adam, qnn_kernel_name, train, train_qnn
from qmu_core.validation import ParameterError


def keras_reference(grads, lr, b1=0.9, b2=0.999, eps=1e-7):
    """Keras's Adam as its source writes it, in float64: m, v uncorrected, the step size
    lr sqrt(1 - b2^t) / (1 - b1^t), eps added to sqrt(v)."""
    p = np.zeros_like(grads[0], dtype=np.float64)
    m, v = np.zeros_like(p), np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        p -= m * (lr * np.sqrt(1 - b2**t) / (1 - b1**t)) / (np.sqrt(v) + eps)
    return p


def test_keras_adam_follows_keras_and_differs_from_optax_on_small_gradients():
    rng = np.random.default_rng(0)
    # gradients near eps (the QNN's start), then ordinary ones
    grads = [rng.normal(scale=s, size=7) for s in (1e-6, 3e-6, 1e-5, 1e-3, 1e-2, 0.1)]
    opt = keras_adam(0.03)
    p, state = jnp.zeros(7), opt.init(jnp.zeros(7))
    for g in grads:
        u, state = opt.update(jnp.asarray(g), state)
        p = p + u
    # float32 (JAX's default) against float64
    np.testing.assert_allclose(np.asarray(p), keras_reference(grads, 0.03), rtol=1e-4, atol=1e-9)
    o = optax.adam(0.03)
    q, s = jnp.zeros(7), o.init(jnp.zeros(7))
    for g in grads:
        u, s = o.update(jnp.asarray(g), s)
        q = q + u
    # optax's eps is 300x smaller at step 1: its steps on the tiny gradients are larger
    assert np.abs(np.asarray(q) - np.asarray(p)).max() > 1e-3


def test_the_host_trainer_applies_the_same_keras_rule_as_xla():
    # CPU training runs the adjoint kernel's host loop; accelerators the XLA program
    ds = data.xxz_dataset([-0.5, 0.0, 1.5, 2.5], [0.5, 2.0], L=4)
    model = QNN(4, 2)
    cfg = TrainConfig(3, 2, 0.05, adam="keras")
    assert qnn_kernel_name() == adjoint.KERNEL  # the test machine is a CPU
    host = train_qnn(model, ds.x_train, ds.y_train, ds.x_val, ds.y_val, cfg, seed=1)[0]
    init, epoch, _ = _qnn_trainer(model, cfg, 4, qnn.KERNEL)
    key = jax.random.PRNGKey(1)
    k_init, key = jax.random.split(key)  # as train_qnn draws its initial angles
    p = model.init(k_init)
    state = init(p)
    for _ in range(cfg.epochs):
        p, state, key = epoch(p, state, key, jnp.asarray(ds.x_train), jnp.asarray(ds.y_train, jnp.float32))
    np.testing.assert_allclose(np.asarray(host), np.asarray(p), rtol=1e-4, atol=1e-6)
    optax_run = train_qnn(model, ds.x_train, ds.y_train, ds.x_val, ds.y_val, TrainConfig(3, 2, 0.05), seed=1)[0]
    assert np.abs(np.asarray(optax_run) - np.asarray(host)).max() > 1e-3


def test_adam_rule_is_validated_and_keyed():
    with pytest.raises(ParameterError, match="'adam'"):
        TrainConfig(10, 8, 0.01, adam="sgd")
    ds = data.xxz_dataset([-0.5, 1.5], [0.0, 2.0], L=4)
    with pytest.raises(ParameterError, match="QNN only"):
        train(ModelSpec("mlp", hidden=(2, 2)), ds.x_train, ds.y_train, ds.x_val, ds.y_val,
              TrainConfig(1, 2, 0.01, adam="keras"), seed=0)
    base = SweepSpec(ModelSpec("qnn", depth=2), "label_flip", (0.0,), 1, TrainConfig(2, 2, 0.01))
    keras = SweepSpec(ModelSpec("qnn", depth=2), "label_flip", (0.0,), 1, TrainConfig(2, 2, 0.01, adam="keras"))
    assert cache_key(ds, base) != cache_key(ds, keras)
    # scaling the epochs keeps the rule
    assert TrainConfig(200, 32, 0.03, adam="keras").scaled(0.1).adam == "keras"
