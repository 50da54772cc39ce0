"""Numerical precision scopes shared by the float64 checks (tests, Hessian chapters)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


@contextmanager
def float64_scope() -> Iterator[None]:
    """float64 JAX and complex128 tensorcircuit (jax backend) inside, everything restored after.

    ``tc.set_dtype`` also flips JAX's global x64 flag, so the previous flag, tensorcircuit
    dtype and backend are all put back in ``finally``; nothing changes at import time.
    """
    import jax
    import tensorcircuit as tc

    old_dtype, old_backend = tc.dtypestr, tc.backend.name
    old_x64 = bool(jax.config.read("jax_enable_x64"))
    try:
        with jax.enable_x64(True):
            tc.set_backend("jax")
            tc.set_dtype("complex128")
            yield
    finally:
        tc.set_dtype(old_dtype)
        jax.config.update("jax_enable_x64", old_x64)
        tc.set_backend(old_backend)
