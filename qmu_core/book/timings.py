"""How long an execution took, on what machine, with which packages: ``timings.csv``.

``run`` records one row per chapter (replaced at each execution) in
``<results>/timings.csv``; the reproduction notes chapter reads it.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import os
import platform
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import paths
from ..io import atomic_write_text
from .registry import CHAPTERS

TIMINGS_FILE = "timings.csv"
TIMINGS_COLUMNS = [
    "chapter",  # registry name
    "seconds",  # wall-clock time of the papermill execution
    "machine",  # CPU model, OS, architecture
    "cpu_count",  # CPUs usable by the process
    "date",  # end of the execution, UTC, ISO 8601
    "parameters",  # JSON: the parameters of the execution (defaults updated with overrides)
    "overridden",  # JSON list: the names given on the command line
    "versions",  # python and the numerical packages
]
VERSION_PACKAGES = ["numpy", "scipy", "jax", "jaxlib", "numba", "tensorcircuit-ng", "torch", "qmu"]


def utc_now() -> str:
    """The current UTC time, ISO 8601, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def human_seconds(s: float) -> str:
    """A duration as a person would write it: seconds, minutes or hours."""
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def machine_description() -> str:
    """CPU model, OS and architecture of this machine."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu or 'unknown CPU'}; {platform.system()} {platform.release()} {platform.machine()}"


def cpu_count() -> int:
    """CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def package_versions() -> str:
    """``python=3.11.2; numpy=...; ...`` for Python and the numerical packages installed."""
    parts = [f"python={platform.python_version()}"]
    for pkg in VERSION_PACKAGES:
        try:
            parts.append(f"{pkg}={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return "; ".join(parts)


def record_timing(
    results_dir: Path,
    chapter: str,
    seconds: float,
    parameters: Mapping[str, Any],
    overridden: Sequence[str],
    date: str,
) -> Path:
    """Replace ``chapter``'s row of ``results_dir/timings.csv`` (atomic, under a lock).

    ``parameters``: every parameter's value in this execution; ``overridden``: the names
    given on the command line.
    """
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / TIMINGS_FILE
    row = {
        "chapter": chapter,
        "seconds": f"{seconds:.1f}",
        "machine": machine_description(),
        "cpu_count": str(cpu_count()),
        "date": date,
        "parameters": json.dumps(dict(parameters), default=repr, separators=(",", ":")),
        "overridden": json.dumps(list(overridden)),
        "versions": package_versions(),
    }
    # Two chapters executed at once (one per core) both rewrite the file: the lock keeps
    # either one's row from being lost between read and rename.
    with _locked(paths.cache_dir() / "timings.lock"):
        rows = []
        if path.exists():
            with open(path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if r.get("chapter") != chapter]
        rows.append(row)
        order = {name: i for i, name in enumerate(CHAPTERS)}
        rows.sort(key=lambda r: order.get(r.get("chapter", ""), len(order)))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=TIMINGS_COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        atomic_write_text(path, buf.getvalue())
    return path


@contextlib.contextmanager
def _locked(lockfile: Path):
    import fcntl

    with open(lockfile, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
