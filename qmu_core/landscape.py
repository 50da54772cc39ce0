"""Loss-landscape geometry at trained parameters (Fig. 3c, 3d): Hessians, their traces and
spectra, and loss slices.

Every quantity is of the training loss L(v) = sum_b w_b BCE(s z_b(v), y_b) as a function of
one flat parameter vector v (``w_b = 1/N`` by default: the mean; other weights select a part
of the samples, e.g. the flipped ones, so that the parts' Hessians add up to the whole's).

* :class:`QNNLoss`: the QNN of :mod:`qmu_core.qnn` on the adjoint kernel
  (:mod:`qmu_core.adjoint`) in float64. Its exact Hessian is assembled from the logits'
  Jacobian and the second derivatives of sum_b c_b <Z>_b, both by the parameter-shift rule
  (every angle sits in one gate exp(-i t P / 2) with P^2 = 1, so <Z> is a + b cos t + c sin t
  in each angle and a shift of +-pi/2 differentiates it exactly): 2 P kernel calls for P live
  parameters, no finite step. :func:`logit_hessian` does the assembly (also for any model
  whose logits' derivatives are known, e.g. the analytic chapter's single qubit).
* :class:`TorchLoss`: any PyTorch module (the MLP of :mod:`qmu_core.mlp`) in float64 through
  ``torch.func``: gradient, Hessian-vector products, the exact diagonal (the Gauss-Newton
  diagonal from per-sample gradients for ReLU networks, otherwise chunks of HVPs) and
  the dense Hessian for small models.
* :func:`hutchinson` (Rademacher probes, with its standard error), :func:`lanczos_extremes`
  (scipy's ``eigsh`` on a LinearOperator of HVPs), :func:`slq` (stochastic Lanczos quadrature:
  a spectral density of a matrix too large to diagonalise), :func:`spectrum_summary`.
* :func:`is_dead`: a network whose output does not depend on its input (a dead ReLU network).
* :func:`filter_normalised`, :func:`slice_1d`, :func:`slice_2d`, :func:`line`: loss slices
  along random filter-normalised directions (Li et al. 2018) and along a straight line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from .validation import ParameterError, check_int

SHIFT = np.pi / 2
#: an eigenvalue counts as negative below -NEG_TOL * (largest |eigenvalue|)
NEG_TOL = 1e-6
#: a network is dead when the spread of its logits over the data is below this
DEAD_TOL = 1e-6


def bce(z, y):
    """Per-sample binary cross-entropy of logits ``z`` (stable)."""
    return np.logaddexp(0.0, z) - y * z


def _weights(w, n: int) -> np.ndarray:
    if w is None:
        return np.full(n, 1.0 / n)
    w = np.asarray(w, np.float64)
    if w.shape != (n,):
        raise ParameterError(f"parameter 'weights' must have shape ({n},), got {w.shape}")
    return w


def logit_hessian(r, y, w, jac, d2=None, scale: float = 1.0) -> np.ndarray:
    """Hessian of sum_b w_b BCE(scale r_b, y_b), p_b = sigmoid(scale r_b): sum_b w_b [scale^2
    p_b (1 - p_b) J_b J_b^T + scale (p_b - y_b) d2 r_b] (Gauss-Newton part plus the curvature of
    the logits). ``jac``: (N, P) derivatives of r; ``d2``: the second part already summed, i.e.
    the Hessian of sum_b c_b r_b with c_b = w_b scale (p_b - y_b), shape (P, P), or None for
    logits linear in the parameters."""
    p = expit(scale * np.asarray(r, np.float64))
    a = np.asarray(w) * scale**2 * p * (1 - p)
    h = (jac * a[:, None]).T @ jac
    return h if d2 is None else h + d2


# ----------------------------------------------------------------------------- the QNN
class QNNLoss:
    """The BCE loss of a :class:`qmu_core.qnn.QNN` on (x, y) over its live parameters
    (:attr:`QNN.live_mask`; the others have zero gradient and zero curvature), float64."""

    def __init__(self, model, x, y, weights=None):
        from .adjoint import _Circuit
        from .qnn import OUTPUT_SCALE, QNN

        m = QNN(model.n_qubits, model.depth, model.rotations, model.entangler, dtype="complex128")
        self.model, self.circ, self.scale = m, _Circuit(m), OUTPUT_SCALE
        self.mask = m.live_mask
        self.n = int(self.mask.sum())
        self.x = self.circ.kernel_input(np.asarray(x))
        self.y = np.asarray(y, np.float64)
        self.w = _weights(weights, len(self.y))
        self._cache = {}

    def flat(self, params) -> np.ndarray:
        return np.asarray(params, np.float64)[self.mask]

    def full(self, v) -> np.ndarray:
        p = np.zeros(self.model.param_shape)
        p[self.mask] = v
        return p

    def z(self, v) -> np.ndarray:
        return self.scale * self.circ.run(self.x, self.full(v))

    def losses(self, v) -> np.ndarray:
        return bce(self.z(v), self.y)

    def loss(self, v) -> float:
        return float(self.w @ self.losses(v))

    def grad(self, v) -> np.ndarray:
        z = self.z(v)
        c = self.w * self.scale * (expit(z) - self.y)
        return self.circ.run(self.x, self.full(v), 1, c)[2][self.mask]

    def derivatives(self, v):
        """By parameter shifts, for r = <Z_{n-1}> (the logit is scale r): r (N,), its Jacobian
        (N, P), its second derivatives along each parameter (N, P), and the Hessian (P, P) of
        sum_b c_b r_b with c_b = w_b scale (p_b - y_b), the loss's second term."""
        key = np.asarray(v, np.float64).tobytes()
        if key in self._cache:
            return self._cache[key]
        v = np.asarray(v, np.float64)
        r = self.circ.run(self.x, self.full(v))
        c = self.w * self.scale * (expit(self.scale * r) - self.y)
        jac, dd = np.empty((len(r), self.n)), np.empty((len(r), self.n))
        d2 = np.empty((self.n, self.n))
        for j in range(self.n):
            out = []
            for sgn in (1.0, -1.0):
                u = v.copy()
                u[j] += sgn * SHIFT
                e, _, g = self.circ.run(self.x, self.full(u), 1, c)
                out.append((e, g[self.mask]))
            (rp, gp), (rm, gm) = out
            jac[:, j] = (rp - rm) / 2
            dd[:, j] = (rp + rm) / 2 - r
            d2[:, j] = (gp - gm) / 2
        self._cache = {key: (r, jac, dd, 0.5 * (d2 + d2.T))}
        return self._cache[key]

    def hessian(self, v) -> np.ndarray:
        r, jac, _, d2 = self.derivatives(v)
        return logit_hessian(r, self.y, self.w, jac, d2, self.scale)

    def hvp(self, v, u) -> np.ndarray:
        return self.hessian(v) @ u

    def sample_traces(self, v) -> np.ndarray:
        """Each sample's contribution to the trace:
        w_b [scale^2 p(1-p) |J_b|^2 + scale (p - y) tr(d2 r_b)]."""
        r, jac, dd, _ = self.derivatives(v)
        p = expit(self.scale * r)
        s = self.scale
        return self.w * (s * s * p * (1 - p) * np.sum(jac**2, 1) + s * (p - self.y) * np.sum(dd, 1))


# ----------------------------------------------------------------------------- PyTorch models
def _Logits(net):
    """``net`` as a module whose forward returns its logits (an MLP's ``forward`` returns
    probabilities; its ``logits`` method the pre-sigmoid output)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.logits(x) if hasattr(self.m, "logits") else self.m(x)

    return Logits(net)


class TorchLoss:
    """The BCE loss of a PyTorch module returning logits (e.g. :class:`qmu_core.mlp.MLP`,
    through its ``logits``) on (x, y), as a function of its flattened parameters, in float64."""

    def __init__(self, net, x, y, weights=None, chunk: int = 256):
        import copy

        import torch

        self.torch = torch
        self.net = _Logits(copy.deepcopy(net).double())
        self.names = [k for k, _ in self.net.named_parameters()]
        self.shapes = [p.shape for _, p in self.net.named_parameters()]
        self.sizes = [p.numel() for _, p in self.net.named_parameters()]
        self.n = int(sum(self.sizes))
        self.x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
        self.y = torch.as_tensor(np.asarray(y), dtype=torch.float64)
        self.w = torch.as_tensor(_weights(weights, len(self.y)))
        self.chunk = check_int("chunk", chunk, min=1)
        f = self._loss_t
        self._grad = torch.func.grad(f)
        self._hvp = lambda v, u: torch.func.jvp(self._grad, (v,), (u,))[1]

    def flat(self, net=None) -> np.ndarray:
        net = self.net if net is None else net
        return np.concatenate([p.detach().double().numpy().ravel() for p in net.parameters()])

    def part(self, mask) -> "TorchLoss":
        """The same loss restricted to the samples ``mask`` (their weights unchanged), so that
        the parts of a partition add up to the whole."""
        mask = np.asarray(mask, bool)
        out = TorchLoss.__new__(TorchLoss)
        out.__dict__.update(self.__dict__)
        m = self.torch.as_tensor(mask)
        out.x, out.y, out.w = self.x[m], self.y[m], self.w[m]
        out._grad = self.torch.func.grad(out._loss_t)
        out._hvp = lambda v, u: self.torch.func.jvp(out._grad, (v,), (u,))[1]
        return out

    def _params(self, v):
        out, i = {}, 0
        for k, s, n in zip(self.names, self.shapes, self.sizes):
            out[k] = v[i:i + n].reshape(s)
            i += n
        return out

    def _logits_t(self, v, x=None):
        x = self.x if x is None else x
        z = self.torch.func.functional_call(self.net, self._params(v), (x,))
        return z.reshape(-1)

    def _loss_t(self, v):
        z = self._logits_t(v)
        return self.w @ (self.torch.nn.functional.softplus(z) - self.y * z)

    def _t(self, v):
        return self.torch.as_tensor(np.asarray(v, np.float64))

    def z(self, v) -> np.ndarray:
        with self.torch.no_grad():
            return self._logits_t(self._t(v)).numpy()

    def losses(self, v) -> np.ndarray:
        return bce(self.z(v), self.y.numpy())

    def loss(self, v) -> float:
        return float(self._loss_t(self._t(v)))

    def grad(self, v) -> np.ndarray:
        return self._grad(self._t(v)).numpy()

    def hvp(self, v, u) -> np.ndarray:
        return self._hvp(self._t(v), self._t(u)).numpy()

    def _columns(self, v, idx):
        """H e_j for the parameters j in ``idx``, shape (len(idx), n)."""
        torch = self.torch
        e = torch.zeros((len(idx), self.n), dtype=torch.float64)
        e[torch.arange(len(idx)), torch.as_tensor(idx)] = 1.0
        vt = self._t(v)
        return torch.func.vmap(lambda u: self._hvp(vt, u))(e)

    def piecewise_linear(self) -> bool:
        """True when the logits are piecewise linear in each single parameter (only Linear and
        ReLU layers, e.g. :class:`qmu_core.mlp.MLP`): then d^2 z / d v_j^2 = 0 (as autodiff
        also takes it at the kinks) and the Hessian's diagonal is its Gauss-Newton part."""
        nn = self.torch.nn
        leaves = [m for m in self.net.modules() if not list(m.children())]
        return bool(leaves) and all(isinstance(m, (nn.Linear, nn.ReLU)) for m in leaves)

    def diagonal(self, v) -> np.ndarray:
        """The exact diagonal of the Hessian (Fig. 3d's trace and its clean/flipped split): for a
        piecewise-linear network sum_b w_b p_b (1 - p_b) (d z_b / d v_j)^2 from the per-sample
        gradients of the logits (:meth:`piecewise_linear`), otherwise n HVPs, ``chunk`` at a
        time (:meth:`diagonal_hvp`; equal up to float rounding, tests/test_landscape.py)."""
        if not self.piecewise_linear():
            return self.diagonal_hvp(v)
        torch, vt = self.torch, self._t(v)
        jac = torch.func.vmap(torch.func.grad(lambda u, xb: self._logits_t(u, xb[None]).sum()),
                              in_dims=(None, 0))(vt, self.x)
        with torch.no_grad():
            p = torch.sigmoid(self._logits_t(vt))
        return ((self.w * p * (1 - p)) @ jac**2).numpy()

    def diagonal_hvp(self, v) -> np.ndarray:
        """The exact diagonal of the Hessian from n HVPs, ``chunk`` at a time."""
        out = np.empty(self.n)
        for s in range(0, self.n, self.chunk):
            idx = np.arange(s, min(s + self.chunk, self.n))
            cols = self._columns(v, idx)
            out[idx] = cols[self.torch.arange(len(idx)), self.torch.as_tensor(idx)].numpy()
        return out

    def hessian(self, v) -> np.ndarray:
        """The dense Hessian (small models only: n^2 floats)."""
        if self.n > 20_000:
            raise ParameterError(f"a dense Hessian of {self.n} parameters is too large; use diagonal() or hvp()")
        h = np.concatenate([self._columns(v, np.arange(s, min(s + self.chunk, self.n))).numpy()
                            for s in range(0, self.n, self.chunk)])
        return 0.5 * (h + h.T)


# ----------------------------------------------------------------------------- estimators
def hutchinson(hvp, n: int, n_probes: int, seed: int) -> tuple[float, float]:
    """Hutchinson's trace estimate with Rademacher probes: (mean of u^T H u, its standard
    error = sample sd / sqrt(n_probes))."""
    check_int("n_probes", n_probes, min=2)
    rng = np.random.default_rng(seed)
    vals = np.array([u @ hvp(u) for u in (rng.integers(0, 2, n) * 2.0 - 1.0 for _ in range(n_probes))])
    return float(vals.mean()), float(vals.std(ddof=1) / np.sqrt(n_probes))


def lanczos_extremes(hvp, n: int, k: int = 1, tol: float = 1e-6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest and ``k`` smallest (algebraic) eigenvalues by Lanczos (scipy's
    ``eigsh`` on a LinearOperator of Hessian-vector products)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    check_int("k", k, min=1)
    op = LinearOperator((n, n), matvec=lambda u: hvp(np.asarray(u, np.float64).ravel()), dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(n)
    top = eigsh(op, k=k, which="LA", tol=tol, v0=v0, return_eigenvectors=False, maxiter=20 * n)
    bottom = eigsh(op, k=k, which="SA", tol=tol, v0=v0, return_eigenvectors=False, maxiter=20 * n)
    return np.sort(top)[::-1], np.sort(bottom)


def slq(hvp, n: int, steps: int = 60, n_probes: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stochastic Lanczos quadrature (Ghorbani et al. 2019): nodes and weights of a discrete
    spectral measure whose weights sum to 1 and which estimates (1/n) tr f(H) as
    sum_i w_i f(node_i), from ``n_probes`` Lanczos runs of ``steps`` steps (full
    re-orthogonalisation) started at random unit vectors."""
    check_int("steps", steps, min=2)
    check_int("n_probes", n_probes, min=1)
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    m = min(steps, n)
    for _ in range(n_probes):
        q = rng.choice([-1.0, 1.0], n)
        q /= np.linalg.norm(q)
        Q, a, b = [q], [], []
        for j in range(m):
            r = hvp(Q[-1])
            a.append(Q[-1] @ r)
            r = r - a[-1] * Q[-1] - (b[-1] * Q[-2] if j else 0.0)
            for qq in Q:  # full re-orthogonalisation
                r -= (qq @ r) * qq
            beta = np.linalg.norm(r)
            if j == m - 1 or beta < 1e-10:
                break
            b.append(beta)
            Q.append(r / beta)
        t = np.diag(a) + np.diag(b[: len(a) - 1], 1) + np.diag(b[: len(a) - 1], -1)
        ev, vec = np.linalg.eigh(t)
        nodes.append(ev)
        weights.append(vec[0] ** 2 / n_probes)
    return np.concatenate(nodes), np.concatenate(weights)


def spectrum_summary(eigs=None, *, nodes=None, weights=None, n: int | None = None) -> dict:
    """Top and bottom eigenvalue, the fraction of negative eigenvalues (below -NEG_TOL times
    the largest |eigenvalue|) and the *negative mass*: sum of |negative eigenvalues| / sum of
    |eigenvalues|, the share of the absolute curvature that points down. From the exact
    eigenvalues ``eigs``, or estimated from an SLQ measure (``nodes``, ``weights``)."""
    if eigs is not None:
        eigs = np.asarray(eigs, np.float64)
        nodes, weights = eigs, np.full(len(eigs), 1.0 / len(eigs))
    nodes, weights = np.asarray(nodes), np.asarray(weights)
    scale = np.abs(nodes).max() if len(nodes) else 0.0
    neg = nodes < -NEG_TOL * scale
    absum = weights @ np.abs(nodes)
    return {"eig_top": float(nodes.max()), "eig_bottom": float(nodes.min()),
            "neg_fraction": float(weights[neg].sum()),
            "neg_mass": float(weights[neg] @ np.abs(nodes[neg]) / absum) if absum > 0 else 0.0}


def is_dead(z, tol: float = DEAD_TOL) -> bool:
    """True when the logits ``z`` over a data set are (numerically) one constant: the network
    no longer reads its input (every ReLU path dead)."""
    z = np.asarray(z, np.float64)
    return bool(np.ptp(z) <= tol * max(1.0, np.abs(z).max()))


# ----------------------------------------------------------------------------- slices
def filter_normalised(params, rng, kind: str = "mlp") -> np.ndarray:
    """A random direction d scaled per filter to the parameters' norm (Li et al. 2018):
    ``params`` is a list of arrays (an MLP's weight matrices and biases, or a QNN's layers);
    for a weight matrix each row (one neuron's incoming weights) gets the norm of the same
    row of the parameters, biases get zero (as in Li et al.); for a QNN each layer's angles
    get the norm of that layer's angles (``kind="qnn"``). Returns the flat direction."""
    out = []
    for p in params:
        p = np.asarray(p, np.float64)
        d = rng.standard_normal(p.shape)
        if kind == "mlp" and p.ndim == 1:
            d[:] = 0.0
        else:
            rows_d, rows_p = d.reshape(len(d), -1), p.reshape(len(p), -1)
            if kind == "qnn":
                rows_d, rows_p = d.reshape(1, -1), p.reshape(1, -1)
            nd = np.linalg.norm(rows_d, axis=1, keepdims=True)
            rows_d *= np.linalg.norm(rows_p, axis=1, keepdims=True) / np.where(nd > 0, nd, 1.0)
            d = rows_d.reshape(p.shape)
        out.append(d.ravel())
    return np.concatenate(out)


def slice_1d(loss, v, d, ts) -> np.ndarray:
    """loss(v + t d) for each t of ``ts``."""
    return np.array([loss(v + t * d) for t in ts])


def slice_2d(loss, v, d1, d2, ts) -> np.ndarray:
    """loss(v + a d1 + b d2) on the grid ``ts`` x ``ts`` (rows: a, columns: b)."""
    return np.array([[loss(v + a * d1 + b * d2) for b in ts] for a in ts])


def line(loss, va, vb, ts) -> np.ndarray:
    """loss((1 - t) va + t vb) for each t of ``ts`` (t = 0 at va, 1 at vb)."""
    va, vb = np.asarray(va, np.float64), np.asarray(vb, np.float64)
    return np.array([loss(va + t * (vb - va)) for t in ts])


@dataclass(frozen=True)
class Geometry:
    """The geometry of one trained model: exact trace, its parts, the spectrum's summary."""

    trace: float
    trace_clean: float
    trace_flipped: float
    spectrum: dict
    eigs: np.ndarray  # the exact eigenvalues, or the SLQ nodes
    eig_weights: np.ndarray  # 1/n each, or the SLQ weights
    exact_spectrum: bool


def geometry(problem, v, flipped_mask, *, slq_steps: int = 60, slq_probes: int = 4, dense_max: int = 1000,
             seed: int = 0) -> Geometry:
    """Trace (exact), its split into clean and flipped samples' contributions, and the
    spectrum: exact eigenvalues when the model has at most ``dense_max`` parameters, otherwise
    Lanczos extremes and an SLQ density. ``problem``: a :class:`QNNLoss` or :class:`TorchLoss`."""
    check_int("dense_max", dense_max, min=1)
    flipped = np.asarray(flipped_mask, bool)
    if isinstance(problem, QNNLoss):
        st = problem.sample_traces(v)
        trace, t_f = float(st.sum()), float(st[flipped].sum())
    elif isinstance(problem, TorchLoss):
        parts = [float(problem.part(m).diagonal(v).sum()) if m.any() else 0.0 for m in (~flipped, flipped)]
        trace, t_f = parts[0] + parts[1], parts[1]
    else:  # a model with a dense Hessian only (qmu_core.released_qnn.Problem)
        if flipped.any():
            raise ParameterError("this model's trace cannot be split by samples: it has no per-sample Hessian")
        trace, t_f = float(np.trace(problem.hessian(v))), 0.0
    if problem.n <= dense_max:
        eigs = np.linalg.eigvalsh(problem.hessian(v))
        return Geometry(trace, trace - t_f, t_f, spectrum_summary(eigs), eigs, np.full(len(eigs), 1 / len(eigs)), True)
    hvp = lambda u: problem.hvp(v, u)  # noqa: E731
    nodes, weights = slq(hvp, problem.n, slq_steps, slq_probes, seed)
    s = spectrum_summary(nodes=nodes, weights=weights)
    top, bottom = lanczos_extremes(hvp, problem.n, seed=seed)
    s.update(eig_top=float(top[0]), eig_bottom=float(bottom[0]))
    return Geometry(trace, trace - t_f, t_f, s, nodes, weights, False)

