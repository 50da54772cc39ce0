"""The book pipeline: list, run and build the chapters, regenerate the nbval baselines.

A chapter is a notebook ``notebooks/<name>.ipynb`` (the source) registered in
:mod:`qmu_core.chapters`. ``run`` executes it with papermill into ``book/<name>.ipynb``
(the executed copy the book is built from); ``build`` turns ``book/`` into HTML with
Jupyter Book; ``baselines`` executes every chapter with its small ``ci`` parameters into
``tests/nbval/<name>.ipynb`` for nbval to re-execute and compare.

The command line is in :mod:`qmu_core.__main__`; everything here can also be called from
Python (the tests do).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import csv
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat

from . import paths
from .chapters import CHAPTERS, Chapter
from .io import atomic_write_text

#: tags papermill gives the cell it injects and the cell holding the defaults
INJECTED_TAG = "injected-parameters"
PARAMETERS_TAG = "parameters"
#: tag of the markdown cell that shows the parameters of an execution (added by ``run``)
DISPLAY_TAG = "qmu-parameters"
#: myst-nb tag that removes a cell from the HTML page (it stays in the notebook)
REMOVE_TAG = "remove-cell"

KERNEL_NAME = "python3"
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
#: where the ci executions write their results: the git-ignored .cache/. The baselines get
#: it as a path relative to their own folder (the kernel's cwd both when they are made and
#: when nbval re-executes them), so they do not depend on where the repository lies.
NBVAL_RESULTS_DIR = ".cache/nbval-results"
BUILD_STAMP = ".qmu-build.json"
VERSION_PACKAGES = ["numpy", "scipy", "jax", "jaxlib", "numba", "tensorcircuit-ng", "torch", "qmu"]


# --------------------------------------------------------------------------------------
# errors


class PipelineError(Exception):
    """A problem the user can fix; shown as one short message, exit status ``exit_code``."""

    exit_code = 1


class UsageError(PipelineError):
    """Wrong command-line input (unknown chapter or parameter, unparsable value)."""

    exit_code = 2


class ChapterFailed(PipelineError):
    """The notebook raised during execution (e.g. its validation cell's ParameterError)."""

    def __init__(self, chapter: str, ename: str, evalue: str, cell_index: int | None,
                 kept: Path | None):
        self.chapter, self.ename, self.evalue = chapter, ename, evalue
        self.cell_index, self.kept = cell_index, kept
        where = "" if cell_index is None else f" (cell {cell_index})"
        msg = f"chapter '{chapter}' failed{where}: {ename}: {evalue}"
        if kept is not None:
            msg += f"\n  the failed execution, with its traceback, is in {_rel(kept)}"
        super().__init__(msg)


class BuildError(PipelineError):
    pass


def _rel(p: Path) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


# --------------------------------------------------------------------------------------
# locations (overridable for the tests and for scratch executions)


@dataclass(frozen=True)
class Locations:
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
        return self.results if self.results is not None else paths.RESULTS

    @property
    def is_default_book(self) -> bool:
        return self.book.resolve() == paths.BOOK.resolve()


# --------------------------------------------------------------------------------------
# chapters and their parameters


def get_chapter(name: str) -> Chapter:
    try:
        return CHAPTERS[name]
    except KeyError:
        raise UsageError(
            f"unknown chapter '{name}'; the chapters are: {', '.join(CHAPTERS)}"
        ) from None


def source_notebook(name: str, loc: Locations | None = None) -> Path:
    loc = loc or Locations.from_env()
    return loc.notebooks / get_chapter(name).notebook


def inspect_parameters(notebook: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The notebook's parameters: name -> {name, inferred_type_name, default, help}.

    ``default`` is the source text of the default value, ``help`` the trailing comment.
    Read with ``papermill.inspect_notebook``; papermill skips a line holding more than one
    ``=`` (e.g. ``x: str = ""  # "" = default``), so such lines are read from the cell's
    syntax tree instead and nothing is lost.
    """
    import papermill as pm

    with _quiet_papermill():
        found = pm.inspect_notebook(str(notebook))
    parsed = _parse_parameters_cell(nbformat.read(str(notebook), as_version=4))
    merged = {name: found.get(name, p) for name, p in parsed.items()}
    merged.update({k: v for k, v in found.items() if k not in merged})
    return merged


def _parse_parameters_cell(nb) -> dict[str, dict[str, Any]]:
    """Top-level assignments of the cell tagged ``parameters``, in source order."""
    import tokenize

    cell = next((c for c in nb.cells if c.cell_type == "code" and _has_tag(c, PARAMETERS_TAG)), None)
    if cell is None:
        return {}
    src = cell.source
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return {}
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    out: dict[str, dict[str, Any]] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, ann = node.target.id, ast.get_source_segment(src, node.annotation)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, ann = node.targets[0].id, None
        else:
            continue
        out[name] = {
            "name": name,
            "inferred_type_name": str(ann),
            "default": ast.get_source_segment(src, node.value),
            "help": comments.get(node.end_lineno, ""),
        }
    return out


@contextlib.contextmanager
def _quiet_papermill():
    import logging

    log = logging.getLogger("papermill")
    old = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(old)


def parse_value(text: str) -> Any:
    """A ``-p`` value, resolved as papermill's own command line does, plus lists.

    ``True``/``False``/``None`` (capitalised, exactly), integers, floats; text starting
    with ``[``, ``(`` or ``{`` is read as a JSON or Python literal (``[0.0,0.5]``,
    ``[[64,16],[8,2]]``, ``(1, 2)``); anything else stays a string, so ``false`` reaches
    the notebook as the string ``'false'`` and its validation cell says what to write.
    """
    if text == "True":
        return True
    if text == "False":
        return False
    if text == "None":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    stripped = text.strip()
    if stripped[:1] in ("[", "(", "{"):
        try:
            value = json.loads(stripped)
        except ValueError:
            try:
                value = ast.literal_eval(stripped)
            except (ValueError, SyntaxError) as exc:
                raise UsageError(
                    f"cannot read {text!r} as a list: write it as in Python or JSON, "
                    f"e.g. [0.0,0.5] or \"['a','b']\" ({exc.__class__.__name__})"
                ) from None
        if isinstance(value, tuple):
            value = list(value)
        return value
    return text


def check_names(chapter: str, given: Iterable[str], allowed: Mapping[str, Any]) -> None:
    unknown = [n for n in given if n not in allowed]
    if unknown:
        s = "s" if len(unknown) > 1 else ""
        raise UsageError(
            f"chapter '{chapter}' has no parameter{s} {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(allowed)}"
        )


def describe_chapters(names: Sequence[str] | None = None, loc: Locations | None = None) -> str:
    """The text printed by ``python -m qmu_core list``."""
    loc = loc or Locations.from_env()
    out = io.StringIO()
    for name in names or list(CHAPTERS):
        ch = get_chapter(name)
        src = loc.notebooks / ch.notebook
        out.write(f"{ch.name}: {ch.title} [{ch.paper}]\n")
        if not src.exists():
            out.write(f"  (notebook {_rel(src)} not written yet)\n\n")
            continue
        params = inspect_parameters(src)
        if not params:
            out.write("  (no parameters)\n")
        width = max((len(p["name"]) + len(p["inferred_type_name"]) for p in params.values()), default=0)
        for p in params.values():
            head = f"{p['name']}: {p['inferred_type_name']}"
            line = f"  {head.ljust(width + 2)} = {p['default']}"
            if p.get("help"):
                line += f"  # {p['help']}"
            out.write(line + "\n")
        if ch.ci:
            ci = " ".join(f"-p {k} {_cli_value(v)}" for k, v in ch.ci.items())
            out.write(f"  ci (nbval baseline): {ci}\n")
        out.write("\n")
    return out.getvalue().rstrip("\n") + "\n"


def _cli_value(value: Any) -> str:
    if isinstance(value, (list, tuple, dict)):
        return shlex.quote(json.dumps(value, separators=(",", ":")))
    if isinstance(value, str):
        return shlex.quote(value)
    return str(value)


# --------------------------------------------------------------------------------------
# notebook cells


def _tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _has_tag(cell, tag: str) -> bool:
    return tag in _tags(cell)


def _add_tag(cell, tag: str) -> None:
    tags = _tags(cell)
    if tag not in tags:
        tags.append(tag)
    cell.setdefault("metadata", {})["tags"] = tags


def code_cells(nb) -> list[str]:
    """Sources of the code cells that the source and the executed notebook share.

    Leaves out papermill's injected-parameters cell and the ``parameters`` cell (which the
    executed notebook shows in a different form).
    """
    return [
        c.source
        for c in nb.cells
        if c.cell_type == "code"
        and not _has_tag(c, INJECTED_TAG)
        and not _has_tag(c, PARAMETERS_TAG)
    ]


def staleness(book_nb_path: str | os.PathLike, source_nb_path: str | os.PathLike) -> list[str]:
    """Differences between the code of an executed chapter and its source; [] if fresh."""
    book = nbformat.read(str(book_nb_path), as_version=4)
    src = nbformat.read(str(source_nb_path), as_version=4)
    a, b = code_cells(book), code_cells(src)
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(a)} code cells in {_rel(Path(book_nb_path))}, {len(b)} in the source")
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            first = next((k for k, (p, q) in enumerate(zip(x.splitlines(), y.splitlines())) if p != q),
                         min(len(x.splitlines()), len(y.splitlines())))
            problems.append(f"code cell {i} differs from the source (line {first + 1})")
    return problems


def stored_errors(book_dir: str | os.PathLike) -> list[str]:
    """Error outputs stored in the notebooks of ``book_dir`` (one line per error)."""
    found = []
    for path in sorted(Path(book_dir).glob("*.ipynb")):
        nb = nbformat.read(str(path), as_version=4)
        if nb.metadata.get("papermill", {}).get("exception"):
            found.append(f"{_rel(path)}: papermill recorded an exception during its execution")
        for i, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
                if out.get("output_type") == "error":
                    found.append(f"{_rel(path)}: cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return found


def _format_value_md(text: str) -> str:
    text = text.replace("\n", " ")
    ticks = "``" if "`" in text else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{text}{pad}{ticks}".replace("|", "\\|")


def _md_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def parameters_markdown(
    chapter: str,
    params: Mapping[str, Mapping[str, Any]],
    overrides: Mapping[str, Any],
    *,
    seconds: float | None = None,
    date: str | None = None,
    machine: str | None = None,
) -> str:
    """The collapsed box ``Parameters of this execution`` (a MyST dropdown with a table)."""
    lines = [":::{dropdown} Parameters of this execution", ""]
    if overrides:
        cmd = " ".join(f"-p {k} {_cli_value(v)}" for k, v in overrides.items())
        lines.append(
            f"Executed with `python -m qmu_core run {chapter} {cmd}`; the overridden "
            "values are marked, the others are the chapter's defaults (the article's scale)."
        )
    else:
        lines.append(
            f"Executed with `python -m qmu_core run {chapter}`: every parameter at its "
            "default (the article's scale)."
        )
    when = []
    if date:
        when.append(f"on {date}")
    if seconds is not None:
        when.append(f"in {_human_seconds(seconds)}")
    if machine:
        when.append(f"on {_md_text(machine)}")
    if when:
        lines.append(f"It ran {' '.join(when)}.")
    lines += ["", "| parameter | value | meaning |", "| --- | --- | --- |"]
    for name, p in params.items():
        if name in overrides:
            value = (f"{_format_value_md(repr(overrides[name]))}: **overridden** (default "
                     f"{_format_value_md(str(p['default']))})")
        else:
            value = _format_value_md(str(p["default"]))
        lines.append(f"| `{name}` | {value} | {_md_text(p.get('help') or '')} |")
    extra = [k for k in overrides if k not in params]
    for name in extra:  # only possible when called directly, never through run()
        lines.append(f"| `{name}` | {_format_value_md(repr(overrides[name]))} | |")
    lines += ["", ":::"]
    return "\n".join(lines)


def _human_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def present_parameters(nb, display_markdown: str) -> None:
    """Hide the parameters and injected-parameters cells; show ``display_markdown`` instead.

    The two cells stay in the notebook (tagged ``remove-cell``, which myst-nb drops from the
    page) so that the notebook still runs from top to bottom and keeps its cell order; the
    display cell goes right after them.
    """
    nb.cells = [c for c in nb.cells if not _has_tag(c, DISPLAY_TAG)]
    anchor = None
    for i, cell in enumerate(nb.cells):
        if _has_tag(cell, PARAMETERS_TAG) or _has_tag(cell, INJECTED_TAG):
            _add_tag(cell, REMOVE_TAG)
            anchor = i
    display = nbformat.v4.new_markdown_cell(display_markdown, metadata={"tags": [DISPLAY_TAG]})
    nb.cells.insert(0 if anchor is None else anchor + 1, display)


def _strip_execution_metadata(nb) -> None:
    """Drop per-cell timestamps (papermill and jupyter) that only add noise to diffs."""
    for cell in nb.cells:
        md = cell.get("metadata", {})
        md.pop("papermill", None)
        md.pop("execution", None)
    nb.metadata.get("papermill", {}).pop("start_time", None)
    nb.metadata.get("papermill", {}).pop("end_time", None)
    nb.metadata.get("papermill", {}).pop("duration", None)


# --------------------------------------------------------------------------------------
# machine description and timings


def machine_description() -> str:
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
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def package_versions() -> str:
    parts = [f"python={platform.python_version()}"]
    for pkg in VERSION_PACKAGES:
        try:
            parts.append(f"{pkg}={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            pass
    return "; ".join(parts)


def _literal_or_text(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def record_timing(
    results_dir: Path,
    chapter: str,
    seconds: float,
    params: Mapping[str, Mapping[str, Any]],
    overrides: Mapping[str, Any],
    date: str,
) -> Path:
    """Replace ``chapter``'s row of ``results_dir/timings.csv`` (atomic, under a lock)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / TIMINGS_FILE
    effective = {k: _literal_or_text(str(p["default"])) for k, p in params.items()}
    effective.update(overrides)
    row = {
        "chapter": chapter,
        "seconds": f"{seconds:.1f}",
        "machine": machine_description(),
        "cpu_count": str(cpu_count()),
        "date": date,
        "parameters": json.dumps(effective, default=repr, separators=(",", ":")),
        "overridden": json.dumps(list(overrides)),
        "versions": package_versions(),
    }
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


# --------------------------------------------------------------------------------------
# execution


def _execute(src: Path, out: Path, parameters: dict[str, Any], cwd: Path, progress: bool) -> None:
    import papermill as pm

    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")  # no debugpy noise
    with _quiet_papermill():
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


def _execute_atomically(
    chapter: str, src: Path, dest: Path, parameters: dict[str, Any], cwd: Path,
    progress: bool, finish,
) -> float:
    """Execute ``src`` into a hidden file beside ``dest``; ``finish(nb, seconds)`` edits the
    result, which is then renamed onto ``dest``. On failure ``dest`` is left as it was and
    the failed notebook is kept in ``.cache/failed/`` for inspection."""
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
            raise ChapterFailed(chapter, exc.ename, _first_line(exc.evalue), exc.cell_index, kept) from None
        except Exception as exc:  # the kernel died, a cell timed out, ...
            kept = _keep_failed(tmp, dest)
            raise ChapterFailed(chapter, type(exc).__name__, _first_line(exc), None, kept) from None
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


def _first_line(text: str, limit: int = 500) -> str:
    text = str(text).strip()
    return text if len(text) <= limit else text[:limit] + "..."


def run_chapter(
    name: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    loc: Locations | None = None,
    build: bool = True,
    progress: bool = True,
) -> float:
    """Execute a chapter into the book; returns the execution time in seconds.

    Unknown parameter names are refused before anything runs. On success the executed
    notebook replaces ``<book>/<name>.ipynb``, its time is recorded in ``timings.csv`` and
    (``build=True``, default book only) the HTML is rebuilt.
    """
    loc = loc or Locations.from_env()
    ch = get_chapter(name)
    src = loc.notebooks / ch.notebook
    if not src.exists():
        raise UsageError(f"chapter '{name}': its notebook {_rel(src)} does not exist yet")
    params = inspect_parameters(src)
    overrides = dict(overrides or {})
    check_names(name, overrides, params)
    if loc.results is not None and "results_dir" not in overrides:
        if "results_dir" in params:
            overrides["results_dir"] = str(loc.results)
        else:
            print(f"note: chapter '{name}' has no results_dir parameter; it writes its results "
                  "where it always does", file=sys.stderr)
    date_holder: dict[str, str] = {}

    def finish(nb, seconds: float) -> None:
        date = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
        date_holder["date"] = date
        md = parameters_markdown(name, params, overrides, seconds=seconds, date=date[:10],
                                 machine=f"{cpu_count()} CPU(s), {machine_description()}")
        present_parameters(nb, md)

    seconds = _execute_atomically(name, src, loc.book / ch.notebook, overrides, loc.book, progress, finish)
    record_timing(loc.results_dir, name, seconds, params, overrides, date_holder["date"])
    print(f"{name}: executed in {_human_seconds(seconds)} -> {_rel(loc.book / ch.notebook)}", file=sys.stderr)
    if build:
        if loc.is_default_book:
            build_book()
        else:
            print("note: --book-dir is not the book's own folder; not rebuilding the HTML", file=sys.stderr)
    return seconds


def run_all(*, loc: Locations | None = None, build: bool = True, progress: bool = True) -> dict[str, float]:
    """Every chapter at its defaults, in the order of the table of contents, then one build."""
    loc = loc or Locations.from_env()
    missing = [n for n, ch in CHAPTERS.items() if not (loc.notebooks / ch.notebook).exists()]
    if missing:
        raise UsageError(f"notebooks not written yet for: {', '.join(missing)}")
    times, failures = {}, []
    for name in toc_chapters():
        try:
            times[name] = run_chapter(name, {}, loc=loc, build=False, progress=progress)
        except ChapterFailed as exc:
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
    notebook exactly as stored.
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
    written = []
    for name in chosen:
        ch = CHAPTERS[name]
        src = loc.notebooks / ch.notebook
        params = inspect_parameters(src)
        ci = dict(ch.ci)
        check_names(name, ci, params)
        if "results_dir" in params:
            scratch = paths.ROOT / NBVAL_RESULTS_DIR / name
            ci.setdefault("results_dir", os.path.relpath(scratch, out_dir.resolve()))
        else:
            print(f"note: chapter '{name}' has no results_dir parameter: if it writes results, "
                  "its ci execution writes them to the usual place", file=sys.stderr)
        dest = out_dir / ch.notebook

        def finish(nb, seconds: float) -> None:
            _strip_execution_metadata(nb)

        seconds = _execute_atomically(name, src, dest, ci, out_dir, progress, finish)
        print(f"{name}: baseline executed in {_human_seconds(seconds)} -> {_rel(dest)}", file=sys.stderr)
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
        raise UsageError(f"chapter '{name}' has not been executed into {_rel(book_path)} yet")
    problems = staleness(book_path, src_path)
    if problems:
        raise PipelineError(
            f"chapter '{name}': the code changed, run it again "
            f"(python -m qmu_core run {name}): " + "; ".join(problems)
        )
    src = nbformat.read(str(src_path), as_version=4)
    book = nbformat.read(str(book_path), as_version=4)
    executed = iter(c for c in book.cells if c.cell_type == "code" and not _has_tag(c, INJECTED_TAG))
    extras = [c for c in book.cells if _has_tag(c, INJECTED_TAG) or _has_tag(c, DISPLAY_TAG)]
    cells = []
    for cell in src.cells:
        if cell.cell_type == "code":
            cells.append(next(executed))
            if _has_tag(cell, PARAMETERS_TAG):
                cells.extend(extras)
        else:
            cells.append(copy.deepcopy(cell))
    if not any(_has_tag(c, PARAMETERS_TAG) for c in src.cells):
        cells = extras + cells
    book.cells = cells
    atomic_write_text(book_path, nbformat.writes(book) + "\n")
    if build and loc.is_default_book:
        build_book()
    return book_path


# --------------------------------------------------------------------------------------
# build


def toc_chapters(toc_path: Path | None = None) -> list[str]:
    """Chapter names in the order of ``_toc.yml`` (entries ``book/<name>``)."""
    import yaml

    toc = yaml.safe_load(Path(toc_path or paths.ROOT / "_toc.yml").read_text())
    names = []

    def walk(entries):
        for e in entries or []:
            f = str(e.get("file", ""))
            if f.startswith("book/"):
                names.append(Path(f).stem)
            walk(e.get("sections"))

    walk(toc.get("chapters"))
    for part in toc.get("parts") or []:
        walk(part.get("chapters"))
    return names


def _source_digest(root: Path, book_dir: Path) -> str:
    h = hashlib.sha256()
    files = [root / "_config.yml", root / "_toc.yml", root / "references.bib"]
    files += sorted(p for p in book_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
    for p in files:
        if p.exists():
            h.update(str(p.relative_to(root)).encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def build_is_fresh(html_dir: Path | None = None) -> bool:
    """True when ``_build/html`` was made by :func:`build_book` from the current sources."""
    html_dir = Path(html_dir or paths.BUILD_HTML)
    stamp = html_dir.parent / BUILD_STAMP
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return (html_dir / "index.html").exists() and recorded.get("digest") == _source_digest(paths.ROOT, paths.BOOK)


def build_book(output: str | os.PathLike | None = None, *, allow_missing: bool = False,
               quiet: bool = False) -> Path:
    """Check the executed chapters, then ``jupyter-book build . -W -n --keep-going``.

    ``output``: a folder for the build (``<output>/_build/html``); default the repository's
    ``_build/html``. A chapter listed in ``_toc.yml`` but missing from ``book/`` is an
    error, unless ``allow_missing`` (then it is left out of the build with a note).
    Returns the HTML folder.
    """
    root = paths.ROOT
    errors = stored_errors(paths.BOOK)
    if errors:
        raise BuildError("executed chapters that store an error (run them again):\n  " + "\n  ".join(errors))
    unknown = [p.stem for p in paths.BOOK.glob("*.ipynb") if p.stem not in CHAPTERS]
    if unknown:
        print(f"note: book/ holds notebooks that are not chapters: {', '.join(unknown)}", file=sys.stderr)
    for name in CHAPTERS:
        b, s = paths.BOOK / CHAPTERS[name].notebook, paths.NOTEBOOKS / CHAPTERS[name].notebook
        if b.exists() and s.exists():
            diff = staleness(b, s)
            if diff:
                print(f"warning: book/{b.name} is stale (run `python -m qmu_core run {name}`): "
                      + "; ".join(diff), file=sys.stderr)
    toc_path = root / "_toc.yml"
    missing = [n for n in toc_chapters(toc_path) if not (paths.BOOK / f"{n}.ipynb").exists()
               and not (paths.BOOK / f"{n}.md").exists()]
    out_base = Path(output).resolve() if output else root
    cmd = [_jupyter_book(), "build", str(root), "-W", "-n", "--keep-going"]
    if output:
        cmd += ["--path-output", str(out_base)]
    tmp_toc = None
    if missing:
        if not allow_missing:
            raise BuildError(f"chapters in _toc.yml not executed into book/: {', '.join(missing)} "
                             "(run them with `python -m qmu_core run`, or build with --allow-missing)")
        print(f"note: chapters not executed yet, left out of this build: {', '.join(missing)}",
              file=sys.stderr)
        tmp_toc = _filtered_toc(toc_path, missing, out_base / "_build")
        cmd += ["--toc", str(tmp_toc)]
    html = out_base / "_build" / "html"
    # Sphinx never deletes the page of a document that left the build, and rewrites only
    # the pages whose source changed: start from an empty HTML folder (the parsed sources
    # in _build/.doctrees are kept, so this costs little).
    shutil.rmtree(html, ignore_errors=True)
    (html.parent / BUILD_STAMP).unlink(missing_ok=True)
    digest = _source_digest(root, paths.BOOK)
    env = dict(os.environ, PYDEVD_DISABLE_FILE_VALIDATION="1")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, env=env,
                          stdout=subprocess.PIPE if quiet else None,
                          stderr=subprocess.STDOUT if quiet else None, text=True)
    if proc.returncode != 0:
        tail = ("\n" + "\n".join(proc.stdout.splitlines()[-40:])) if quiet and proc.stdout else ""
        raise BuildError(f"jupyter-book build failed (exit {proc.returncode}){tail}")
    stamp = {"digest": digest, "missing": missing,
             "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()}
    atomic_write_text(html.parent / BUILD_STAMP, json.dumps(stamp, indent=1) + "\n")
    print(f"book built in {time.perf_counter() - t0:.0f} s: {_rel(html / 'index.html')}", file=sys.stderr)
    return html


def _jupyter_book() -> str:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.exists():
        return str(exe)
    found = shutil.which("jupyter-book")
    if not found:
        raise BuildError("jupyter-book is not installed (pip install -e '.[dev]')")
    return found


def _filtered_toc(toc_path: Path, missing: Sequence[str], where: Path) -> Path:
    """A copy of the toc without the chapters in ``missing`` (kept out of the repository)."""
    import yaml

    toc = yaml.safe_load(toc_path.read_text())
    drop = {f"book/{m}" for m in missing}

    def keep(entries):
        out = []
        for e in entries or []:
            if str(e.get("file", "")).removesuffix(".ipynb").removesuffix(".md") in drop:
                continue
            e = dict(e)
            if "sections" in e:
                e["sections"] = keep(e["sections"])
            out.append(e)
        return out

    toc["chapters"] = keep(toc.get("chapters"))
    if not toc["chapters"]:
        del toc["chapters"]
    where.mkdir(parents=True, exist_ok=True)
    path = where / "_toc.available.yml"
    atomic_write_text(path, yaml.safe_dump(toc, sort_keys=False))
    return path


# --------------------------------------------------------------------------------------
# Sphinx extension (listed in _config.yml as ``qmu_core.book``)


def _dedupe_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated ``<script>`` entries from a page.

    With Sphinx 7.4, sphinx-thebe 0.3.1 (loaded by Jupyter Book even when thebe is off)
    ends up with its inline ``const THEBE_JS_URL = ...`` script twice on every page, and the
    second copy throws ``SyntaxError: Identifier 'THEBE_JS_URL' has already been declared``
    (one copy is registered with filename None, the other with ""; the same happens to
    sphinx-togglebutton's inline script).
    """
    files = context.get("script_files")
    if not files:
        return
    seen, kept = set(), []
    for js in files:
        attrs = getattr(js, "attributes", {}) or {}
        key = (getattr(js, "filename", str(js)) or "", json.dumps(attrs, sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        kept.append(js)
    files[:] = kept


def setup(app):
    app.connect("html-page-context", _dedupe_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
