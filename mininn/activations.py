"""Elementwise activation functions, written with autograd's numpy.

Convention at the kink: ``relu'(0) = 0`` (as in PyTorch and JAX). The
expression ``np.maximum(0, x)`` would give autograd's tie-splitting value
0.5 at exactly 0; :func:`relu` uses ``np.where(x > 0, x, 0)`` instead, whose
derivative at 0 is the derivative of the constant branch, 0.
"""

import autograd.numpy as np
from autograd.scipy.special import erf

from .errors import UnknownNameError


def relu(x):
    """Rectified linear unit max(x, 0), with derivative 0 at x = 0."""
    return np.where(x > 0, x, 0.0)


def leaky_relu(x, slope=0.01):
    """x for x > 0 and slope * x otherwise (derivative ``slope`` at 0)."""
    return np.where(x > 0, x, slope * x)


def softplus(x, beta=1.0):
    """Smooth ReLU surrogate log(1 + exp(beta x)) / beta, overflow-free.

    As beta grows it tends to relu, and its second derivative
    beta * s (1 - s), with s = sigmoid(beta x), concentrates at 0.
    """
    return np.logaddexp(0.0, beta * x) / beta


def gelu(x):
    """Gaussian error linear unit x * Phi(x) (exact form with erf)."""
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def tanh(x):
    """Hyperbolic tangent."""
    return np.tanh(x)


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), written as exp(-log(1 + e^-x)) so it never overflows.

    (The form 0.5 (1 + tanh(x/2)) has a finite value, but autograd's derivative of
    tanh, 1 / cosh^2, overflows with a RuntimeWarning for ``|x| > 710``.)
    """
    return np.exp(-np.logaddexp(0.0, -x))


def identity(x):
    """The identity, for linear layers."""
    return x


ACTIVATIONS = {
    "relu": relu,
    "leaky_relu": leaky_relu,
    "softplus": softplus,
    "gelu": gelu,
    "tanh": tanh,
    "sigmoid": sigmoid,
    "identity": identity,
}

#: Names of the activations that are piecewise linear (zero second derivative
#: almost everywhere). For these the same-layer Hessian blocks of an MLP with a
#: linear output and a convex loss equal the Gauss-Newton blocks.
PIECEWISE_LINEAR = frozenset({"relu", "leaky_relu", "identity"})


def get_activation(name):
    """Return the activation function called ``name`` (a callable is returned as is)."""
    if callable(name):
        return name
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(
            f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)} "
            "or pass a callable"
        ) from None
