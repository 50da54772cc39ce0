"""The minimal one-parameter models of the paper's SI section I, and their Hessians.

Two models share one scalar feature ``x``, one label ``y`` in {0, 1}, one trainable
parameter ``theta``, a sigmoid with scale ``s`` (``p = sigmoid(s z)``) and the binary
cross-entropy:

* the single sigmoid neuron ("MLP"):   ``z = theta * x``;
* the single-qubit classifier ("QNN"): ``R_Y(pi x)`` then ``R_Y(theta)`` on ``|0>``,
  ``z = <Z> = cos(pi x + theta)``.

SI section I uses ``s = 1``; the paper's trained QNNs use ``s = 5``.  For any scalar logit
``z(theta)`` the Hessian of the cross-entropy is

    H = s^2 p (1 - p) (dz/dtheta)^2  +  s (p - y) d^2z/dtheta^2,

whose first part the paper calls *Term A* (information-geometric term) and whose second part,
``-(p - y) cos(pi x + theta)`` times ``s`` for the qubit, is minus the paper's *Term B*
(error-phase interaction term, ``B = s (p - y) cos(pi x + theta)``, so ``H = A - B``).
For the neuron ``d^2z/dtheta^2 = 0`` and only Term A survives.

This module holds everything behind the book chapter ``notebooks/hessian.ipynb``:

* :func:`derive`: the SymPy derivation (the qubit's logit is computed from 2x2 matrices);
* closed forms in NumPy (:func:`hessian`, :func:`qnn_terms`);
* :func:`verify`: SymPy (lambdified) vs ``jax.hessian`` of the loss simulated with
  tensorcircuit-ng vs central finite differences, all in float64 inside :func:`float64_scope`;
* :func:`curvature_maps`: H over (x, theta);
* the dataset-level study (:func:`make_dataset`, :func:`flip_labels`, :func:`fit_theta`,
  :func:`dataset_study`) and its CSV output;
* the chapter's figures.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit

from .io import atomic_write_text
from .precision import float64_scope
from .paths import RESULTS, results_path
from .validation import (
    ParameterError,
    check_alpha,
    check_float,
    check_int,
    check_sequence,
    check_str,
)

MODELS = ("mlp", "qnn")
MODEL_LABELS = {"mlp": "single neuron (MLP)", "qnn": "single qubit (QNN)"}
#: Feature range: points are clipped to [-X_CLIP, X_CLIP] so that the qubit's encoding angle
#: pi x stays within one period (the encoding is one-to-one there).
X_CLIP = 1.0


# --------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class HessianParams:
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

    @property
    def results_path(self) -> Path:
        return results_path(self.results_dir)


def _check_model(model: str) -> str:
    if model not in MODELS:
        raise ParameterError(f"parameter 'model' must be one of {', '.join(map(repr, MODELS))}; got {model!r}")
    return model


# --------------------------------------------------------------------------- SymPy
@dataclass
class Derivation:
    """The SymPy derivation for one model: the displayed steps and the key expressions."""

    model: str
    steps: list[tuple[str, Any]] = field(default_factory=list)  # (LaTeX label, sympy object)
    symbols: dict[str, Any] = field(default_factory=dict)
    z: Any = None  # logit as a function of (x, theta)
    loss: Any = None
    grad: Any = None  # SymPy's own derivative (unsimplified)
    hess: Any = None
    hess_closed: Any = None  # the closed form, with p = sigmoid(s z) substituted
    hess_closed_p: Any = None  # the closed form in terms of the symbol p
    term_a_p: Any = None
    term_b_p: Any = None  # the paper's Term B (H = A - B); zero for the neuron
    grad_residual: Any = None  # simplify(grad - closed gradient)
    hess_residual: Any = None  # simplify(hess - closed Hessian)
    hess_residual_s1: Any = None  # the same at s = 1 against the paper's printed formula

    @property
    def proved(self) -> bool:
        return self.grad_residual == 0 and self.hess_residual == 0 and self.hess_residual_s1 == 0


def ry_matrix(angle):
    """R_Y(angle) = exp(-i angle Y / 2) as a 2x2 SymPy matrix."""
    import sympy as sp

    return sp.Matrix([[sp.cos(angle / 2), -sp.sin(angle / 2)], [sp.sin(angle / 2), sp.cos(angle / 2)]])


def derive(model: str) -> Derivation:
    """Derive gradient and Hessian of the cross-entropy for ``model`` with SymPy, general ``s``.

    The qubit's logit is computed from the circuit: ``R_Y(theta) R_Y(pi x) |0>`` with 2x2
    matrices, then ``<psi| Z |psi>``.  The results are proved equal to the closed forms
    ``s (p - y) z'`` and ``s^2 p (1 - p) z'^2 + s (p - y) z''`` (residual simplifies to 0),
    and at ``s = 1`` to the formulas printed in SI section I (eqs. S10 and S15).
    """
    import sympy as sp

    _check_model(model)
    x, th, s, y = sp.symbols("x theta s y", real=True)
    p = sp.Symbol("p", positive=True)
    d = Derivation(model=model, symbols={"x": x, "theta": th, "s": s, "y": y, "p": p})
    steps = d.steps

    if model == "qnn":
        a = sp.Symbol("a", real=True)
        zero = sp.Matrix([1, 0])
        pauli_z = sp.diag(1, -1)
        steps.append((r"R_Y(a) = e^{-i a Y/2}", ry_matrix(a)))
        psi_in = ry_matrix(sp.pi * x) * zero
        psi_out = ry_matrix(th) * psi_in
        steps.append((r"|\psi_\mathrm{in}\rangle = R_Y(\pi x)|0\rangle", psi_in))
        steps.append((r"|\psi_\mathrm{out}\rangle = R_Y(\theta)|\psi_\mathrm{in}\rangle", psi_out))
        z_raw = (psi_out.H * pauli_z * psi_out)[0]
        steps.append((r"z = \langle\psi_\mathrm{out}|Z|\psi_\mathrm{out}\rangle", z_raw))
        z = sp.simplify(z_raw)
        steps.append((r"z \;\text{(simplified)}", z))
    else:
        z = th * x
        steps.append((r"z", z))
    d.z = z

    sig = 1 / (1 + sp.exp(-s * z))
    loss = -(y * sp.log(sig) + (1 - y) * sp.log(1 - sig))
    steps.append((r"\mathcal{L}\;\text{(cross-entropy with } p = 1/(1+e^{-sz}))", loss))
    grad = sp.diff(loss, th)
    hess = sp.diff(loss, th, 2)
    steps.append((r"\partial_\theta \mathcal{L}\;\text{(SymPy, raw)}", grad))
    # SymPy's result written back in terms of p: exp(-s z) = (1 - p) / p.
    expo = sp.exp(-s * z)
    grad_p = sp.factor(sp.simplify(grad.subs(expo, (1 - p) / p)))
    steps.append((r"\partial_\theta \mathcal{L}\;\text{(in terms of } p)", grad_p))
    steps.append((r"\partial^2_\theta \mathcal{L}\;\text{(SymPy, raw)}", hess))
    hess_p = sp.collect(sp.expand(sp.simplify(hess.subs(expo, (1 - p) / p))), s)
    steps.append((r"\partial^2_\theta \mathcal{L}\;\text{(in terms of } p)", hess_p))

    dz, d2z = sp.diff(z, th), sp.diff(z, th, 2)
    term_a = s**2 * p * (1 - p) * dz**2
    term_b = -s * (p - y) * d2z  # paper's B: H = A - B
    closed_p = term_a - term_b
    d.term_a_p, d.term_b_p, d.hess_closed_p = term_a, term_b, closed_p
    d.hess_closed = closed_p.subs(p, sig)
    d.loss, d.grad, d.hess = loss, grad, hess
    d.grad_residual = sp.simplify(grad - s * (sig - y) * dz)
    d.hess_residual = sp.simplify(hess - d.hess_closed)
    if model == "qnn":
        paper = p * (1 - p) * sp.sin(sp.pi * x + th) ** 2 - (p - y) * sp.cos(sp.pi * x + th)
        steps.append((r"\text{Term A (information-geometric)}", term_a))
        steps.append((r"\text{Term B (error-phase interaction)}", term_b))
        steps.append((r"H_\mathrm{QNN} = A - B", closed_p))
    else:
        paper = x**2 * p * (1 - p)
        steps.append((r"H_\mathrm{MLP}\;\text{(Term A only)}", closed_p))
    d.hess_residual_s1 = sp.simplify((hess - paper.subs(p, sig)).subs(s, 1))
    steps.append((r"\mathrm{simplify}(\partial_\theta\mathcal{L} - s(p-y)\,\partial_\theta z)", d.grad_residual))
    steps.append((r"\mathrm{simplify}(\partial^2_\theta\mathcal{L} - H_\text{closed form})", d.hess_residual))
    steps.append((r"s=1:\;\mathrm{simplify}(\partial^2_\theta\mathcal{L} - H_\text{SI})", d.hess_residual_s1))
    return d


def derivation_latex(d: Derivation) -> list[str]:
    """One LaTeX line per derivation step, for ``IPython.display.Math``."""
    import sympy as sp

    return [rf"{label} \;=\; {sp.latex(expr)}" for label, expr in d.steps]


def lambdify_hessian(d: Derivation):
    """SymPy's own (unsimplified) Hessian as a NumPy function ``f(x, theta, y, s)``."""
    import sympy as sp

    sy = d.symbols
    return sp.lambdify((sy["x"], sy["theta"], sy["y"], sy["s"]), d.hess, modules="numpy")


def lambdify_gradient(d: Derivation):
    import sympy as sp

    sy = d.symbols
    return sp.lambdify((sy["x"], sy["theta"], sy["y"], sy["s"]), d.grad, modules="numpy")


# --------------------------------------------------------------------------- NumPy closed forms
def logit(model: str, x, theta):
    """z(x, theta): ``theta x`` (neuron) or ``cos(pi x + theta)`` (qubit)."""
    _check_model(model)
    x, theta = np.asarray(x, dtype=float), np.asarray(theta, dtype=float)
    return theta * x if model == "mlp" else np.cos(np.pi * x + theta)


def bce(model: str, x, theta, y, s: float = 1.0):
    """Per-point binary cross-entropy, computed stably from the logit."""
    z = s * logit(model, x, theta)
    y = np.asarray(y, dtype=float)
    return -(y * log_expit(z) + (1 - y) * log_expit(-z))


def gradient(model: str, x, theta, y, s: float = 1.0):
    """dL/dtheta = s (p - y) dz/dtheta."""
    x, theta, y = (np.asarray(v, dtype=float) for v in (x, theta, y))
    p = expit(s * logit(model, x, theta))
    dz = x if model == "mlp" else -np.sin(np.pi * x + theta)
    return s * (p - y) * dz


def qnn_terms(x, theta, y, s: float = 1.0):
    """The qubit's Term A = s^2 p(1-p) sin^2(pi x + theta) and Term B = s (p - y) cos(pi x + theta).

    The Hessian is ``A - B`` (the paper's eq. S15 at s = 1).
    """
    x, theta, y = (np.asarray(v, dtype=float) for v in (x, theta, y))
    phase = np.pi * x + theta
    p = expit(s * np.cos(phase))
    return s**2 * p * (1 - p) * np.sin(phase) ** 2, s * (p - y) * np.cos(phase)


def hessian(model: str, x, theta, y, s: float = 1.0):
    """d^2L/dtheta^2 per point: ``s^2 x^2 p(1-p)`` (neuron) or ``A - B`` (qubit)."""
    _check_model(model)
    x, theta, y = (np.asarray(v, dtype=float) for v in (x, theta, y))
    if model == "mlp":
        p = expit(s * theta * x)
        return s**2 * x**2 * p * (1 - p) + 0.0 * y
    a, b = qnn_terms(x, theta, y, s)
    return a - b


def _jax_loss(model: str):
    """The per-point loss ``f(theta, x, y, s)`` in JAX; the qubit is simulated by tensorcircuit."""
    import jax
    import jax.numpy as jnp
    import tensorcircuit as tc

    def z_qnn(theta, x):
        c = tc.Circuit(1)
        c.ry(0, theta=jnp.pi * x)
        c.ry(0, theta=theta)
        return jnp.real(c.expectation_ps(z=[0]))

    def loss(theta, x, y, s):
        z = theta * x if model == "mlp" else z_qnn(theta, x)
        return -(y * jax.nn.log_sigmoid(s * z) + (1 - y) * jax.nn.log_sigmoid(-s * z))

    return loss


def random_check_points(n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` random (x, theta, y): x in [-1, 1], theta in [-pi, pi], y in {0, 1}."""
    rng = np.random.default_rng([seed, 7])
    return {
        "x": rng.uniform(-X_CLIP, X_CLIP, n),
        "theta": rng.uniform(-np.pi, np.pi, n),
        "y": rng.integers(0, 2, n).astype(float),
    }


#: Step of the 5-point central differences (error O(h^4) + rounding O(eps / h^2), both ~1e-9).
FD_STEP = 1e-3


def verify(n_check: int, scales, seed: int = 0, derivations: dict | None = None) -> list[dict]:
    """Compare three Hessians (and gradients) at ``n_check`` random points for each model and scale.

    ``sympy``: SymPy's own derivative, lambdified; ``autodiff``: ``jax.grad`` / ``jax.hessian``
    of the tensorcircuit-simulated loss; ``finite_diff``: 5-point central differences of that
    same loss (step :data:`FD_STEP`); ``closed_form``: the NumPy formulas of this module.
    Returns one row per (model, s, quantity, pair) with the largest absolute difference.
    """
    import jax
    import jax.numpy as jnp

    n_check = check_int("n_check", n_check, min=1)
    scales = check_sequence("scales", list(scales), lambda n, v: check_float(n, v, min=0.0, min_inclusive=False))
    pts = random_check_points(n_check, seed)
    derivations = derivations or {m: derive(m) for m in MODELS}
    rows: list[dict] = []
    h = FD_STEP
    with float64_scope():
        for model in MODELS:
            f = _jax_loss(model)
            g_ad = jax.jit(jax.vmap(jax.grad(f), in_axes=(0, 0, 0, None)))
            h_ad = jax.jit(jax.vmap(jax.hessian(f), in_axes=(0, 0, 0, None)))
            f_v = jax.jit(jax.vmap(f, in_axes=(0, 0, 0, None)))
            th, x, y = (jnp.asarray(pts[k], dtype=jnp.float64) for k in ("theta", "x", "y"))
            assert th.dtype == jnp.float64
            sym_h, sym_g = lambdify_hessian(derivations[model]), lambdify_gradient(derivations[model])
            for s in scales:
                fv = {k: np.asarray(f_v(th + k * h, x, y, s)) for k in (-2, -1, 0, 1, 2)}
                fd_g = (fv[-2] - 8 * fv[-1] + 8 * fv[1] - fv[2]) / (12 * h)
                fd_h = (-fv[-2] + 16 * fv[-1] - 30 * fv[0] + 16 * fv[1] - fv[2]) / (12 * h * h)
                vals = {
                    "hessian": {
                        "sympy": np.asarray(sym_h(pts["x"], pts["theta"], pts["y"], s), dtype=float),
                        "autodiff": np.asarray(h_ad(th, x, y, s)),
                        "finite_diff": fd_h,
                        "closed_form": hessian(model, pts["x"], pts["theta"], pts["y"], s),
                    },
                    "gradient": {
                        "sympy": np.asarray(sym_g(pts["x"], pts["theta"], pts["y"], s), dtype=float),
                        "autodiff": np.asarray(g_ad(th, x, y, s)),
                        "finite_diff": fd_g,
                        "closed_form": gradient(model, pts["x"], pts["theta"], pts["y"], s),
                    },
                }
                for quantity, v in vals.items():
                    scale_of = float(np.max(np.abs(v["sympy"])))
                    for a, b in [("sympy", "autodiff"), ("sympy", "finite_diff"),
                                 ("autodiff", "finite_diff"), ("sympy", "closed_form")]:
                        rows.append({
                            "model": model, "sigmoid_scale": float(s), "quantity": quantity,
                            "pair": f"{a} vs {b}", "n_points": n_check,
                            "max_abs_diff": float(np.max(np.abs(v[a] - v[b]))),
                            "max_abs_value": scale_of,
                        })
    return rows


# --------------------------------------------------------------------------- curvature maps
def curvature_maps(s: float, resolution: int = 201) -> dict[str, np.ndarray]:
    """H over x in [-1, 1] and theta in [-pi, pi] for both models and both labels.

    Keys: ``x``, ``theta`` (1-D axes), and 2-D arrays (theta along rows) ``qnn_y0``,
    ``qnn_y1``, ``termb_y0``, ``termb_y1`` (Term B's contribution ``-B`` to H), ``mlp``
    (the neuron's H does not depend on y).
    """
    s = check_float("sigmoid_scale", s, min=0.0, min_inclusive=False)
    resolution = check_int("map_resolution", resolution, min=3)
    xs = np.linspace(-X_CLIP, X_CLIP, resolution)
    ths = np.linspace(-np.pi, np.pi, resolution)
    X, T = np.meshgrid(xs, ths)
    out = {"x": xs, "theta": ths, "mlp": hessian("mlp", X, T, 0.0, s)}
    for y in (0, 1):
        a, b = qnn_terms(X, T, float(y), s)
        out[f"qnn_y{y}"] = a - b
        out[f"termb_y{y}"] = -b
    return out


def outlier_example(s: float, class_mean: float = 0.5) -> dict[str, float]:
    """A point the qubit treats as an outlier, and a well-classified neighbour, at theta = -pi/2.

    At ``theta = -pi/2`` the qubit's logit is ``sin(pi x)``: the clean-data optimum of the
    dataset study.  A point at ``x = +class_mean`` (where class 1 lives) labelled ``y = 0`` gets
    ``p = sigmoid(s sin(pi class_mean))`` near 1: the model is confidently wrong.
    """
    th = -np.pi / 2
    out = {"theta": th, "x_outlier": class_mean, "y_outlier": 0.0, "x_clean": -class_mean, "y_clean": 0.0}
    for tag in ("outlier", "clean"):
        x, y = out[f"x_{tag}"], out[f"y_{tag}"]
        a, b = qnn_terms(x, th, y, s)
        # rounded to 12 decimals so that rounding noise (sin(-pi) ~ 1e-16) prints as 0
        tidy = lambda v: float(np.round(v, 12)) + 0.0  # noqa: E731
        out[f"p_{tag}"] = tidy(expit(s * np.cos(np.pi * x + th)))
        out[f"H_{tag}"] = tidy(a - b)
        out[f"A_{tag}"], out[f"B_{tag}"] = tidy(a), tidy(b)
        out[f"H_mlp_{tag}"] = tidy(hessian("mlp", x, th, y, s))
    return out


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
    _check_model(model)
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
    _check_model(model)
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
    """Write ``rows`` as ``<results_dir>/<name>`` atomically; the default folder is ``RESULTS``."""
    folder = Path(results_dir) if results_dir else RESULTS
    return atomic_write_text(folder / name, rows_to_csv(rows))


# --------------------------------------------------------------------------- figures
def plot_curvature_maps(maps: dict[str, np.ndarray], s: float, example: dict[str, float] | None = None):
    """2 x 3 panels: H_QNN, Term B's contribution, H_MLP; rows y = 0 and y = 1; H = 0 drawn."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    fig, axes = plt.subplots(2, 3, figsize=(10.5, 6.2), sharex=True, sharey=True, constrained_layout=True)
    X, T = np.meshgrid(maps["x"], maps["theta"])
    titles = {"qnn": r"$H_\mathrm{QNN}$", "termb": r"Term B's part $-s(p-y)\cos(\pi x+\theta)$",
              "mlp": r"$H_\mathrm{MLP}$ (any $y$)"}
    for row, y in enumerate((0, 1)):
        for col, kind in enumerate(("qnn", "termb", "mlp")):
            ax = axes[row, col]
            Z = maps["mlp"] if kind == "mlp" else maps[f"{kind}_y{y}"]
            lim = max(float(np.max(np.abs(Z))), 1e-12)
            norm = TwoSlopeNorm(vcenter=0.0, vmin=-lim, vmax=lim)
            im = ax.pcolormesh(X, T, Z, norm=norm, cmap="RdBu_r", shading="auto", rasterized=True)
            if np.min(Z) < 0 < np.max(Z):
                ax.contour(X, T, Z, levels=[0.0], colors="k", linewidths=1.2)
            fig.colorbar(im, ax=ax, shrink=0.85)
            ax.set_title(f"{titles[kind]}, y = {y}" if kind != "mlp" else titles[kind])
            ax.grid(False)
            if example is not None and y == 0 and kind != "mlp":
                ax.plot(example["x_outlier"], example["theta"], marker="*", ms=13, mec="k", mfc="gold",
                        ls="none", label="confidently wrong (outlier)")
                ax.plot(example["x_clean"], example["theta"], marker="o", ms=7, mec="k", mfc="w",
                        ls="none", label="correctly classified")
        axes[row, 0].set_ylabel(r"$\theta$")
    for ax in axes[-1]:
        ax.set_xlabel("x")
    if example is not None:
        axes[0, 0].legend(loc="lower left", fontsize=8, frameon=True)
    fig.suptitle(f"Per-point curvature, s = {s:g} (black line: H = 0)")
    return fig


def plot_dataset_study(rows: list[dict], colors: dict[str, str], theta_max: float | None = None):
    """2 x 3 panels against alpha: theta* (qubit, neuron), clean accuracy; curvature ratio,
    curvature of the noisy loss at the clean optimum, and the qubit's Term A / Term B at theta*."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    scales = sorted({r["sigmoid_scale"] for r in rows})
    styles = ["-", "--", ":", "-."]
    for i, s in enumerate(scales):
        ls = styles[i % len(styles)]
        for model in MODELS:
            rs = sorted((r for r in rows if r["model"] == model and r["sigmoid_scale"] == s), key=lambda r: r["alpha"])
            a = np.array([r["alpha"] for r in rs])
            lab = f"{MODEL_LABELS[model]}, s = {s:g}"
            kw = dict(ls=ls, marker="o", ms=3, color=colors[model], label=lab)
            th = np.array([r["theta_star"] for r in rs])
            ax = axes[0, 0] if model == "qnn" else axes[0, 1]
            ax.plot(a, th, **kw)
            if model == "mlp":
                bound = np.array([r["theta_at_bound"] for r in rs], dtype=bool)
                if bound.any():
                    ax.plot(a[bound], th[bound], ls="none", marker="x", ms=8, color="k")
            axes[0, 2].plot(a, [r["clean_acc"] for r in rs], **kw)
            axes[1, 0].plot(a, [r["curvature_ratio"] for r in rs], **kw)
            axes[1, 1].plot(a, [r["curvature_at_clean_opt"] / r["clean_curvature"] for r in rs], **kw)
            if model == "qnn":
                axes[1, 2].plot(a, [r["term_a"] for r in rs], ls=ls, color=colors["qnn"], label=f"Term A, s = {s:g}")
                axes[1, 2].plot(a, [-r["term_b"] for r in rs], ls=ls, color="0.35", label=f"$-$Term B, s = {s:g}")
                ac = rs[0]["alpha_c_predicted"]
                if np.isfinite(ac) and ac < 1:
                    axes[1, 1].axvline(ac, color=colors["qnn"], ls=ls, lw=0.9)
    axes[0, 0].axhline(-np.pi / 2, color="0.5", lw=0.8)
    axes[0, 0].set_yticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], [r"$-\pi$", r"$-\pi/2$", "0", r"$\pi/2$", r"$\pi$"])
    axes[0, 0].set_title(r"qubit: $\theta^*(\alpha)$ (grey: $-\pi/2$)")
    title = r"neuron: $\theta^*(\alpha)$"
    if theta_max is not None:
        title += rf" (x: on the bound $|\theta|={theta_max:g}$)"
    axes[0, 1].set_title(title)
    axes[0, 2].set_title("accuracy on the clean labels at $\\theta^*$")
    axes[1, 0].set_yscale("log")
    axes[1, 0].set_title(r"curvature at $\theta^*(\alpha)$ / curvature at $\theta^*(0)$")
    axes[1, 1].axhline(0, color="k", lw=0.8)
    axes[1, 1].set_title("noisy curvature at the clean optimum / clean value\n(vertical: predicted $\\alpha_c$)")
    axes[1, 2].axhline(0, color="k", lw=0.8)
    axes[1, 2].set_title(r"qubit: mean Term A and $-$Term B at $\theta^*$")
    for ax in axes.flat:
        ax.axvline(0.5, color="0.6", lw=0.8, ls=":")
        ax.set_xlabel(r"flipped fraction $\alpha$")
        ax.legend(fontsize=7)
    return fig


def landscape_alphas(alphas, k: int = 5) -> list[float]:
    """Up to ``k`` alphas from the grid, evenly spread over those <= 0.5 (for the landscape figure)."""
    pool = sorted(a for a in alphas if a <= 0.5) or sorted(alphas)
    idx = np.unique(np.round(np.linspace(0, len(pool) - 1, min(k, len(pool)))).astype(int))
    return [float(pool[i]) for i in idx]


def plot_landscapes(curves: dict[str, Any], s: float, color: str):
    """The qubit's mean loss over theta for a few alphas: the clean minimum turns into a maximum."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), constrained_layout=True)
    alphas = sorted(curves["curves"])
    for i, alpha in enumerate(alphas):
        shade = 0.25 + 0.75 * (i / max(1, len(alphas) - 1))
        ax.plot(curves["theta"], curves["curves"][alpha], color=color, alpha=shade, label=rf"$\alpha$ = {alpha:g}")
    ax.axvline(-np.pi / 2, color="0.5", lw=0.8)
    ax.set_xticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], [r"$-\pi$", r"$-\pi/2$", "0", r"$\pi/2$", r"$\pi$"])
    ax.set_xlabel(r"$\theta$")
    ax.set_ylabel("mean loss")
    ax.set_title(f"single-qubit model: loss landscape of the noisy data, s = {s:g}")
    ax.legend(fontsize=8)
    return fig


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
