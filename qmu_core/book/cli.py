"""Command line of the book: ``python -m qmu_core`` (also installed as ``qmu``).

    python -m qmu_core list [chapter ...]
    python -m qmu_core run <chapter> [-p name value ...] [--no-build]
    python -m qmu_core run-all [--no-build]
    python -m qmu_core build [--output DIR] [--allow-missing]
    python -m qmu_core baselines [chapter ...]
    python -m qmu_core refresh-prose <chapter>

``qmu_core/__main__.py`` and the ``qmu`` console script call :func:`main`; the work is
done by :mod:`qmu_core.book.commands`, :mod:`qmu_core.book.parameters` and
:mod:`qmu_core.book.build`.
"""

from __future__ import annotations

import argparse
import sys

from .build import build_book
from .commands import make_baselines, refresh_prose, run_all, run_chapter
from .errors import PipelineError
from .locations import Locations
from .parameters import describe_chapters, parse_value
from .registry import CHAPTERS, get_chapter


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m qmu_core",
        description="Execute the chapters of the qmu book and build it.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def locations(sp, results: bool = True):
        sp.add_argument("--notebooks-dir", metavar="DIR",
                        help="source notebooks (default notebooks/, or $QMU_NOTEBOOKS_DIR)")
        sp.add_argument("--book-dir", metavar="DIR",
                        help="where executed chapters go (default book/, or $QMU_BOOK_DIR); "
                             "a folder other than book/ is never built")
        if results:
            sp.add_argument("--results-dir", metavar="DIR",
                            help="passed to the chapters as their results_dir parameter; "
                                 "timings.csv goes there too (default results/, or $QMU_RESULTS_DIR)")

    sp = sub.add_parser("list", help="the chapters, their parameters, types, defaults and meaning")
    sp.add_argument("chapters", nargs="*", metavar="CHAPTER")
    sp.add_argument("--notebooks-dir", metavar="DIR")

    sp = sub.add_parser("run", help="execute one chapter into the book, then rebuild the HTML")
    sp.add_argument("chapter", metavar="CHAPTER", help=f"one of: {', '.join(CHAPTERS)}")
    sp.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                    metavar=("NAME", "VALUE"),
                    help="override a parameter; VALUE is read as papermill does (True, False, "
                         "None, numbers, else text) and [..] as a list, e.g. -p alphas [0.0,0.5]")
    sp.add_argument("--no-build", action="store_true", help="do not rebuild the HTML")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    locations(sp)

    sp = sub.add_parser("run-all", help="execute every chapter at its defaults, then build")
    sp.add_argument("--no-build", action="store_true", help="do not rebuild the HTML")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")
    locations(sp)

    sp = sub.add_parser("build", help="check the executed chapters, then build the HTML "
                                      "(jupyter-book build . -W -n --keep-going)")
    sp.add_argument("--output", metavar="DIR",
                    help="build into DIR/_build/html instead of _build/html")
    sp.add_argument("--allow-missing", action="store_true",
                    help="leave out, with a note, the chapters of _toc.yml that are not executed "
                         "into book/ (default: that is an error)")

    sp = sub.add_parser("baselines", help="re-make the nbval baselines tests/nbval/<chapter>.ipynb "
                                          "with the chapters' ci parameters")
    sp.add_argument("chapters", nargs="*", metavar="CHAPTER")
    sp.add_argument("--notebooks-dir", metavar="DIR")
    sp.add_argument("--out-dir", metavar="DIR", help="default tests/nbval")
    sp.add_argument("--no-progress", action="store_true", help="no progress bar")

    sp = sub.add_parser("refresh-prose", help="copy the source's markdown into an executed "
                                              "chapter whose code is unchanged (no execution)")
    sp.add_argument("chapter", metavar="CHAPTER")
    sp.add_argument("--no-build", action="store_true", help="do not rebuild the HTML")
    locations(sp, results=False)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status: 0, or the error's (1, 2; 130 when interrupted)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            loc = Locations.from_env(notebooks=args.notebooks_dir)
            for name in args.chapters:
                get_chapter(name)
            sys.stdout.write(describe_chapters(args.chapters or None, loc=loc))
        elif args.command == "run":
            loc = Locations.from_env(args.notebooks_dir, args.book_dir, args.results_dir)
            get_chapter(args.chapter)
            overrides = {}
            for name, value in args.parameter:
                overrides[name] = parse_value(value)
            run_chapter(args.chapter, overrides, loc=loc, build=not args.no_build,
                             progress=not args.no_progress)
        elif args.command == "run-all":
            loc = Locations.from_env(args.notebooks_dir, args.book_dir, args.results_dir)
            run_all(loc=loc, build=not args.no_build, progress=not args.no_progress)
        elif args.command == "build":
            build_book(args.output, allow_missing=args.allow_missing)
        elif args.command == "baselines":
            loc = Locations.from_env(notebooks=args.notebooks_dir)
            make_baselines(args.chapters or None, loc=loc, out_dir=args.out_dir,
                                progress=not args.no_progress)
        elif args.command == "refresh-prose":
            loc = Locations.from_env(args.notebooks_dir, args.book_dir)
            refresh_prose(args.chapter, loc=loc, build=not args.no_build)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; nothing was left half-written", file=sys.stderr)
        return 130
    return 0
