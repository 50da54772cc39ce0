"""Where the pipeline reads the chapter sources and writes executed chapters and results.

The defaults are the repository's folders (:mod:`qmu_core.paths`); the command-line options
``--notebooks-dir``/``--book-dir``/``--results-dir`` and the matching environment variables
send an execution elsewhere (the tests, trial runs at small scale).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .. import paths


@dataclass(frozen=True)
class Locations:
    """The folders of one invocation: source notebooks, executed chapters, results."""

    notebooks: Path = paths.NOTEBOOKS
    book: Path = paths.BOOK
    results: Path | None = None  # None: the chapters' own default (paths.RESULTS)
    root: Path = paths.ROOT

    @classmethod
    def from_env(
        cls,
        notebooks: str | os.PathLike | None = None,
        book: str | os.PathLike | None = None,
        results: str | os.PathLike | None = None,
    ) -> "Locations":
        """Explicit arguments win over ``QMU_NOTEBOOKS_DIR``/``QMU_BOOK_DIR``/``QMU_RESULTS_DIR``."""
        nb = notebooks or os.environ.get("QMU_NOTEBOOKS_DIR") or paths.NOTEBOOKS
        bk = book or os.environ.get("QMU_BOOK_DIR") or paths.BOOK
        rs = results or os.environ.get("QMU_RESULTS_DIR") or None
        return cls(
            notebooks=Path(nb).resolve(),
            book=Path(bk).resolve(),
            results=Path(rs).resolve() if rs else None,
        )

    @property
    def results_dir(self) -> Path:
        """Where ``timings.csv`` goes: ``results`` if given, else the repository's results/."""
        return self.results if self.results is not None else paths.RESULTS

    @property
    def is_default_book(self) -> bool:
        """True when executed chapters go to the repository's book/ (the only one ever built)."""
        return self.book.resolve() == paths.BOOK.resolve()


def shown(p: str | os.PathLike) -> str:
    """``p`` relative to the working folder when it lies below it (shorter messages), else as is."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)
