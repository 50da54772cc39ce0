"""A QNN training's numbers are a function of its inputs alone: the same whether numba has just
compiled the CPU kernel or read it from its on-disk cache, and whatever the number of kernel
threads. Each training runs in a fresh process (about 25 s in all, most of it the one
compilation with an empty cache)."""

import os
import subprocess
import sys
from pathlib import Path

import qmu_core

ROOT = Path(qmu_core.__file__).resolve().parents[1]

SCRIPT = """
import numpy as np
from qmu_core.config import ModelSpec, TrainConfig
from qmu_core.training import qnn_kernel_name, train

rng = np.random.default_rng(0)
x = rng.standard_normal((64, 64))
x /= np.linalg.norm(x, axis=1, keepdims=True)
y = (x[:, 0] > 0).astype(np.float64)
cfg = TrainConfig(epochs=4, batch_size=16, lr=0.05, eval_every=2)  # 48 = 3 x 16
_, params, hist = train(ModelSpec("qnn", depth=3), x[:48], y[:48], x[48:], y[48:], cfg, seed=0)
print(qnn_kernel_name())
print(np.asarray(params).tobytes().hex())
for a in (hist.epoch, hist.train_loss, hist.train_acc, hist.val_loss, hist.val_acc):
    print(np.asarray(a).tobytes().hex())
"""


def _train(cache: Path, **extra) -> str:
    env = {k: v for k, v in os.environ.items() if k != "QMU_KERNEL_THREADS"}
    env.update(NUMBA_CACHE_DIR=str(cache), JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra)
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout


def test_training_is_the_same_with_a_cold_or_warm_kernel_cache_and_any_thread_count(tmp_path):
    cache = tmp_path / "numba"
    cache.mkdir()
    cold = _train(cache)  # compiles the kernel and fills the cache
    assert any(cache.rglob("*.nbi")), "the kernel was not cached"
    warm = _train(cache)  # loads it from the cache
    assert cold.splitlines()[0].startswith("adjoint")
    assert warm == cold
    assert _train(cache, QMU_KERNEL_THREADS="1") == cold
