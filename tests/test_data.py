"""Tests of mininn.data: shapes, ranges, determinism, and the promised properties."""

import random
import socket

import numpy as np
import pytest

from mininn.data import (
    Dataset,
    curves,
    mnist1d,
    one_hot,
    regression_1d,
    regression_target,
    two_spirals,
)
from mininn.errors import NonFiniteError, ShapeError


def test_regression_1d_shapes_range_and_target():
    X, Y = regression_1d(n=50, noise=0.1, seed=3)
    assert X.shape == Y.shape == (50, 1)
    assert X.dtype == Y.dtype == np.float64
    assert np.all((X >= -1) & (X <= 1))
    assert np.all(np.diff(X[:, 0]) >= 0)
    residual = Y - regression_target(X)
    assert 0.05 < residual.std() < 0.2
    _, Y_clean = regression_1d(n=50, noise=0.0, seed=3)
    np.testing.assert_array_equal(Y_clean, regression_target(X))


def test_two_spirals_shapes_balance_and_scale():
    X, Y = two_spirals(n=401, seed=1)
    assert X.shape == (401, 2) and Y.shape == (401, 1)
    assert X.dtype == Y.dtype == np.float64
    assert set(np.unique(Y)) == {0.0, 1.0}
    assert Y.sum() in (200, 201)
    assert 0.5 < np.abs(X).max() < 1.5


def test_regression_1d_target_is_not_linear():
    X, Y = regression_1d(n=200, noise=0.1, seed=0)
    features = np.hstack([X, np.ones_like(X)])
    weights = np.linalg.lstsq(features, Y, rcond=None)[0]
    assert (Y - features @ weights).std() > 3 * 0.1


def test_two_spirals_labels_follow_the_spirals():
    X, Y = two_spirals(n=1000, seed=0)
    distance = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)
    np.fill_diagonal(distance, np.inf)
    nearest_neighbour_label = Y[distance.argmin(axis=1)]
    assert np.mean(nearest_neighbour_label == Y) > 0.95


def test_two_spirals_are_not_linearly_separable():
    X, Y = two_spirals(n=1000, seed=0)
    features = np.hstack([X, np.ones((len(X), 1))])
    weights = np.linalg.lstsq(features, Y, rcond=None)[0]
    accuracy = np.mean((features @ weights > 0.5) == (Y > 0.5))
    assert accuracy < 0.8


def test_curves_images_are_soft_thin_strokes():
    X = curves(n=200, seed=0)
    assert X.shape == (200, 28 * 28) and X.dtype == np.float64
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert np.all(np.any(X > 0.5, axis=1))
    assert np.all(np.mean(X < 0.05, axis=1) > 0.7)
    assert np.any((X > 0.05) & (X < 0.95))  # anti-aliased edges, not a binary image


def test_curves_differ_from_a_shifted_copy_and_each_other():
    images = curves(n=20, seed=0, size=16).reshape(20, 16, 16)
    shifted = np.roll(images, 1, axis=2)
    assert np.all(np.abs(images - shifted).max(axis=(1, 2)) > 0.5)
    assert np.abs(images[0] - images[1]).max() > 0.5


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: regression_1d(seed=seed),
        lambda seed: two_spirals(seed=seed),
        lambda seed: (curves(n=30, seed=seed),),
    ],
    ids=["regression_1d", "two_spirals", "curves"],
)
def test_same_seed_same_data_other_seed_other_data(make):
    first, again, other = make(0), make(0), make(1)
    for a, b, c in zip(first, again, other, strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)


def test_generators_leave_global_random_state_alone():
    state = np.random.get_state()
    regression_1d()
    two_spirals()
    curves(n=5)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]


@pytest.mark.parametrize(
    "call, error",
    [
        (lambda: regression_1d(n=0), ValueError),
        (lambda: regression_1d(n=2.5), ValueError),
        (lambda: regression_1d(noise=-0.1), ValueError),
        (lambda: regression_1d(noise=np.nan), NonFiniteError),
        (lambda: two_spirals(n=1), ValueError),
        (lambda: two_spirals(turns=0), ValueError),
        (lambda: curves(n=0), ValueError),
        (lambda: curves(size=True), ValueError),
        (lambda: mnist1d(num_samples=1005), ValueError),
        (lambda: mnist1d(num_samples=10, train_split=0.05), ValueError),
        (lambda: mnist1d(train_split=1.0), ValueError),
        (lambda: mnist1d(seed=-1), ValueError),
    ],
    ids=[
        "n=0",
        "n=2.5",
        "noise<0",
        "noise=nan",
        "spirals n=1",
        "turns=0",
        "curves n=0",
        "size=True",
        "num_samples=1005",
        "empty train",
        "empty test",
        "seed<0",
    ],
)
def test_bad_arguments_raise(call, error):
    with pytest.raises(error):
        call()


@pytest.fixture
def network_attempts(monkeypatch, tmp_path):
    """Refuse and record every network access; run in an empty working directory.

    The list is checked as well as the exception raised, because ``mnist1d.get_dataset``
    swallows all exceptions and falls back to generating (and pickling) the data.
    """
    requests = pytest.importorskip("requests")
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise ConnectionError("network access attempted")

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.chdir(tmp_path)
    return attempts


@pytest.fixture(scope="module")
def standard_mnist1d():
    """The default MNIST-1D data set (generated once for the module)."""
    return mnist1d()


def test_mnist1d_standard_split(standard_mnist1d):
    data = standard_mnist1d
    assert isinstance(data, Dataset)
    assert data.X_train.shape == (4000, 40) and data.X_test.shape == (1000, 40)
    assert data.y_train.shape == (4000,) and data.y_test.shape == (1000,)
    assert data.X_train.dtype == np.float64 and data.y_train.dtype == np.int64
    assert data.num_classes == 10
    assert set(np.unique(data.y_train)) == set(range(10))
    assert set(np.unique(data.y_test)) == set(range(10))
    assert np.all(np.isfinite(data.X_train)) and np.all(np.isfinite(data.X_test))


def test_mnist1d_deterministic_offline_and_restores_global_state(
    standard_mnist1d, network_attempts, tmp_path
):
    np.random.seed(123)
    random.seed(123)
    numpy_state, python_state = np.random.get_state(), random.getstate()
    data = mnist1d()
    after = np.random.get_state()
    assert numpy_state[0] == after[0] and np.array_equal(numpy_state[1], after[1])
    assert numpy_state[2:] == after[2:]
    assert random.getstate() == python_state
    assert network_attempts == [] and list(tmp_path.iterdir()) == []
    reference = standard_mnist1d
    for name in ("X_train", "y_train", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(data, name), getattr(reference, name))


def test_mnist1d_seed_and_size():
    data = mnist1d(num_samples=100, train_split=0.5, seed=7)
    assert data.X_train.shape == (50, 40) and data.X_test.shape == (50, 40)
    other = mnist1d(num_samples=100, train_split=0.5, seed=8)
    assert not np.array_equal(data.X_train, other.X_train)


def test_one_hot_round_trip():
    labels = np.array([2, 0, 1, 2, 4])
    encoded = one_hot(labels, 5)
    assert encoded.shape == (5, 5) and encoded.dtype == np.float64
    np.testing.assert_array_equal(encoded.sum(axis=1), 1.0)
    np.testing.assert_array_equal(encoded.argmax(axis=1), labels)
    assert one_hot([], 3).shape == (0, 3)


@pytest.mark.parametrize(
    "labels, num_classes, error",
    [
        ([[0, 1]], 2, ShapeError),
        ([0.0, 1.0], 2, ValueError),
        ([0, 2], 2, ValueError),
        ([-1, 0], 2, ValueError),
        ([0, 1], 0, ValueError),
    ],
)
def test_one_hot_rejects_bad_labels(labels, num_classes, error):
    with pytest.raises(error):
        one_hot(labels, num_classes)
