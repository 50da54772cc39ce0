"""Execute the whole book from an empty cache and record how long each chapter takes.

    python benchmarks/whole_book.py            # every chapter into book/, then the HTML
    python benchmarks/whole_book.py --keep-cache DIR   # reuse/keep the sweep cache in DIR

Every chapter of the table of contents runs at its defaults (the paper's scale), in the
order ``run-all`` uses, with an EMPTY sweep cache and an EMPTY numba cache (fresh temporary
folders, unless ``--keep-cache``), so that every training of the book is done once and the
QNN kernel is compiled once: what a reader who clones the repository and rebuilds the book
pays. The chapters' sweeps use the default parallelism (one worker per core). The per-chapter
wall-clock times, the machine and the totals go to ``benchmarks/results/whole_book.json``;
the notes chapter, which quotes that file, runs last and is timed in ``results/timings.csv``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "benchmarks" / "results" / "whole_book.json"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep-cache", metavar="DIR", help="sweep and numba cache folder to use and keep "
                                                          "(default: fresh temporary folders, removed after)")
    ap.add_argument("--no-build", action="store_true", help="do not build the HTML at the end")
    args = ap.parse_args(argv)
    tmp = None
    if args.keep_cache:
        cache = Path(args.keep_cache).resolve()
    else:
        tmp = tempfile.TemporaryDirectory(prefix="qmu-whole-book-")
        cache = Path(tmp.name)
    os.environ["QMU_CACHE_DIR"] = str(cache / "qmu")
    os.environ["NUMBA_CACHE_DIR"] = str(cache / "numba")
    cold = not any((cache / "qmu").glob("sweeps/*/*.json"))

    # imported after the environment is set: numba reads NUMBA_CACHE_DIR at import
    from qmu_core.book import commands
    from qmu_core.book.build import build_book, toc_chapters
    from qmu_core.book.registry import execution_order
    from qmu_core.book.timings import cpu_count, machine_description
    from qmu_core.io import atomic_write_text

    order = execution_order(toc_chapters())
    timed = [n for n in order if n != "notes"]
    record = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": machine_description(), "platform": platform.platform(), "cpu_count": cpu_count(),
              "empty_cache_at_start": cold, "chapters": {}}
    t0 = time.perf_counter()
    for name in timed:
        record["chapters"][name] = round(commands.run_chapter(name, {}, build=False), 1)
        record["total_seconds"] = round(time.perf_counter() - t0, 1)
        atomic_write_text(OUT, json.dumps(record, indent=2) + "\n")  # a partial record survives a failure
    print(json.dumps(record, indent=2))
    if "notes" in order:
        commands.run_chapter("notes", {}, build=False)
    if not args.no_build:
        build_book()
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
