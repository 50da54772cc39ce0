"""The package's layout: small modules, science apart from the book pipeline (tooling).

Science modules sit at the top of ``qmu_core/``; the book pipeline lives in
``qmu_core/book/``, whose modules import each other in one direction and take from the rest
of the package only its infrastructure (paths, atomic writes, parameter checks).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from qmu_core import paths

PACKAGE = paths.PACKAGE_DIR
MAX_LINES = 550
#: what the pipeline may import from the package outside book/ (science comes in only
#: through the registry's lazily imported parameter classes)
INFRASTRUCTURE = {"paths", "io", "validation", "cpu_isa"}


def _modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _package_imports(path: Path) -> set[str]:
    """Modules of qmu_core that ``path`` imports at its top level, as dotted names below qmu_core."""
    package = ".".join(path.relative_to(PACKAGE).parent.parts)
    found = set()
    for node in ast.parse(path.read_text()).body:  # top level only: imports inside functions are lazy
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("qmu_core"):
                mod = node.module.removeprefix("qmu_core").lstrip(".")
            else:
                continue
            if node.module:
                found.add(mod)
            else:  # from . import a, b
                found.update(f"{mod}.{a.name}".lstrip(".") for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name.removeprefix("qmu_core.") for a in node.names
                         if a.name.startswith("qmu_core."))
    return found


def test_no_module_is_longer_than_the_limit():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in _modules(PACKAGE)
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them along a seam): {long}"


def test_book_modules_import_each_other_in_one_direction():
    graph = {p.stem: {m.removeprefix("book.") for m in _package_imports(p) if m.startswith("book.")}
             for p in _modules(PACKAGE / "book")}
    order: list[str] = []
    while len(order) < len(graph):
        ready = sorted(m for m, deps in graph.items() if m not in order and deps <= set(order))
        assert ready, f"import cycle among {sorted(set(graph) - set(order))}"
        order += ready


def test_book_takes_only_infrastructure_from_the_package():
    for p in _modules(PACKAGE / "book"):
        outside = {m for m in _package_imports(p) if not m.startswith("book") and m}
        assert outside <= INFRASTRUCTURE, f"{p.name} imports {sorted(outside - INFRASTRUCTURE)}"


def test_science_does_not_import_the_book():
    for p in _modules(PACKAGE):
        if p.parent == PACKAGE and p.name != "__main__.py":
            assert not any(m.startswith("book") for m in _package_imports(p)), p.name


def test_command_line_loads_no_science():
    code = ("import sys, qmu_core.book.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'jax', 'sympy') "
            "or m in ('qmu_core.resilience', 'qmu_core.minimal', 'qmu_core.chapter_params')))")
    env = dict(os.environ, PYTHONPATH=str(paths.ROOT))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
