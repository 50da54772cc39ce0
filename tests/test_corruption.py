"""Corruption protocols: counts, class balance, noise type, determinism, errors."""

import numpy as np
import pytest

from qmu_core.corruption import corrupt, corrupt_dataset, n_corrupted
from qmu_core.validation import ParameterError


def toy(n_per_class=50, dim=16, complex_valued=False, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2 * n_per_class, dim))
    if complex_valued:
        x = x + 1j * rng.standard_normal(x.shape)
    return x / np.linalg.norm(x, axis=1, keepdims=True), np.repeat([0, 1], n_per_class)


@pytest.mark.parametrize("alpha,flip,rand", [(0.0, 0, 0), (0.1, 10, 10), (0.3, 30, 30),
                                             (0.33, 32, 34), (0.05, 4, 6), (0.9, 90, 90)])
def test_counts_follow_the_released_code(alpha, flip, rand):
    assert n_corrupted(alpha, 100, "label_flip") == flip
    assert n_corrupted(alpha, 100, "feature_random") == rand
    assert n_corrupted(0.3, 500, "label_flip") == 150


def test_label_flip_is_balanced_and_only_flips():
    x, y = toy()
    cs = corrupt(x, y, 0.3, "label_flip", seed=1)
    assert len(cs.forget) == 30
    assert np.bincount(cs.y_clean[cs.forget]).tolist() == [15, 15]
    # the shuffle is recorded: row i is sample order[i]
    np.testing.assert_array_equal(cs.x, x[cs.order])
    np.testing.assert_array_equal(cs.y_clean, y[cs.order])
    assert sorted(cs.order) == list(range(len(y)))
    assert np.all(cs.y[cs.forget] == 1 - cs.y_clean[cs.forget])
    assert np.all(cs.y[cs.retain] == cs.y_clean[cs.retain])
    # features untouched: every corrupted row is one of the original rows
    assert {tuple(r) for r in np.round(cs.x, 12)} == {tuple(r) for r in np.round(x, 12)}


@pytest.mark.parametrize("complex_valued", [False, True])
def test_feature_randomisation(complex_valued):
    x, y = toy(complex_valued=complex_valued)
    cs = corrupt(x, y, 0.25, "feature_random", seed=2)
    assert len(cs.forget) == 26  # floor(25) rounded up to even
    assert np.all(cs.y == cs.y_clean)
    assert np.bincount(cs.y[cs.forget]).tolist() == [13, 13]
    np.testing.assert_allclose(np.linalg.norm(cs.x, axis=1), 1.0, atol=1e-12)
    assert np.iscomplexobj(cs.x) == complex_valued
    if complex_valued:
        assert np.abs(cs.x[cs.forget].imag).mean() > 0.05
    originals = {tuple(r) for r in np.round(x, 12)}
    assert not any(tuple(r) in originals for r in np.round(cs.x[cs.forget], 12))
    assert all(tuple(r) in originals for r in np.round(cs.x[cs.retain], 12))


def test_same_seed_same_corruption_other_seed_other():
    x, y = toy()
    a, b = corrupt(x, y, 0.4, "label_flip", 7), corrupt(x, y, 0.4, "label_flip", 7)
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.forget, b.forget)
    c = corrupt(x, y, 0.4, "label_flip", 8)
    assert not np.array_equal(a.forget, c.forget)


def test_feature_randomisation_respects_zero_padding():
    # MNIST: noise drawn in the 784 pixel dimensions, normalised, then zero-padded to 1024
    from qmu_core import data

    ds = data.mnist_1v9(n_per_class=20, n_val=4)
    cs = corrupt_dataset(ds, 0.5, "feature_random", seed=3)  # the default call
    assert len(cs.forget) == 20
    assert np.all(cs.x[:, 784:] == 0)  # the padded entries of random vectors are zero too
    np.testing.assert_allclose(np.linalg.norm(cs.x[cs.forget], axis=1), 1.0, atol=1e-6)
    # and the random vectors are not images: negative entries, which no pixel has
    assert np.all((cs.x[cs.forget, :784] < 0).any(axis=1))
    # without n_active, noise spreads over all 1024 entries (the easy tell SPEC.md warns of)
    cs2 = corrupt(ds.x_train, ds.y_train, 0.5, "feature_random", seed=3)
    assert np.all(np.abs(cs2.x[cs2.forget, 784:]).sum(axis=1) > 0)
    # the default call is the explicit one with the dataset's active length, draw for draw
    explicit = corrupt(ds.x_train, ds.y_train, 0.5, "feature_random", seed=3, n_active=784)
    np.testing.assert_array_equal(cs.x, explicit.x)
    np.testing.assert_array_equal(cs.y, explicit.y)
    with pytest.raises(ParameterError, match="n_active"):
        corrupt(ds.x_train, ds.y_train, 0.5, "feature_random", seed=3, n_active=2000)
    with pytest.raises(ParameterError, match="'ds' must be a qmu_core.data.Dataset"):
        corrupt_dataset(ds.x_train, 0.5, "feature_random", seed=3)


def test_feature_randomisation_of_xxz_fills_every_amplitude():
    # an XXZ state has no padding: its random replacement is a Haar-random state of 4096
    # amplitudes, complex, though a ground state's are zero outside the Sz = 0 sector
    from qmu_core import data

    ds = data.xxz_dataset([-0.5, 0.5, 1.5, 2.5], [0.0, 2.0], L=6)
    assert ds.n_active == ds.n_features == 64
    cs = corrupt_dataset(ds, 0.5, "feature_random", seed=0)
    noise = cs.x[cs.forget]
    assert np.all(noise != 0) and np.iscomplexobj(noise)
    np.testing.assert_allclose(np.linalg.norm(noise, axis=1), 1.0, atol=1e-6)
    assert np.bincount(cs.y_clean[cs.forget]).tolist() == [1, 1]


def test_bad_corruption_input():
    x, y = toy()
    with pytest.raises(ParameterError, match=r"'alpha' must lie in \[0.0, 1.0\)"):
        corrupt(x, y, 1.0, "label_flip", 0)
    with pytest.raises(ParameterError, match="alpha"):
        corrupt(x, y, -0.1, "label_flip", 0)
    with pytest.raises(ParameterError, match="kind"):
        corrupt(x, y, 0.1, "gaussian", 0)
    with pytest.raises(ParameterError, match="samples"):
        corrupt(x, y[:-1], 0.1, "label_flip", 0)
    with pytest.raises(ParameterError, match="number"):
        corrupt(x, y, "0.1", "label_flip", 0)
