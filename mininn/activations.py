"""Elementwise activation functions, written with autograd's numpy.

Convention at the kink: ``relu'(0) = 0`` (as in PyTorch and JAX). The
expression ``np.maximum(0, x)`` would give autograd's tie-splitting value
0.5 at exactly 0; :func:`relu` uses ``np.where(x > 0, x, 0)`` instead, whose
derivative at 0 is the derivative of the constant branch, 0.

Every activation has reverse- and forward-mode derivatives of every order, so
forward-over-reverse Hessian-vector products and Gauss-Newton products work
with all of them. :data:`DERIVATIVES` also gives each one's first and second
derivative in closed form, in plain numpy, for the hand-written passes of
:mod:`mininn.curvature.mlp_passes`.
"""

import autograd.numpy as np
import numpy
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


# -- closed-form derivatives, in plain numpy -------------------------------------------------


def _sigmoid_pair(z):
    """sigmoid(z) and sigmoid(-z) = 1 - sigmoid(z), both to full relative precision, overflow-free."""
    e = numpy.exp(-numpy.abs(z))
    r = 1.0 / (1.0 + e)
    positive = z >= 0
    return numpy.where(positive, r, e * r), numpy.where(positive, e * r, r)


def _relu_derivatives(z):
    positive = z > 0
    return numpy.fmax(z, 0.0, out=z), positive, None  # fmax: NaN -> 0, as np.where(z > 0, z, 0)


def _leaky_relu_derivatives(z, slope=0.01):
    slopes = numpy.where(z > 0, 1.0, slope)
    return numpy.multiply(z, slopes, out=z), slopes, None


def _softplus_derivatives(z):
    s, s_neg = _sigmoid_pair(z)
    return numpy.maximum(z, 0.0) + numpy.log1p(numpy.exp(-numpy.abs(z))), s, s * s_neg


def _gelu_derivatives(z):
    cdf = 0.5 * scipy.special.erfc(-z / numpy.sqrt(2.0))
    pdf = numpy.exp(-0.5 * z * z) / numpy.sqrt(2.0 * numpy.pi)
    return z * cdf, cdf + z * pdf, pdf * (2.0 - z * z)


def _tanh_derivatives(z):
    t = numpy.tanh(z)
    e = numpy.exp(-2.0 * numpy.abs(z))
    sech2 = 4.0 * e / (1.0 + e) ** 2  # 1 - tanh^2 without cancellation
    return t, sech2, -2.0 * t * sech2


def _sigmoid_derivatives(z):
    s, s_neg = _sigmoid_pair(z)
    slope = s * s_neg
    return s, slope, slope * (s_neg - s)


def _identity_derivatives(z):
    return z, None, None


#: For each activation of this module, a function z -> (act(z), act'(z), act''(z)) in plain
#: numpy, with None for a derivative that is identically 1 (first) or 0 (second); z may be
#: overwritten (relu and leaky_relu compute the value in place). relu'(0) = 0 and
#: leaky_relu'(0) = 0.01, as autograd differentiates the definitions above.
DERIVATIVES = {
    relu: _relu_derivatives,
    leaky_relu: _leaky_relu_derivatives,
    softplus: _softplus_derivatives,
    gelu: _gelu_derivatives,
    tanh: _tanh_derivatives,
    sigmoid: _sigmoid_derivatives,
    identity: _identity_derivatives,
}


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
