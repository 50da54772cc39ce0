"""Notebook surgery: cell tags, staleness of an executed chapter, stored errors, the box.

An executed chapter differs from its source only by papermill's injected-parameters cell,
the ``Parameters of this execution`` box that replaces it on the page, and the outputs;
these functions find and make exactly those differences.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import nbformat

from .locations import shown

#: tags papermill gives the cell it injects and the cell holding the defaults
INJECTED_TAG = "injected-parameters"
PARAMETERS_TAG = "parameters"
#: tag of the markdown cell that shows the parameters of an execution (added by ``run``)
DISPLAY_TAG = "qmu-parameters"
#: myst-nb tag that removes a cell from the HTML page (it stays in the notebook)
REMOVE_TAG = "remove-cell"


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def has_tag(cell, tag: str) -> bool:
    return tag in tags(cell)


def add_tag(cell, tag: str) -> None:
    found = tags(cell)
    if tag not in found:
        found.append(tag)
    cell.setdefault("metadata", {})["tags"] = found


def parameters_cell(nb):
    """The code cell tagged ``parameters``, or None."""
    return next((c for c in nb.cells if c.cell_type == "code" and has_tag(c, PARAMETERS_TAG)), None)


def code_cells(nb) -> list[str]:
    """Sources of the code cells that the source and the executed notebook share.

    Leaves out papermill's injected-parameters cell and the ``parameters`` cell (which the
    executed notebook shows in a different form).
    """
    return [
        c.source
        for c in nb.cells
        if c.cell_type == "code"
        and not has_tag(c, INJECTED_TAG)
        and not has_tag(c, PARAMETERS_TAG)
    ]


def staleness(book_nb_path: str | os.PathLike, source_nb_path: str | os.PathLike) -> list[str]:
    """Differences between the code of an executed chapter and its source; [] if fresh."""
    book = nbformat.read(str(book_nb_path), as_version=4)
    src = nbformat.read(str(source_nb_path), as_version=4)
    a, b = code_cells(book), code_cells(src)
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(a)} code cells in {shown(book_nb_path)}, {len(b)} in the source")
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
            found.append(f"{shown(path)}: papermill recorded an exception during its execution")
        for i, cell in enumerate(nb.cells):
            for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
                if out.get("output_type") == "error":
                    found.append(f"{shown(path)}: cell {i}: {out.get('ename')}: {out.get('evalue')}")
    return found


def present_parameters(nb, display_markdown: str) -> None:
    """Hide the parameters and injected-parameters cells; show ``display_markdown`` instead.

    The two cells stay in the notebook (tagged ``remove-cell``, which myst-nb drops from the
    page) so that the notebook still runs from top to bottom and keeps its cell order; the
    display cell goes right after them.
    """
    nb.cells = [c for c in nb.cells if not has_tag(c, DISPLAY_TAG)]
    anchor = None
    for i, cell in enumerate(nb.cells):
        if has_tag(cell, PARAMETERS_TAG) or has_tag(cell, INJECTED_TAG):
            add_tag(cell, REMOVE_TAG)
            anchor = i
    display = nbformat.v4.new_markdown_cell(display_markdown, metadata={"tags": [DISPLAY_TAG]})
    nb.cells.insert(0 if anchor is None else anchor + 1, display)


def with_new_prose(book, src) -> list:
    """The cells of the executed notebook ``book`` with the markdown cells of ``src``.

    The code cells (with their outputs) and the injected/display cells come from ``book``,
    in the order of ``src``; the caller has checked that the code is unchanged.
    """
    executed = iter(c for c in book.cells if c.cell_type == "code" and not has_tag(c, INJECTED_TAG))
    extras = [c for c in book.cells if has_tag(c, INJECTED_TAG) or has_tag(c, DISPLAY_TAG)]
    cells = []
    for cell in src.cells:
        if cell.cell_type == "code":
            cells.append(next(executed))
            if has_tag(cell, PARAMETERS_TAG):
                cells.extend(extras)
        else:
            cells.append(copy.deepcopy(cell))
    if not any(has_tag(c, PARAMETERS_TAG) for c in src.cells):
        cells = extras + cells
    return cells


def strip_execution_metadata(nb) -> None:
    """Drop per-cell timestamps (papermill and jupyter) that only add noise to diffs."""
    for cell in nb.cells:
        md = cell.get("metadata", {})
        md.pop("papermill", None)
        md.pop("execution", None)
    nb.metadata.get("papermill", {}).pop("start_time", None)
    nb.metadata.get("papermill", {}).pop("end_time", None)
    nb.metadata.get("papermill", {}).pop("duration", None)
