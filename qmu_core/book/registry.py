"""The book's chapters: notebook, title, parameter class and the small 'ci' parameter set.

The paper-scale defaults live in each notebook's ``parameters`` cell (the single source of
truth for a chapter's parameters and their types); ``ci`` overrides them for the small
executions that nbval re-checks in CI. ``params`` names the frozen dataclass that the
notebook's validation cell builds from those parameters; the pipeline builds the same class
before starting a kernel, so a bad value is refused at once (see
:func:`qmu_core.book.parameters.check_values`). It is an import path, imported only then,
so that listing chapters or building the book never loads the science modules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError


@dataclass(frozen=True)
class Chapter:
    name: str  # command-line name, also the notebook's stem
    title: str
    paper: str  # the paper section / figures it reproduces
    params: str  # "module:Class", the parameter class of the notebook's validation cell
    ci: dict[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()  # chapters whose results this one reads: run-all executes them first

    @property
    def notebook(self) -> str:
        return f"{self.name}.ipynb"

    def parameter_class(self) -> type:
        """Import and return the class named by ``params``."""
        module, _, name = self.params.partition(":")
        return getattr(importlib.import_module(module), name)


CHAPTERS: dict[str, Chapter] = {
    c.name: c
    for c in [
        Chapter("scorecard", "Claims scorecard", "all", "qmu_core.scorecard:ScorecardParams", ci={},
                after=("resilience", "capacity", "classical", "unlearning", "landscape", "hessian", "noise")),
        Chapter("data", "Data and corruption", "Fig. 1b, Fig. 2b",
                "qmu_core.chapter_params:DataChapterParams", ci={"tsne_points": 120}),
        Chapter("models", "Models", "Fig. 4", "qmu_core.chapter_params:ModelsChapterParams", ci={}),
        Chapter(
            "resilience",
            "Resilience to data corruption",
            "Fig. 2c, 2d",
            "qmu_core.resilience:ResilienceParams",
            ci={"n_runs": 2, "alphas": [0.0, 0.5], "epoch_scale": 0.05, "xxz_qnn_trial_runs": 3, "workers": 1},
        ),
        Chapter(
            "capacity",
            "Does capacity matter?",
            "SI Fig. S1",
            "qmu_core.capacity:CapacityParams",
            ci={"n_runs": 1, "alphas": [0.0, 0.6], "epoch_scale": 0.05,
                "mlp_sizes": [[64, 16], [8, 2]], "qnn_depths": [4], "workers": 1},
        ),
        Chapter(
            "classical",
            "More classical models",
            "main text (other classical models)",
            "qmu_core.classical:ClassicalParams",
            # no CNN at ci scale: its float32 convolutions round differently on CPUs with other
            # vector instructions (AVX2 vs AVX-512), which moves its accuracy at alpha = 0.5 by a
            # few images and the baseline with it; tests/test_classical.py trains it instead
            ci={"families": ["logistic", "rbf_svm", "rff"], "alternatives": False, "n_runs": 1,
                "alphas": [0.0, 0.5], "workers": 1},
            after=("resilience",),
        ),
        Chapter(
            "unlearning",
            "Unlearning a poisoned model",
            "Fig. 3a, 3b; SI Figs. S2, S3",
            "qmu_core.unlearning_chapter:UnlearningParams",
            ci={"n_runs": 1, "steps": 3, "epoch_scale": 0.05, "mnist_n_val": 200, "dip_warmup": 2, "ga_trial_runs": 0,
                "workers": 1},
        ),
        Chapter(
            "unlearning_grid",
            "Unlearning hyperparameters",
            "SI section VI (released code)",
            "qmu_core.unlearning_grid:GridParams",
            ci={"n_runs": 1, "steps": 2, "epoch_scale": 0.05, "mnist_n_val": 200, "lambdas": [0.0, 0.2],
                "betas": [0.0, 0.2], "workers": 1},
        ),
        Chapter(
            "landscape",
            "Loss landscapes and the Hessian trace",
            "Fig. 3c, 3d",
            "qmu_core.landscape_chapter:LandscapeParams",
            ci={"n_runs": 1, "alphas": [0.0, 0.3], "epoch_scale": 0.05, "n_hessian": 20, "mnist_n_val": 200,
                "hutchinson_probes": 4, "slq_steps": 10, "slq_probes": 2, "slice_points": 5, "slice_grid": 3,
                "unlearn_epochs": 2, "workers": 1},
        ),
        Chapter(
            "hessian",
            "The analytic single-qubit Hessian",
            "SI section I",
            "qmu_core.minimal:HessianParams",
            ci={"n_points": 40, "n_check": 20},
        ),
        Chapter(
            "noise",
            "Beyond the paper: noise, shots and depth",
            "beyond the paper",
            "qmu_core.noise_chapter:NoiseParams",
            ci={"depolarizing": [0.01], "amplitude_damping": [], "readout": [0.05], "shots": [100],
                "mnist_runs": 0, "n_runs": 1, "alphas": [0.0, 0.5], "epoch_scale": 0.02, "depths": [1, 2],
                "depth_runs": 1, "hessian_runs": 1, "n_draws": 4, "workers": 1},
            after=("resilience",),
        ),
        Chapter("notes", "Reproduction notes", "all", "qmu_core.chapter_params:NotesParams", ci={},
                after=("data", "models", "resilience", "capacity", "hessian")),
    ]
}


def execution_order(names) -> list[str]:
    """``names`` (in table-of-contents order) reordered so that every chapter comes after the
    chapters of its ``after`` that are among them; otherwise the order is kept."""
    names, done, out = list(names), set(), []
    while len(out) < len(names):
        for n in names:
            if n not in done and all(d in done or d not in names for d in CHAPTERS[n].after):
                done.add(n)
                out.append(n)
                break
        else:
            raise ValueError(f"circular 'after' among chapters: {[n for n in names if n not in done]}")
    return out


def get_chapter(name: str) -> Chapter:
    """The registered chapter ``name``; an unknown name is a usage error listing the chapters."""
    try:
        return CHAPTERS[name]
    except KeyError:
        raise UsageError(
            f"unknown chapter '{name}'; the chapters are: {', '.join(CHAPTERS)}"
        ) from None
