"""Elementwise activation functions, written with autograd's numpy.

Convention at the kink: ``relu'(0) = 0`` (as in PyTorch and JAX). The
expression ``np.maximum(0, x)`` would give autograd's tie-splitting value
0.5 at exactly 0; :func:`relu` uses ``np.where(x > 0, x, 0)`` instead, whose
derivative at 0 is the derivative of the constant branch, 0.

Every activation has reverse- and forward-mode derivatives of every order, so
forward-over-reverse Hessian-vector products and Gauss-Newton products work
with all of them.
"""

import autograd.numpy as np
import scipy.special
from autograd.extend import defjvp, defvjp, primitive

from .errors import UnknownNameError


@primitive
def _erfc(x):
    """Complementary error function 1 - erf(x), an autograd primitive with both derivative modes.

    autograd's own ``erf`` has no forward-mode rule, so forward-over-reverse
    products through it fail; and ``1 + erf(x)`` loses digits as x decreases,
    all of them from x = -6 on, where ``erfc(-x)`` keeps them.
    """
    return scipy.special.erfc(x)


def _erfc_derivative(x):
    """d erfc / dx = -2 exp(-x^2) / sqrt(pi), written with autograd's numpy (differentiable again)."""
    return -2.0 / np.sqrt(np.pi) * np.exp(-np.square(x))


defvjp(_erfc, lambda ans, x: lambda g: g * _erfc_derivative(x))
defjvp(_erfc, lambda g, ans, x: g * _erfc_derivative(x))


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
    """Gaussian error linear unit x * Phi(x), exact, with Phi(x) = erfc(-x / sqrt(2)) / 2."""
    return 0.5 * x * _erfc(-x / np.sqrt(2.0))


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
