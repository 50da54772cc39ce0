"""The book's chapters: which notebook, what title, and the small 'ci' parameter set.

The paper-scale defaults live in each notebook's ``parameters`` cell (the single source of
truth for a chapter's parameters and their types); ``ci`` overrides them for the small
executions that nbval re-checks in CI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
