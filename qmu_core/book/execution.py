"""Executing a notebook with papermill, atomically: the destination is replaced only on success.

A failed execution leaves the destination as it was and is kept in ``.cache/failed/``
(outside the book) for its traceback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat

from .. import paths
from ..io import atomic_write_text
from .errors import ChapterFailed

KERNEL_NAME = "python3"


@contextlib.contextmanager
def quiet_papermill():
    """Papermill's INFO log (one line per cell) off the terminal, for the duration."""
    import logging

    log = logging.getLogger("papermill")
    old = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(old)


def _execute(src: Path, out: Path, parameters: dict[str, Any], cwd: Path, progress: bool) -> None:
    import papermill as pm

    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # no debugpy noise
    with quiet_papermill():
        pm.execute_notebook(
            str(src),
            str(out),
            parameters=parameters,
            kernel_name=KERNEL_NAME,
            progress_bar=progress,
            cwd=str(cwd),
            log_output=False,
            # keep the kernel's own log (e.g. its warning about TCP transport) off the terminal
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )


def execute_atomically(
    chapter: str, src: Path, dest: Path, parameters: dict[str, Any], cwd: Path,
    progress: bool, finish: Callable[[Any, float], None],
) -> float:
    """Execute ``src`` with ``parameters`` (kernel in ``cwd``) into ``dest``; the seconds it took.

    The notebook is executed into a hidden file beside ``dest``; ``finish(nb, seconds)``
    edits the result, which is then renamed onto ``dest``. On failure ``dest`` is left as it
    was, the failed notebook is kept in ``.cache/failed/`` and :class:`ChapterFailed` says
    which cell raised what.
    """
    from papermill.exceptions import PapermillExecutionError

    dest.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.stem}.", suffix=".running.ipynb")
    os.close(fd)
    tmp = Path(tmp_name)
    t0 = time.perf_counter()
    try:
        try:
            _execute(src, tmp, parameters, cwd, progress)
        except PapermillExecutionError as exc:  # a cell raised
            kept = _keep_failed(tmp, dest)
            raise ChapterFailed(chapter, exc.ename, _shortened(exc.evalue), exc.cell_index, kept) from None
        except Exception as exc:  # the kernel died, a cell timed out, ...
            kept = _keep_failed(tmp, dest)
            raise ChapterFailed(chapter, type(exc).__name__, _shortened(exc), None, kept) from None
        seconds = time.perf_counter() - t0
        nb = nbformat.read(str(tmp), as_version=4)
        finish(nb, seconds)
        atomic_write_text(dest, nbformat.writes(nb) + "\n")
        return seconds
    finally:
        if tmp.exists():
            tmp.unlink()


def _keep_failed(tmp: Path, dest: Path) -> Path | None:
    """Move a failed execution to ``.cache/failed/`` (outside the book) for its traceback."""
    if not (tmp.exists() and tmp.stat().st_size):
        return None
    failed_dir = paths.cache_dir() / "failed"
    failed_dir.mkdir(parents=True, exist_ok=True)
    kept = failed_dir / dest.name
    shutil.move(str(tmp), kept)
    return kept


def _shortened(text: str, limit: int = 500) -> str:
    """``text`` stripped, cut after ``limit`` characters (an error message in one screen)."""
    text = str(text).strip()
    return text if len(text) <= limit else text[:limit] + "..."
