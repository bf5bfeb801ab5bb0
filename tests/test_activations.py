"""Tests of mininn.activations: derivatives, the convention at the kink, stability, lookup."""

import math
import warnings

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import elementwise_grad, grad, make_jvp
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


def forward_over_reverse_second_derivative(f, x):
    """f''(x) elementwise, as the forward-mode derivative of the reverse-mode derivative: the
    composition that forward-over-reverse Hessian-vector products use."""
    return make_jvp(elementwise_grad(f))(x)(np.ones_like(x))[1]


@pytest.mark.parametrize("name", ALL_NAMES)
def test_forward_mode_derivatives_match_reverse_mode(name):
    f = ACTIVATIONS[name]
    x = points_away_from_kinks(seed=5)
    np.testing.assert_allclose(make_jvp(f)(x)(np.ones_like(x))[1], elementwise_grad(f)(x),
                               rtol=1e-14, atol=1e-300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # autograd: "Output seems independent of input."
        reverse = second_derivative(f)(x)
        forward = forward_over_reverse_second_derivative(f, x)
    np.testing.assert_allclose(forward, reverse, rtol=1e-11, atol=1e-300)


def test_gelu_derivatives_match_closed_forms_in_both_modes():
    # gelu' = Phi(x) + x phi(x), gelu'' = (2 - x^2) phi(x)
    x = points_away_from_kinks(seed=6)
    phi = np.exp(-x**2 / 2) / np.sqrt(2 * np.pi)
    Phi = np.array([0.5 * math.erfc(-t / math.sqrt(2)) for t in x])
    np.testing.assert_allclose(elementwise_grad(gelu)(x), Phi + x * phi, rtol=1e-13, atol=1e-300)
    for d2 in (second_derivative(gelu)(x), forward_over_reverse_second_derivative(gelu, x)):
        np.testing.assert_allclose(d2, (2 - x**2) * phi, rtol=1e-12, atol=1e-300)
    ones = np.ones_like(x)
    third = make_jvp(lambda t: make_jvp(elementwise_grad(gelu))(t)(ones)[1])(x)(ones)[1]
    np.testing.assert_allclose(third, (x**3 - 4 * x) * phi, rtol=1e-11, atol=1e-300)


def test_gelu_keeps_its_digits_in_the_negative_tail():
    # 1 + erf(x / sqrt 2) cancels to 0 for x <= -8.4; x Phi(x) is a normal float down to x = -37
    x = np.array([-5.0, -10.0, -20.0, -37.0])
    expected = [0.5 * t * math.erfc(-t / math.sqrt(2)) for t in x]
    np.testing.assert_allclose(gelu(x), expected, rtol=1e-13, atol=0)
    assert np.all(gelu(x) < 0)


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
