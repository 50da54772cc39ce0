"""Every path the project uses, in one place.

The repository root is found from this file's location so that the package works
from a source checkout (the book's case); caches can be redirected with the
environment variable ``QMU_CACHE_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parent
DATA_FILES = PACKAGE_DIR / "data_files"
NOTEBOOKS = ROOT / "notebooks"
BOOK = ROOT / "book"
RESULTS = ROOT / "results"
BENCHMARK_RESULTS = ROOT / "benchmarks" / "results"
BUILD_HTML = ROOT / "_build" / "html"
NBVAL_BASELINES = ROOT / "tests" / "nbval"


def cache_dir() -> Path:
    """Directory for recomputable artefacts (XXZ ground states, resumable sweeps)."""
    d = Path(os.environ.get("QMU_CACHE_DIR", ROOT / ".cache"))
    d.mkdir(parents=True, exist_ok=True)
    return d


def results_path(results_dir: str) -> Path:
    """A chapter's ``results_dir`` parameter: '' means the repository's results/."""
    return Path(results_dir) if results_dir else RESULTS


class ResultsDir:
    """For a chapter's parameter class with a ``results_dir`` field: the folder it names."""

    results_dir: str

    @property
    def results_path(self) -> Path:
        return results_path(self.results_dir)
