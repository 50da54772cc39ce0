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

This module holds the formulas, per point:

* :func:`derive`: the SymPy derivation (the qubit's logit is computed from 2x2 matrices);
* closed forms in NumPy (:func:`hessian`, :func:`qnn_terms`);
* :func:`verify`: SymPy (lambdified) vs ``jax.hessian`` of the loss simulated with
  tensorcircuit-ng vs central finite differences, all in float64 inside :func:`float64_scope`;
* :func:`curvature_maps`: H over (x, theta), and :func:`outlier_example`.

The dataset-level study and the chapter's parameters are in :mod:`qmu_core.minimal`, the
figures in :mod:`qmu_core.minimal_plots`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import expit, log_expit

from .precision import float64_scope
from .validation import ParameterError, check_float, check_int, check_sequence

MODELS = ("mlp", "qnn")
MODEL_LABELS = {"mlp": "single neuron (MLP)", "qnn": "single qubit (QNN)"}
#: Feature range: points are clipped to [-X_CLIP, X_CLIP] so that the qubit's encoding angle
#: pi x stays within one period (the encoding is one-to-one there).
X_CLIP = 1.0


def check_model(model: str) -> str:
    """``model`` if it is one of :data:`MODELS`, else a ParameterError naming them."""
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

    check_model(model)
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
    check_model(model)
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
    check_model(model)
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
