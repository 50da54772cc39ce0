"""Old vs new: one run of the landscape chapter's (released_code, qnn) model, side by side.

The released notebook's QNN Hessian over [Re theta, Im theta] (200 x 200) was assembled from
2P = 200 forward-over-reverse columns (:func:`qmu_core.released_qnn.hessian_re_im_reference`);
it now comes from P = 100 holomorphic columns plus one forward Jacobian of the output state
(:func:`qmu_core.released_qnn.hessian_re_im`). This script computes the record of run 0 at
alpha = 0.3 (:func:`qmu_core.landscape_study.compute`, no cache) once with each Hessian, times
the Hessian alone (compiled, second call) with each, and writes
benchmarks/results/landscape_speed.json: date, machine, load average, old/new seconds and
ratio, and the largest difference of every number of the record. The same for one run of
(paper, mlp), whose Hessian diagonal (the trace) was n = 12 633 HVPs and is now the
Gauss-Newton diagonal from 100 per-sample gradients (:meth:`qmu_core.landscape.TorchLoss.diagonal`).

    PYTHONPATH=. python benchmarks/landscape_speed.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "landscape_speed.json"


@contextmanager
def old_hessian():
    """Within: :func:`hessian_re_im` is the former column-by-column implementation."""
    from qmu_core import released_qnn as RQ

    new = RQ.hessian_re_im
    RQ.hessian_re_im = lambda params, x, y: RQ.hessian_re_im_reference(params, x, y)
    try:
        yield
    finally:
        RQ.hessian_re_im = new


@contextmanager
def old_mlp_diagonal():
    """Within: the MLPs' Hessian diagonal is the former one from n HVPs."""
    from qmu_core.landscape import TorchLoss

    new = TorchLoss.diagonal
    TorchLoss.diagonal = TorchLoss.diagonal_hvp
    try:
        yield
    finally:
        TorchLoss.diagonal = new


def _timed(f, *a):
    t = time.perf_counter()
    out = f(*a)
    return out, time.perf_counter() - t


def differences(a: dict, b: dict) -> dict:
    """The largest |a[k] - b[k]| over every numeric field (lists elementwise) of two records."""
    out = {}
    for k, v in a.items():
        if k.startswith("seconds") or isinstance(v, (str, bool)) or v is None:
            continue
        x, y = np.asarray(v, np.float64), np.asarray(b[k], np.float64)
        out[k] = float(np.abs(x - y).max()) if x.size else 0.0
    return out


def main() -> None:
    from qmu_core import landscape_study as S
    from qmu_core import released_qnn as RQ
    from qmu_core.precision import float64_scope

    r = S.Run("released_code", "qnn", 0.3, 0)
    with old_hessian():
        rec_old, t_old = _timed(S.compute, r)
    rec_new, t_new = _timed(S.compute, r)
    s = S.sets(r)
    v = np.asarray(rec_new["params"]).reshape(5, 10, 2)
    hess = {}
    with float64_scope():
        for name, f in (("old", RQ.hessian_re_im_reference), ("new", RQ.hessian_re_im)):
            f(v, s.xh, s.yh)  # compiled; then the fastest of three calls (a shared machine)
            times = []
            for _ in range(3):
                hess[name], t = _timed(f, v, s.xh, s.yh)
                times.append(t)
            hess[f"t_{name}"] = min(times)
    diff = differences(rec_old, rec_new)
    rm = S.Run("paper", "mlp", 0.3, 0)
    with old_mlp_diagonal():
        mlp_old, tm_old = _timed(S.compute, rm)
    mlp_new, tm_new = _timed(S.compute, rm)
    dm = differences(mlp_old, mlp_new)
    res = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores",
           "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
           "run": r.identity() | {"setting": r.setting, "model": r.model},
           "compute_run_seconds": {"old": round(t_old, 2), "new": round(t_new, 2), "ratio": round(t_old / t_new, 2),
                                   "note": "old ran first and includes the training step's compilation"},
           "seconds_train": {"old": rec_old["seconds_train"], "new": rec_new["seconds_train"]},
           "hessian_seconds": {"old": round(hess["t_old"], 2), "new": round(hess["t_new"], 2),
                               "ratio": round(hess["t_old"] / hess["t_new"], 2)},
           "hessian_max_abs_difference": float(np.abs(hess["old"] - hess["new"]).max()),
           "record_max_abs_difference": max(diff.values()), "record_differences": diff,
           "paper_mlp": {"run": rm.identity(), "compute_run_seconds": {"old": round(tm_old, 2), "new": round(tm_new, 2),
                                                                       "ratio": round(tm_old / tm_new, 2)},
                         "record_max_abs_difference": max(dm.values()), "record_differences": dm}}
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
