"""The book's chapters: which notebook, what title, and the small 'ci' parameter set.

The paper-scale defaults live in each notebook's ``parameters`` cell (the single source of
truth for a chapter's parameters and their types); ``ci`` overrides them for the small
executions that nbval re-checks in CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths
from .validation import ParameterError, check_alpha, check_float, check_int, check_str


@dataclass(frozen=True)
class Chapter:
    name: str  # command-line name, also the notebook's stem
    title: str
    paper: str  # the paper section / figures it reproduces
    ci: dict[str, Any] = field(default_factory=dict)

    @property
    def notebook(self) -> str:
        return f"{self.name}.ipynb"


CHAPTERS: dict[str, Chapter] = {
    c.name: c
    for c in [
        Chapter("data", "Data and corruption", "Fig. 1b, Fig. 2b", ci={"tsne_points": 120}),
        Chapter("models", "Models", "Fig. 4", ci={}),
        Chapter(
            "resilience",
            "Resilience to data corruption",
            "Fig. 2c, 2d",
            ci={"n_runs": 2, "alphas": [0.0, 0.5], "epoch_scale": 0.05},
        ),
        Chapter(
            "capacity",
            "Does capacity matter?",
            "SI Fig. S1",
            ci={"n_runs": 1, "alphas": [0.0, 0.6], "epoch_scale": 0.05,
                "mlp_sizes": [[64, 16], [8, 2]], "qnn_depths": [4]},
        ),
        Chapter(
            "hessian",
            "The analytic single-qubit Hessian",
            "SI section I",
            ci={"n_points": 40, "n_check": 20},
        ),
        Chapter("notes", "Reproduction notes", "all", ci={}),
    ]
}


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class DataChapterParams:
    """Parameters of the 'Data and corruption' chapter."""

    n_examples: int = 8
    alpha: float = 0.2
    tsne_points: int = 500
    tsne_perplexity: float = 30.0
    seed: int = 0
    results_dir: str = ""

    def __post_init__(self):
        check_int("n_examples", self.n_examples, min=1, max=32)
        check_alpha(self.alpha)
        check_int("tsne_points", self.tsne_points, min=20, max=2000)
        check_float("tsne_perplexity", self.tsne_perplexity, min=2.0, max=100.0)
        if self.tsne_perplexity >= self.tsne_points:
            raise ParameterError(f"parameter 'tsne_perplexity' must be < tsne_points ({self.tsne_points}), got {self.tsne_perplexity}")
        check_int("seed", self.seed, min=0)
        check_str("results_dir", self.results_dir)

    @property
    def results_path(self) -> Path:
        return paths.results_path(self.results_dir)


@dataclass(frozen=True)
class ModelsChapterParams:
    """Parameters of the 'Models' chapter."""

    draw_qubits: int = 10
    draw_depth: int = 1
    n_check_states: int = 8
    seed: int = 0
    results_dir: str = ""

    def __post_init__(self):
        check_int("draw_qubits", self.draw_qubits, min=2, max=14)
        check_int("draw_depth", self.draw_depth, min=1, max=4)
        check_int("n_check_states", self.n_check_states, min=1, max=64)
        check_int("seed", self.seed, min=0)
        check_str("results_dir", self.results_dir)

    @property
    def results_path(self) -> Path:
        return paths.results_path(self.results_dir)
