"""What the command line does: run chapters into the book, re-make the nbval baselines,
refresh an executed chapter's prose. Each is also callable from Python (the tests do).

A chapter is a notebook ``notebooks/<name>.ipynb`` (the source) registered in
:mod:`qmu_core.book.registry`. ``run`` executes it with papermill into ``book/<name>.ipynb``
(the executed copy the book is built from); ``baselines`` executes every chapter with its
small ``ci`` parameters into ``tests/nbval/<name>.ipynb`` for nbval to re-execute and
compare. Parameter names and values are checked before any kernel starts.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat

from .. import cpu_isa, paths
from ..io import atomic_write_text
from .build import build_book, toc_chapters
from .cells import present_parameters, staleness, strip_execution_metadata, with_new_prose
from .errors import ChapterFailed, ParametersRefused, PipelineError, UsageError
from .execution import execute_atomically
from .locations import Locations, shown
from .parameters import (check_names, check_values, effective_values, inspect_parameters,
                         parameters_markdown)
from .registry import CHAPTERS, execution_order, get_chapter
from .timings import cpu_count, human_seconds, machine_description, record_timing, utc_now

#: where the ci executions write their results: the git-ignored .cache/. The baselines get
#: it as a path relative to their own folder (the kernel's cwd both when they are made and
#: when nbval re-executes them), so they do not depend on where the repository lies.
NBVAL_RESULTS_DIR = ".cache/nbval-results"


def run_chapter(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    loc: Locations | None = None,
    build: bool = True,
    progress: bool = True,
) -> float:
    """Execute a chapter into the book; returns the execution time in seconds.

    Unknown parameter names and values its parameter class refuses are refused before any
    kernel starts. On success the executed notebook replaces ``<book>/<name>.ipynb``, its
    time is recorded in ``timings.csv`` and (``build=True``, default book only) the HTML is
    rebuilt.
    """
    loc = loc or Locations.from_env()
    ch = get_chapter(name)
    src = loc.notebooks / ch.notebook
    if not src.exists():
        raise UsageError(f"chapter '{name}': its notebook {shown(src)} does not exist yet")
    params = inspect_parameters(src)
    overrides = dict(overrides or {})
    check_names(name, overrides, params)
    if loc.results is not None and "results_dir" not in overrides:
        if "results_dir" in params:
            overrides["results_dir"] = str(loc.results)
        else:
            print(f"note: chapter '{name}' has no results_dir parameter; it writes its results "
                  "where it always does", file=sys.stderr)
    check_values(ch, params, overrides)
    date_holder: dict[str, str] = {}

    def finish(nb, seconds: float) -> None:
        date = date_holder["date"] = utc_now()
        md = parameters_markdown(name, params, overrides, seconds=seconds, date=date[:10],
                                 machine=f"{cpu_count()} CPU(s), {machine_description()}")
        present_parameters(nb, md)

    dest = loc.book / ch.notebook
    seconds = execute_atomically(name, src, dest, overrides, loc.book, progress, finish)
    record_timing(loc.results_dir, name, seconds, effective_values(params, overrides), list(overrides),
                  date_holder["date"])
    print(f"{name}: executed in {human_seconds(seconds)} -> {shown(dest)}", file=sys.stderr)
    if build:
        if loc.is_default_book:
            build_book()
        else:
            print("note: --book-dir is not the book's own folder; not rebuilding the HTML", file=sys.stderr)
    return seconds


def run_all(*, loc: Locations | None = None, build: bool = True, progress: bool = True) -> dict[str, float]:
    """Every chapter at its defaults, in the order of the table of contents except that a
    chapter runs after those whose results it reads (:func:`registry.execution_order`),
    then one build."""
    loc = loc or Locations.from_env()
    missing = [n for n, ch in CHAPTERS.items() if not (loc.notebooks / ch.notebook).exists()]
    if missing:
        raise UsageError(f"notebooks not written yet for: {', '.join(missing)}")
    times, failures = {}, []
    for name in execution_order(toc_chapters()):
        try:
            times[name] = run_chapter(name, {}, loc=loc, build=False, progress=progress)
        except (ChapterFailed, ParametersRefused) as exc:
            print(f"error: {exc}", file=sys.stderr)
            failures.append(name)
    if build and loc.is_default_book:
        build_book()
    if failures:
        raise PipelineError(f"chapters that failed: {', '.join(failures)}")
    return times


def make_baselines(names: Sequence[str] | None = None, *, loc: Locations | None = None,
                   out_dir: Path | None = None, progress: bool = True) -> list[Path]:
    """Execute chapters with their ``ci`` parameters into ``tests/nbval/<name>.ipynb``.

    The kernel runs in the baseline folder (as nbval's does) and the chapters' results go
    to ``.cache/nbval-results/<name>`` through their ``results_dir`` parameter, never to
    ``results/``. The injected ci parameters stay in the baseline, so nbval re-executes the
    notebook exactly as stored. Every chosen chapter's ci parameters are checked before the
    first one is executed.
    """
    loc = loc or Locations.from_env()
    out_dir = Path(out_dir or paths.NBVAL_BASELINES)
    if names:
        chosen = list(names)
        for n in chosen:
            get_chapter(n)
        missing = [n for n in chosen if not (loc.notebooks / CHAPTERS[n].notebook).exists()]
        if missing:
            raise UsageError(f"notebooks not written yet for: {', '.join(missing)}")
    else:
        chosen = [n for n, ch in CHAPTERS.items() if (loc.notebooks / ch.notebook).exists()]
        skipped = [n for n in CHAPTERS if n not in chosen]
        if skipped:
            print(f"note: no notebook yet for {', '.join(skipped)}; no baseline made", file=sys.stderr)
    planned = []
    for name in chosen:
        ch = CHAPTERS[name]
        params = inspect_parameters(loc.notebooks / ch.notebook)
        ci = dict(ch.ci)
        check_names(name, ci, params)
        if "results_dir" in params:
            scratch = paths.ROOT / NBVAL_RESULTS_DIR / name
            ci.setdefault("results_dir", os.path.relpath(scratch, out_dir.resolve()))
        else:
            print(f"note: chapter '{name}' has no results_dir parameter: if it writes results, "
                  "its ci execution writes them to the usual place", file=sys.stderr)
        check_values(ch, params, ci)
        planned.append((name, ci))
    cpu_isa.pin()  # the kernels inherit it, as nbval's do under tests/conftest.py

    def finish(nb, seconds):
        strip_execution_metadata(nb)
        nb.metadata["qmu"] = {"recorded_on": machine_description(), "pinned": cpu_isa.describe()}

    written = []
    for name, ci in planned:
        dest = out_dir / CHAPTERS[name].notebook
        seconds = execute_atomically(name, loc.notebooks / CHAPTERS[name].notebook, dest, ci, out_dir,
                                     progress, finish)
        print(f"{name}: baseline executed in {human_seconds(seconds)} -> {shown(dest)}", file=sys.stderr)
        written.append(dest)
    return written


def refresh_prose(name: str, *, loc: Locations | None = None, build: bool = False) -> Path:
    """Copy the markdown cells of the source into the executed chapter, without executing.

    Allowed only while the code cells are unchanged (otherwise the chapter must be run):
    this brings a corrected sentence into the book without rerunning a long chapter.
    """
    loc = loc or Locations.from_env()
    ch = get_chapter(name)
    src_path, book_path = loc.notebooks / ch.notebook, loc.book / ch.notebook
    if not book_path.exists():
        raise UsageError(f"chapter '{name}' has not been executed into {shown(book_path)} yet")
    problems = staleness(book_path, src_path)
    if problems:
        raise PipelineError(
            f"chapter '{name}': the code changed, run it again "
            f"(python -m qmu_core run {name}): " + "; ".join(problems)
        )
    src = nbformat.read(str(src_path), as_version=4)
    book = nbformat.read(str(book_path), as_version=4)
    book.cells = with_new_prose(book, src)
    atomic_write_text(book_path, nbformat.writes(book) + "\n")
    if build and loc.is_default_book:
        build_book()
    return book_path
