"""The sweeps' MLP trainer (qmu_core.mlp_batched): R runs as one vmapped JAX program.

It must be ``train_mlp``'s algorithm (same initialisation, mini-batch order, smaller last
batch, loss, Adam, narrow first layer): in float64 its losses equal an independent torch
float64 training's to ~1e-12. A run's numbers must not depend on the runs it is batched
with (padding to a fixed size), and the sweep path must group runs by active inputs.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

from qmu_core import data, mlp_batched, sweep
from qmu_core.config import ModelSpec, TrainConfig
from qmu_core.corruption import corrupt_dataset
from qmu_core.mlp import MLP
from qmu_core.sweep import SweepSpec
from qmu_core.training import _widen, active_inputs
from qmu_core.validation import ParameterError

HIDDEN = (8, 4)


@pytest.fixture(scope="module")
def mnist():
    return data.mnist_1v9(n_per_class=20, n_val=30)


@pytest.fixture
def x64():
    old = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", old)


def torch_float64_training(x, y, x_val, y_val, cfg: TrainConfig, seed: int):
    """``training.train_mlp``'s loop written out in torch float64 (autograd, torch's Adam),
    on the active inputs; the loss and accuracy of the full sets (full first layer, the
    inactive inputs' weights at their initial values) after every epoch."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    cols = active_inputs(x)
    net = MLP(x.shape[1], HIDDEN).reset_parameters(seed).double()
    small = MLP(len(cols), HIDDEN).double()
    with torch.no_grad():
        for a, b in zip(small.parameters(), net.parameters()):
            a.copy_(b[:, torch.from_numpy(cols)] if a.shape != b.shape else b)
    opt = torch.optim.Adam(small.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(seed + 1)
    xa, yt = torch.from_numpy(np.ascontiguousarray(x[:, cols])), torch.from_numpy(y)
    xf = torch.from_numpy(x)
    xv, yv = torch.from_numpy(np.asarray(x_val, np.float64)), torch.from_numpy(np.asarray(y_val, np.float64))
    out = []
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(xa), generator=g)
        for i in range(0, len(xa), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(small.logits(xa[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        _widen(net, small, cols)
        with torch.no_grad():
            zt, zv = net.logits(xf), net.logits(xv)
            bce = torch.nn.functional.binary_cross_entropy_with_logits
            out.append((bce(zt, yt).item(), ((zt > 0).double() == yt).double().mean().item(),
                        bce(zv, yv).item(), ((zv > 0).double() == yv).double().mean().item()))
    return np.array(out)


def test_float64_equals_an_independent_torch_training(mnist, x64):
    """40 samples in batches of 16 (16 + 16 + 8: a smaller last batch), 6 epochs, metrics
    every 2 epochs (the program runs in chunks); three runs of one batch, padded to 5."""
    cfg = TrainConfig(epochs=6, batch_size=16, lr=0.02, eval_every=2)
    seeds = [3, 4, 5]
    sets = [corrupt_dataset(mnist, 0.3, "label_flip", seed=s) for s in seeds]
    # the validation images light pixels that no training image does: evaluated by the full net
    cols = active_inputs(np.asarray(sets[0].x))
    assert np.any(np.delete(np.asarray(mnist.x_val), cols, axis=1) != 0)
    hists = mlp_batched.train_mlp_batched(HIDDEN, [cs.x for cs in sets], np.stack([cs.y for cs in sets]),
                                          mnist.x_val, mnist.y_val, cfg, seeds, pad_to=5, dtype="float64")
    for cs, s, h in zip(sets, seeds, hists):
        ref = torch_float64_training(cs.x, cs.y, np.asarray(mnist.x_val), mnist.y_val, cfg, s)[1::2]
        assert h.epoch.tolist() == [2, 4, 6]
        mine = np.stack([h.train_loss, h.train_acc, h.val_loss, h.val_acc], 1)
        np.testing.assert_allclose(mine, ref, rtol=0, atol=1e-12)
    assert hists[0].train_loss[-1] < hists[0].train_loss[0]  # it trains


def test_a_runs_numbers_do_not_depend_on_its_batch(mnist):
    """float32: run 0 alone (padded), with two others, and at another position: equal bits."""
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.02)
    sets = [corrupt_dataset(mnist, a, "label_flip", seed=7) for a in (0.2, 0.4, 0.0)]
    xs, ys = [cs.x for cs in sets], np.stack([cs.y for cs in sets])

    def final(order):
        hs = mlp_batched.train_mlp_batched(HIDDEN, [xs[k] for k in order], ys[order], mnist.x_val,
                                           mnist.y_val, cfg, [10 + k for k in order])
        return {k: h.final for k, h in zip(order, hs)}

    alone = final([0])[0]
    assert final([0, 1, 2])[0] == alone
    assert final([2, 1, 0])[0] == alone
    assert final([1, 2])[1] == final([1])[1]


def test_sweep_batches_group_runs_by_active_inputs(mnist):
    """Feature randomisation at alpha = 0 leaves the blank pixels blank: those runs train in
    a program of their own, and each run's record equals its record computed alone."""
    spec = SweepSpec(ModelSpec("mlp", hidden=HIDDEN), "feature_random", (0.0, 0.5), 2,
                     TrainConfig(epochs=3, batch_size=16, lr=0.05))
    items = [(0.0, 0), (0.5, 0), (0.0, 1), (0.5, 1)]
    assert len({active_inputs(np.asarray(sweep._corrupted(mnist, spec, a, r).x)).size for a, r in items}) == 2
    together = sweep.run_batch(mnist, spec, items)
    for (a, r), rec in zip(items, together):
        one = sweep.run_one(mnist, spec, a, r)
        assert {k: v for k, v in one.items() if k != "seconds"} == {k: v for k, v in rec.items() if k != "seconds"}
    assert sweep.task_groups(spec, list(range(23))) == [list(range(10)), list(range(10, 20)), [20, 21, 22]]


def test_bad_input_is_named(mnist):
    cfg = TrainConfig(epochs=1, batch_size=16, lr=0.02)
    x, y = np.asarray(mnist.x_train), np.asarray(mnist.y_train)
    with pytest.raises(ParameterError, match="R seeds"):
        mlp_batched.train_mlp_batched(HIDDEN, [x], y[None], mnist.x_val, mnist.y_val, cfg, [1, 2])
    with pytest.raises(ParameterError, match="dtype"):
        mlp_batched.train_mlp_batched(HIDDEN, [x], y[None], mnist.x_val, mnist.y_val, cfg, [1], dtype="float16")
    if not jax.config.read("jax_enable_x64"):
        with pytest.raises(ParameterError, match="x64"):
            mlp_batched.train_mlp_batched(HIDDEN, [x], y[None], mnist.x_val, mnist.y_val, cfg, [1], dtype="float64")
    other = x.copy()
    other[:, np.flatnonzero(~np.any(x != 0, axis=0))[:1]] = 1.0  # one more active input
    with pytest.raises(ParameterError, match="active inputs"):
        mlp_batched.train_mlp_batched(HIDDEN, [x, other], np.stack([y, y]), mnist.x_val, mnist.y_val, cfg, [1, 2])
    with pytest.raises(ParameterError, match="adam"):
        from dataclasses import replace
        mlp_batched.train_mlp_batched(HIDDEN, [x], y[None], mnist.x_val, mnist.y_val, replace(cfg, adam="keras"), [1])
