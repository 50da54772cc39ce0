"""The chapter on the analytic single-qubit Hessian (SI section I): parameters and study.

The two one-parameter models (a single sigmoid neuron, ``z = theta x``, and a single
qubit, ``z = cos(pi x + theta)``) and their per-point Hessians ``H = A - B`` are in
:mod:`qmu_core.minimal_models` (SymPy derivation, closed forms, three-way verification,
curvature maps); the figures are in :mod:`qmu_core.minimal_plots`. This module holds the
chapter's parameters (:class:`HessianParams`), the dataset-level study (:func:`make_dataset`,
:func:`flip_labels`, :func:`fit_theta`, :func:`dataset_study`), its CSV output and the
numbers quoted in the text. The notebook uses only this module (``minimal.<name>``): it
also provides the formulas and figures the notebook calls, listed in ``__all__``.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from .io import atomic_write_text
from .minimal_models import (
    MODEL_LABELS,
    MODELS,
    X_CLIP,
    bce,
    check_model,
    curvature_maps,
    derivation_latex,
    derive,
    hessian,
    logit,
    outlier_example,
    qnn_terms,
    verify,
)
from .minimal_plots import landscape_alphas, plot_curvature_maps, plot_dataset_study, plot_landscapes
from .paths import ResultsDir, results_path
from .validation import (
    ParameterError,
    check_alpha,
    check_float,
    check_int,
    check_sequence,
    check_str,
)

#: what the chapter's notebook calls as ``minimal.<name>``
__all__ = [
    "MODELS", "MODEL_LABELS", "HessianParams",
    "derive", "derivation_latex", "verify", "curvature_maps", "outlier_example",
    "hessian", "qnn_terms", "make_dataset", "flip_labels", "fit_theta", "predicted_alpha_c",
    "dataset_study", "landscapes", "summarise", "write_csv",
    "format_study_table", "format_verification", "glue_values",
    "landscape_alphas", "plot_curvature_maps", "plot_dataset_study", "plot_landscapes",
]

# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class HessianParams(ResultsDir):
    """The chapter's parameters, checked on construction (see the notebook's parameter cell)."""

    class_mean: float = 0.5
    class_std: float = 0.2
    n_points: int = 400
    alphas: tuple = tuple(round(0.05 * i, 2) for i in range(19))
    sigmoid_scale: float = 1.0
    second_scale: float = 5.0
    mlp_theta_max: float = 20.0
    n_theta_grid: int = 2001
    map_resolution: int = 201
    n_check: int = 200
    seed: int = 0
    results_dir: str = ""

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("class_mean", check_float("class_mean", self.class_mean, min=0.0, max=X_CLIP))
        put("class_std", check_float("class_std", self.class_std, min=0.0, max=X_CLIP, min_inclusive=False))
        put("n_points", check_int("n_points", self.n_points, min=4, max=1_000_000))
        alphas = check_sequence("alphas", self.alphas, lambda n, v: check_alpha(v, n))
        put("alphas", tuple(sorted(set(alphas))))
        put("sigmoid_scale", check_float("sigmoid_scale", self.sigmoid_scale, min=0.0, max=100.0,
                                         min_inclusive=False))
        put("second_scale", check_float("second_scale", self.second_scale, min=0.0, max=100.0,
                                        min_inclusive=False))
        put("mlp_theta_max", check_float("mlp_theta_max", self.mlp_theta_max, min=0.0, max=1e4,
                                         min_inclusive=False))
        put("n_theta_grid", check_int("n_theta_grid", self.n_theta_grid, min=11, max=1_000_000))
        put("map_resolution", check_int("map_resolution", self.map_resolution, min=11, max=2001))
        put("n_check", check_int("n_check", self.n_check, min=1, max=100_000))
        put("seed", check_int("seed", self.seed, min=0))
        put("results_dir", check_str("results_dir", self.results_dir))

    @property
    def scales(self) -> tuple[float, ...]:
        """The sigmoid scales studied: ``sigmoid_scale`` first, then ``second_scale`` if different."""
        if self.second_scale == self.sigmoid_scale:
            return (self.sigmoid_scale,)
        return (self.sigmoid_scale, self.second_scale)



# --------------------------------------------------------------------------- dataset study
def make_dataset(n_points: int, class_mean: float, class_std: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scalar points: class 0 ~ N(-class_mean, class_std^2), class 1 ~ N(+class_mean, class_std^2).

    ``n_points // 2`` points of class 0 first, then the rest of class 1; each x is clipped to
    [-1, 1] (one period of the qubit's encoding angle pi x).  Both models then put their
    clean-data decision boundary at x = 0: the neuron because it has no bias, the qubit at
    ``theta = -pi/2`` where its logit is ``sin(pi x)``.
    """
    n_points = check_int("n_points", n_points, min=2)
    class_mean = check_float("class_mean", class_mean, min=0.0, max=X_CLIP)
    class_std = check_float("class_std", class_std, min=0.0, min_inclusive=False)
    rng = np.random.default_rng([seed, 0])
    n0 = n_points // 2
    x = np.concatenate([rng.normal(-class_mean, class_std, n0), rng.normal(class_mean, class_std, n_points - n0)])
    y = np.concatenate([np.zeros(n0), np.ones(n_points - n0)])
    return np.clip(x, -X_CLIP, X_CLIP), y


def n_flipped(alpha: float, n: int) -> int:
    """floor(alpha * n), rounded down to an even number (the project's label-flip count)."""
    k = int(math.floor(check_alpha(alpha) * n + 1e-9))
    return k - k % 2


def flip_labels(y: np.ndarray, alpha: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Flip the labels of ``n_flipped(alpha, len(y))`` points, half drawn from each class.

    The draw is a seeded permutation per class and the first ``n/2`` of each are flipped, so the
    flipped set at a larger alpha contains the one at a smaller alpha (smooth curves in alpha).
    Returns the noisy labels and a boolean mask of flipped points.
    """
    y = np.asarray(y, dtype=float)
    n = n_flipped(alpha, len(y))
    rng = np.random.default_rng([seed, 1])
    mask = np.zeros(len(y), dtype=bool)
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        if n // 2 > len(idx):
            raise ParameterError(
                f"parameter 'alpha' = {alpha} asks to flip {n // 2} points of class {c}, which has only {len(idx)}"
            )
        mask[rng.permutation(idx)[: n // 2]] = True
    noisy = y.copy()
    noisy[mask] = 1 - noisy[mask]
    return noisy, mask


def mean_loss(model: str, theta: float, x, y, s: float) -> float:
    return float(np.mean(bce(model, x, theta, y, s)))


def wrap_angle(theta):
    """Map an angle into (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(theta, dtype=float), 2 * np.pi)


def fit_theta(model: str, x, y, s: float, *, theta_max: float = 20.0, n_grid: int = 2001) -> tuple[float, bool]:
    """The minimiser of the mean loss over theta: a dense grid, then bounded Brent refinement.

    Qubit: theta is periodic, the grid covers [-pi, pi) and the result is wrapped into
    (-pi, pi].  Neuron: theta is searched in [-theta_max, theta_max]; on (nearly) separable
    data the true minimiser runs off to infinity, and the second return value says whether the
    result sits on the bound.
    """
    check_model(model)
    if model == "qnn":
        grid = np.linspace(-np.pi, np.pi, n_grid, endpoint=False)
        lo_lim, hi_lim = -np.inf, np.inf
    else:
        grid = np.linspace(-theta_max, theta_max, n_grid)
        lo_lim, hi_lim = -theta_max, theta_max
    losses = np.array([mean_loss(model, t, x, y, s) for t in grid])
    g = grid[int(np.argmin(losses))]
    step = grid[1] - grid[0]
    lo, hi = max(lo_lim, g - step), min(hi_lim, g + step)
    res = minimize_scalar(lambda t: mean_loss(model, t, x, y, s), bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-10})
    theta = float(res.x) if res.fun <= losses.min() else float(g)
    if model == "qnn":
        return float(wrap_angle(theta)), False
    return theta, bool(abs(theta) >= theta_max * (1 - 1e-6))


def predicted_alpha_c(model: str, x, y, theta0: float, s: float) -> float:
    """The flip fraction at which the clean optimum ``theta0`` stops being a minimum (linear estimate).

    Flipping a label ``y -> 1 - y`` leaves Term A alone and changes the point's Term B by
    ``s (2y - 1) d2z`` with ``d2z = -cos(pi x + theta)`` for the qubit, so the curvature of the
    mean loss at a *fixed* theta falls linearly with the number of flips.  With flips drawn
    evenly from both (equal-sized) classes its expected value is
    ``H(alpha) = H_clean - alpha * s * mean_i[(2 y_i - 1) cos(pi x_i + theta0)]``, which crosses 0 at
    the returned alpha.  The neuron has no Term B (``d2z = 0``): its curvature at fixed theta
    does not depend on the labels and the result is ``inf``.
    """
    check_model(model)
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    h_clean = float(np.mean(hessian(model, x, theta0, y, s)))
    if model == "mlp":
        return float("inf")
    rate = s * float(np.mean((2 * y - 1) * np.cos(np.pi * x + theta0)))
    return h_clean / rate if rate > 0 else float("inf")


def dataset_study(P: HessianParams) -> list[dict]:
    """theta*(alpha), the total curvature there and clean accuracy, for both models and each scale.

    Columns: ``model, sigmoid_scale, alpha, n_flipped, theta_star, theta_at_bound, loss,
    curvature`` (second derivative of the mean loss at theta*), ``term_a, term_b`` (mean Term
    A / Term B there, curvature = term_a - term_b), ``clean_curvature`` (curvature of the clean
    loss at its own optimum theta*(0)), ``curvature_ratio`` (curvature over the clean
    data's curvature at its own optimum, the minimal-model analogue of the paper's LRR),
    ``curvature_at_clean_opt`` (curvature of the noisy loss at the clean optimum theta*(0)),
    ``shift`` (|theta* - theta*(0)|, wrapped for the qubit), ``alpha_c_predicted`` (see
    :func:`predicted_alpha_c`; constant per model and scale), ``clean_acc`` (accuracy against
    the true labels), ``train_acc`` (against the noisy labels).
    """
    x, y = make_dataset(P.n_points, P.class_mean, P.class_std, P.seed)
    rows: list[dict] = []
    for s in P.scales:
        for model in MODELS:
            fit = lambda yy: fit_theta(model, x, yy, s, theta_max=P.mlp_theta_max, n_grid=P.n_theta_grid)  # noqa: E731
            th0, _ = fit(y)
            h0 = float(np.mean(hessian(model, x, th0, y, s)))
            alpha_c = predicted_alpha_c(model, x, y, th0, s)
            for alpha in P.alphas:
                noisy, mask = flip_labels(y, alpha, P.seed)
                th, at_bound = fit(noisy)
                z = logit(model, x, th)
                if model == "qnn":
                    a, b = (float(np.mean(t)) for t in qnn_terms(x, th, noisy, s))
                    shift = float(abs(wrap_angle(th - th0)))
                else:
                    a, b = float(np.mean(hessian(model, x, th, noisy, s))), 0.0
                    shift = float(abs(th - th0))
                curv = float(np.mean(hessian(model, x, th, noisy, s)))
                rows.append({
                    "model": model, "sigmoid_scale": float(s), "alpha": float(alpha),
                    "n_flipped": int(mask.sum()), "theta_star": th, "theta_at_bound": at_bound,
                    "loss": mean_loss(model, th, x, noisy, s), "curvature": curv,
                    "term_a": a, "term_b": b, "clean_curvature": h0,
                    "curvature_ratio": curv / h0 if h0 > 0 else float("nan"),
                    "curvature_at_clean_opt": float(np.mean(hessian(model, x, th0, noisy, s))),
                    "shift": shift, "alpha_c_predicted": alpha_c,
                    "clean_acc": float(np.mean((z > 0) == (y == 1))),
                    "train_acc": float(np.mean((z > 0) == (noisy == 1))),
                })
    return rows


def landscapes(P: HessianParams, s: float, alphas, model: str = "qnn", n: int = 721) -> dict[str, Any]:
    """The mean loss over theta for a few alphas (for the landscape figure)."""
    x, y = make_dataset(P.n_points, P.class_mean, P.class_std, P.seed)
    if model == "qnn":
        thetas = np.linspace(-np.pi, np.pi, n)
    else:
        thetas = np.linspace(-P.mlp_theta_max / 4, P.mlp_theta_max / 4, n)
    curves = {}
    for alpha in alphas:
        noisy, _ = flip_labels(y, alpha, P.seed)
        curves[float(alpha)] = np.array([mean_loss(model, t, x, noisy, s) for t in thetas])
    return {"theta": thetas, "curves": curves}


def summarise(rows: list[dict]) -> dict[str, float]:
    """Key numbers per (model, scale) for the text: values at alpha = 0 and at the last alpha < 0.5,
    the first alpha at which the clean optimum stops being a minimum (curvature_at_clean_opt < 0),
    at which theta* has moved by more than 0.1 rad, and at which the clean accuracy has dropped by
    more than 0.05 (NaN when never); the predicted alpha_c; the number of bound hits.
    Keys look like ``qnn_s1_theta0`` (scale written without a trailing ``.0``).
    """
    out: dict[str, float] = {}
    for (model, s) in sorted({(r["model"], r["sigmoid_scale"]) for r in rows}):
        rs = sorted((r for r in rows if r["model"] == model and r["sigmoid_scale"] == s), key=lambda r: r["alpha"])
        key = f"{model}_s{s:g}".replace(".", "p")
        below = [r for r in rs if r["alpha"] < 0.5] or rs
        first, last = below[0], below[-1]
        out[f"{key}_alpha_first"] = first["alpha"]
        out[f"{key}_alpha_last"] = last["alpha"]
        for col in ("theta_star", "curvature", "clean_acc", "curvature_ratio", "shift"):
            out[f"{key}_{col}_first"] = first[col]
            out[f"{key}_{col}_last"] = last[col]
        out[f"{key}_at_bound_first"] = float(first["theta_at_bound"])
        neg = [r["alpha"] for r in rs if r["curvature_at_clean_opt"] < 0]
        out[f"{key}_alpha_clean_opt_unstable"] = neg[0] if neg else float("nan")
        moved = [r["alpha"] for r in rs if r["shift"] > 0.1]
        out[f"{key}_alpha_moved"] = moved[0] if moved else float("nan")
        acc_drop = [r["alpha"] for r in rs if r["clean_acc"] < first["clean_acc"] - 0.05]
        out[f"{key}_alpha_acc_drop"] = acc_drop[0] if acc_drop else float("nan")
        out[f"{key}_alpha_c_predicted"] = first["alpha_c_predicted"]
        out[f"{key}_n_at_bound"] = float(sum(bool(r["theta_at_bound"]) for r in rs))
    return out


# --------------------------------------------------------------------------- CSV
def rows_to_csv(rows: list[dict]) -> str:
    if not rows:
        raise ValueError("no rows to write")
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.10g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def write_csv(rows: list[dict], name: str, results_dir: str | Path | None = None) -> Path:
    """Write ``rows`` as ``<results_dir>/<name>`` atomically; the default folder is the repository's results/."""
    folder = results_path(results_dir)
    return atomic_write_text(folder / name, rows_to_csv(rows))


# --------------------------------------------------------------------------- text helpers
def format_study_table(rows: list[dict], s: float) -> str:
    """A compact text table for one scale: alpha, then theta*, curvature, clean accuracy per model."""
    rs = [r for r in rows if r["sigmoid_scale"] == s]
    by = {(r["model"], r["alpha"]): r for r in rs}
    alphas = sorted({r["alpha"] for r in rs})
    head = (f"s = {s:g}\n{'alpha':>6} | {'qubit theta*':>12} {'curv.':>8} {'clean acc':>9} |"
            f" {'neuron theta*':>13} {'curv.':>8} {'clean acc':>9}")
    lines = [head, "-" * len(head.splitlines()[1])]
    for a in alphas:
        q, m = by[("qnn", a)], by[("mlp", a)]
        bound = "*" if m["theta_at_bound"] else " "
        lines.append(f"{a:>6.2f} | {q['theta_star']:>12.3f} {q['curvature']:>8.3g} {q['clean_acc']:>9.3f} |"
                     f" {m['theta_star']:>12.3f}{bound} {m['curvature']:>8.3g} {m['clean_acc']:>9.3f}")
    if any(r["theta_at_bound"] for r in rs):
        lines.append("* the neuron's theta* sits on the search bound (its true minimiser is at infinity)")
    return "\n".join(lines)


def format_verification(rows: list[dict], tol: float = 1e-6) -> str:
    """Pass/fail per (model, s, quantity, pair) against ``tol`` (the values themselves are glued)."""
    lines = [f"{'model':<6}{'s':>5}  {'quantity':<9} {'pair':<28} below {tol:g}?"]
    for r in rows:
        lines.append(f"{r['model']:<6}{r['sigmoid_scale']:>5g}  {r['quantity']:<9} {r['pair']:<28} "
                     f"{r['max_abs_diff'] < tol}")
    return "\n".join(lines)


def glue_values(P: HessianParams, study_rows: list[dict], check_rows: list[dict],
                example: dict[str, float]) -> dict[str, float]:
    """The numbers quoted in the chapter's text, under ``hessian_*`` names.

    ``a`` is the first scale (``sigmoid_scale``), ``b`` the second (``second_scale``; equal to
    ``a`` when only one scale was run).
    """
    summ = summarise(study_rows)
    out: dict[str, float] = {
        "hessian_max_discrepancy": max(r["max_abs_diff"] for r in check_rows),
        "hessian_max_discrepancy_ad": max(r["max_abs_diff"] for r in check_rows if r["pair"] == "sympy vs autodiff"),
        "hessian_n_check": P.n_check,
        "hessian_outlier_p": example["p_outlier"],
        "hessian_outlier_h": example["H_outlier"],
        "hessian_clean_h": example["H_clean"],
    }
    scales = P.scales if len(P.scales) == 2 else (P.scales[0], P.scales[0])
    for tag, s in zip("ab", scales):
        out[f"hessian_scale_{tag}"] = s
        for model in MODELS:
            key = f"{model}_s{s:g}".replace(".", "p")
            for k, v in summ.items():
                if k.startswith(key + "_"):
                    out[f"hessian_{model}_{tag}_{k[len(key) + 1:]}"] = v
    return out
