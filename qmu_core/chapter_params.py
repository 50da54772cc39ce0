"""Parameters of the chapters that have no experiment module of their own.

The data, models and notes chapters show pieces of several modules (data sets and their
corruption, the two models and the QNN's kernels, the timings) rather than run one
experiment, so their parameter classes live here; the experiments' classes live with their
science (``resilience.ResilienceParams``, ``minimal.HessianParams``, ...). Each class is a
frozen dataclass whose fields are exactly the names of its notebook's ``parameters`` cell;
the notebook builds it in the cell after the parameters, and the book pipeline builds it
before starting a kernel (``qmu_core.book.registry``), so both refuse a bad value with the
same ``ParameterError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .paths import ResultsDir
from .validation import ParameterError, check_alpha, check_float, check_int, check_str


@dataclass(frozen=True)
class DataChapterParams(ResultsDir):
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



@dataclass(frozen=True)
class ModelsChapterParams(ResultsDir):
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



@dataclass(frozen=True)
class NotesParams(ResultsDir):
    """Parameters of the 'Reproduction notes' chapter."""

    results_dir: str = ""

    def __post_init__(self):
        check_str("results_dir", self.results_dir)

