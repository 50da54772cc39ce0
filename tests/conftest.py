"""Shared fixtures: a tiny synthetic chapter notebook and scratch folders for the pipeline.

No test touches the committed book/, results/ or tests/nbval/: executions go to folders
under pytest's tmp_path through the pipeline's --notebooks-dir/--book-dir/--results-dir.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qmu_core import cpu_isa  # noqa: E402  (imports nothing numerical)

# before anything loads numpy, jax or torch here; the nbval kernels inherit it (see cpu_isa)
cpu_isa.pin()

# debugpy (loaded by ipykernel) prints a warning about frozen modules at every kernel start
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

SYNTHETIC_PARAMETERS = '''\
n_points: int = 5  # points on the grid
flag: bool = True  # a switch
alphas: list = [0.0, 0.1]  # corruption ratios
label: str = "x"  # a label
results_dir: str = ""  # where the tables go ("" = results/)'''

SYNTHETIC_VALIDATION = '''\
from pathlib import Path
from qmu_core.validation import check_alpha, check_bool, check_int, check_sequence, check_str

n_points = check_int("n_points", n_points, min=1)
flag = check_bool("flag", flag)
alphas = check_sequence("alphas", alphas, lambda n, v: check_alpha(v, n))
label = check_str("label", label)
out = Path(results_dir) if results_dir else None'''

SYNTHETIC_BODY = '''\
print("points", n_points, "flag", flag, "alphas", list(alphas), "label", label)
if out is not None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "synthetic.csv").write_text("n_points\\n%d\\n" % n_points)'''


def pytest_report_header(config):
    """The CPU and the pinned kernels: nbval baselines are compared bit for bit on printed numbers."""
    from qmu_core.book.timings import machine_description

    return [f"cpu: {machine_description()}", f"pinned kernels: {cpu_isa.describe()}",
            f"nbval baselines recorded on: {baseline_machines()}"]


def baseline_machines() -> str:
    """The machines the nbval baselines say they were executed on (their notebook metadata)."""
    import json

    seen = {}
    for nb in sorted((ROOT / "tests" / "nbval").glob("*.ipynb")):
        meta = json.loads(nb.read_text(encoding="utf-8")).get("metadata", {}).get("qmu", {})
        seen.setdefault(meta.get("recorded_on", "not recorded"), []).append(nb.stem)
    return "; ".join(f"{m} ({', '.join(v)})" for m, v in seen.items())


def make_synthetic_notebook(path: Path) -> Path:
    """A small chapter-like notebook: parameters cell, validation cell, one computation."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# A synthetic chapter\n\nUsed by the pipeline tests."),
        nbformat.v4.new_code_cell(SYNTHETIC_PARAMETERS, metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell(SYNTHETIC_VALIDATION),
        nbformat.v4.new_markdown_cell("## The experiment\n\nIt prints its parameters."),
        nbformat.v4.new_code_cell(SYNTHETIC_BODY),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def scratch(tmp_path):
    """Scratch notebooks/, book/ and results/ folders, with a synthetic 'hessian' chapter.

    The synthetic notebook stands in for a registered chapter name so that the command line
    accepts it; it is written to the scratch notebooks folder only.
    """
    dirs = {k: tmp_path / k for k in ("notebooks", "book", "results")}
    for d in dirs.values():
        d.mkdir()
    make_synthetic_notebook(dirs["notebooks"] / "hessian.ipynb")
    return dirs


@pytest.fixture
def cli_args(scratch):
    """The location options that point ``python -m qmu_core run`` at the scratch folders."""
    return [
        "--notebooks-dir", str(scratch["notebooks"]),
        "--book-dir", str(scratch["book"]),
        "--results-dir", str(scratch["results"]),
        "--no-build", "--no-progress",
    ]
