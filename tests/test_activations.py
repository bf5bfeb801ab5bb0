"""Tests of mininn.activations: derivatives, the convention at the kink, stability, lookup."""

import warnings

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad, grad
from helpers import fd_derivative

from mininn import activations
from mininn.activations import (
    ACTIVATIONS,
    PIECEWISE_LINEAR,
    gelu,
    get_activation,
    leaky_relu,
    relu,
    sigmoid,
    softplus,
)
from mininn.errors import MininnError, UnknownNameError

ALL_NAMES = sorted(ACTIVATIONS)


def points_away_from_kinks(seed, size=200, scale=3.0):
    """Random points with |x| > 1e-2, so central differences never straddle the kink at 0."""
    x = np.random.default_rng(seed).normal(scale=scale, size=size)
    return np.where(np.abs(x) < 1e-2, 0.5, x)


def second_derivative(f):
    return elementwise_grad(elementwise_grad(f))


@pytest.mark.parametrize("name", ALL_NAMES)
def test_first_derivative_matches_finite_differences(name):
    f = ACTIVATIONS[name]
    x = points_away_from_kinks(seed=1)
    np.testing.assert_allclose(elementwise_grad(f)(x), fd_derivative(f, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["softplus", "gelu", "tanh", "sigmoid"])
def test_second_derivative_of_smooth_activations_matches_finite_differences(name):
    f = ACTIVATIONS[name]
    x = points_away_from_kinks(seed=2)
    d1 = elementwise_grad(f)
    np.testing.assert_allclose(second_derivative(f)(x), fd_derivative(d1, x), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("beta", [0.5, 3.0, 20.0])
def test_softplus_beta_derivatives_match_finite_differences(beta):
    f = lambda x: softplus(x, beta=beta)  # noqa: E731
    x = points_away_from_kinks(seed=3, scale=1.0)
    np.testing.assert_allclose(elementwise_grad(f)(x), fd_derivative(f, x), rtol=1e-6, atol=1e-8)
    # closed forms: softplus' = sigmoid(beta x), softplus'' = beta s (1 - s)
    s = 1 / (1 + np.exp(-beta * x))
    np.testing.assert_allclose(elementwise_grad(f)(x), s, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(second_derivative(f)(x), beta * s * (1 - s), rtol=1e-9, atol=1e-12)


def test_activation_values_match_formulas():
    x = np.linspace(-4, 4, 81)
    np.testing.assert_array_equal(relu(x), np.maximum(x, 0))
    np.testing.assert_allclose(leaky_relu(x), np.where(x > 0, x, 0.01 * x))
    np.testing.assert_allclose(leaky_relu(x, slope=0.2), np.where(x > 0, x, 0.2 * x))
    np.testing.assert_allclose(softplus(x), np.log1p(np.exp(x)), rtol=1e-14)
    np.testing.assert_allclose(softplus(x, beta=2.5), np.log1p(np.exp(2.5 * x)) / 2.5, rtol=1e-14)
    np.testing.assert_allclose(sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-14)
    np.testing.assert_allclose(ACTIVATIONS["tanh"](x), np.tanh(x))
    np.testing.assert_array_equal(ACTIVATIONS["identity"](x), x)
    # gelu = x Phi(x); check against a few tabulated values of x Phi(x)
    np.testing.assert_allclose(gelu(np.array([0.0, 1.0, -1.0, 2.0])),
                               [0.0, 0.8413447460685429, -0.15865525393145707, 1.9544997361036416],
                               rtol=1e-12, atol=1e-15)


def test_relu_derivative_at_zero_is_zero_but_np_maximum_gives_one_half():
    assert grad(relu)(0.0) == 0.0
    assert grad(relu)(1e-300) == 1.0
    assert grad(relu)(-1e-300) == 0.0
    # the convention mininn avoids: autograd splits ties of np.maximum
    assert grad(lambda x: anp.maximum(0.0, x))(0.0) == 0.5
    assert grad(lambda x: anp.maximum(0.0, x))(2.0) == 1.0


def test_leaky_relu_derivative_at_zero_is_the_slope():
    assert grad(leaky_relu)(0.0) == pytest.approx(0.01)
    assert grad(lambda x: leaky_relu(x, slope=0.3))(0.0) == pytest.approx(0.3)
    assert grad(leaky_relu)(0.5) == 1.0


@pytest.mark.parametrize("name", sorted(PIECEWISE_LINEAR))
def test_piecewise_linear_activations_have_zero_second_derivative(name):
    x = points_away_from_kinks(seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # autograd: "Output seems independent of input."
        d2 = second_derivative(ACTIVATIONS[name])(x)
    np.testing.assert_array_equal(d2, 0.0)


@pytest.mark.parametrize("name", sorted(set(ACTIVATIONS) - PIECEWISE_LINEAR))
def test_smooth_activations_have_nonzero_second_derivative(name):
    x = np.linspace(-1, 1, 11) + 0.05
    assert np.max(np.abs(second_derivative(ACTIVATIONS[name])(x))) > 1e-2


def test_softplus_approaches_relu_as_beta_grows():
    x = np.linspace(-3, 3, 6001)  # contains 0, where the gap is largest
    gaps = []
    for beta in [1.0, 10.0, 100.0, 1000.0]:
        gap = np.max(np.abs(softplus(x, beta=beta) - relu(x)))
        assert gap == pytest.approx(np.log(2) / beta, rel=1e-9)  # attained at x = 0
        gaps.append(gap)
    assert gaps[-1] < 1e-3
    assert all(later < earlier / 5 for earlier, later in zip(gaps, gaps[1:]))


def test_softplus_second_derivative_concentrates_at_zero():
    x = np.linspace(-2, 2, 40001)
    dx = x[1] - x[0]
    for beta in [1.0, 10.0, 100.0]:
        d2 = second_derivative(lambda t, beta=beta: softplus(t, beta=beta))(x)
        assert np.max(d2) == pytest.approx(beta / 4, rel=1e-9)
        assert x[np.argmax(d2)] == pytest.approx(0.0, abs=1e-12)
        if beta >= 10:
            # integral of f'' is f'(2) - f'(-2), close to 1 ...
            assert np.sum(d2) * dx == pytest.approx(1.0, abs=1e-3)
            # ... and its mass sits within 10/beta of the kink
            near = np.abs(x) < 10 / beta
            assert np.sum(d2[near]) * dx > 0.99


@pytest.mark.parametrize("name", sorted(set(ALL_NAMES) - {"tanh"}))
def test_activations_are_finite_at_extreme_inputs_without_warnings(name):
    f = ACTIVATIONS[name]
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        values, derivatives = f(x), elementwise_grad(f)(x)
        curvatures = second_derivative(f)(x) if name not in PIECEWISE_LINEAR else 0 * x
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(derivatives))
    assert np.all(np.isfinite(curvatures))


def test_tanh_derivative_is_correct_at_extreme_inputs():
    # autograd differentiates tanh as 1 / cosh(x)^2, which overflows (to the right
    # answer, 0, but with a RuntimeWarning) for |x| > 355; only the result is checked
    x = np.array([-1000.0, 0.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        derivatives = elementwise_grad(ACTIVATIONS["tanh"])(x)
    np.testing.assert_array_equal(derivatives, [0.0, 1.0, 0.0])


def test_sigmoid_and_softplus_limits_at_extreme_inputs():
    x = np.array([-1000.0, 1000.0])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        np.testing.assert_allclose(sigmoid(x), [0.0, 1.0], atol=1e-300)
        np.testing.assert_allclose(sigmoid(np.array([-40.0])), np.exp(-40.0), rtol=1e-12)
        np.testing.assert_allclose(softplus(x), [0.0, 1000.0], atol=1e-300)
        np.testing.assert_allclose(softplus(x, beta=50.0), [0.0, 1000.0], atol=1e-300)
        np.testing.assert_allclose(elementwise_grad(softplus)(x), [0.0, 1.0], atol=1e-300)
        np.testing.assert_allclose(elementwise_grad(sigmoid)(x), [0.0, 0.0], atol=1e-300)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_get_activation_by_name(name):
    assert get_activation(name) is ACTIVATIONS[name]
    assert get_activation(name) is getattr(activations, name)


def test_get_activation_passes_callables_through():
    def custom(x):
        return x**3

    assert get_activation(custom) is custom
    assert get_activation(np.sin) is np.sin


@pytest.mark.parametrize("bad", ["Relu", "swish", "", 3, None, ["relu"]])
def test_get_activation_unknown_name_raises(bad):
    with pytest.raises(UnknownNameError, match="unknown activation"):
        get_activation(bad)
    with pytest.raises(ValueError):  # UnknownNameError is also a ValueError ...
        get_activation(bad)
    with pytest.raises(MininnError):  # ... and a MininnError
        get_activation(bad)
