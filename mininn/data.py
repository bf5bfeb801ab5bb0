"""Data sets made by code: deterministic given ``seed``, float64, no download.

Every generator draws from its own ``np.random.default_rng(seed)``; the only
exception is :func:`mnist1d`, whose generator uses numpy's global random state,
which is saved before and restored after the call. Inputs have one example per
row.
"""

import random
from dataclasses import dataclass

import numpy as np

from .errors import ArgumentError, ShapeError
from .validation import integer, random_seed, real

__all__ = [
    "Dataset",
    "curves",
    "mnist1d",
    "one_hot",
    "regression_1d",
    "regression_target",
    "two_spirals",
]

CURVE_LINE_WIDTH = 1.5
"""Width in pixels of the stroke drawn by :func:`curves`."""


def regression_target(x):
    """The noise-free target of :func:`regression_1d`, ``sin(3 x) + 0.3 x``.

    Parameters
    ----------
    x : ndarray
        Inputs, any shape.

    Returns
    -------
    ndarray
        The target at ``x``, same shape.
    """
    return np.sin(3.0 * x) + 0.3 * x


def regression_1d(n=200, noise=0.1, seed=0):
    """A one-dimensional regression problem: a smooth curve plus Gaussian noise.

    Parameters
    ----------
    n : int
        Number of examples, at least 1.
    noise : float
        Standard deviation of the Gaussian noise added to the targets, at least 0.
    seed : int
        Seed of the random generator.

    Returns
    -------
    X : ndarray of shape (n, 1)
        Inputs drawn uniformly from [-1, 1], sorted increasingly.
    Y : ndarray of shape (n, 1)
        ``regression_target(X)`` plus noise.
    """
    integer("n", n, 1)
    real("noise", noise, 0.0)
    rng = np.random.default_rng(random_seed("seed", seed))
    X = np.sort(rng.uniform(-1.0, 1.0, size=n))[:, None]
    Y = regression_target(X) + noise * rng.standard_normal((n, 1))
    return X, Y


def two_spirals(n=400, noise=0.05, turns=1.5, seed=0):
    """Two interleaved spirals, a binary classification problem no line solves.

    Class 0 lies on the spiral ``r (cos t, sin t)`` with radius ``r = t / t_max``
    in [0, 1] and ``t_max = 2 pi turns``; class 1 is the same spiral turned by
    half a revolution. Points are spread evenly along each spiral's length.

    Parameters
    ----------
    n : int
        Number of examples, at least 2; the classes have ``n // 2`` and
        ``n - n // 2`` examples.
    noise : float
        Standard deviation of the Gaussian noise added to each coordinate, at least 0.
    turns : float
        Number of revolutions of each spiral, greater than 0.
    seed : int
        Seed of the random generator.

    Returns
    -------
    X : ndarray of shape (n, 2)
        Points, within about the unit disc, in random order.
    Y : ndarray of shape (n, 1)
        Labels 0.0 or 1.0 (targets of a sigmoid cross-entropy loss).
    """
    integer("n", n, 2)
    real("noise", noise, 0.0)
    real("turns", turns, 0.0, strict=True)
    rng = np.random.default_rng(random_seed("seed", seed))
    labels = rng.permutation(np.arange(n) % 2).astype(np.float64)
    t_max = 2.0 * np.pi * turns
    # Arc length grows like t**2, so t = t_max sqrt(u) spreads points evenly along the curve.
    t = t_max * np.sqrt(rng.uniform(size=n))
    angle = t + np.pi * labels
    radius = t / t_max
    X = radius[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    X += noise * rng.standard_normal((n, 2))
    return X, labels[:, None]


def _bezier_points(control, num_points):
    """Points of cubic Bezier curves.

    Parameters
    ----------
    control : ndarray of shape (n, 4, 2)
        Four control points per curve.
    num_points : int
        Number of points per curve, evenly spaced in the curve parameter.

    Returns
    -------
    ndarray of shape (n, num_points, 2)
    """
    s = np.linspace(0.0, 1.0, num_points)[:, None]
    bernstein = np.hstack([(1 - s) ** 3, 3 * s * (1 - s) ** 2, 3 * s**2 * (1 - s), s**3])
    return np.einsum("pk,nkd->npd", bernstein, control)


def _render(points, size):
    """Draw anti-aliased strokes through densely sampled curve points.

    A pixel's intensity is ``clip(w / 2 + 1/2 - d, 0, 1)`` with ``d`` the distance
    in pixels from its centre to the nearest curve point and ``w`` the line width:
    the fraction of a pixel covered by a stroke of width ``w``, to first order.

    Parameters
    ----------
    points : ndarray of shape (n, m, 2)
        Curve points in the unit square, as (x, y).
    size : int
        Images are size x size pixels.

    Returns
    -------
    ndarray of shape (n, size, size)
        Intensities in [0, 1]; row index follows y, column index follows x.
    """
    reach = CURVE_LINE_WIDTH / 2 + 0.5  # intensity is zero beyond this distance
    pad = 2  # pixels within ``reach`` <= 1.5 of a point are at most 2 outside the image
    n = points.shape[0]
    pixel = points * size - 0.5  # pixel centres at integer coordinates
    nearest = np.rint(pixel).astype(np.int64)
    # the 3 x 3 pixels around each point's nearest pixel: column and row indices (n, m, 9)
    offset_x, offset_y = (grid.ravel() for grid in np.meshgrid([-1, 0, 1], [-1, 0, 1]))
    column = nearest[..., :1] + offset_x
    row = nearest[..., 1:] + offset_y
    distance = np.hypot(column - pixel[..., :1], row - pixel[..., 1:])
    intensity = np.clip(reach - distance, 0.0, 1.0)
    side = size + 2 * pad
    image_index = np.arange(n)[:, None, None]
    flat = (image_index * side + row + pad) * side + column + pad
    canvas = np.zeros(n * side * side)
    np.maximum.at(canvas, flat.ravel(), intensity.ravel())
    return canvas.reshape(n, side, side)[:, pad:-pad, pad:-pad]


def curves(n=1000, seed=0, size=28):
    """Images of random smooth curves, after the CURVES data of Hinton & Salakhutdinov (2006).

    Each image shows one cubic Bezier curve whose four control points are drawn
    uniformly from [0.1, 0.9] x [0.1, 0.9] (so the curve stays inside the frame),
    stroked with an anti-aliased line about ``CURVE_LINE_WIDTH`` = 1.5 pixels wide.
    Autoencoders reconstruct ``X`` itself.

    Parameters
    ----------
    n : int
        Number of images, at least 1.
    seed : int
        Seed of the random generator.
    size : int
        Images are size x size pixels, at least 2.

    Returns
    -------
    X : ndarray of shape (n, size * size)
        Row-major flattened images, intensities in [0, 1].
    """
    integer("n", n, 1)
    integer("size", size, 2)
    rng = np.random.default_rng(random_seed("seed", seed))
    control = rng.uniform(0.1, 0.9, size=(n, 4, 2))
    # A curve inside the square is at most 3 sqrt(2) * 0.8 * size ~ 3.4 size pixels
    # long, so 8 * size points lie at most ~0.4 pixel apart (typically ~0.15).
    num_points = 8 * size
    chunk = 1000  # images drawn at once, to bound memory
    images = [
        _render(_bezier_points(control[start : start + chunk], num_points), size)
        for start in range(0, n, chunk)
    ]
    return np.concatenate(images).reshape(n, size * size)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification data set split into training and test examples.

    Attributes
    ----------
    X_train : ndarray of shape (n_train, d)
        Training inputs, float64.
    y_train : ndarray of shape (n_train,)
        Training labels, int64 in 0, ..., num_classes - 1.
    X_test : ndarray of shape (n_test, d)
        Test inputs, float64.
    y_test : ndarray of shape (n_test,)
        Test labels, int64.
    num_classes : int
        Number of classes.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    num_classes: int


def mnist1d(num_samples=5000, train_split=0.8, seed=42):
    """The MNIST-1D data set (Greydanus, 2020), generated by the ``mnist1d`` package.

    Calls the package's procedural generator (``make_dataset``) with its default
    arguments apart from the three below; nothing is downloaded or written to
    disk. The defaults give the paper's standard data set: 4000 training and
    1000 test examples of 40 features in 10 classes. The generator seeds
    numpy's and Python's global random states; both are restored afterwards.

    Parameters
    ----------
    num_samples : int
        Total number of examples, a positive multiple of 10 (equal class counts).
    train_split : float
        Fraction of the examples used for training, strictly between 0 and 1;
        both parts must be non-empty.
    seed : int
        Seed passed to the generator.

    Returns
    -------
    Dataset
        Inputs of shape (n, 40), standardised over the whole data set, and
        labels in 0, ..., 9.
    """
    from mnist1d.data import get_dataset_args, make_dataset  # slow import (matplotlib)

    num_classes = 10
    integer("num_samples", num_samples, num_classes)
    if num_samples % num_classes:
        raise ArgumentError(f"num_samples must be a multiple of 10, got {num_samples}")
    real("train_split", train_split, 0.0)
    num_train = int(num_samples * train_split)
    if not 0 < num_train < num_samples:
        raise ArgumentError(
            f"train_split={train_split} leaves an empty training or test set "
            f"for num_samples={num_samples}"
        )
    random_seed("seed", seed)
    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = num_samples, train_split, seed

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return Dataset(
        X_train=np.asarray(data["x"], dtype=np.float64),
        y_train=np.asarray(data["y"], dtype=np.int64),
        X_test=np.asarray(data["x_test"], dtype=np.float64),
        y_test=np.asarray(data["y_test"], dtype=np.int64),
        num_classes=num_classes,
    )


def one_hot(labels, num_classes):
    """One-hot encoding of integer class labels.

    Parameters
    ----------
    labels : array_like of shape (n,)
        Integer labels in 0, ..., num_classes - 1.
    num_classes : int
        Number of classes, at least 1.

    Returns
    -------
    ndarray of shape (n, num_classes)
        float64; row i is 1 in column ``labels[i]`` and 0 elsewhere.
    """
    integer("num_classes", num_classes, 1)
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ShapeError(f"labels must be one-dimensional, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ArgumentError(
            f"labels must be integers, got dtype {labels.dtype}; convert with .astype(int)"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ArgumentError(
            f"labels must lie in 0, ..., {num_classes - 1}, "
            f"got values from {labels.min()} to {labels.max()}"
        )
    return (labels[:, None] == np.arange(num_classes)).astype(np.float64)
