"""The book pipeline: chapter registry, staleness of book/, the command line, the baselines.

The command-line tests run ``python -m qmu_core`` on a tiny synthetic notebook in pytest's
tmp_path (see conftest.py) and never write to the committed book/ or results/.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from qmu_core import paths
from qmu_core.book import build, cells, commands, errors, locations, parameters, timings
from qmu_core.book.registry import CHAPTERS

ROOT = paths.ROOT
EXISTING = [n for n, ch in CHAPTERS.items() if (paths.NOTEBOOKS / ch.notebook).exists()]


def qmu(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYDEVD_DISABLE_FILE_VALIDATION="1")
    return subprocess.run([sys.executable, "-m", "qmu_core", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _digest_tree(d: Path) -> dict[str, str]:
    return {str(p.relative_to(d)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(d.rglob("*")) if p.is_file()} if d.exists() else {}


# --------------------------------------------------------------------------------------
# registry, table of contents, configuration


def test_toc_lists_the_registered_chapters_in_order():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert toc["format"] == "jb-book"
    assert toc["root"] == "book/intro"
    assert build.toc_chapters() == list(CHAPTERS)
    assert (paths.BOOK / "intro.md").exists()


def test_config_is_the_one_the_pipeline_expects():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cfg["execute"]["execute_notebooks"] == "off"  # papermill executed the chapters
    assert cfg["only_build_toc_files"] is True
    assert set(cfg["parse"]["myst_enable_extensions"]) >= {"dollarmath", "amsmath", "colon_fence"}
    assert cfg["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert cfg["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert cfg["html"]["use_repository_button"] is True
    for f in cfg["bibtex_bibfiles"]:
        assert (ROOT / f).exists()
    for pattern in ("notebooks", "tests", ".venv", "_build", "results", "benchmarks"):
        assert pattern in cfg["exclude_patterns"]


def test_bibliography_holds_the_references_the_book_cites():
    bib = (ROOT / "references.bib").read_text()
    for needle in ("10.1038/s41467-026-70420-4", "10.5281/zenodo.18641024", "Quantum",
                   "Towards Unbounded Machine Unlearning", "Adam", "2579", "2278",
                   "Takahashi", "Flat Minima", "Sharp Minima"):
        assert needle in bib, needle


def test_book_holds_only_registered_chapters():
    strays = [p.name for p in paths.BOOK.glob("*.ipynb") if p.stem not in CHAPTERS]
    assert not strays, f"notebooks in book/ that are not chapters of qmu_core.book.registry: {strays}"
    hidden = [p.name for p in paths.BOOK.glob(".*.ipynb")]
    assert not hidden, f"left-over temporary notebooks in book/: {hidden}"


@pytest.mark.parametrize("name", list(CHAPTERS))
def test_executed_chapter_matches_its_source(name):
    executed = paths.BOOK / CHAPTERS[name].notebook
    assert executed.exists(), f"{name} is not executed into book/: run `python -m qmu_core run {name}`"
    source = paths.NOTEBOOKS / CHAPTERS[name].notebook
    assert source.exists(), f"book/{executed.name} has no source notebook {source}"
    problems = cells.staleness(executed, source)
    assert not problems, (f"book/{executed.name} is stale, run `python -m qmu_core run {name}`: "
                          + "; ".join(problems))
    nb = nbformat.read(str(executed), as_version=4)
    shown = [c for c in nb.cells if cells.DISPLAY_TAG in c.metadata.get("tags", [])]
    assert len(shown) == 1 and "Parameters of this execution" in shown[0].source
    for c in nb.cells:
        tags = c.metadata.get("tags", [])
        if cells.PARAMETERS_TAG in tags or cells.INJECTED_TAG in tags:
            assert cells.REMOVE_TAG in tags


def test_book_stores_no_error_output():
    assert cells.stored_errors(paths.BOOK) == []


@pytest.mark.parametrize("name", EXISTING or [pytest.param("none", marks=pytest.mark.skip("no chapter notebook yet"))])
def test_ci_parameters_are_parameters_of_the_notebook(name):
    params = parameters.inspect_parameters(paths.NOTEBOOKS / CHAPTERS[name].notebook)
    unknown = sorted(set(CHAPTERS[name].ci) - set(params))
    assert not unknown, f"qmu_core.book.registry: ci parameters of {name} unknown to its notebook: {unknown}"


@pytest.mark.parametrize("name", EXISTING or [pytest.param("none", marks=pytest.mark.skip("no chapter notebook yet"))])
def test_notebook_parameters_are_the_fields_of_its_class(name):
    """The pipeline checks values with the registry's class only when the names agree."""
    ch = CHAPTERS[name]
    in_notebook = list(parameters.inspect_parameters(paths.NOTEBOOKS / ch.notebook))
    fields = parameters.field_names(ch.parameter_class())
    assert sorted(in_notebook) == sorted(fields), (
        f"the parameters cell of notebooks/{ch.notebook} and {ch.params} differ: "
        f"only in the notebook {sorted(set(in_notebook) - set(fields))}, "
        f"only in the class {sorted(set(fields) - set(in_notebook))}")


@pytest.mark.parametrize("name", EXISTING or [pytest.param("none", marks=pytest.mark.skip("no chapter notebook yet"))])
def test_defaults_and_ci_parameters_pass_the_chapter_class(name):
    ch = CHAPTERS[name]
    params = parameters.inspect_parameters(paths.NOTEBOOKS / ch.notebook)
    for overrides in ({}, ch.ci):
        parameters.check_values(ch, params, overrides)  # raises ParametersRefused


@pytest.mark.parametrize("name", EXISTING or [pytest.param("none", marks=pytest.mark.skip("no chapter notebook yet"))])
def test_nbval_baseline_exists_and_matches_its_source(name):
    baseline = paths.NBVAL_BASELINES / CHAPTERS[name].notebook
    hint = f"run `python -m qmu_core baselines {name}`"
    assert baseline.exists(), f"no nbval baseline {baseline.relative_to(ROOT)}: {hint}"
    problems = cells.staleness(baseline, paths.NOTEBOOKS / CHAPTERS[name].notebook)
    assert not problems, f"{baseline.relative_to(ROOT)} is stale ({'; '.join(problems)}): {hint}"
    nb = nbformat.read(str(baseline), as_version=4)
    injected = [c.source for c in nb.cells if cells.INJECTED_TAG in c.metadata.get("tags", [])]
    expected = dict(CHAPTERS[name].ci)
    if expected:
        assert injected, f"the baseline of {name} lost its ci parameters: {hint}"
        for key in expected:
            assert f"{key} = " in injected[0], f"ci parameter {key} missing from the baseline: {hint}"
    assert cells.stored_errors(baseline.parent) == []


def test_timings_file_has_the_documented_columns():
    path = paths.RESULTS / timings.TIMINGS_FILE
    if not path.exists():
        pytest.skip("no chapter executed at paper scale yet")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
        assert f.seek(0) == 0 and next(csv.reader(f)) == timings.TIMINGS_COLUMNS
    names = [r["chapter"] for r in rows]
    assert len(names) == len(set(names)) and set(names) <= set(CHAPTERS)


# --------------------------------------------------------------------------------------
# value parsing and notebook helpers (no kernel)


@pytest.mark.parametrize(
    "text, value",
    [
        ("3", 3), ("-2", -2), ("3.5", 3.5), ("1e-3", 1e-3), ("True", True), ("False", False),
        ("None", None), ("false", "false"), ("true", "true"), ("abc", "abc"), ("xxz", "xxz"),
        ("[0.0,0.5]", [0.0, 0.5]), ("[0.0, 0.5]", [0.0, 0.5]), ("[[64,16],[8,2]]", [[64, 16], [8, 2]]),
        ("['a','b']", ["a", "b"]), ('["a", "b"]', ["a", "b"]), ("(1, 2)", [1, 2]), ("[]", []),
        ("[True, None]", [True, None]), ('{"a": 1}', {"a": 1}),
    ],
)
def test_parse_value_like_papermill_plus_lists(text, value):
    got = parameters.parse_value(text)
    assert got == value and type(got) is type(value)


def test_parse_value_refuses_a_broken_list():
    with pytest.raises(errors.UsageError, match="as a list"):
        parameters.parse_value("[0.0, 0.5")


def test_inspect_reads_lines_papermill_cannot(tmp_path):
    from conftest import make_synthetic_notebook

    params = parameters.inspect_parameters(make_synthetic_notebook(tmp_path / "x.ipynb"))
    assert list(params) == ["n_points", "flag", "alphas", "label", "results_dir"]
    # papermill skips a line with two '=' signs; the syntax tree recovers it
    assert params["results_dir"]["default"] == '""'
    assert params["results_dir"]["inferred_type_name"] == "str"
    assert "where the tables go" in params["results_dir"]["help"]


def test_present_parameters_hides_cells_and_adds_one_box(tmp_path):
    from conftest import make_synthetic_notebook

    path = make_synthetic_notebook(tmp_path / "x.ipynb")
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("n_points = 7\n", metadata={"tags": [cells.INJECTED_TAG]}))
    params = parameters.inspect_parameters(path)
    md = parameters.parameters_markdown("hessian", params, {"n_points": 7}, seconds=1.5, date="2026-01-01")
    for _ in range(2):  # idempotent
        cells.present_parameters(nb, md)
    kinds = [(c.cell_type, tuple(c.metadata.get("tags", []))) for c in nb.cells]
    assert kinds[1] == ("code", ("parameters", "remove-cell"))
    assert kinds[2] == ("code", ("injected-parameters", "remove-cell"))
    assert kinds[3] == ("markdown", (cells.DISPLAY_TAG,))
    assert sum(cells.DISPLAY_TAG in k[1] for k in kinds) == 1
    box = nb.cells[3].source
    assert box.startswith(":::{dropdown} Parameters of this execution")
    assert "| `n_points` | `7`: **overridden** (default `5`) | points on the grid |" in box
    assert "| `flag` | `True` | a switch |" in box
    assert "-p n_points 7" in box
    src = nbformat.read(str(path), as_version=4)
    assert cells.code_cells(nb) == cells.code_cells(src)


def test_stored_errors_are_found_and_block_the_build(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("1/0")
    cell.outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError",
                                           evalue="division by zero", traceback=[])]
    nb.cells = [cell]
    nbformat.write(nb, str(tmp_path / "hessian.ipynb"))
    found = cells.stored_errors(tmp_path)
    assert len(found) == 1 and "ZeroDivisionError" in found[0]
    monkeypatch.setattr(paths, "BOOK", tmp_path)
    with pytest.raises(errors.BuildError, match="store an error"):
        build.build_book(tmp_path / "out")
    assert not (tmp_path / "out").exists(), "jupyter-book must not have run"


def test_filtered_toc_leaves_out_missing_chapters(tmp_path):
    path = build.filtered_toc(ROOT / "_toc.yml", ["data", "notes"], tmp_path)
    assert build.toc_chapters(path) == [n for n in CHAPTERS if n not in ("data", "notes")]


# --------------------------------------------------------------------------------------
# the command line, on a synthetic chapter


def test_list_prints_every_parameter(scratch):
    r = qmu("list", "hessian", "--notebooks-dir", str(scratch["notebooks"]))
    assert r.returncode == 0, r.stderr
    for line in ("n_points: int", "= 5", "# points on the grid", "flag: bool", "= True",
                 "alphas: list", "= [0.0, 0.1]", "label: str", '= "x"', "results_dir: str",
                 "ci (nbval baseline): -p n_points 40"):
        assert line in r.stdout, line


@pytest.mark.parametrize("name", EXISTING or [pytest.param("none", marks=pytest.mark.skip("no chapter notebook yet"))])
def test_list_shows_all_parameters_of_the_real_chapters(name):
    text = parameters.describe_chapters([name])
    nb = nbformat.read(str(paths.NOTEBOOKS / CHAPTERS[name].notebook), as_version=4)
    for p in parameters.parse_parameters_cell(nb):
        assert f"  {p}: " in text, p


def test_run_refuses_unknown_parameters_before_executing(scratch, cli_args):
    r = qmu("run", "hessian", "-p", "n_pointz", "3", "-p", "colour", "red", *cli_args, timeout=60)
    assert r.returncode == 2
    assert "'n_pointz'" in r.stderr and "'colour'" in r.stderr
    assert "n_points, flag, alphas, label, results_dir" in r.stderr
    assert "Executing" not in r.stderr  # no kernel was started
    assert _digest_tree(scratch["book"]) == {}


def test_run_refuses_unknown_chapter(cli_args):
    r = qmu("run", "nonsense", *cli_args, timeout=60)
    assert r.returncode == 2 and "unknown chapter 'nonsense'" in r.stderr
    assert "resilience" in r.stderr


def test_run_bad_value_fails_briefly_and_leaves_the_book_alone(scratch, cli_args):
    # The synthetic notebook's parameters are not HessianParams's fields, so the pipeline
    # leaves the value to the notebook's own validation cell: the path of a notebook that
    # differs from the registry's class (the real chapters are refused earlier, see below).
    before = {"book": _digest_tree(scratch["book"])}
    r = qmu("run", "hessian", "-p", "n_points", "abc", *cli_args)
    assert r.returncode == 1
    assert "ParameterError: parameter 'n_points' must be an integer, got 'abc' (str)" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) < 15
    assert _digest_tree(scratch["book"]) == before["book"]  # nothing written, no temp file
    assert not (scratch["results"] / timings.TIMINGS_FILE).exists()


def test_run_flag_false_reaches_the_notebook_as_text(scratch, cli_args):
    r = qmu("run", "hessian", "-p", "flag", "false", *cli_args)
    assert r.returncode == 1
    assert "parameter 'flag' must be True or False, got 'false' (str)" in r.stderr
    assert "-p flag False" in r.stderr  # validation's hint
    assert _digest_tree(scratch["book"]) == {}


def test_run_executes_records_and_presents(scratch, cli_args):
    r = qmu("run", "hessian", "-p", "n_points", "7", "-p", "alphas", "[0.0,0.5]", *cli_args)
    assert r.returncode == 0, r.stderr
    out = scratch["book"] / "hessian.ipynb"
    nb = nbformat.read(str(out), as_version=4)
    assert cells.staleness(out, scratch["notebooks"] / "hessian.ipynb") == []
    assert cells.stored_errors(scratch["book"]) == []
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "points 7 flag True alphas [0.0, 0.5] label x" in printed
    box = [c.source for c in nb.cells if cells.DISPLAY_TAG in c.metadata.get("tags", [])]
    assert len(box) == 1 and "**overridden** (default `5`)" in box[0]
    # the results went to the scratch results folder through results_dir
    assert (scratch["results"] / "synthetic.csv").read_text() == "n_points\n7\n"
    with open(scratch["results"] / timings.TIMINGS_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["chapter"] for r in rows] == ["hessian"]
    assert list(rows[0]) == timings.TIMINGS_COLUMNS
    assert json.loads(rows[0]["parameters"])["n_points"] == 7
    assert json.loads(rows[0]["parameters"])["flag"] is True
    assert float(rows[0]["seconds"]) > 0 and int(rows[0]["cpu_count"]) >= 1
    assert "numpy=" in rows[0]["versions"]
    assert [p.name for p in scratch["book"].iterdir()] == ["hessian.ipynb"]

    # a second execution replaces the chapter's row
    r = qmu("run", "hessian", *cli_args)
    assert r.returncode == 0, r.stderr
    with open(scratch["results"] / timings.TIMINGS_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and json.loads(rows[0]["parameters"])["n_points"] == 5
    assert json.loads(rows[0]["overridden"]) == ["results_dir"]

    # prose can be refreshed without executing; code changes cannot
    src_path = scratch["notebooks"] / "hessian.ipynb"
    src = nbformat.read(str(src_path), as_version=4)
    src.cells[3].source = "## The experiment, reworded"
    nbformat.write(src, str(src_path))
    loc = locations.Locations(notebooks=scratch["notebooks"], book=scratch["book"])
    before = nbformat.read(str(out), as_version=4)
    commands.refresh_prose("hessian", loc=loc)
    after = nbformat.read(str(out), as_version=4)
    assert any(c.source == "## The experiment, reworded" for c in after.cells)
    assert [c.get("outputs") for c in after.cells if c.cell_type == "code"] == \
           [c.get("outputs") for c in before.cells if c.cell_type == "code"]
    assert [c.metadata.get("tags", []) for c in after.cells] == [c.metadata.get("tags", []) for c in before.cells]
    assert cells.staleness(out, src_path) == []
    src.cells[4].source += "\nprint('changed')"
    nbformat.write(src, str(src_path))
    assert cells.staleness(out, src_path)
    with pytest.raises(errors.PipelineError, match="code changed"):
        commands.refresh_prose("hessian", loc=loc)


#: a value each chapter's validation refuses (any chapter: a results_dir that is no string)
BAD_VALUES = {
    "data": {"tsne_perplexity": 200.0},
    "models": {"draw_qubits": 1},
    "resilience": {"n_runs": 0},
    "capacity": {"qnn_depths": [0]},
    "hessian": {"n_points": "abc"},
    "notes": {"results_dir": 3},
}


def _validation_cell_error(notebook: Path, overrides: dict) -> str:
    """The ParameterError text of the notebook's validation cell (the code cell after the
    parameters), run in this process as papermill would run it: defaults, then overrides."""
    from qmu_core.validation import ParameterError

    nb = nbformat.read(str(notebook), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    at = next(i for i, c in enumerate(code) if cells.PARAMETERS_TAG in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(code[at].source, namespace)
    namespace.update(overrides)
    with pytest.raises(ParameterError) as info:
        exec(code[at + 1].source, namespace)
    return str(info.value)


@pytest.fixture
def no_kernel(monkeypatch):
    """Fails the test if papermill is asked to execute a notebook."""
    import papermill

    calls = []
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: calls.append(a) or pytest.fail(
        "papermill.execute_notebook was called: a kernel was started"))
    return calls


@pytest.mark.parametrize("name", EXISTING or [pytest.param("none", marks=pytest.mark.skip("no chapter notebook yet"))])
def test_bad_value_is_refused_before_a_kernel_starts(name, tmp_path, no_kernel):
    overrides = BAD_VALUES.get(name, {"results_dir": 3})
    expected = _validation_cell_error(paths.NOTEBOOKS / CHAPTERS[name].notebook, overrides)
    loc = locations.Locations(notebooks=paths.NOTEBOOKS, book=tmp_path / "book")
    with pytest.raises(errors.ParametersRefused) as info:
        commands.run_chapter(name, overrides, loc=loc, build=False, progress=False)
    assert str(info.value) == f"chapter '{name}' not run: ParameterError: {expected}"
    assert info.value.exit_code == 1
    assert no_kernel == [] and not (tmp_path / "book").exists()


def test_baselines_refuse_bad_ci_parameters_before_any_kernel(tmp_path, monkeypatch, no_kernel):
    import dataclasses

    from qmu_core.book import registry

    bad = dataclasses.replace(CHAPTERS["hessian"], ci={"n_points": 2})
    monkeypatch.setitem(registry.CHAPTERS, "hessian", bad)
    with pytest.raises(errors.ParametersRefused, match="parameter 'n_points' must be >= 4, got 2"):
        commands.make_baselines(["data", "hessian"], out_dir=tmp_path / "nbval", progress=False)
    assert no_kernel == [] and not (tmp_path / "nbval").exists()


@pytest.mark.skipif(not (paths.NOTEBOOKS / "hessian.ipynb").exists(), reason="notebooks/hessian.ipynb not written yet")
def test_run_real_hessian_with_a_bad_value(tmp_path):
    real_book = _digest_tree(paths.BOOK)
    real_results = _digest_tree(paths.RESULTS)
    r = qmu("run", "hessian", "-p", "n_points", "abc", "--book-dir", str(tmp_path / "book"),
            "--results-dir", str(tmp_path / "results"), "--no-build", "--no-progress")
    assert r.returncode == 1
    assert r.stderr == ("error: chapter 'hessian' not run: ParameterError: parameter 'n_points' "
                        "must be an integer, got 'abc' (str)\n")
    assert not (tmp_path / "book").exists()
    assert _digest_tree(paths.BOOK) == real_book and _digest_tree(paths.RESULTS) == real_results


# --------------------------------------------------------------------------------------
# set-up files


def test_environment_yml_lists_the_project_dependencies():
    import re
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {re.split(r"[<>=!~ \[]", p, maxsplit=1)[0].lower() for p in pip if not p.startswith("-")}
    missing = [d for d in deps if re.split(r"[<>=!~ \[]", d, maxsplit=1)[0].lower() not in listed]
    assert not missing, f"environment.yml lacks: {missing}"
    assert "-e ." in pip and "torch==2.13.0" in pip
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"])


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "set -euo pipefail" in ci and "\nmake test\n" in ci
    assert "make test" in (ROOT / "README.md").read_text()


def test_sanitize_file_neutralises_what_varies():
    import re

    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((ROOT / "tests" / "nbval_sanitize.cfg").read_text())
    assert len(patterns) >= 8

    def clean(s: str) -> str:
        for regex, replace in patterns:
            s = re.sub(regex, replace, s)
        return s

    same = [
        ("<Figure at 0x7f3a2c1b9d90>", "<Figure at 0x7f00deadbeef>"),
        ("trained in 12.3 s", "trained in 0.8 s"),
        ("took 250 ms", "took 3 ms"),
        ("runs: 100%|██████████| 10/10 [00:01<00:00,  9.50it/s]",
         "runs: 100%|██████████| 10/10 [00:03<00:00,  3.10it/s]"),
        ("written 2026-11-22T02:22:40+00:00", "written 2027-01-01T00:00:00+00:00"),
        ("saved to /tmp/pytest-of-root/pytest-3/x/results.csv", "saved to /tmp/tmpab12cd/results.csv"),
        ("saved to /work/main/results/a.csv", "saved to /home/ci/clone/results/a.csv"),
        ("Wall time: 1.2 s", "Wall time: 15 ms"),
        ("An NVIDIA GPU may be present on this machine, but a CUDA-enabled jaxlib is not installed.\nok\n", "ok\n"),
    ]
    for a, b in same:
        assert clean(a) == clean(b), (a, clean(a), clean(b))
    different = [("accuracy 0.95", "accuracy 0.93"), ("alpha_c = 0.5", "alpha_c = 0.4"),
                 ("12 parameters", "13 parameters"), ("[0.1, 0.2]", "[0.1, 0.3]")]
    for a, b in different:
        assert clean(a) != clean(b), (a, b)
