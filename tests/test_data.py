"""Datasets: the MNIST subset and the XXZ ground states."""

import numpy as np
import pytest

from qmu_core import data
from qmu_core.validation import ParameterError


def test_mnist_subset_shapes_labels_and_normalisation():
    ds = data.mnist_1v9()
    # the published accuracies are multiples of 1/2144: every test-set 1 and 9 by default
    assert ds.x_train.shape == (500, 1024) and ds.x_val.shape == (2144, 1024)
    assert ds.n_active == 784 and data.mnist_1v9(n_val=1000).x_val.shape == (1000, 1024)
    assert np.bincount(ds.y_train).tolist() == [250, 250]
    np.testing.assert_allclose(np.linalg.norm(ds.x_train, axis=1), 1.0, atol=1e-6)
    assert np.all(ds.x_train[:, 784:] == 0)  # zero padding to 2**10
    # MNIST test labels begin 7 2 1 0 4 1 4 9 5 9: the first ones-or-nines are at 2, 5, 7, 9
    a = data._mnist_arrays()
    assert a["test_index"][:4].tolist() == [2, 5, 7, 9]
    assert ds.y_val[:4].tolist() == [0, 0, 1, 1]
    assert a["train_ones_index"][:3].tolist() == [3, 6, 8]  # labels 5 0 4 1 9 2 1 3 1 ...
    assert a["train_nines_index"][:2].tolist() == [4, 19]
    assert np.bincount(ds.y_val).tolist() == [1135, 1009]


def test_mnist_784_features_and_raw_pixels():
    ds = data.mnist_1v9(n_per_class=3, n_val=4, n_features=784)
    assert ds.x_train.shape == (6, 784)
    imgs, y, _, _ = data.mnist_images(3, 4)
    assert imgs.dtype == np.uint8 and imgs.shape == (6, 28, 28) and y.tolist() == [0, 0, 0, 1, 1, 1]


def test_mnist_checksum_is_enforced(monkeypatch):
    data._mnist_arrays.cache_clear()
    monkeypatch.setattr(data, "MNIST_SHA256", "0" * 64)
    with pytest.raises(OSError, match="SHA-256"):
        data._mnist_arrays()
    data._mnist_arrays.cache_clear()


def test_bad_dataset_parameters():
    with pytest.raises(ParameterError, match="n_per_class"):
        data.mnist_1v9(n_per_class=5000)
    with pytest.raises(ParameterError, match="n_features"):
        data.mnist_1v9(n_features=100)
    with pytest.raises(ParameterError, match="dataset"):
        data.load("cifar")


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    import os

    os.environ["QMU_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    deltas = np.array([-0.5, 0.3, 1.0, 2.0])
    s, e = data.xxz_ground_states(deltas, L=12, return_energies=True)
    yield deltas, s, e
    del os.environ["QMU_CACHE_DIR"]


def test_xxz_ground_states_are_eigenvectors(states):
    deltas, s, e = states
    assert s.shape == (4, 4096)
    for d, v, en in zip(deltas, s, e):
        H = data.xxz_hamiltonian(d, L=12)
        assert np.linalg.norm(H @ v - en * v) < 1e-8
        assert abs(np.vdot(v, v) - 1) < 1e-12


def test_heisenberg_energy_per_site(states):
    deltas, _, e = states
    # L = 12 periodic Heisenberg chain, Pauli units: 4 x (-5.387390917 / 12)
    assert e[list(deltas).index(1.0)] / 12 == pytest.approx(-1.79580, abs=1e-5)


def test_xxz_lowest_state_over_all_sectors():
    # the S^z = 0 sector really holds the ground state: compare with the full spectrum (L = 8)
    import scipy.sparse.linalg as spla

    for d in (-0.9, 0.5, 2.5):
        e_full = spla.eigsh(data.xxz_hamiltonian(d, L=8), k=1, which="SA")[0][0]
        _, e = data.xxz_ground_states([d], L=8, use_cache=False, return_energies=True)
        assert e[0] == pytest.approx(e_full, abs=1e-9)


def test_xxz_cache_roundtrip_and_grid_validation(tmp_path, monkeypatch):
    monkeypatch.setenv("QMU_CACHE_DIR", str(tmp_path))
    a = data.xxz_ground_states([0.1, 1.5], L=8)
    files = list(tmp_path.glob("xxz_L8_*.npz"))
    assert len(files) == 1
    b = data.xxz_ground_states([0.1, 1.5], L=8)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ParameterError, match="deltas"):
        data.xxz_ground_states([-1.5], L=8)
    with pytest.raises(ParameterError, match="'L'"):
        data.xxz_ground_states([0.5], L=7)


def test_xxz_named_sets():
    train, val = data.xxz_grids("released_code")
    # the sizes the published accuracies imply: multiples of 1/82 and 1/84
    assert len(train) == 82 and len(val) == 84
    assert (train < 1).sum() == 41 and (val < 1).sum() == 42
    # the two sets interleave on one grid per phase: a validation point between any two
    # consecutive training points of a phase
    for lo, hi in ((-1, 1), (1, 3.1)):
        t, v = train[(train > lo) & (train < hi)], val[(val > lo) & (val < hi)]
        assert v[0] < t[0] and v[-1] > t[-1]
        assert np.all((v[1:-1] > t[:-1]) & (v[1:-1] < t[1:]))
    t2, v2 = data.xxz_grids("paper_text")
    assert len(t2) == 197 and len(v2) == 199
    with pytest.raises(ParameterError, match="xxz_set"):
        data.xxz_grids("published")


def test_xxz_gauge_random_phase(tmp_path, monkeypatch):
    monkeypatch.setenv("QMU_CACHE_DIR", str(tmp_path))
    train, val = [0.2, 0.5, 1.5, 2.0], [0.3, 1.7]
    fixed = data.xxz_dataset(train, val, L=8)
    rand = data.xxz_dataset(train, val, L=8, gauge="random_phase", gauge_seed=3)
    assert np.isrealobj(fixed.x_train) or np.all(fixed.x_train.imag == 0)
    # the same states up to one phase each: |<fixed|rand>| = 1, but not equal vectors
    for a, b in ((fixed.x_train, rand.x_train), (fixed.x_val, rand.x_val)):
        ov = np.abs(np.sum(np.conj(a) * b, axis=1))
        np.testing.assert_allclose(ov, 1.0, atol=1e-6)
        assert np.all(np.abs(b.imag).max(axis=1) > 1e-3)
    # seeded: the same seed gives the same phases, another seed others
    again = data.xxz_dataset(train, val, L=8, gauge="random_phase", gauge_seed=3)
    np.testing.assert_array_equal(again.x_train, rand.x_train)
    other = data.xxz_dataset(train, val, L=8, gauge="random_phase", gauge_seed=4)
    assert not np.allclose(other.x_train, rand.x_train)
    with pytest.raises(ParameterError, match="xxz_gauge"):
        data.xxz_dataset(train, val, L=8, gauge="random")


def test_xxz_dataset_default_grids():
    assert len(data.XXZ_TRAIN_DELTAS) == 197 and len(data.XXZ_VAL_DELTAS) == 199
    assert data.XXZ_TRAIN_DELTAS[0] == -0.96 and data.XXZ_TRAIN_DELTAS[-1] == 3.0
    assert not np.any(np.isclose(data.XXZ_TRAIN_DELTAS, 1.0))
    with pytest.raises(ParameterError, match="critical"):
        data.xxz_dataset(train_deltas=[0.5, 1.0], val_deltas=[0.2], L=8)
