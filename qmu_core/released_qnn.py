"""The QNN of the authors' released Hessian notebook (``src/plot_hessian.ipynb``; SPEC.md,
"Landscape geometry"), for the landscape chapter's ``released_code`` setting.

It is not the paper's QNN (:mod:`qmu_core.qnn`): each of its ``depth`` layers applies RX then
RY to every qubit and then CNOT(i, i+1 mod n) for i = 0..n-1 in turn (a ring), with parameters
of shape ``(depth, n_qubits, 2)``; the output is p = sigmoid(5 Re<Z_{n-1}>) and the loss the
notebook's -mean(y log(p + eps) + (1 - y) log(1 - p + eps)), eps = 1e-14. The notebook takes
the Hessian of that loss over the real AND imaginary parts of every angle: with a complex angle
the gates are no longer unitary, and <Z> = psi^dagger Z psi with psi = U(theta) psi_0 (the
contraction tensorcircuit performs) stays real. :func:`expectation` does the same in a plain
state-vector simulation (JAX, complex128), checked against ``tc.Circuit`` in the tests.
Training (:func:`train`): Adam (optax), mini-batches reshuffled every epoch.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .validation import check_int

EPS = 1e-14
SCALE = 5.0


def _rx(t):
    c, s = jnp.cos(t / 2), jnp.sin(t / 2)
    return jnp.stack([jnp.stack([c, -1j * s], -1), jnp.stack([-1j * s, c], -1)], -2)


def _ry(t):
    c, s = jnp.cos(t / 2), jnp.sin(t / 2)
    return jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2)


def _kron(mats):
    out = mats[0]
    for m in mats[1:]:
        out = jnp.kron(out, m)
    return out


@lru_cache(maxsize=8)
def _ring_permutation(n: int) -> np.ndarray:
    """The CNOT ring (CNOT(q, q+1 mod n) for q = 0..n-1, in turn) as a gather index: the new
    state is ``s[:, idx]``. Qubit 0 is the most significant bit (tensorcircuit's order)."""
    k = np.arange(2**n)
    img = k.copy()
    for q in range(n):
        t = (q + 1) % n
        ctrl = (img >> (n - 1 - q)) & 1
        img = img ^ (ctrl << (n - 1 - t))
    inv = np.empty_like(img)
    inv[img] = k
    return inv


def expectation(params, states):
    """Re <Z_{n-1}> of the circuit on each state; ``params`` (depth, n, 2), real or complex;
    ``states`` (N, 2^n)."""
    s = final_state(params, states)
    prob = (jnp.real(s) ** 2 + jnp.imag(s) ** 2).reshape(s.shape[0], -1, 2)
    return jnp.sum(prob[:, :, 0] - prob[:, :, 1], axis=1)


def final_state(params, states):
    """The circuit's output states U(theta) psi_0, (N, 2^n) complex128; holomorphic in the
    (complex) angles ``params`` (depth, n, 2). Each layer's rotations act as two dense blocks
    (the Kronecker products of the fused 2x2 gates of the upper and the lower qubits), the
    CNOT ring as one permutation of the amplitudes."""
    depth, n, _ = params.shape
    hi = n // 2
    p = jnp.asarray(params).astype(jnp.complex128)
    s = jnp.asarray(states).astype(jnp.complex128)
    N = s.shape[0]
    idx = jnp.asarray(_ring_permutation(n))
    for j in range(depth):
        g = _ry(p[j, :, 1]) @ _rx(p[j, :, 0])  # (n, 2, 2): RX first, then RY
        u_hi, u_lo = _kron([g[q] for q in range(hi)]), _kron([g[q] for q in range(hi, n)])
        s = jnp.einsum("ab,nbc,dc->nad", u_hi, s.reshape(N, 2**hi, 2 ** (n - hi)), u_lo).reshape(N, -1)
        s = s[:, idx]
    return s


def loss(params, x, y):
    """The notebook's BCE of p = sigmoid(5 Re<Z>) with its eps."""
    p = jax.nn.sigmoid(SCALE * expectation(params, x))
    return -jnp.mean(y * jnp.log(p + EPS) + (1 - y) * jnp.log(1 - p + EPS))


def logits(params, x) -> np.ndarray:
    return np.asarray(SCALE * jax.jit(expectation)(jnp.asarray(params), jnp.asarray(x)))


@lru_cache(maxsize=8)
def _step(lr: float):
    opt = optax.adam(lr)

    @jax.jit
    def step(params, state, x, y):
        g = jax.grad(loss)(params, x, y)
        upd, state = opt.update(g, state)
        return optax.apply_updates(params, upd), state

    return opt, step


def train(x, y, depth: int, epochs: int, batch_size: int, lr: float, seed: int) -> np.ndarray:
    """Parameters ~ N(0, 0.01^2) (a NumPy generator from ``seed``), then ``epochs`` epochs of
    Adam over mini-batches of a fresh permutation each epoch (the last batch smaller)."""
    check_int("depth", depth, min=1)
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = int(np.log2(x.shape[1]))
    rng = np.random.default_rng(seed)
    params = jnp.asarray(rng.normal(scale=0.01, size=(depth, n, 2)))
    opt, step = _step(float(lr))
    state = opt.init(params)
    for _ in range(epochs):
        perm = rng.permutation(len(x))
        for s in range(0, len(x), batch_size):
            b = perm[s:s + batch_size]
            params, state = step(params, state, jnp.asarray(x[b]), jnp.asarray(y[b]))
    return np.asarray(params)


@lru_cache(maxsize=8)
def _columns(shape: tuple, complex_part: bool):
    """A compiled function (u, E, x, y) -> the Hessian-vector products H e for the rows e of E,
    of :func:`loss` over [Re theta, Im theta] (``complex_part``) or over the real angles."""
    P = int(np.prod(shape))

    def f(u, x, y):
        theta = u[:P] + 1j * u[P:] if complex_part else u
        return loss(theta.reshape(shape), x, y)

    g = jax.grad(f)
    return jax.jit(lambda u, E, x, y: jax.vmap(lambda e: jax.jvp(lambda w: g(w, x, y), (u,), (e,))[1])(E))


def _hessian(u0, shape, complex_part, x, y, chunk: int = 50) -> np.ndarray:
    fn, n = _columns(tuple(shape), complex_part), len(u0)
    x, y = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
    eye = np.eye(n)
    pad = -(-n // chunk) * chunk - n
    E = np.concatenate([eye, np.zeros((pad, n))])  # equal chunks: one compilation
    h = np.concatenate([np.asarray(fn(u0, jnp.asarray(E[s:s + chunk]), x, y)) for s in range(0, len(E), chunk)])[:n]
    return 0.5 * (h + h.T)


def _sample_loss(r, y):
    """One sample's term of :func:`loss` (times N) as a function of its r = Re <Z>."""
    p = jax.nn.sigmoid(SCALE * r)
    return -(y * jnp.log(p + EPS) + (1 - y) * jnp.log(1 - p + EPS))


@lru_cache(maxsize=8)
def _holomorphic_parts(shape: tuple):
    """Two compiled functions for :func:`hessian_re_im`. The output state psi(t) is holomorphic
    in the complex angles t, so with D_j = d psi / d t_j and r = psi^H Z psi every derivative of
    r over (Re t, Im t) follows from g_j = psi^H Z D_j, M_jk = sum_b l1_b D_k^H Z D_j and the
    holomorphic Hessian K_jk = sum_b l1_b psi^H Z D_jk (l1_b, l2_b: the first and second
    derivatives of the loss in r_b). ``first(t, x, y)`` -> (g, l1, l2, M) from one forward
    Jacobian of psi; ``kcols(t, E, x, w)`` -> the columns K e of the rows e of E, where
    ``w = l1 conj(psi) Z`` is held fixed: one forward-over-reverse pass per column."""
    def psi(t, x):
        return final_state(t.reshape(shape), x)

    @jax.jit
    def first(t, x, y):
        s0 = psi(t, x)
        z = jnp.where(jnp.arange(s0.shape[1]) % 2 == 0, 1.0, -1.0)
        r = expectation(t.reshape(shape), x)
        n = len(y)
        l1 = jax.vmap(jax.grad(_sample_loss))(r, y) / n
        l2 = jax.vmap(jax.grad(jax.grad(_sample_loss)))(r, y) / n
        D = jax.jacfwd(psi, holomorphic=True)(t, x)  # (N, 2^n, P)
        g = jnp.einsum("nm,m,nmp->np", jnp.conj(s0), z, D)
        M = jnp.einsum("n,nmk,m,nmj->jk", l1.astype(D.dtype), jnp.conj(D), z, D)
        w = l1[:, None] * jnp.conj(s0) * z
        return g, l1, l2, M, w

    @jax.jit
    def kcols(t, E, x, w):
        gk = jax.grad(lambda u: jnp.sum(w * psi(u, x)), holomorphic=True)
        return jax.vmap(lambda e: jax.jvp(gk, (t,), (e,))[1])(E)

    return first, kcols


def hessian_re_im(params, x, y, chunk: int = 100) -> np.ndarray:
    """The notebook's Hessian (Fig. 3d, ``released_code`` QNN): of :func:`loss` over the vector
    [Re theta, Im theta] (2P x 2P), from P holomorphic columns (:func:`_holomorphic_parts`)
    instead of 2P real ones: H = G^T diag(l2) G + [[2 Re(M + K), 2 Im(M - K)],
    [2 Im(M - K)^T, 2 Re(M - K)]] with G = [2 Re g, -2 Im g]. Equal to
    :func:`hessian_re_im_reference` up to float rounding (tests/test_landscape.py)."""
    params = np.asarray(params)
    P = params.size
    t = jnp.asarray(params.real.ravel() + 1j * np.imag(params).ravel(), jnp.complex128)
    x, y = jnp.asarray(x, jnp.float64), jnp.asarray(y, jnp.float64)
    first, kcols = _holomorphic_parts(params.shape)
    g, _, l2, M, w = (np.asarray(a) for a in first(t, x, y))
    eye = np.eye(-(-P // chunk) * chunk, P).astype(np.complex128)  # equal chunks: one compilation
    K = np.concatenate([np.asarray(kcols(t, jnp.asarray(eye[s:s + chunk]), x, jnp.asarray(w)))
                        for s in range(0, len(eye), chunk)])[:P]
    G = np.concatenate([2 * g.real, -2 * g.imag], 1)
    ab = 2 * (M.imag - K.imag)
    h = (G * l2[:, None]).T @ G + np.block([[2 * (M.real + K.real), ab], [ab.T, 2 * (M.real - K.real)]])
    return 0.5 * (h + h.T)


def hessian_re_im_reference(params, x, y) -> np.ndarray:
    """The same Hessian column by column (2P forward-over-reverse passes of :func:`loss` over
    [Re theta, Im theta]): the implementation before landscape-v2, kept as the tests' and
    benchmarks/landscape_speed.py's reference."""
    params = np.asarray(params)
    u0 = jnp.concatenate([jnp.asarray(params.real, jnp.float64).ravel(), jnp.asarray(np.imag(params), jnp.float64).ravel()])
    return _hessian(u0, params.shape, True, x, y)


def hessian_real(params, x, y) -> np.ndarray:
    """The Hessian over the (real) angles only (P x P)."""
    params = np.asarray(params, np.float64)
    return _hessian(jnp.asarray(params.ravel()), params.shape, False, x, y)


class Problem:
    """The landscape module's view of this QNN on (x, y) (see :mod:`qmu_core.landscape`): loss
    and logits of the real angles ``v`` (flat, P), and the notebook's Hessian over
    [Re, Im] (2P x 2P, ``n = 2P``)."""

    def __init__(self, shape, x, y):
        self.shape, self.P = tuple(shape), int(np.prod(shape))
        self.n = 2 * self.P
        self.x, self.y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        self._h = {}

    def z(self, v) -> np.ndarray:
        return logits(np.asarray(v, np.float64).reshape(self.shape), self.x)

    def loss(self, v) -> float:
        return float(loss(jnp.asarray(np.asarray(v, np.float64).reshape(self.shape)), jnp.asarray(self.x),
                          jnp.asarray(self.y)))

    def hessian(self, v) -> np.ndarray:
        key = np.asarray(v, np.float64).tobytes()
        if key not in self._h:
            self._h = {key: hessian_re_im(np.asarray(v, np.float64).reshape(self.shape), self.x, self.y)}
        return self._h[key]

    def hvp(self, v, u) -> np.ndarray:
        return self.hessian(v) @ u
