"""The paper's two datasets: MNIST '1' vs '9' and XXZ ground states (Methods; Fig. 2b).

* MNIST: the images ship inside the package (``data_files/mnist_1v9.npz``, built by
  ``scripts/build_mnist_subset.py``) and are checked against their SHA-256 on load.
* XXZ: ground states of H = sum_i X_i X_{i+1} + Y_i Y_{i+1} + Delta Z_i Z_{i+1} (Pauli
  matrices, periodic chain) by exact diagonalisation in the S^z = 0 sector, cached on disk.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from itertools import combinations
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import paths
from .io import atomic_save_npz, load_npz, sha256_bytes
from .validation import ParameterError, check_choice, check_int

MNIST_FILE = "mnist_1v9.npz"
MNIST_SHA256 = "1a4ad592b6f704c63fab9352132e80ff5032a03d231034acd288d9861f39f8b3"
MNIST_TRAIN_AVAILABLE = 1000  # per digit, shipped in the package
MNIST_VAL_AVAILABLE = 2144  # every 1 or 9 of the MNIST test file
MNIST_PIXELS = 784


@dataclass(frozen=True, eq=False)
class Dataset:
    """A binary classification set: features are normalised state vectors.

    ``x_*`` has shape (N, d) (real for MNIST, complex for XXZ); ``y_*`` holds 0/1 labels.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def n_active(self) -> int:
        """Leading features that can carry data: 784 pixels of a zero-padded MNIST vector,
        all of them otherwise. Feature randomisation draws its noise there only."""
        return int(self.meta.get("n_active", self.n_features))

    @property
    def n_qubits(self) -> int:
        n = int(np.log2(self.n_features))
        if 2**n != self.n_features:
            raise ValueError(f"{self.name}: {self.n_features} features is not a power of two")
        return n

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.x_train.shape}, val={self.x_val.shape}, "
            f"dtype={self.x_train.dtype}, train classes={np.bincount(self.y_train, minlength=2).tolist()})"
        )


def as_real_features(x: np.ndarray) -> np.ndarray:
    """The MLP's input: real data unchanged, complex data as [real part, imaginary part]."""
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return np.concatenate([x.real, x.imag], axis=-1).astype(np.float32)
    return x.astype(np.float32)


# --------------------------------------------------------------------------- MNIST
@lru_cache(maxsize=1)
def _mnist_arrays() -> dict[str, np.ndarray]:
    ref = resources.files("qmu_core").joinpath("data_files", MNIST_FILE)
    raw = ref.read_bytes()
    digest = sha256_bytes(raw)
    if digest != MNIST_SHA256:
        raise OSError(
            f"{MNIST_FILE}: SHA-256 {digest} does not match the expected {MNIST_SHA256}; "
            "the packaged data file is corrupted (rebuild it with scripts/build_mnist_subset.py)"
        )
    import io

    with np.load(io.BytesIO(raw), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("cannot normalise an all-zero feature vector")
    return x / norms


def mnist_images(n_per_class: int = 250, n_val: int = MNIST_VAL_AVAILABLE):
    """Raw uint8 images (N, 28, 28) and labels (label 0 = digit 1, label 1 = digit 9)."""
    n_per_class = check_int("n_per_class", n_per_class, min=1, max=MNIST_TRAIN_AVAILABLE)
    n_val = check_int("n_val", n_val, min=1, max=MNIST_VAL_AVAILABLE)
    a = _mnist_arrays()
    x_train = np.concatenate([a["train_ones"][:n_per_class], a["train_nines"][:n_per_class]])
    y_train = np.repeat(np.array([0, 1]), n_per_class)
    x_val = a["test_images"][:n_val]
    y_val = (a["test_digits"][:n_val] == 9).astype(np.int64)
    return x_train, y_train, x_val, y_val


def mnist_1v9(n_per_class: int = 250, n_val: int = MNIST_VAL_AVAILABLE, n_features: int = 1024) -> Dataset:
    """MNIST '1' (label 0) vs '9' (label 1) as in the paper (Methods; SPEC.md).

    Training set: the first ``n_per_class`` images of each digit of the MNIST training
    file (ones first, then nines); validation: the first ``n_val`` ones-or-nines of the
    test file, in file order. The default, all 2144 of them, is what the published
    accuracies were measured on (each is a multiple of 1/2144); the released ``datar.py``
    slices the first 1000. Each image is flattened, divided by 255 and L2-normalised;
    ``n_features=1024`` zero-pads to 2**10 amplitudes for the 10-qubit QNN, ``784`` keeps
    the raw pixels (the SI's [16, 4] MLP of the Hessian study).
    """
    check_choice("n_features", n_features, (784, 1024))
    x_train, y_train, x_val, y_val = mnist_images(n_per_class, n_val)

    def features(imgs: np.ndarray) -> np.ndarray:
        x = _normalise_rows(imgs.reshape(len(imgs), -1).astype(np.float64) / 255.0)
        if n_features == 1024:
            x = np.pad(x, ((0, 0), (0, 1024 - MNIST_PIXELS)))
        return x.astype(np.float32)

    return Dataset(
        "mnist",
        features(x_train),
        y_train,
        features(x_val),
        y_val,
        meta={"n_per_class": n_per_class, "n_val": n_val, "classes": ("digit 1", "digit 9"),
              "n_active": MNIST_PIXELS},
    )


# --------------------------------------------------------------------------- XXZ
#: The paper's grids (Methods): class 0 (gapless) and class 1 (gapped antiferromagnet).
XXZ_TRAIN_DELTAS = np.round(
    np.concatenate([np.arange(-0.96, 0.9601, 0.02), np.arange(1.02, 3.0001, 0.02)]), 10
)
XXZ_VAL_DELTAS = np.round(np.arange(-0.97, 2.9901, 0.02), 10)
XXZ_CRITICAL_DELTA = 1.0


@lru_cache(maxsize=4)
def _sz0_sector(L: int):
    """Basis states with L/2 up spins (bit i = 1: spin down on site i; site 0 = MSB)."""
    states = np.array(
        sorted(sum(1 << (L - 1 - i) for i in c) for c in combinations(range(L), L // 2)),
        dtype=np.int64,
    )
    lookup = {int(s): k for k, s in enumerate(states)}
    return states, lookup


@lru_cache(maxsize=4)
def _xxz_terms(L: int):
    """Sparse off-diagonal (XX + YY) part and the diagonal ZZ part in the S^z = 0 sector."""
    states, lookup = _sz0_sector(L)
    rows, cols = [], []
    zz = np.zeros(len(states))
    for k, s in enumerate(states):
        for i in range(L):
            j = (i + 1) % L
            bi = (s >> (L - 1 - i)) & 1
            bj = (s >> (L - 1 - j)) & 1
            zz[k] += 1.0 if bi == bj else -1.0
            if bi != bj:  # X X + Y Y = 2 (s+ s- + s- s+): swaps antiparallel neighbours
                t = int(s ^ ((1 << (L - 1 - i)) | (1 << (L - 1 - j))))
                rows.append(lookup[t])
                cols.append(k)
    n = len(states)
    hop = sp.csr_matrix((np.full(len(rows), 2.0), (rows, cols)), shape=(n, n))
    return hop, zz


def xxz_hamiltonian_sector(delta: float, L: int = 12) -> sp.csr_matrix:
    """H restricted to S^z = 0 (real symmetric, dimension C(L, L/2))."""
    hop, zz = _xxz_terms(L)
    return (hop + sp.diags(delta * zz)).tocsr()


def xxz_hamiltonian(delta: float, L: int = 12) -> sp.csr_matrix:
    """The full 2**L x 2**L Hamiltonian (used to check residuals, not to diagonalise)."""
    X = sp.csr_matrix(np.array([[0, 1], [1, 0]], dtype=complex))
    Y = sp.csr_matrix(np.array([[0, -1j], [1j, 0]]))
    Z = sp.csr_matrix(np.array([[1, 0], [0, -1]], dtype=complex))

    def two_site(op, i, j):
        mats = [sp.identity(2, format="csr", dtype=complex)] * L
        mats[i], mats[j] = op, op
        out = mats[0]
        for m in mats[1:]:
            out = sp.kron(out, m, format="csr")
        return out

    H = sp.csr_matrix((2**L, 2**L), dtype=complex)
    for i in range(L):
        j = (i + 1) % L
        H = H + two_site(X, i, j) + two_site(Y, i, j) + delta * two_site(Z, i, j)
    return H.tocsr()


def _ground_state(delta: float, L: int) -> tuple[np.ndarray, float]:
    H = xxz_hamiltonian_sector(delta, L)
    # Lanczos from a fixed start vector: deterministic, and ~50x faster than dense eigh
    v0 = np.linspace(1.0, 2.0, H.shape[0])
    vals, vecs = spla.eigsh(H, k=2, which="SA", v0=v0, tol=1e-13)
    order = np.argsort(vals)
    vals, vecs = vals[order], vecs[:, order]
    if vals[1] - vals[0] < 1e-9:
        raise ValueError(f"XXZ ground state at Delta={delta} is degenerate; no unique state")
    v = vecs[:, 0]
    v = v * np.sign(v[np.argmax(np.abs(v))])  # a fixed global sign: deterministic output
    states, _ = _sz0_sector(L)
    full = np.zeros(2**L, dtype=np.complex128)
    full[states] = v
    return full, float(vals[0])


def _grid_key(deltas: np.ndarray, L: int) -> str:
    h = hashlib.sha256(np.round(deltas, 10).astype(np.float64).tobytes()).hexdigest()[:16]
    return f"xxz_L{L}_{len(deltas)}_{h}.npz"


def xxz_ground_states(
    deltas, L: int = 12, *, use_cache: bool = True, return_energies: bool = False
):
    """Ground states of the periodic XXZ chain for each Delta, shape ``(len(deltas), 2**L)``.

    Exact diagonalisation in the S^z = 0 sector (where the unique ground state lies for
    Delta > -1 and even L), embedded into the full 2**L basis (qubit 0 = most
    significant bit). Results are cached on disk keyed by L and the grid.
    """
    L = check_int("L", L, min=4, max=16)
    if L % 2:
        raise ParameterError(f"parameter 'L' must be even (S^z = 0 sector), got {L}")
    deltas = np.atleast_1d(np.asarray(deltas, dtype=np.float64))
    if deltas.ndim != 1 or len(deltas) == 0:
        raise ParameterError(f"parameter 'deltas' must be a non-empty 1-D grid, got shape {deltas.shape}")
    if np.any(deltas <= -1.0):
        raise ParameterError(
            f"parameter 'deltas' must be > -1 (at Delta <= -1 the ground state is ferromagnetic "
            f"and degenerate), got min {deltas.min()}"
        )
    path = paths.cache_dir() / _grid_key(deltas, L)
    if use_cache and path.exists():
        z = load_npz(path)
        states, energies = z["states"], z["energies"]
    else:
        out = [_ground_state(float(d), L) for d in deltas]
        states = np.stack([s for s, _ in out])
        energies = np.array([e for _, e in out])
        if use_cache:
            atomic_save_npz(path, states=states, energies=energies, deltas=deltas)
    return (states, energies) if return_energies else states


#: The two XXZ training/validation sets (SPEC.md, Discrepancy (sizes)).
XXZ_SETS = ("paper_text", "released_code")
#: the set behind the published figures, every chapter's default
XXZ_DEFAULT_SET = "released_code"
#: The global phase of each ground state (SPEC.md, Discrepancy (gauge)).
XXZ_GAUGES = ("fixed", "random_phase")
#: points per phase of the released code's single grid: training = every second state
#: (41), validation = the states in between (42)
_RELEASED_PER_PHASE = 83


def xxz_grids(xxz_set: str = XXZ_DEFAULT_SET) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation Deltas of a named XXZ set.

    * ``"paper_text"``: the grids the Methods state, 97 + 100 training states (step 0.02)
      and 199 validation states between them;
    * ``"released_code"``: the sizes the published accuracies imply (multiples of 1/82 and
      1/84): per phase one grid of 83 evenly spaced Deltas over the stated range, training
      on every second point (41 per phase) and validation on the 42 points in between and
      at both ends, so the two sets interleave as in the released ``datar.py``. That file's
      own Deltas are not published; this grid has its sizes and its structure.
    """
    check_choice("xxz_set", xxz_set, XXZ_SETS)
    if xxz_set == "paper_text":
        return XXZ_TRAIN_DELTAS, XXZ_VAL_DELTAS
    phases = [np.linspace(-0.96, 0.96, _RELEASED_PER_PHASE), np.linspace(1.02, 3.0, _RELEASED_PER_PHASE)]
    train = np.round(np.concatenate([g[1::2] for g in phases]), 10)
    val = np.round(np.concatenate([g[0::2] for g in phases]), 10)
    return train, val


def random_phases(n: int, seed: int, which: str) -> np.ndarray:
    """``n`` phase factors e^{i phi}, phi uniform in [0, 2 pi), from ``seed`` and a label
    (``"train"``/``"val"``): the same draw whatever else is random in a run."""
    rng = np.random.default_rng([int(seed), zlib.crc32(f"xxz-gauge-{which}".encode())])
    return np.exp(1j * rng.uniform(0.0, 2.0 * np.pi, n))


def xxz_dataset(
    train_deltas=None,
    val_deltas=None,
    L: int = 12,
    critical_delta: float = XXZ_CRITICAL_DELTA,
    *,
    gauge: str = "fixed",
    gauge_seed: int = 0,
) -> Dataset:
    """XXZ phase classification: label 0 for Delta < 1 (gapless), 1 for Delta > 1.

    ``gauge`` fixes the global phase of each state, which exact diagonalisation leaves
    free: ``"fixed"`` keeps our real states with the sign of their largest amplitude
    positive; ``"random_phase"`` multiplies each training and validation state by its own
    seeded phase e^{i phi} (:func:`random_phases`), as states produced without fixing the
    phase would be. The QNN's output <psi|U^dag Z U|psi> is the same for either, the MLP's
    input [Re psi, Im psi] is not (resilience chapter).
    """
    train_deltas = XXZ_TRAIN_DELTAS if train_deltas is None else np.asarray(train_deltas, float)
    val_deltas = XXZ_VAL_DELTAS if val_deltas is None else np.asarray(val_deltas, float)
    check_choice("xxz_gauge", gauge, XXZ_GAUGES)
    gauge_seed = check_int("gauge_seed", gauge_seed, min=0)
    for name, g in (("train_deltas", train_deltas), ("val_deltas", val_deltas)):
        if np.any(np.isclose(g, critical_delta)):
            raise ParameterError(f"parameter '{name}' contains the critical point Delta={critical_delta}")
    x_train = xxz_ground_states(train_deltas, L)
    x_val = xxz_ground_states(val_deltas, L)
    if gauge == "random_phase":
        x_train = x_train * random_phases(len(x_train), gauge_seed, "train")[:, None]
        x_val = x_val * random_phases(len(x_val), gauge_seed, "val")[:, None]
    return Dataset(
        "xxz",
        x_train.astype(np.complex64),
        (train_deltas > critical_delta).astype(np.int64),
        x_val.astype(np.complex64),
        (val_deltas > critical_delta).astype(np.int64),
        meta={"L": L, "train_deltas": train_deltas, "val_deltas": val_deltas, "gauge": gauge,
              "gauge_seed": gauge_seed},
    )


def xxz(xxz_set: str = XXZ_DEFAULT_SET, gauge: str = "fixed", *, gauge_seed: int = 0, L: int = 12) -> Dataset:
    """A named XXZ set (:func:`xxz_grids`) in a gauge (:func:`xxz_dataset`)."""
    train, val = xxz_grids(xxz_set)
    ds = xxz_dataset(train, val, L, gauge=gauge, gauge_seed=gauge_seed)
    return replace(ds, meta={**ds.meta, "set": xxz_set})


def load(dataset: str, **kwargs) -> Dataset:
    """``'mnist'`` (:func:`mnist_1v9`) or ``'xxz'`` (:func:`xxz`) by name, with that
    function's keyword arguments (the notebooks' entry point)."""
    check_choice("dataset", dataset, ("mnist", "xxz"))
    return mnist_1v9(**kwargs) if dataset == "mnist" else xxz(**kwargs)


def xxz_correlations(states: np.ndarray, L: int) -> dict[str, np.ndarray]:
    """Nearest-neighbour correlations <Z_0 Z_1> and <X_0 X_1> of each state (translation
    invariance makes every bond equal). The chain is a critical XY-like liquid for
    |Delta| < 1 and a Neel antiferromagnet for Delta > 1, visible in <Z Z> -> -1."""
    states = np.asarray(states)
    k = np.arange(2**L)
    z0 = 1 - 2 * ((k >> (L - 1)) & 1)
    z1 = 1 - 2 * ((k >> (L - 2)) & 1)
    prob = np.abs(states) ** 2
    zz = prob @ (z0 * z1)
    flip = k ^ ((1 << (L - 1)) | (1 << (L - 2)))
    xx = np.real(np.sum(np.conj(states) * states[:, flip], axis=1))
    return {"zz": zz, "xx": xx}


def neighbour_overlaps(states: np.ndarray) -> np.ndarray:
    """|<psi_i|psi_{i+1}>| between consecutive states of a grid (how alike neighbours are)."""
    s = np.asarray(states)
    return np.abs(np.sum(np.conj(s[:-1]) * s[1:], axis=1))
