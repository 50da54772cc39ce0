"""A chapter's parameters: read from its notebook, parsed from the command line, checked
before execution, and shown in the executed chapter's ``Parameters of this execution`` box.
"""

from __future__ import annotations

import ast
import dataclasses
import io
import json
import os
import shlex
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import nbformat

from ..validation import ParameterError
from .cells import parameters_cell
from .errors import ParametersRefused, UsageError
from .execution import quiet_papermill
from .locations import Locations, shown
from .registry import CHAPTERS, Chapter, get_chapter
from .timings import human_seconds

#: name -> {name, inferred_type_name, default (source text), help (the trailing comment)}
Parameters = Mapping[str, Mapping[str, Any]]


# --------------------------------------------------------------------------------------
# reading


def inspect_parameters(notebook: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """The notebook's parameters: name -> {name, inferred_type_name, default, help}.

    ``default`` is the source text of the default value, ``help`` the trailing comment.
    Read with ``papermill.inspect_notebook``; papermill skips a line holding more than one
    ``=`` (e.g. ``x: str = ""  # "" = default``), so such lines are read from the cell's
    syntax tree instead and nothing is lost.
    """
    import papermill as pm

    with quiet_papermill():
        found = pm.inspect_notebook(str(notebook))
    parsed = parse_parameters_cell(nbformat.read(str(notebook), as_version=4))
    merged = {name: found.get(name, p) for name, p in parsed.items()}
    merged.update({k: v for k, v in found.items() if k not in merged})
    return merged


def parse_parameters_cell(nb) -> dict[str, dict[str, Any]]:
    """Top-level assignments of the cell tagged ``parameters``, in source order."""
    cell = parameters_cell(nb)
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


# --------------------------------------------------------------------------------------
# command-line values


def parse_value(text: str) -> Any:
    """A ``-p`` value, resolved as papermill's own command line does, plus lists.

    ``True``/``False``/``None`` (capitalised, exactly), integers, floats; text starting
    with ``[``, ``(`` or ``{`` is read as a JSON or Python literal (``[0.0,0.5]``,
    ``[[64,16],[8,2]]``, ``(1, 2)``); anything else stays a string, so ``false`` reaches
    the chapter as the string ``'false'`` and its validation says what to write.
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


def cli_value(value: Any) -> str:
    """``value`` written as a ``-p`` argument for a shell (lists as compact JSON, quoted)."""
    if isinstance(value, (list, tuple, dict)):
        return shlex.quote(json.dumps(value, separators=(",", ":")))
    if isinstance(value, str):
        return shlex.quote(value)
    return str(value)


# --------------------------------------------------------------------------------------
# checks before execution


def check_names(chapter: str, given: Iterable[str], allowed: Mapping[str, Any]) -> None:
    """Refuse (usage error) any name in ``given`` that is not a parameter in ``allowed``."""
    unknown = [n for n in given if n not in allowed]
    if unknown:
        s = "s" if len(unknown) > 1 else ""
        raise UsageError(
            f"chapter '{chapter}' has no parameter{s} {', '.join(map(repr, unknown))}; "
            f"its parameters are: {', '.join(allowed)}"
        )


def effective_values(params: Parameters, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter's value in an execution: the defaults updated with ``overrides``.

    A default that is not a Python literal is kept as its source text.
    """
    values = {}
    for name, p in params.items():
        try:
            values[name] = _literal_default(p)
        except (ValueError, SyntaxError):
            values[name] = str(p["default"])
    values.update(overrides)
    return values


def _literal_default(p: Mapping[str, Any]) -> Any:
    """A parameter's default as a Python value (ValueError/SyntaxError if it is computed)."""
    return ast.literal_eval(str(p["default"]))


def check_values(chapter: Chapter, params: Parameters, overrides: Mapping[str, Any]) -> None:
    """Build the chapter's parameter class from the defaults updated with ``overrides``.

    The notebook's validation cell builds the same class from the same values, so a
    ``ParameterError`` here is the one the notebook would raise after its kernel started;
    it is raised as :class:`ParametersRefused`. The check applies only to a notebook whose
    parameters are exactly the class's fields and whose defaults (those not overridden)
    are Python literals: a notebook that differs (another ``--notebooks-dir``) is left to
    its own validation cell. ``tests/test_pipeline.py`` checks the committed notebooks.
    """
    cls = chapter.parameter_class()
    if set(params) != set(field_names(cls)):
        return
    values = dict(overrides)
    for name, p in params.items():
        if name not in values:
            try:
                values[name] = _literal_default(p)
            except (ValueError, SyntaxError):
                return  # a computed default: only the kernel knows its value
    try:
        cls(**values)
    except ParameterError as exc:
        raise ParametersRefused(chapter.name, type(exc).__name__, str(exc)) from None


def field_names(cls: type) -> list[str]:
    """The fields of a parameter dataclass, in order."""
    return [f.name for f in dataclasses.fields(cls)]


# --------------------------------------------------------------------------------------
# presentation


def describe_chapters(names: Sequence[str] | None = None, loc: Locations | None = None) -> str:
    """The text printed by ``python -m qmu_core list``."""
    loc = loc or Locations.from_env()
    out = io.StringIO()
    for name in names or list(CHAPTERS):
        ch = get_chapter(name)
        src = loc.notebooks / ch.notebook
        out.write(f"{ch.name}: {ch.title} [{ch.paper}]\n")
        if not src.exists():
            out.write(f"  (notebook {shown(src)} not written yet)\n\n")
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
            ci = " ".join(f"-p {k} {cli_value(v)}" for k, v in ch.ci.items())
            out.write(f"  ci (nbval baseline): {ci}\n")
        out.write("\n")
    return out.getvalue().rstrip("\n") + "\n"


def _format_value_md(text: str) -> str:
    text = text.replace("\n", " ")
    ticks = "``" if "`" in text else "`"
    pad = " " if ticks == "``" else ""
    return f"{ticks}{pad}{text}{pad}{ticks}".replace("|", "\\|")


def _md_text(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def parameters_markdown(
    chapter: str,
    params: Parameters,
    overrides: Mapping[str, Any],
    *,
    seconds: float | None = None,
    date: str | None = None,
    machine: str | None = None,
) -> str:
    """The collapsed box ``Parameters of this execution`` (a MyST dropdown with a table)."""
    lines = [":::{dropdown} Parameters of this execution", ""]
    if overrides:
        cmd = " ".join(f"-p {k} {cli_value(v)}" for k, v in overrides.items())
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
        when.append(f"in {human_seconds(seconds)}")
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
