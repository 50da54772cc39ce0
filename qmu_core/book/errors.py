"""The pipeline's errors: problems the user can fix, each shown as one short message.

The command line prints ``error: <message>`` and exits with the error's ``exit_code``
(2 for wrong command-line input, 1 for everything else).
"""

from __future__ import annotations

from pathlib import Path

from .locations import shown


class PipelineError(Exception):
    """A problem the user can fix; shown as one short message, exit status ``exit_code``."""

    exit_code = 1


class UsageError(PipelineError):
    """Wrong command-line input (unknown chapter or parameter, unparsable value)."""

    exit_code = 2


class ParametersRefused(PipelineError):
    """The chapter's parameter class refused a value before any kernel started.

    The message ends with the ``ParameterError`` text that the notebook's validation cell
    would have raised for the same values.
    """

    def __init__(self, chapter: str, ename: str, evalue: str):
        self.chapter, self.ename, self.evalue = chapter, ename, evalue
        super().__init__(f"chapter '{chapter}' not run: {ename}: {evalue}")


class ChapterFailed(PipelineError):
    """The notebook raised during execution (e.g. an error in a computation)."""

    def __init__(self, chapter: str, ename: str, evalue: str, cell_index: int | None,
                 kept: Path | None):
        self.chapter, self.ename, self.evalue = chapter, ename, evalue
        self.cell_index, self.kept = cell_index, kept
        where = "" if cell_index is None else f" (cell {cell_index})"
        msg = f"chapter '{chapter}' failed{where}: {ename}: {evalue}"
        if kept is not None:
            msg += f"\n  the failed execution, with its traceback, is in {shown(kept)}"
        super().__init__(msg)


class BuildError(PipelineError):
    """The HTML book cannot be built (stored errors, missing chapters, jupyter-book failed)."""
