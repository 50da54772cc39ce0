"""The HTML book: check the executed chapters, then ``jupyter-book build . -W -n --keep-going``.

The build never executes code (``execute_notebooks: off`` in ``_config.yml``): it renders
the chapters that ``run`` executed into ``book/``. A stamp beside ``_build/html`` records
a digest of the sources it was built from, so the browser test can reuse a fresh build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .. import paths
from ..io import atomic_write_text
from .cells import staleness, stored_errors
from .errors import BuildError
from .locations import shown
from .registry import CHAPTERS
from .timings import utc_now

BUILD_STAMP = ".qmu-build.json"


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
    """SHA-256 over the book's configuration and every file of ``book_dir``."""
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
    if missing:
        if not allow_missing:
            raise BuildError(f"chapters in _toc.yml not executed into book/: {', '.join(missing)} "
                             "(run them with `python -m qmu_core run`, or build with --allow-missing)")
        print(f"note: chapters not executed yet, left out of this build: {', '.join(missing)}",
              file=sys.stderr)
        cmd += ["--toc", str(filtered_toc(toc_path, missing, out_base / "_build"))]
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
    stamp = {"digest": digest, "missing": missing, "date": utc_now()}
    atomic_write_text(html.parent / BUILD_STAMP, json.dumps(stamp, indent=1) + "\n")
    print(f"book built in {time.perf_counter() - t0:.0f} s: {shown(html / 'index.html')}", file=sys.stderr)
    return html


def _jupyter_book() -> str:
    """The ``jupyter-book`` beside this Python (the project's environment), else on PATH."""
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.exists():
        return str(exe)
    found = shutil.which("jupyter-book")
    if not found:
        raise BuildError("jupyter-book is not installed (pip install -e '.[dev]')")
    return found


def filtered_toc(toc_path: Path, missing: Sequence[str], where: Path) -> Path:
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
