"""The two corruption protocols of the paper (Fig. 1b; Methods): label flipping and
feature randomisation of a fraction ``alpha`` of the training set.

Counts follow the authors' released code (SPEC.md): label flipping corrupts
n = floor(alpha N) rounded *down* to an even number, feature randomisation rounds
*up*; in both cases half of the n samples come from each class. The corrupted training
set is then shuffled. The corrupted positions (after shuffling) are returned: they are
the forget set of the unlearning chapter.

Corrupt a dataset with :func:`corrupt_dataset` (``corrupt_dataset(data.mnist_1v9(), 0.3,
"feature_random", seed=0)``): it knows where the dataset's features can carry data.
:func:`corrupt` works on bare arrays and has to be told.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .validation import ParameterError, check_alpha, check_choice, check_int

CORRUPTIONS = ("label_flip", "feature_random")


@dataclass(frozen=True, eq=False)
class CorruptedSet:
    """A corrupted training set. ``forget`` indexes the corrupted samples in ``x``/``y``."""

    x: np.ndarray
    y: np.ndarray  # labels the model is trained on (flipped where corrupted)
    y_clean: np.ndarray  # true labels of the (possibly randomised) samples
    forget: np.ndarray  # sorted indices of corrupted samples
    alpha: float
    kind: str
    order: np.ndarray  # the shuffle: row i is sample order[i] of the uncorrupted set

    @property
    def retain(self) -> np.ndarray:
        mask = np.ones(len(self.y), dtype=bool)
        mask[self.forget] = False
        return np.flatnonzero(mask)


def n_corrupted(alpha: float, n: int, kind: str) -> int:
    """Number of corrupted samples for a training set of ``n`` (even; see module doc)."""
    alpha = check_alpha(alpha)
    check_choice("kind", kind, CORRUPTIONS)
    k = math.floor(alpha * n + 1e-9)  # 1e-9: 0.3 * 500 must give 150, not 149
    return k - (k % 2) if kind == "label_flip" else k + (k % 2)


def _pick_balanced(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    half = n // 2
    picks = []
    for c in (0, 1):
        members = np.flatnonzero(y == c)
        if half > len(members):
            raise ParameterError(
                f"cannot corrupt {half} samples of class {c}: it has only {len(members)}"
            )
        picks.append(rng.choice(members, size=half, replace=False))
    return np.sort(np.concatenate(picks))


def random_states(n: int, dim: int, *, complex_valued: bool, rng: np.random.Generator) -> np.ndarray:
    """``n`` random normalised vectors: real Gaussian, or complex Gaussian (Haar-random)."""
    v = rng.standard_normal((n, dim))
    if complex_valued:
        v = v + 1j * rng.standard_normal((n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def corrupt(x: np.ndarray, y: np.ndarray, alpha: float, kind: str, seed: int,
            *, n_active: int | None = None) -> CorruptedSet:
    """Corrupt a fraction ``alpha`` of the arrays (x, y) by ``kind`` and shuffle, with a
    seeded draw. For a :class:`qmu_core.data.Dataset` call :func:`corrupt_dataset`.

    ``label_flip``: y -> 1 - y. ``feature_random``: x -> a random normalised vector
    (complex Gaussian if ``x`` is complex, real Gaussian otherwise), label kept. The noise
    is drawn in the first ``n_active`` features only (default: all) and the rest are zero,
    like the zero padding of a real sample: for MNIST the released code draws it in the 784
    pixel dimensions and pads to 1024, so a random vector is no easier to tell apart by
    its padding than an image (:attr:`qmu_core.data.Dataset.n_active`). Bare arrays carry
    no such length: called on MNIST arrays without ``n_active``, the noise fills the padding.
    """
    alpha = check_alpha(alpha)
    check_choice("kind", kind, CORRUPTIONS)
    seed = check_int("seed", seed, min=0)
    x, y = np.asarray(x), np.asarray(y).astype(np.int64)
    if len(x) != len(y):
        raise ParameterError(f"x has {len(x)} samples but y has {len(y)}")
    if not np.isin(y, (0, 1)).all():
        raise ParameterError("labels y must be 0 or 1")
    n_active = x.shape[1] if n_active is None else check_int("n_active", n_active, min=1, max=x.shape[1])
    rng = np.random.default_rng(seed)
    idx = _pick_balanced(y, n_corrupted(alpha, len(y), kind), rng)
    x_new, y_new = x.copy(), y.copy()
    if kind == "label_flip":
        y_new[idx] = 1 - y_new[idx]
    else:
        x_new[idx] = 0
        x_new[idx, :n_active] = random_states(
            len(idx), n_active, complex_valued=np.iscomplexobj(x), rng=rng
        ).astype(x.dtype)
    perm = rng.permutation(len(y))
    was_corrupted = np.zeros(len(y), dtype=bool)
    was_corrupted[idx] = True
    return CorruptedSet(
        x=x_new[perm],
        y=y_new[perm],
        y_clean=y[perm],
        forget=np.flatnonzero(was_corrupted[perm]),
        alpha=alpha,
        kind=kind,
        order=perm,
    )


def corrupt_dataset(ds, alpha: float, kind: str, seed: int) -> CorruptedSet:
    """:func:`corrupt` of the training set of ``ds`` (a :class:`qmu_core.data.Dataset`), with
    the noise of feature randomisation drawn where the dataset's features can carry data
    (:attr:`~qmu_core.data.Dataset.n_active`: MNIST's 784 pixels of its 1024 zero-padded
    entries, every amplitude of an XXZ state). Every chapter corrupts its data this way."""
    for attr in ("x_train", "y_train", "n_active"):
        if not hasattr(ds, attr):
            raise ParameterError(f"parameter 'ds' must be a qmu_core.data.Dataset (with {attr}), "
                                 f"got {type(ds).__name__}")
    return corrupt(ds.x_train, ds.y_train, alpha, kind, seed, n_active=ds.n_active)
