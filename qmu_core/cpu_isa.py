"""One instruction set for every numerical library, so small executions repeat across x86 CPUs.

The nbval baselines (``tests/nbval``) store printed numbers of short trainings. Those
numbers are exact on one machine, but measured to move between an Intel Xeon and an AMD
EPYC with the same code, seeds and packages (e.g. a glued accuracy 0.50 vs 0.49): each
library picks its kernels from the CPU it finds (vector width, blocking), float32 sums
then round differently, and training amplifies the last bit into a changed prediction.

:func:`pin` caps each library at AVX2, which every x86-64 CPU of the last decade has, and
which each library documents as a fixed code path:

* XLA (JAX): ``--xla_cpu_max_isa=AVX2`` caps the code it generates for the host;
* PyTorch: ``ATEN_CPU_CAPABILITY`` (its own vectorised kernels), ``MKL_CBWR`` (oneMKL's
  conditional numerical reproducibility: the same results on every CPU that has the
  branch) and ``ONEDNN_MAX_CPU_ISA`` (convolutions);
* NumPy/SciPy: ``OPENBLAS_CORETYPE`` picks OpenBLAS's Haswell kernels.

The variables are read when each library loads, so :func:`pin` must run before the first
import of jax, torch or numpy in a process: the test suite calls it at the top of
``tests/conftest.py`` (the nbval kernels inherit the environment), and ``python -m qmu_core
baselines`` before it starts a kernel. The book's paper-scale executions are not pinned.
What a process actually got is printed in pytest's header (:func:`describe`).
"""

from __future__ import annotations

import os
from typing import MutableMapping

XLA_FLAG = "--xla_cpu_max_isa=AVX2"

#: the variables :func:`pin` sets (a value already in the environment is kept)
PINNED = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
}


def pin(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the AVX2 caps in ``environ`` (default ``os.environ``); return the variables changed.

    A variable the caller already set is left as it is (so a user can pin another ISA);
    the XLA flag is appended to ``XLA_FLAGS`` unless that already names a max ISA.
    """
    env = os.environ if environ is None else environ
    changed = {}
    for key, value in PINNED.items():
        if key not in env:
            env[key] = changed[key] = value
    flags = env.get("XLA_FLAGS", "")
    if "--xla_cpu_max_isa" not in flags:
        env["XLA_FLAGS"] = changed["XLA_FLAGS"] = f"{flags} {XLA_FLAG}".strip()
    return changed


def describe(environ: MutableMapping[str, str] | None = None) -> str:
    """The pinned variables in force, one line (pytest's report header)."""
    env = os.environ if environ is None else environ
    pinned = ", ".join(f"{k}={env.get(k, '-')}" for k in PINNED)
    return f"{pinned}; XLA_FLAGS={env.get('XLA_FLAGS', '')}"
