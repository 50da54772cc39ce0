"""Build ``qmu_core/data_files/published_fig3.csv`` from the authors' Fig. 3 data files.

Provenance: the authors' repository github.com/yutuer21/quantum-machine-unlearning (MIT
licence; archived at doi:10.5281/zenodo.18641024), files ``data/fig3a_mnist_mlp_y.npy``,
``data/fig3a_mnist_qnn_y.npy``, ``data/fig3b_xxz_mlp_y.npy`` and ``data/fig3b_xxz_qnn_y.npy``
(SHA-256 below). Each is an object array of shape (4, 5, 50): axis 0 the methods (Retrain,
Finetune, SCRUB, gradient ascent: the order of ``np.save(..., [resultre, resultcf, resultsc,
resultga])`` in ``run_unlearn_*.py``), axis 1 the 5 runs, axis 2 the steps 0..49 (the code
evaluates before each of its 50 epochs), each entry a dict with ``train_acc``, ``val_acc``,
``retain_acc`` and ``forget_acc``. The QNN entries hold JAX scalars.

Those files are pickles, which can run code: they are read here once, with a *whitelist*
unpickler that rebuilds numpy arrays only (a JAX array is rebuilt as the numpy array it
pickles); the package reads only the CSV (checked against ``published_fig3.sha256``).

Usage::

    python scripts/extract_published_fig3.py DIR   # DIR holds the four .npy files
"""

from __future__ import annotations

import csv
import io
import pickle
import sys
from pathlib import Path

import numpy as np
import numpy.lib.format as npformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from qmu_core.io import atomic_write_text, sha256_file  # noqa: E402

OUT = ROOT / "qmu_core" / "data_files" / "published_fig3.csv"
SOURCES = {  # file: (figure, dataset, model)
    "fig3a_mnist_mlp_y.npy": ("3a", "mnist", "mlp"),
    "fig3a_mnist_qnn_y.npy": ("3a", "mnist", "qnn"),
    "fig3b_xxz_mlp_y.npy": ("3b", "xxz", "mlp"),
    "fig3b_xxz_qnn_y.npy": ("3b", "xxz", "qnn"),
}
#: axis 0 of every file, in our method names (the code's modes retrain, cf, scrub, ga)
METHODS = ("retrain", "finetune", "scrub", "gradient_ascent")
METRICS = ("train_acc", "val_acc", "retain_acc", "forget_acc")
COLUMNS = ["figure", "dataset", "model", "method", "run", "step", *METRICS]


def _reconstruct_jax_array(fun, args, arr_state, aval_state):
    """Stands in for ``jax._src.array._reconstruct_array``: the numpy array that a pickled JAX
    array carries (``fun`` is numpy's ``_reconstruct``, already whitelisted)."""
    a = fun(*args)
    a.__setstate__(arr_state)
    return np.asarray(a)


class _WhitelistUnpickler(pickle.Unpickler):
    _ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) == ("jax._src.array", "_reconstruct_array"):
            return _reconstruct_jax_array
        if (module, name) in self._ALLOWED:
            return super().find_class(module.replace("numpy.core", "numpy._core"), name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load(path: Path) -> np.ndarray:
    """The object array of one ``.npy`` file, read with the whitelist unpickler."""
    with open(path, "rb") as f:
        version = npformat.read_magic(f)
        shape, _, dtype = (npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0)(f)
        if dtype != np.dtype(object):
            raise SystemExit(f"{path}: expected an object array, got {dtype}")
        arr = _WhitelistUnpickler(io.BytesIO(f.read())).load()
    arr = np.asarray(arr, dtype=object).reshape(shape)
    if arr.shape != (4, 5, 50):
        raise SystemExit(f"{path}: shape {arr.shape}, expected (4, 5, 50)")
    return arr


def main(src: str) -> None:
    rows, digests = [], {}
    for name, (fig, ds, model) in SOURCES.items():
        path = Path(src) / name
        digests[name] = sha256_file(path)
        arr = load(path)
        for i, m in enumerate(METHODS):
            for run in range(arr.shape[1]):
                for step in range(arr.shape[2]):
                    e = arr[i, run, step]
                    if set(e) != set(METRICS):
                        raise SystemExit(f"{name}[{i},{run},{step}]: keys {sorted(e)}")
                    rows.append([fig, ds, model, m, run, step] + [repr(float(np.asarray(e[k]))) for k in METRICS])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    w.writerows(rows)
    atomic_write_text(OUT, buf.getvalue())
    atomic_write_text(OUT.with_suffix(".sha256"), sha256_file(OUT) + "  " + OUT.name + "\n")
    print(f"wrote {OUT} ({len(rows)} rows), sha256 {sha256_file(OUT)}")
    for name, d in digests.items():
        print(f"- {name:<22} {d}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
