"""Every curvature product of Problem, for every activation and loss, against dense matrices.

The references are independent of the products under test: the dense Hessian (autograd,
reverse over reverse) is checked against central differences of the gradient, and the
dense Gauss-Newton matrix is assembled as J^T H_L J from the output Jacobian and the
loss's own Hessian with respect to the outputs, neither of which uses
``output_hessian_vp`` or forward mode.
"""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import hessian, jacobian
from helpers import fd_hessian, random_problem

from mininn.activations import ACTIVATIONS
from mininn.curvature import HVP_METHODS
from mininn.losses import LOSSES

SIZES = (3, 4, 3, 2)  # two hidden layers, N = 39
NUM_EXAMPLES = 6

CASES = [(activation, loss, "identity") for activation in sorted(ACTIVATIONS) for loss in sorted(LOSSES)]
CASES += [(activation, "mse", "sigmoid") for activation in sorted(ACTIVATIONS)]


def max_relative_error(a, b):
    """max |a - b| / max |b|."""
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def problem_at_smooth_point(activation, loss, output):
    """(problem, theta, v), with every pre-activation at least 1e-3 away from relu's kink at 0."""
    problem, theta = random_problem(SIZES, activation=activation, loss=loss, n=NUM_EXAMPLES,
                                    seed=3, output=output)
    _, preactivations = problem.model.forward_trace(theta, problem.X)
    assert min(np.min(np.abs(z)) for z in preactivations) > 1e-3
    v = np.random.default_rng(2).standard_normal(problem.num_params)
    return problem, theta, v


def dense_gauss_newton(problem, theta):
    """J^T H_L J from autograd's dense output Jacobian J and dense loss Hessian H_L."""
    outputs = problem.outputs(theta)
    J = jacobian(problem.outputs)(theta).reshape(outputs.size, problem.num_params)
    H_L = hessian(lambda f: problem.loss.value(anp.reshape(f, outputs.shape), problem.Y))(outputs.ravel())
    return J.T @ H_L @ J


@pytest.mark.parametrize(("activation", "loss", "output"), CASES)
def test_hessian_products_match_the_dense_hessian(activation, loss, output):
    problem, theta, v = problem_at_smooth_point(activation, loss, output)
    H = problem.hessian(theta)
    assert max_relative_error(H, fd_hessian(problem.grad, theta)) < 1e-6
    np.testing.assert_allclose(H, H.T, rtol=0, atol=1e-13 * np.max(np.abs(H)))
    expected = H @ v
    for method in HVP_METHODS:
        assert max_relative_error(problem.hvp(theta, v, method=method), expected) < 1e-10, method
    assert max_relative_error(problem.hvp_operator(theta)(v), expected) < 1e-10


@pytest.mark.parametrize(("activation", "loss", "output"), CASES)
def test_gauss_newton_products_match_the_dense_gauss_newton_matrix(activation, loss, output):
    problem, theta, v = problem_at_smooth_point(activation, loss, output)
    G = dense_gauss_newton(problem, theta)
    assert max_relative_error(problem.ggn(theta), G) < 1e-10
    expected = G @ v
    assert max_relative_error(problem.ggn_vp(theta, v), expected) < 1e-10
    assert max_relative_error(problem.ggn_operator(theta)(v), expected) < 1e-10
